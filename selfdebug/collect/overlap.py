"""Do the training problems overlap the evaluation benchmarks? (paper §2.1 trains on MBPP's training split
and evaluates on MBPP, HumanEval and their EvalPlus versions; it does not check.)

Each training problem (MBPP train, ids 601-974; APPS and CodeContests when a profile lists them) is compared
with every task of every evaluation benchmark (``selfdebug.problems.EVALUATION_BENCHMARKS``) three ways:

- ``derived``: the evaluation task *is* the training task or was drawn from it (the same task id, or MBPP+'s
  ``metadata["mbpp_task_id"]`` naming it). MBPP+ v0.2.0 keeps 108 of its 378 tasks from MBPP's training ids:
  that is why the evaluation also reports MBPP+ on the other 270 (benchmark ``mbpp_plus_heldout``);
- ``text``: the same problem text once normalised (Unicode NFKC, case, punctuation and whitespace gone), so a
  copy with other spacing or quotes is found, a reworded one is not;
- ``code``: the same reference solution once normalised (``selfdebug.prompts.normalise_code``, then parsed
  and unparsed by ``codes.code_key``: comments, blank lines, spacing and quoting style gone).

:func:`find_overlaps` returns one row per (evaluation task, training problem) pair that matches in any way,
with a column per kind; :func:`overlap_markdown` says per benchmark how many tasks overlap, how, and which.
No code runs: this only reads problem texts and reference solutions.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pandas as pd

from selfdebug.collect.codes import code_key
from selfdebug.problems.base import Problem
from selfdebug.prompts import normalise_code

log = logging.getLogger(__name__)

KINDS = ("derived", "text", "code")
"""How a pair overlaps, in the order a report names them."""
COLUMNS = ["benchmark", "task_id", "training_source", "training_task_id", *KINDS, "how"]
_NON_WORD = re.compile(r"[\W_]+")


def normalise_text(text: str) -> str:
    """Problem text as compared: NFKC, lower case, every run of punctuation and whitespace one space."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def problem_text(problem: Problem) -> str:
    """The natural-language task: ``description`` where the benchmark has one (MBPP, MBPP+, APPS,
    CodeContests), else the prompt (HumanEval's signature and docstring)."""
    return problem.description.strip() or problem.prompt


def reference_key(problem: Problem) -> str:
    """The reference solution's normalised form ("" when the problem has none)."""
    code = normalise_code(problem.reference or "")
    return code_key(code) if code.strip() else ""


def _source(problem: Problem) -> str:
    return problem.benchmark or problem.task_id.split("/")[0].lower()


def find_overlaps(training: list[Problem], benchmarks: Mapping[str, list[Problem]]) -> pd.DataFrame:
    """One row per (evaluation task, training problem) that overlap in any of ``KINDS``; columns ``COLUMNS``
    (``how``: the kinds that hold, joined by ``+``), sorted by benchmark order, then task order."""
    by_id: dict[str, list[Problem]] = defaultdict(list)
    by_text: dict[str, list[Problem]] = defaultdict(list)
    by_code: dict[str, list[Problem]] = defaultdict(list)
    for p in training:
        by_id[p.task_id].append(p)
        text = normalise_text(problem_text(p))
        if text:  # an empty text matches nothing: it says nothing about the task
            by_text[text].append(p)
        code = reference_key(p)
        if code:
            by_code[code].append(p)
    rows: list[dict[str, Any]] = []
    for bench, problems in benchmarks.items():
        for ev in problems:
            # MBPP+ names the MBPP task it was drawn from; any benchmark may share a task id with the training set
            origin = {ev.task_id, ev.metadata.get("mbpp_task_id")} - {None}
            hits: dict[str, dict[str, Any]] = {}
            for kind, found in (("derived", [t for i in origin for t in by_id.get(i, [])]),
                                ("text", by_text.get(normalise_text(problem_text(ev)), [])),
                                ("code", by_code.get(reference_key(ev), []) if reference_key(ev) else [])):
                for t in found:
                    row = hits.setdefault(t.task_id, {"benchmark": bench, "task_id": ev.task_id,
                                                      "training_source": _source(t), "training_task_id": t.task_id,
                                                      **dict.fromkeys(KINDS, False)})
                    row[kind] = True
            rows.extend(hits.values())
    for row in rows:
        row["how"] = "+".join(k for k in KINDS if row[k])
    log.info("overlap: %d training problems against %s: %d overlapping pairs", len(training),
             ", ".join(f"{b} ({len(p)})" for b, p in benchmarks.items()), len(rows))
    return pd.DataFrame(rows, columns=COLUMNS)


