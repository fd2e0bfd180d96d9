"""Our samples in EvalPlus's ``samples.jsonl`` format, so that evalplus itself can score them.

One line per sample: ``{"task_id": "HumanEval/0", "solution": "<the whole program>"}`` (EvalPlus takes a
``solution`` as a complete program). The ``init`` file holds the initial samples; one file per refinement
chain holds, for every sample, the program of that chain's last attempt (the initial one when the sample
passed at once or was never refined), so evalplus's pass@k on it is our pass@k after the last round.
The solution is the program the sandbox ran: ``Problem.program`` of the attempt's code, so for HumanEval it
includes the prompt's imports and helpers.

Written to ``<run>/evalplus/<benchmark>_<chain>.jsonl``; score one with e.g.
``evalplus.evaluate --dataset humaneval --samples runs/cpu/evaluate/evalplus/humaneval_plus_refine.jsonl``.
EvalPlus knows HumanEval(+) and MBPP+ (whose 378 problems are a subset of MBPP's, ids ``Mbpp/<n>``); other
benchmarks are not exported. A profile with ``evaluate.limit`` exports a subset, which evalplus reports as
missing problems.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfdebug.io import write_jsonl
from selfdebug.problems.base import Problem

log = logging.getLogger(__name__)

EVALPLUS_DATASETS = {"humaneval": "humaneval", "humaneval_plus": "humaneval", "mbpp": "mbpp", "mbpp_plus": "mbpp"}
"""Our benchmark -> the evalplus dataset that scores it (HumanEval+'s base tests are HumanEval's)."""


_PREFIXES = {"humaneval": (("HumanEval",), "HumanEval"), "mbpp": (("MBPP", "Mbpp"), "Mbpp")}
"""evalplus dataset -> (our task id prefixes, evalplus's prefix)."""


def evalplus_task_id(bench: str, task_id: str) -> str:
    """EvalPlus's id for one of our problems: ``HumanEval/0`` as is, MBPP's ``MBPP/2`` as ``Mbpp/2``."""
    if bench not in EVALPLUS_DATASETS:
        raise ValueError(f"{bench}: evalplus has no such dataset (it scores {sorted(EVALPLUS_DATASETS)})")
    ours, theirs = _PREFIXES[EVALPLUS_DATASETS[bench]]
    prefix, sep, num = task_id.partition("/")
    if prefix not in ours or not sep or not num.isdigit():
        raise ValueError(f"{bench}: task id {task_id!r} is not of the form {ours[0]}/<number>")
    return f"{theirs}/{num}"


def evalplus_samples(bench: str, records: list[dict[str, Any]], problems: list[Problem],
                     chain: str = "init") -> list[dict[str, str]]:
    """One ``{"task_id", "solution"}`` row per sample: its initial program, or its last attempt in ``chain``."""
    by_id = {p.task_id: p for p in problems}
    last = {(r["task_id"], r["sample"]): r for r in records if r["chain"] == "init"}
    if chain != "init":
        for r in sorted((r for r in records if r["chain"] == chain), key=lambda r: r["round"]):
            last[(r["task_id"], r["sample"])] = r
    order = {p.task_id: i for i, p in enumerate(problems)}
    rows = []
    for (tid, _), r in sorted(last.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1])):
        if tid not in by_id:
            raise ValueError(f"{bench}: a record names problem {tid!r}, which is not among the loaded problems")
        rows.append({"task_id": evalplus_task_id(bench, tid), "solution": by_id[tid].program(r["code"])})
    return rows


def export_evalplus(bench: str, records: list[dict[str, Any]], problems: list[Problem],
                    out_dir: str | Path) -> list[Path]:
    """Write ``<bench>_<chain>.jsonl`` for the init chain and every refinement chain; none for a benchmark
    evalplus does not know."""
    if bench not in EVALPLUS_DATASETS:
        log.info("%s: not exported in evalplus format (evalplus scores only %s)", bench, sorted(EVALPLUS_DATASETS))
        return []
    chains = ["init"] + sorted({r["chain"] for r in records if r["chain"] != "init"})
    return [write_jsonl(Path(out_dir) / f"{bench}_{chain}.jsonl", evalplus_samples(bench, records, problems, chain))
            for chain in chains]
