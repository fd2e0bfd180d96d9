"""Beyond the paper: every model refines the same wrong programs (the base model's wrong initial samples,
with their feedback), so that base, SFT and RL are compared on identical inputs, paired by program.

In the protocol each model refines its *own* wrong samples, so a trained model that writes better first
attempts is left with harder ones to fix and the success rates of two models are rates over different
programs. Here the inputs are fixed: for each of the base run's wrong initial samples (sandbox failures left
out) and each prompt type, the model gets exactly the round-1 request the base model got (same chat, same
tag, hence the same seed), and its reply is run on the same tests. The base model's own answers to these
requests are its round-1 records, so it needs no new generation. Records go to ``common/<benchmark>.jsonl.gz``
of the trained model's run (config ``evaluate.common_wrong_from``: the base run's results folder).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from selfdebug.evaluate.bootstrap import bootstrap_ci, paired_bootstrap_diff
from selfdebug.evaluate.protocol import SAMPLE_GROUPS, Executor, GenerationRunner, Request, _attempt, _score
from selfdebug.generate.base import SamplingParams
from selfdebug.problems.base import Problem
from selfdebug.prompts import PROMPT_TYPES, refine_chat

COMMON_DIR = "common"
SANDBOX_ERROR = "sandbox_error"


def wrong_programs(base_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The base run's wrong initial samples that the protocol refined (a sandbox failure is not the model's)."""
    return sorted((r for r in base_records if r["chain"] == "init" and not r["passed"] and r["status"] != SANDBOX_ERROR),
                  key=lambda r: (r["task_id"], r["sample"]))


def refine_common(bench: str, problems: list[Problem], base_records: list[dict[str, Any]], *,
                  runner: GenerationRunner, execute: Executor, top_p: float, refine_temperature: float,
                  refine_max_new_tokens: int, prompts: tuple[str, ...] = PROMPT_TYPES) -> list[dict[str, Any]]:
    """One record per (base wrong program, prompt type): the model's refinement of it, scored; ``parent_id``
    is the base attempt refined."""
    by_id = {p.task_id: p for p in problems}
    wrong = wrong_programs(base_records)
    missing = sorted({r["task_id"] for r in wrong} - set(by_id))
    if missing:
        raise ValueError(f"{bench}: the base run holds problems this profile does not load ({missing[:3]}); the "
                         "common set needs the same problems")
    group = SAMPLE_GROUPS.get(bench, bench)
    params = SamplingParams(n=1, temperature=refine_temperature, top_p=top_p, max_new_tokens=refine_max_new_tokens)
    out: list[dict[str, Any]] = []
    for chain in prompts:
        reqs = [Request(f"{group}/{r['task_id']}/{chain}/r1/s{r['sample']}",
                        refine_chat(by_id[r["task_id"]], r["code"], r["feedback"], chain), params)  # type: ignore[arg-type]
                for r in wrong]
        if not reqs:
            continue
        outs = runner.run(reqs, f"{bench}: the base model's {len(wrong)} wrong programs, {chain}")
        items = [(by_id[r["task_id"]], r["sample"], _attempt(o[0], q.chat, r["attempt_id"]))
                 for r, q, o in zip(wrong, reqs, outs, strict=True)]
        out += _score(bench, items, chain, 1, execute)
    return out


def _fixed_by_problem(verdicts: dict[tuple[str, int], bool], keep: set[tuple[str, int]],
                      ids: list[str]) -> np.ndarray:
    fixed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for key in keep:
        total[key[0]] += 1
        fixed[key[0]] += int(verdicts[key])
    return np.array([[fixed[t], total[t]] for t in ids], dtype=float).reshape(-1, 2)


def _by_program(records: list[dict[str, Any]], chain: str, round_: int | None = None) -> dict[tuple[str, int], Any]:
    return {(r["task_id"], r["sample"]): r for r in records
            if r["chain"] == chain and (round_ is None or r["round"] == round_)}


def _paired_fixed(sides: list[dict[tuple[str, int], Any]], base_wrong: set[tuple[str, int]],
                  ) -> tuple[int, list[np.ndarray]] | None:
    """The programs every side has a verdict on that is not the sandbox's failure (a verdict that is the sandbox's
    failure says nothing about the model), and each side's fixed/total per problem over them; None if none."""
    keep = {k for k in base_wrong if all(k in side and side[k]["status"] != SANDBOX_ERROR for side in sides)}
    ids = sorted({t for t, _ in keep})
    if not ids:
        return None
    return len(keep), [_fixed_by_problem({k: side[k]["passed"] for k in keep}, keep, ids) for side in sides]


def _refinements(trained: list[dict[str, Any]], chain: str, base_wrong: set[tuple[str, int]],
                 ) -> dict[tuple[str, int], Any]:
    ours = _by_program(trained, chain)
    absent = sorted(base_wrong - set(ours))
    if absent:
        raise ValueError(f"{chain}: {len(absent)} of the base's wrong programs have no refinement in the "
                         f"trained run's common set (e.g. {absent[0]}); rerun it")
    return ours


def compare_common(trained: list[dict[str, Any]], base_records: list[dict[str, Any]], *, n_boot: int = 1000,
                   ci: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """Per prompt type: the share of the common wrong programs each model fixes, and trained minus base,
    paired by program (problems resampled, each with its programs)."""
    base_wrong = {(r["task_id"], r["sample"]) for r in wrong_programs(base_records)}
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    rows = []
    for chain in [c for c in PROMPT_TYPES if any(r["chain"] == c for r in trained)]:
        ours = _refinements(trained, chain, base_wrong)
        paired = _paired_fixed([ours, _by_program(base_records, chain, 1)], base_wrong)
        if paired is None:
            continue
        n, (pt, pb) = paired
        rows.append({"chain": chain, "programs": n, "problems": len(pt),
                     "trained": bootstrap_ci(pt, **boot), "base": bootstrap_ci(pb, **boot),
                     "diff": paired_bootstrap_diff(pt, pb, **boot),
                     "fixed_trained": int(pt[:, 0].sum()), "fixed_base": int(pb[:, 0].sum())})
    return rows


def compare_common_pair(a: list[dict[str, Any]], b: list[dict[str, Any]], base_records: list[dict[str, Any]], *,
                        n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """Per prompt type: trained model ``a`` minus trained model ``b`` (RL minus SFT) on the common wrong programs,
    paired by program, over the programs where neither they nor the base met a sandbox failure."""
    base_wrong = {(r["task_id"], r["sample"]) for r in wrong_programs(base_records)}
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    rows = []
    for chain in [c for c in PROMPT_TYPES if any(r["chain"] == c for r in a) and any(r["chain"] == c for r in b)]:
        sides = [_refinements(a, chain, base_wrong), _refinements(b, chain, base_wrong),
                 _by_program(base_records, chain, 1)]
        paired = _paired_fixed(sides, base_wrong)
        if paired is None:
            continue
        n, (pa, pb, _) = paired
        rows.append({"chain": chain, "programs": n, "problems": len(pa), "diff": paired_bootstrap_diff(pa, pb, **boot),
                     "fixed_a": int(pa[:, 0].sum()), "fixed_b": int(pb[:, 0].sum())})
    return rows