def overlap_summary(overlaps: pd.DataFrame, benchmarks: Mapping[str, list[Problem]]) -> pd.DataFrame:
    """Per benchmark: its tasks, how many overlap the training problems at all, and how many in each kind
    (a task can overlap in several kinds, or with several training problems: each task counts once)."""
    rows = []
    for bench, problems in benchmarks.items():
        sub = overlaps[overlaps["benchmark"] == bench]
        row = {"benchmark": bench, "tasks": len(problems), "overlapping": int(sub["task_id"].nunique())}
        for kind in KINDS:
            row[kind] = int(sub.loc[sub[kind], "task_id"].nunique())
        row["outside"] = row["tasks"] - row["overlapping"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["benchmark", "tasks", "overlapping", *KINDS, "outside"])


def overlap_markdown(overlaps: pd.DataFrame, benchmarks: Mapping[str, list[Problem]], n_training: int) -> str:
    """The report: a table of counts per benchmark, then, per benchmark and kind, the overlapping tasks."""
    summary = overlap_summary(overlaps, benchmarks)
    lines = ["### Training problems against the evaluation benchmarks", "",
             f"{n_training} training problems, compared with every task of each benchmark by task identity "
             "(`derived`: the same task, or MBPP+'s task drawn from that MBPP id), normalised problem text "
             "(`text`) and normalised reference code (`code`).", "",
             summary.to_markdown(index=False), ""]
    for bench in benchmarks:
        sub = overlaps[overlaps["benchmark"] == bench]
        if sub.empty:
            lines.append(f"- **{bench}**: no task overlaps the training problems.")
            continue
        for how, group in sub.groupby("how", sort=False):
            pairs = [f"{r.task_id} ~ {r.training_task_id}" for r in group.itertuples()]
            lines.append(f"- **{bench}**, {how} ({group['task_id'].nunique()} tasks): " + ", ".join(pairs))
    if "mbpp_plus" in benchmarks and summary.set_index("benchmark").loc["mbpp_plus", "derived"]:
        lines += ["", "MBPP+ is reported both in full (comparable with the paper) and as `mbpp_plus_heldout`, "
                  "without the tasks drawn from MBPP's training ids."]
        plus = overlaps[overlaps["benchmark"] == "mbpp_plus"]
        derived = set(plus.loc[plus["derived"], "task_id"])
        kept = sorted(set(plus["task_id"]) - derived)
        if kept:  # the held-out view is defined by ids: a copy under another id stays in it, so say so
            lines.append(f"Tasks that overlap by text or code only, and so remain in `mbpp_plus_heldout`: "
                         f"{', '.join(kept)}.")
    return "\n".join(lines) + "\n"


def check_overlap(config: Any, training: list[Problem] | None = None) -> tuple[pd.DataFrame, str]:
    """``(overlaps, markdown)`` for a profile: its training sources (all their problems unless ``training``
    is given, since the overlap is a property of the sources, not of a ``collect.limit``) against every
    evaluation benchmark in full."""
    import dataclasses

    if training is None:
        from selfdebug.collect.problems import load_training_problems

        full = dataclasses.replace(config, collect=dataclasses.replace(config.collect, limit=None))
        training, _ = load_training_problems(full)
    benchmarks = _evaluation_benchmarks(config.data_mirror)
    overlaps = find_overlaps(training, benchmarks)
    return overlaps, overlap_markdown(overlaps, benchmarks, len(training))


@functools.lru_cache(maxsize=2)
def _evaluation_benchmarks(mirror: str | None) -> dict[str, list[Problem]]:
    """Every evaluation benchmark in full, read once per process (a few seconds: HumanEval+ and MBPP+ carry
    their plus tests)."""
    from selfdebug.problems import EVALUATION_BENCHMARKS, load_benchmark

    return {b: load_benchmark(b, mirror=mirror) for b in EVALUATION_BENCHMARKS}

