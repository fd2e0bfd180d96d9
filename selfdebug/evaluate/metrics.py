"""Metrics from per-sample records: pass@k per approach and round, success-refinement rate, CIs.

A record is one attempt: ``(benchmark, task_id, sample, chain, round, passed, ...)``. The ``init`` chain
holds the n initial samples (round 0). Chain ``refine`` / ``explain_refine`` / ``resample`` round r holds
the attempts for samples still wrong after round r-1. After r rounds a sample counts as passing when any
attempt of its chain up to round r passed (a passing sample is never refined again).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from selfdebug.evaluate.bootstrap import bootstrap_ci
from selfdebug.evaluate.passk import pass_at_k_per_problem

GROUPS = {"MBPP & HE": ("mbpp", "humaneval"), "MBPP+ & HE+": ("mbpp_plus", "humaneval_plus")}
"""Paper Table 3 pools a base benchmark pair and the plus pair (problem-weighted: each problem counts once)."""


def _passing_after(records: list[dict[str, Any]], chain: str, round_: int) -> dict[tuple[str, int], bool]:
    state = {(r["task_id"], r["sample"]): r["passed"] for r in records if r["chain"] == "init"}
    if chain == "init" or round_ == 0:
        return state
    for r in records:
        if r["chain"] == chain and r["round"] <= round_ and r["passed"]:
            state[(r["task_id"], r["sample"])] = True
    return state


def per_problem_counts(records: list[dict[str, Any]], chain: str, round_: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    state = _passing_after(records, chain, round_)
    n: dict[str, int] = defaultdict(int)
    c: dict[str, int] = defaultdict(int)
    for (tid, _), ok in state.items():
        n[tid] += 1
        c[tid] += int(ok)
    ids = sorted(n)
    return ids, np.array([n[t] for t in ids]), np.array([c[t] for t in ids])


def chains_and_rounds(records: list[dict[str, Any]]) -> tuple[list[str], int]:
    chains = ["init"] + sorted({r["chain"] for r in records if r["chain"] != "init"},
                               key=lambda c: ["refine", "explain_refine", "resample"].index(c)
                               if c in ("refine", "explain_refine", "resample") else 99)
    rounds = max((r["round"] for r in records), default=0)
    return chains, rounds


def benchmark_metrics(records: list[dict[str, Any]], ks: list[int], *, n_boot: int = 1000, ci: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """pass@k (with bootstrap CI) for every chain after every round, and success-refinement rates."""
    chains, rounds = chains_and_rounds(records)
    out: dict[str, Any] = {"pass_at_k": [], "success_rate": [], "outcomes": {}}
    ids, n_init, _ = per_problem_counts(records, "init", 0)
    out["n_problems"] = len(ids)
    out["n_samples"] = sorted(set(n_init.tolist()))
    for chain in chains:
        for round_ in ([0] if chain == "init" else range(1, rounds + 1)):
            _, n, c = per_problem_counts(records, chain, round_)
            for k in ks:
                per = pass_at_k_per_problem(n, c, k)
                mean, low, high = bootstrap_ci(per, n_boot=n_boot, ci=ci, seed=seed)
                out["pass_at_k"].append({"chain": chain, "round": round_, "k": k, "value": mean,
                                         "ci_low": low, "ci_high": high})
    init_state = _passing_after(records, "init", 0)
    wrong_by_task: dict[str, int] = Counter(t for (t, _), ok in init_state.items() if not ok)
    for chain in chains[1:]:
        for round_ in range(1, rounds + 1):
            after = _passing_after(records, chain, round_)
            fixed_by_task = Counter(tid for (tid, s), ok in after.items() if ok and not init_state[(tid, s)])
            pairs = np.array([[fixed_by_task.get(t, 0), wrong_by_task.get(t, 0)] for t in ids], dtype=float)
            if pairs[:, 1].sum() == 0:
                continue
            mean, low, high = bootstrap_ci(pairs, n_boot=n_boot, ci=ci, seed=seed)
            out["success_rate"].append({"chain": chain, "round": round_, "value": mean, "ci_low": low,
                                        "ci_high": high, "fixed": int(pairs[:, 0].sum()),
                                        "wrong": int(pairs[:, 1].sum())})
    out["outcomes"] = dict(Counter(r["status"] for r in records))
    out["outcomes_by_chain"] = {ch: dict(Counter(r["status"] for r in records if r["chain"] == ch)) for ch in chains}
    out["isolation"] = sorted({str(r.get("isolation")) for r in records})
    out["trust"] = dict(Counter(str(r.get("trust")) for r in records))
    out["tokens"] = {
        ch: int(sum(r["completion_tokens"] for r in records if r["chain"] == ch)) for ch in chains
    }
    return out


def group_metrics(records_by_bench: dict[str, list[dict[str, Any]]], ks: list[int], *, n_boot: int = 1000,
                  ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Paper Table 3: pass@k pooled over a pair of benchmarks, each problem counted once."""
    out = {}
    for name, members in GROUPS.items():
        present = [b for b in members if b in records_by_bench]
        if not present:
            continue
        pooled = [dict(r, task_id=f"{r['benchmark']}::{r['task_id']}") for b in present for r in records_by_bench[b]]
        m = benchmark_metrics(pooled, ks, n_boot=n_boot, ci=ci, seed=seed)
        m["members"] = present
        m["missing"] = [b for b in members if b not in records_by_bench]
        out[name] = m
    return out


def compute_all(records_by_bench: dict[str, list[dict[str, Any]]], ks: list[int], *, n_boot: int = 1000,
                ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    return {
        "benchmarks": {b: benchmark_metrics(r, ks, n_boot=n_boot, ci=ci, seed=seed) for b, r in records_by_bench.items()},
        "groups": group_metrics(records_by_bench, ks, n_boot=n_boot, ci=ci, seed=seed),
        "ks": list(ks), "ci": ci, "n_boot": n_boot,
    }
