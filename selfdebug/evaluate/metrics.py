"""Metrics from per-sample records: pass@k per approach and round, success-refinement rate, CIs, deltas.

A record is one attempt: ``(benchmark, task_id, sample, chain, round, passed, status, ...)``. The ``init``
chain holds the n initial samples (round 0). Chain ``refine`` / ``explain_refine`` / ``resample`` round r
holds the attempts for samples still wrong after round r-1. After r rounds a sample counts as passing when
any attempt of its chain up to round r passed (a passing sample is never refined again).

Sandbox failures (status ``sandbox_error``: the harness or a reference solution failed, not the model's
program) are never counted for or against the model:

- an initial sample whose verdict is ``sandbox_error`` is dropped: it leaves its problem's n (pass@k
  uses the remaining samples), it is not among the wrong samples of the success-refinement rate, and it is
  never refined. A problem left with fewer than k samples is left out of pass@k for that k (the entry's
  ``n_problems`` says how many problems it averages);
- a refinement (or resample) attempt whose verdict is ``sandbox_error`` does not count as fixed, and the
  protocol does not refine that sample further: the sample stays wrong in that chain.

Every benchmark's ``sandbox_errors`` counts them (the evaluation stage fails past
``evaluate.max_sandbox_error_share``).

Differences people compare (``deltas``: Expl.+Refine minus Refine, each self-repair chain minus Resample)
carry paired bootstrap CIs: both sides are resampled with the same problem indices. ``compare_runs`` does
the same for two runs (a trained model minus its base) on the same problems.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from selfdebug.evaluate.bootstrap import bootstrap_ci, bootstrap_group_mean, paired_bootstrap_diff
from selfdebug.evaluate.passk import pass_at_k_per_problem
from selfdebug.evaluate.protocol import SAMPLE_GROUPS
from selfdebug.problems import SUBSET_OF

SANDBOX_ERROR = "sandbox_error"
CHAIN_ORDER = ("refine", "explain_refine", "resample")
COMPARISONS = (("explain_refine", "refine"), ("refine", "resample"), ("explain_refine", "resample"))
"""(a, b) pairs reported as a - b with a paired CI: does the explanation help, does self-repair beat
resampling at the same number of samples."""

GROUPS = {"MBPP & HE": ("mbpp", "humaneval"), "MBPP+ & HE+": ("mbpp_plus", "humaneval_plus")}
"""Paper Table 3 pools a base benchmark pair and the plus pair (problem-weighted: each problem counts once)."""

Records = list[dict[str, Any]]


def _counts(r: dict[str, Any]) -> bool:
    """Whether an attempt's verdict is about the model's program (a sandbox failure is not)."""
    return r["status"] != SANDBOX_ERROR


def _passing_after(records: Records, chain: str, round_: int) -> dict[tuple[str, int], bool]:
    state = {(r["task_id"], r["sample"]): r["passed"] for r in records if r["chain"] == "init" and _counts(r)}
    if chain == "init" or round_ == 0:
        return state
    for r in records:
        key = (r["task_id"], r["sample"])
        # `key in state`: records made before this rule may hold refinements of dropped initial samples
        if r["chain"] == chain and r["round"] <= round_ and r["passed"] and _counts(r) and key in state:
            state[key] = True
    return state


def per_problem_counts(records: Records, chain: str, round_: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Problem ids (those with at least one counted initial sample), samples n and passing c per problem."""
    state = _passing_after(records, chain, round_)
    n: dict[str, int] = defaultdict(int)
    c: dict[str, int] = defaultdict(int)
    for (tid, _), ok in state.items():
        n[tid] += 1
        c[tid] += int(ok)
    ids = sorted(n)
    return ids, np.array([n[t] for t in ids], dtype=int), np.array([c[t] for t in ids], dtype=int)


