"""Two runs on the same problems (a trained model minus its base): paired differences with bootstrap CIs.

A difference between two models is only meaningful on the same problems with the same number of samples;
``compare_runs`` refuses anything else, naming the benchmark and what differs. Problems are resampled
jointly for both runs (paired bootstrap), which is much tighter than two independent intervals when the
runs agree on which problems are hard. Sandbox failures are dropped as in :mod:`selfdebug.evaluate.metrics`;
a problem is compared at pass@k only where both runs kept at least k of its samples.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from selfdebug.evaluate.bootstrap import paired_bootstrap_diff
from selfdebug.evaluate.metrics import (
    GROUPS,
    Records,
    chains_and_rounds,
    per_problem_counts,
    pool_benchmarks,
    success_pairs,
)
from selfdebug.evaluate.passk import pass_at_k_per_problem


def _check_same_problems(bench: str, trained: Records, base: Records) -> None:
    """Same problem ids and the same number of initial samples (asked for, sandbox failures included)."""
    nt = Counter(r["task_id"] for r in trained if r["chain"] == "init")
    nb = Counter(r["task_id"] for r in base if r["chain"] == "init")
    only_t, only_b = sorted(set(nt) - set(nb)), sorted(set(nb) - set(nt))
    if only_t or only_b:
        raise ValueError(f"{bench}: the two runs hold different problems ({len(only_t)} only in the trained run, "
                         f"e.g. {only_t[:3]}; {len(only_b)} only in the base run, e.g. {only_b[:3]}); "
                         "a difference needs the same problems")
    diff = sorted(t for t in nt if nt[t] != nb[t])
    if diff:
        t = diff[0]
        raise ValueError(f"{bench}: the two runs drew different numbers of initial samples for {len(diff)} problems "
                         f"(e.g. {t}: n={nt[t]} trained, n={nb[t]} base); a difference needs the same n")


def _aligned_passk(records: Records, chain: str, round_: int, k: int, ids: list[str]) -> np.ndarray:
    got_ids, n, c = per_problem_counts(records, chain, round_)
    at = {t: i for i, t in enumerate(got_ids)}
    return pass_at_k_per_problem([n[at[t]] for t in ids], [c[at[t]] for t in ids], k)


def _kept(records: Records, k: int) -> set[str]:
    ids, n, _ = per_problem_counts(records, "init", 0)
    return {t for t, ni in zip(ids, n, strict=True) if ni >= k}


def compare_records(trained: Records, base: Records, ks: list[int], *, name: str = "benchmark",
                    n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """trained minus base for every chain both runs have, every round both reached, pass@k and success rate."""
    _check_same_problems(name, trained, base)
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    chains_t, rounds_t = chains_and_rounds(trained)
    chains_b, rounds_b = chains_and_rounds(base)
    out = []
    for chain in [c for c in chains_t if c in chains_b]:
        for round_ in [0] if chain == "init" else range(1, min(rounds_t, rounds_b) + 1):
            for k in ks:
                ids = sorted(_kept(trained, k) & _kept(base, k))
                if not ids:
                    continue
                value, low, high = paired_bootstrap_diff(_aligned_passk(trained, chain, round_, k, ids),
                                                         _aligned_passk(base, chain, round_, k, ids), **boot)
                out.append({"chain": chain, "round": round_, "metric": f"pass@{k}", "value": value,
                            "ci_low": low, "ci_high": high, "n_problems": len(ids)})
            if chain == "init":
                continue
            ids = sorted({r["task_id"] for r in trained if r["chain"] == "init"})
            pt, pb = success_pairs(trained, chain, round_, ids), success_pairs(base, chain, round_, ids)
            if pt[:, 1].sum() == 0 or pb[:, 1].sum() == 0:
                continue  # a rate is undefined for a run with no wrong sample
            value, low, high = paired_bootstrap_diff(pt, pb, **boot)
            out.append({"chain": chain, "round": round_, "metric": "success_rate", "value": value,
                        "ci_low": low, "ci_high": high, "n_problems": len(ids)})
    return out


def compare_runs(trained: dict[str, Records], base: dict[str, Records], ks: list[int], *, n_boot: int = 1000,
                 ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per benchmark and per Table-3 group: trained minus base, paired over problems.

    ``trained`` and ``base`` map a benchmark to its per-sample records (``selfdebug.report.load_results``
    of each run); both runs must hold the same benchmarks, problems and n.
    """
    if set(trained) != set(base):
        raise ValueError(f"the two runs hold different benchmarks: trained {sorted(trained)}, base {sorted(base)}")
    boot = {"n_boot": n_boot, "ci": ci, "seed": seed}
    out: dict[str, Any] = {"benchmarks": {}, "groups": {}, "ks": list(ks), "ci": ci, "n_boot": n_boot}
    for bench in sorted(trained):
        out["benchmarks"][bench] = compare_records(trained[bench], base[bench], ks, name=bench, **boot)
    for group, members in GROUPS.items():
        present = [b for b in members if b in trained]
        if present:
            out["groups"][group] = compare_records(pool_benchmarks(trained, present),
                                                   pool_benchmarks(base, present), ks, name=group, **boot)
    return out
