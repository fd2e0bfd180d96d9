"""HumanEval+ (EvalPlus v0.1.10): the 164 HumanEval problems with EvalPlus's base and plus inputs.

``tests`` = one case per ``base_input``, ``plus_tests`` = one per ``plus_input``, all with expected values
from the reference (``prompt + canonical_solution`` of this file, which fixes a few HumanEval solutions),
per EvalPlus semantics (see :mod:`selfdebug.problems.evalplus` for tolerance and the ``find_zero`` oracle).
The prompts equal HumanEval's except HumanEval/115 (a docstring fix), so one set of samples is scored on
both benchmarks. ``test_script`` keeps the original HumanEval ``check`` (the file's ``test`` field).

Sizes (v0.1.10): 1,570 base and 122,683 plus inputs, 8.5 MB of call text in all; the largest single call is
1.5 KB (HumanEval/80) and the largest tasks carry 130-200 KB of inputs (HumanEval/56, 66, 80, 98, 118).
All are kept as they are: they are the benchmark. Loading the file takes about 3 s (each rendered argument
is checked to round-trip).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem
from selfdebug.problems.evalplus import humaneval_plus_cases
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "humaneval_plus"


def problem_from_row(row: dict[str, Any]) -> Problem:
    where = f"HumanEval+ row {row.get('task_id', '?')!r}"
    task_id = require(row, "task_id", str, where)
    prompt = require(row, "prompt", str, where)
    entry = require(row, "entry_point", str, where)
    solution = require(row, "canonical_solution", str, where)
    atol = float(require(row, "atol", (int, float), where))
    base = require(row, "base_input", list, where)
    plus = require(row, "plus_input", list, where)
    try:
        tests = humaneval_plus_cases(task_id, entry, base, atol)
        plus_tests = humaneval_plus_cases(task_id, entry, plus, atol)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    test = row.get("test", "")
    return Problem(
        task_id=task_id,
        benchmark=BENCHMARK,
        prompt=prompt,
        entry_point=entry,
        style="completion",
        reference=prompt + solution,
        tests=tests,
        plus_tests=plus_tests,
        test_script=test + f"\ncheck({entry})\n" if test else "",
        metadata={"atol": atol, "contract": row.get("contract", ""), "tests_from": "evalplus_inputs",
                  "humaneval_task_id": task_id},
    )


def load_humaneval_plus(path: str | Path | None = None, *, mirror: str | Path | None = None) -> list[Problem]:
    """All HumanEval+ problems from ``path`` (default: the pinned v0.1.10 file via the mirror/cache)."""
    if path is None:
        from selfdebug.problems.sources import resolve

        path = resolve("humaneval_plus", mirror)
    problems = convert_rows(path, problem_from_row)
    log.info("HumanEval+: %d problems, %d base and %d plus tests", len(problems),
             sum(len(p.tests) for p in problems), sum(len(p.plus_tests) for p in problems))
    return problems