def success_pairs(records: Records, chain: str, round_: int, ids: list[str]) -> np.ndarray:
    """(fixed, wrong) per problem: wrong initial samples, and how many of them pass after ``round_``."""
    init = _passing_after(records, "init", 0)
    after = _passing_after(records, chain, round_)
    wrong = Counter(t for (t, _), ok in init.items() if not ok)
    fixed = Counter(t for (t, s), ok in after.items() if ok and not init[(t, s)])
    return np.array([[fixed.get(t, 0), wrong.get(t, 0)] for t in ids], dtype=float).reshape(-1, 2)


def chains_and_rounds(records: Records) -> tuple[list[str], int]:
    chains = ["init"] + sorted({r["chain"] for r in records if r["chain"] != "init"},
                               key=lambda c: CHAIN_ORDER.index(c) if c in CHAIN_ORDER else 99)
    rounds = max((r["round"] for r in records), default=0)
    return chains, rounds


def sandbox_error_counts(records: Records) -> dict[str, Any]:
    """How many attempts the sandbox failed on, per chain, and which problems lost every initial sample."""
    bad = [r for r in records if not _counts(r)]
    init_tasks = {r["task_id"] for r in records if r["chain"] == "init"}
    scored = {r["task_id"] for r in records if r["chain"] == "init" and _counts(r)}
    return {
        "attempts": len(bad), "total_attempts": len(records),
        "share": len(bad) / len(records) if records else 0.0,
        "initial": sum(r["chain"] == "init" for r in bad),
        "by_chain": dict(Counter(r["chain"] for r in bad)),
        "problems_without_samples": sorted(init_tasks - scored),
    }


def _entry(stat: tuple[float, float, float], **fields: Any) -> dict[str, Any]:
    value, low, high = stat
    return {**fields, "value": value, "ci_low": low, "ci_high": high}


