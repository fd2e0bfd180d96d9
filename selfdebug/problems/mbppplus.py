"""MBPP+ (EvalPlus v0.2.0, ``MbppPlus-v0.2.0.jsonl.gz``, 378 problems), written against the upstream format.

The file is pinned in :mod:`selfdebug.problems.sources` (the offline mirror holds a reconstruction of the
release, see /work/shared/data/README.md); the loader is also tested on a fixture in the same format
(``tests/fixtures/mbppplus_sample.jsonl``).

Upstream row fields: ``task_id`` (``"Mbpp/2"``), ``prompt`` (the sanitized MBPP task text; v0.2.0 wraps it
with its first assert in a docstring), ``code`` / ``canonical_solution``, ``entry_point``, ``base_input``,
``plus_input`` (``{}`` for Mbpp/793, which has none), ``atol``, ``contract``, ``assertion`` (MBPP's asserts);
some releases also have ``test_imports``, ``test_list`` and ``test`` (EvalPlus's generated assertion script).

Each problem: ``style="full"``; ``description`` = the task text; ``prompt`` = description + newline + first
assert (the same convention as :mod:`selfdebug.problems.mbpp`); ``reference`` = canonical solution;
``setup_code`` = ``test_imports``; ``tests`` from ``base_input`` and ``plus_tests`` from ``plus_input``, with
EvalPlus's per-task argument types and special oracles (:mod:`selfdebug.problems.evalplus`).
``metadata["mbpp_task_id"]`` maps to the original MBPP problem (``"Mbpp/2"`` -> ``"MBPP/2"``); note MBPP+
draws from all MBPP splits (ids 2..809) and its prompts are the sanitized texts, not MBPP's originals.

The held-out view (benchmark ``mbpp_plus_heldout``, :func:`heldout`): v0.2.0 keeps 108 of its 378 tasks from
MBPP's *training* split (ids 601-974), on which LeDex trains, so a model trained there is partly evaluated on
its own training problems. MBPP+ in full stays the number comparable with the paper; the view leaves those
108 out (270 tasks) and is scored on the same samples (``selfdebug.evaluate.protocol.SAMPLE_GROUPS``).

Kept as they are, though they cannot all be checked: a few plus inputs of Mbpp/255 (``combinations_colors``
with r=77) have outputs of over a million 77-tuples, which the reference cannot produce within the sandbox's
limits; those tests are sandbox failures, never model failures (``selfdebug.sandbox.gold.KNOWN_FAULTS``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem, ProblemFormatError
from selfdebug.problems.evalplus import MBPP_NOT_REPRODUCED, mbpp_plus_cases
from selfdebug.problems.mbpp import in_split
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "mbpp_plus"
N_PROBLEMS = 378
HELDOUT_BENCHMARK = "mbpp_plus_heldout"
TRAINING_SPLIT = "train"
"""The MBPP split LeDex collects its training data from (ids 601-974: ``selfdebug.problems.mbpp.SPLITS``)."""


def _split_prompt(prompt: str) -> tuple[str, str | None]:
    """(task text, first assert line if the prompt carries one), with docstring quotes removed."""
    text = prompt.strip()
    if text.startswith('"""') and text.endswith('"""') and len(text) >= 6:
        text = text[3:-3].strip()
    lines = text.splitlines()
    asserts = [ln.strip() for ln in lines if ln.strip().startswith("assert ")]
    body = "\n".join(ln for ln in lines if not ln.strip().startswith("assert ")).strip()
    return body, asserts[0] if asserts else None


def problem_from_row(row: dict[str, Any]) -> Problem:
    where = f"MBPP+ row {row.get('task_id', '?')!r}"
    task_id = require(row, "task_id", str, where)
    try:
        task_num = int(task_id.split("/")[-1])
    except ValueError as e:
        raise ProblemFormatError(f"{where}: task_id is not of the form 'Mbpp/<number>'") from e
    entry = require(row, "entry_point", str, where)
    reference = row.get("canonical_solution") or require(row, "code", str, where)
    if not isinstance(reference, str):
        raise ProblemFormatError(f"{where}: canonical_solution is not a string")
    atol = float(require(row, "atol", (int, float), where))
    description, prompt_assert = _split_prompt(require(row, "prompt", str, where))
    test_list = row.get("test_list") or []
    first_assert = test_list[0].strip() if test_list else prompt_assert
    if not first_assert:
        raise ProblemFormatError(f"{where}: no test assert to show in the prompt (test_list and prompt lack one)")
    imports = row.get("test_imports") or []
    plus_input = require(row, "plus_input", (list, dict), where)
    if plus_input == {}:  # Mbpp/793 in v0.2.0: no plus inputs, stored as {}; evalplus iterates it as empty
        plus_input = []
    elif isinstance(plus_input, dict):
        raise ProblemFormatError(f"{where}: field 'plus_input' is a non-empty dict, expected a list of inputs")
    try:
        tests = mbpp_plus_cases(task_num, entry, require(row, "base_input", list, where), atol)
        plus_tests = mbpp_plus_cases(task_num, entry, plus_input, atol)
    except ValueError as e:
        raise ProblemFormatError(f"{where}: {e}") from e
    metadata: dict[str, Any] = {"atol": atol, "mbpp_task_id": f"MBPP/{task_num}", "tests_from": "evalplus_inputs"}
    if task_num in MBPP_NOT_REPRODUCED:
        metadata["oracle_note"] = f"EvalPlus special oracle not reproduced: {MBPP_NOT_REPRODUCED[task_num]}"
    return Problem(
        task_id=task_id,
        benchmark=BENCHMARK,
        prompt=f"{description}\n{first_assert}",
        entry_point=entry,
        style="full",
        reference=reference,
        tests=tests,
        plus_tests=plus_tests,
        setup_code="\n".join(imports),
        test_script=row.get("test") or row.get("assertion") or "",
        description=description,
        metadata=metadata,
    )


def load_mbpp_plus(
    path: str | Path | None = None, *, mirror: str | Path | None = None, sha256: str | None = None
) -> list[Problem]:
    """All MBPP+ problems from ``path`` (default: the v0.2.0 file via mirror/cache; needs ``sha256``)."""
    if path is None:
        from selfdebug.problems.sources import resolve

        path = resolve("mbpp_plus", mirror, sha256=sha256)
    problems = convert_rows(path, problem_from_row)
    if len(problems) != N_PROBLEMS:
        log.warning("MBPP+: %d problems in %s, expected %d for v0.2.0", len(problems), path, N_PROBLEMS)
    return problems


def mbpp_task_num(problem: Problem) -> int:
    """The MBPP task number an MBPP+ problem was drawn from (``metadata["mbpp_task_id"]``, ``"MBPP/602"``)."""
    ref = problem.metadata.get("mbpp_task_id")
    try:
        return int(str(ref).split("/")[-1])
    except ValueError:
        raise ProblemFormatError(f"MBPP+ problem {problem.task_id!r}: metadata['mbpp_task_id'] is {ref!r}, "
                                 "expected 'MBPP/<number>'") from None


def is_training_task(problem: Problem) -> bool:
    """Whether an MBPP+ problem comes from MBPP's training split (so LeDex may have trained on it)."""
    return in_split(mbpp_task_num(problem), TRAINING_SPLIT)


def heldout(problems: list[Problem]) -> list[Problem]:
    """MBPP+ less the tasks drawn from MBPP's training split, in file order; the problems are MBPP+'s own
    (same ids, prompts, tests and ``benchmark``), so their samples and reference checks are shared."""
    return [p for p in problems if not is_training_task(p)]
