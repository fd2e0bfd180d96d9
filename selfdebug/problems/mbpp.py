"""MBPP, original release (``mbpp.jsonl``, 974 problems), with structured tests.

Splits (upstream README): ``prompt`` = task ids 1-10, ``test`` = 11-510 (500), ``validation`` = 511-600
(90), ``train`` = 601-974 (374; LeDex collects its training data here); ``all`` = every row.

Each problem: ``style="full"``; ``description`` = the task text; ``prompt`` = description + newline + the
first test assert (the usual MBPP convention: it tells the function name and signature); ``entry_point`` =
the function the asserts call; ``reference`` = ``code``; ``setup_code`` = ``test_setup_code``; tests from
``test_list`` (plus ``challenge_test_list`` when ``include_challenge=True``) via
:mod:`selfdebug.problems.asserts`; ``test_script`` = setup + asserts. Upstream ``\\r\\n`` line endings are
normalised to ``\\n``.

Two problems (367 and 927) have setup code that builds trees with the ``Node`` class the *program*
defines, so upstream runs it after the program, while ``Problem.setup_code`` runs before it. For those, the
setup is folded into each call instead: ``(exec(SETUP, globals()), CALL)[1]`` (metadata
``setup_in_calls=True``), which runs it in the program's namespace right before the call, as upstream does.

Known upstream records that fail their own tests on current CPython (see /work/shared/data/mbpp/README.md):
341 and 642 (set ordering) and 596 (``sys.getsizeof`` values); they are loaded unchanged.
"""

from __future__ import annotations

import ast
import builtins
import logging
import warnings
from pathlib import Path
from typing import Any

from selfdebug.problems.asserts import NotStructurable, convert_asserts
from selfdebug.problems.base import Problem, ProblemFormatError, TestCase
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "mbpp"
SPLITS: dict[str, tuple[int, int]] = {
    "prompt": (1, 10),
    "test": (11, 510),
    "validation": (511, 600),
    "train": (601, 974),
    "all": (1, 10**9),
}


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _parse(code: str) -> ast.Module:
    # Some MBPP programs have regexes with invalid escapes ("\d"): a SyntaxWarning, not our concern here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(code)


def _top_level_names(code: str) -> list[str]:
    try:
        tree = _parse(code)
    except SyntaxError:
        return []
    return [s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def find_entry_point(code: str, tests: list[str]) -> str:
    """The function the asserts call: the outermost called name that ``code`` defines at top level
    (else the outermost called non-builtin name)."""
    defined = set(_top_level_names(code))
    candidates: list[str] = []
    for text in tests:
        try:
            tree = _parse(text.strip())
        except SyntaxError:
            continue
        for node in ast.walk(tree):  # breadth-first: outer calls before inner ones
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                candidates.append(node.func.id)
    for name in candidates:
        if name in defined:
            return name
    for name in candidates:
        if not hasattr(builtins, name):
            return name
    raise ValueError("no function call found in the test asserts")


def _needs_program_first(setup: str, code: str) -> bool:
    """Whether the setup code uses a name that only the program defines (367, 927)."""
    if not setup.strip():
        return False
    try:
        tree = _parse(setup)
    except SyntaxError:
        return False
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return bool((used - bound) & set(_top_level_names(code)))


def problem_from_row(row: dict[str, Any], *, include_challenge: bool = False,
                     require_reference: bool = True) -> Problem:
    """A Problem from one MBPP row. ``require_reference=False`` (a user's own problem on the sandbox
    command line) accepts a row without ``code``: no reference, the entry point found from the asserts."""
    where = f"MBPP row task_id={row.get('task_id', '?')!r}"
    task_num = require(row, "task_id", int, where)
    text = require(row, "text", str, where)
    code = _crlf(require(row, "code", str, where)) if require_reference or "code" in row else ""
    setup = _crlf(row.get("test_setup_code") or "")
    test_list = [_crlf(t).strip() for t in require(row, "test_list", list, where)]
    challenge = [_crlf(t).strip() for t in row.get("challenge_test_list") or []]
    if not test_list:
        raise ProblemFormatError(f"{where}: empty test_list")
    asserts = test_list + (challenge if include_challenge else [])
    entry = find_entry_point(code, test_list)
    metadata: dict[str, Any] = {"task_num": task_num, "n_challenge_tests": len(challenge)}
    try:
        converted = convert_asserts(asserts, entry)
        tests, imports = converted.tests, converted.imports
        metadata["tests_from"] = "asserts"
    except NotStructurable as e:
        tests, imports = [], []
        metadata.update(tests_from="script", not_structurable=str(e))
    setup_code = "\n".join([*imports, setup]).strip()
    if _needs_program_first(setup, code):
        tests = [
            TestCase(call=f"(exec({setup!r}, globals()), {t.call})[1]", expected=t.expected,
                     comparison=t.comparison, atol=t.atol, rtol=t.rtol, expected_from=t.expected_from,
                     source=t.source)
            for t in tests
        ]
        setup_code = ""
        metadata["setup_in_calls"] = True
    description = text.strip()
    return Problem(
        task_id=f"MBPP/{task_num}",
        benchmark=BENCHMARK,
        prompt=f"{description}\n{test_list[0]}",
        entry_point=entry,
        style="full",
        reference=code,
        tests=tests,
        setup_code=setup_code,
        test_script="\n".join(([setup] if setup.strip() else []) + asserts) + "\n",
        description=description,
        metadata=metadata,
    )


def in_split(task_num: int, split: str) -> bool:
    if split not in SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; known: {', '.join(SPLITS)}")
    lo, hi = SPLITS[split]
    return lo <= task_num <= hi


def load_mbpp(
    split: str = "test",
    *,
    path: str | Path | None = None,
    mirror: str | Path | None = None,
    include_challenge: bool = False,
) -> list[Problem]:
    """MBPP problems of ``split`` (``test``, ``train``, ``validation``, ``prompt``, ``all``), in file order."""
    in_split(1, split)  # validates the split name before any file access
    if path is None:
        from selfdebug.problems.sources import resolve

        path = resolve("mbpp", mirror)
    problems = convert_rows(path, lambda row: problem_from_row(row, include_challenge=include_challenge))
    problems = [p for p in problems if in_split(p.metadata["task_num"], split)]
    log.info("MBPP %s: %d problems", split, len(problems))
    return problems