def benchmark_metrics(records: Records, ks: list[int], *, n_boot: int = 1000, ci: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """pass@k (with bootstrap CI) for every chain after every round, success-refinement rates, deltas."""
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    chains, rounds = chains_and_rounds(records)
    asked = Counter(r["task_id"] for r in records if r["chain"] == "init")
    out: dict[str, Any] = {"pass_at_k": [], "success_rate": [], "deltas": [], "n_problems": len(asked),
                           "n_samples": sorted(set(asked.values())), "sandbox_errors": sandbox_error_counts(records)}
    ids, n, _ = per_problem_counts(records, "init", 0)
    below_k = {str(k): [t for t, ni in zip(ids, n, strict=True) if ni < k] for k in ks}
    out["sandbox_errors"]["problems_below_k"] = {k: v for k, v in below_k.items() if v}
    per_passk: dict[tuple[str, int, int], np.ndarray] = {}  # (chain, round, k) -> pass@k of the kept problems
    steps = [(ch, r) for ch in chains for r in ([0] if ch == "init" else range(1, rounds + 1))]
    for chain, round_ in steps:
        _, n, c = per_problem_counts(records, chain, round_)
        for k in ks:
            keep = n >= k
            if not keep.any():
                continue
            per = per_passk[(chain, round_, k)] = pass_at_k_per_problem(n[keep], c[keep], k)
            out["pass_at_k"].append(_entry(bootstrap_ci(per, **boot), chain=chain, round=round_, k=k,
                                           n_problems=int(keep.sum())))
    pairs: dict[tuple[str, int], np.ndarray] = {}
    for chain, round_ in steps:
        if chain == "init":
            continue
        p = success_pairs(records, chain, round_, ids)
        if p[:, 1].sum() == 0:
            continue
        pairs[(chain, round_)] = p
        out["success_rate"].append(_entry(bootstrap_ci(p, **boot), chain=chain, round=round_,
                                          fixed=int(p[:, 0].sum()), wrong=int(p[:, 1].sum())))
    for a, b in COMPARISONS:
        for round_ in range(1, rounds + 1):
            for k in ks:
                if (a, round_, k) in per_passk and (b, round_, k) in per_passk:
                    out["deltas"].append(_entry(
                        paired_bootstrap_diff(per_passk[(a, round_, k)], per_passk[(b, round_, k)], **boot),
                        a=a, b=b, round=round_, metric=f"pass@{k}"))
            if (a, round_) in pairs and (b, round_) in pairs:
                out["deltas"].append(_entry(paired_bootstrap_diff(pairs[(a, round_)], pairs[(b, round_)], **boot),
                                            a=a, b=b, round=round_, metric="success_rate"))
    out["outcomes"] = dict(Counter(r["status"] for r in records))
    out["outcomes_by_chain"] = {ch: dict(Counter(r["status"] for r in records if r["chain"] == ch)) for ch in chains}
    out["isolation"] = sorted({str(r.get("isolation")) for r in records})
    out["trust"] = dict(Counter(str(r.get("trust")) for r in records))
    out["tokens"] = {ch: int(sum(r["completion_tokens"] for r in records if r["chain"] == ch)) for ch in chains}
    return out


def pool_benchmarks(records_by_bench: dict[str, Records], members: list[str]) -> Records:
    """One benchmark's worth of records from several: task ids prefixed so problems stay distinct."""
    return [dict(r, task_id=f"{b}::{r['task_id']}") for b in members for r in records_by_bench[b]]


def group_metrics(records_by_bench: dict[str, Records], ks: list[int], *, n_boot: int = 1000,
                  ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Paper Table 3: pass@k pooled over a pair of benchmarks, each problem counted once."""
    out = {}
    for name, members in GROUPS.items():
        present = [b for b in members if b in records_by_bench]
        if not present:
            continue
        m = benchmark_metrics(pool_benchmarks(records_by_bench, present), ks, n_boot=n_boot, ci=ci, seed=seed)
        m["members"] = present
        m["missing"] = [b for b in members if b not in records_by_bench]
        out[name] = m
    return out


def sample_groups(benchmarks: list[str]) -> dict[str, list[str]]:
    """Benchmarks grouped by the samples they score (HumanEval+ scores HumanEval's: protocol.SAMPLE_GROUPS)."""
    out: dict[str, list[str]] = {}
    for b in benchmarks:
        out.setdefault(SAMPLE_GROUPS.get(b, b), []).append(b)
    return out


def success_rate_average(records_by_bench: dict[str, Records], *, n_boot: int = 1000, ci: float = 0.95,
                         seed: int = 0) -> list[dict[str, Any]]:
    """Table 4's average over benchmarks, counting each set of samples once.

    The paper averages the four benchmarks' rates; HumanEval and HumanEval+ score the same samples, so here
    the average is the unweighted mean over sample groups, a group's rate being the mean of its members'
    rates (HumanEval and HumanEval+ together weigh as much as MBPP). The CI resamples a group's problems
    jointly for its members and the groups independently.
    """
    # a subset of a benchmark that is present (MBPP+ held-out beside MBPP+) would count its problems twice
    groups = sample_groups(sorted(b for b in records_by_bench if SUBSET_OF.get(b) not in records_by_bench))
    chains, rounds = chains_and_rounds([r for recs in records_by_bench.values() for r in recs])
    out = []
    for chain in chains[1:]:
        for round_ in range(1, rounds + 1):
            arrays, used = [], []
            for members in groups.values():
                ids = sorted({r["task_id"] for b in members for r in records_by_bench[b] if r["chain"] == "init"})
                member_pairs = [(b, success_pairs(records_by_bench[b], chain, round_, ids)) for b in members]
                member_pairs = [(b, p) for b, p in member_pairs if p[:, 1].sum() > 0]
                if ids and member_pairs:
                    arrays.append([p for _, p in member_pairs])
                    used.append([b for b, _ in member_pairs])
            if arrays:
                out.append(_entry(bootstrap_group_mean(arrays, n_boot=n_boot, ci=ci, seed=seed), chain=chain,
                                  round=round_, groups=used))
    return out


def compute_all(records_by_bench: dict[str, Records], ks: list[int], *, n_boot: int = 1000,
                ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    return {
        "benchmarks": {b: benchmark_metrics(r, ks, **boot) for b, r in records_by_bench.items()},
        "groups": group_metrics(records_by_bench, ks, **boot),
        "success_rate_average": success_rate_average(records_by_bench, **boot),
        "ks": list(ks), "ci": ci, "n_boot": n_boot,
    }
