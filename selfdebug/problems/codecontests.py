"""CodeContests (Li et al. 2022, ``deepmind/code_contests``), one JSON object per line.

Row fields used: ``name``, ``description``, ``public_tests`` / ``private_tests`` / ``generated_tests``
(each ``{"input": [...], "output": [...]}``), ``solutions`` (``{"language": [...], "solution": [...]}``),
``difficulty``, ``source``, ``time_limit`` (``{"seconds", "nanos"}``), ``memory_limit_bytes``, ``cf_rating``,
``cf_tags``. Language codes: 0 unknown, 1 PYTHON (2), 2 CPP, 3 PYTHON3, 4 JAVA (names such as
``"PYTHON3"`` are accepted too). Published on the Hugging Face hub only (parquet shards), so it is read from
a local JSON-lines export: ``path=`` or ``<mirror>/code_contests/<split>.jsonl``. Tested on
``tests/fixtures/codecontests_sample.jsonl``.

Each problem: ``style="full"``; ``prompt`` = ``description``; every test is a standard-input program run
(``comparison="stdout"``, ``call`` = input text, ``expected`` = output text); ``tests`` = public tests
followed by private tests (``metadata["n_public_tests"]`` says how many come first), and, with
``include_generated=True``, the generated tests too (many, and not all verified upstream); ``reference`` =
the first Python 3 solution (``""`` when there is none: ``metadata["has_python3_reference"]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem, ProblemFormatError, TestCase
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "codecontests"
PYTHON3 = 3
_LANG_NAMES = {"UNKNOWN_LANGUAGE": 0, "PYTHON": 1, "CPP": 2, "PYTHON3": 3, "JAVA": 4}


def _lang(code: Any) -> int:
    if isinstance(code, str):
        return _LANG_NAMES.get(code.upper(), int(code) if code.isdigit() else -1)
    return int(code)


def _cases(block: Any, kind: str, where: str) -> list[TestCase]:
    if block in (None, {}):
        return []
    if not isinstance(block, dict):
        raise ProblemFormatError(f"{where}: {kind} is not an object with 'input' and 'output'")
    ins, outs = block.get("input") or [], block.get("output") or []
    if len(ins) != len(outs):
        raise ProblemFormatError(f"{where}: {kind} has {len(ins)} inputs but {len(outs)} outputs")
    if not all(isinstance(x, str) for x in [*ins, *outs]):
        raise ProblemFormatError(f"{where}: {kind} inputs/outputs are not all strings")
    return [TestCase(call=i, expected=o, comparison="stdout", source=i) for i, o in zip(ins, outs, strict=True)]


def problem_from_row(row: dict[str, Any], *, include_generated: bool = False) -> Problem:
    where = f"CodeContests row name={row.get('name', '?')!r}"
    name = require(row, "name", str, where)
    description = require(row, "description", str, where)
    public = _cases(row.get("public_tests"), "public_tests", where)
    private = _cases(row.get("private_tests"), "private_tests", where)
    generated = _cases(row.get("generated_tests"), "generated_tests", where)
    sols = row.get("solutions") or {}
    langs, codes = sols.get("language") or [], sols.get("solution") or []
    if len(langs) != len(codes):
        raise ProblemFormatError(f"{where}: solutions has {len(langs)} languages but {len(codes)} programs")
    py3 = [c for lang, c in zip(langs, codes, strict=True) if _lang(lang) == PYTHON3]
    tl = row.get("time_limit") or {}
    time_limit_s = (tl.get("seconds") or 0) + (tl.get("nanos") or 0) / 1e9 if isinstance(tl, dict) else None
    return Problem(
        task_id=f"CodeContests/{name}",
        benchmark=BENCHMARK,
        prompt=description,
        entry_point="",
        style="full",
        reference=py3[0] if py3 else "",
        tests=public + private + (generated if include_generated else []),
        description=description,
        metadata={
            "n_public_tests": len(public),
            "n_private_tests": len(private),
            "n_generated_tests": len(generated),
            "has_python3_reference": bool(py3),
            "n_python3_solutions": len(py3),
            "difficulty": row.get("difficulty"),
            "source": row.get("source"),
            "cf_rating": row.get("cf_rating"),
            "cf_tags": row.get("cf_tags") or [],
            "time_limit_s": time_limit_s or None,
            "memory_limit_bytes": row.get("memory_limit_bytes"),
            "tests_from": "io_pairs",
        },
    )


def load_codecontests(
    split: str = "train",
    *,
    path: str | Path | None = None,
    mirror: str | Path | None = None,
    include_generated: bool = False,
    require_python3: bool = False,
) -> list[Problem]:
    """CodeContests problems of ``split`` from ``path`` or ``<mirror>/code_contests/<split>.jsonl``.

    ``require_python3`` keeps only problems with a Python 3 reference solution (needed for gold checks)."""
    if path is None:
        from selfdebug.problems.sources import default_mirror

        folder = Path(mirror) if mirror is not None else default_mirror()
        if folder is None or not (folder / "code_contests" / f"{split}.jsonl").is_file():
            raise FileNotFoundError(
                f"CodeContests {split}: no local file (looked for code_contests/{split}.jsonl in mirror "
                f"{folder}); export the Hugging Face dataset deepmind/code_contests there, or pass path="
            )
        path = folder / "code_contests" / f"{split}.jsonl"
    problems = convert_rows(path, lambda r: problem_from_row(r, include_generated=include_generated), id_key="name")
    if require_python3:
        problems = [p for p in problems if p.metadata["has_python3_reference"]]
    log.info("CodeContests %s: %d problems", split, len(problems))
    return problems
