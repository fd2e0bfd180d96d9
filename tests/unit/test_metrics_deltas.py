"""Paired bootstrap CIs for the differences people compare, within a run and between two runs, and the
average over benchmarks that counts shared samples (HumanEval / HumanEval+) once."""

import numpy as np
import pytest

from selfdebug.evaluate.bootstrap import bootstrap_ci, bootstrap_group_mean, paired_bootstrap_diff
from selfdebug.evaluate.compare import compare_runs
from selfdebug.evaluate.metrics import benchmark_metrics, compute_all


def records(bench, table):
    """``table``: task -> list of samples, each ``(initial passed, {chain: refinement passed})``."""
    out = []
    base = dict(benchmark=bench, completion_tokens=1)
    for tid, samples in table.items():
        for s, (ok, refined) in enumerate(samples):
            out.append(dict(base, task_id=tid, sample=s, chain="init", round=0, passed=ok,
                            status="passed" if ok else "wrong_answer"))
            for chain, rok in ({} if ok else refined).items():
                out.append(dict(base, task_id=tid, sample=s, chain=chain, round=1, passed=rok,
                                status="passed" if rok else "wrong_answer"))
    return out


ALL = ("refine", "explain_refine", "resample")


def wrong(refine=False, explain=False, resample=False):
    return (False, dict(zip(ALL, (refine, explain, resample), strict=True)))


RIGHT = (True, {})


def test_paired_diff_uses_the_same_problems_on_both_sides():
    rng = np.random.default_rng(0)
    b = rng.random(50)
    # a constant per-problem gain: every paired replicate shows exactly that gain; independent resampling
    # of the two sides would give an interval as wide as the spread of the scores
    assert paired_bootstrap_diff(b + 0.1, b, n_boot=500) == pytest.approx((0.1, 0.1, 0.1))
    a = rng.random(50)
    # for means, the paired difference is the bootstrap of the per-problem differences (same indices)
    assert paired_bootstrap_diff(a, b, n_boot=300, seed=4) == pytest.approx(bootstrap_ci(a - b, n_boot=300, seed=4))


def test_paired_diff_of_pooled_ratios():
    a = np.array([[2, 4], [1, 2], [0, 2]])
    b = np.array([[1, 4], [1, 2], [0, 2]])
    diff, low, high = paired_bootstrap_diff(a, b, n_boot=400, seed=1)
    assert diff == pytest.approx(3 / 8 - 2 / 8)
    assert 0 <= low <= diff <= high  # a never fixes fewer than b on any problem
    with pytest.raises(ValueError, match="same problems"):
        paired_bootstrap_diff(a, b[:2])


def test_group_mean_resamples_members_together():
    x = np.array([[1, 2], [0, 2], [2, 2]], dtype=float)
    # two identical members of one group: the group mean is that member's rate, replicate for replicate
    assert bootstrap_group_mean([[x, x]], n_boot=200, seed=2) == pytest.approx(bootstrap_ci(x, n_boot=200, seed=2))
    value, _, _ = bootstrap_group_mean([[x, np.zeros_like(x)], [np.array([[1.0, 1.0]])]], n_boot=50)
    # a member with no wrong sample has no rate: the first group is x's rate alone
    assert value == pytest.approx((3 / 6 + 1.0) / 2)


def test_deltas_within_a_run_match_the_reported_numbers():
    table = {"A": [RIGHT, wrong(explain=True), wrong(explain=True, resample=True)],
             "B": [wrong(refine=True, explain=True), wrong(), wrong(resample=True)],
             "C": [RIGHT, RIGHT, wrong(refine=True)]}
    m = benchmark_metrics(records("toy", table), [1], n_boot=300)
    passk = {e["chain"]: e["value"] for e in m["pass_at_k"] if e["round"] == 1}
    rate = {e["chain"]: e["value"] for e in m["success_rate"]}
    deltas = {(d["a"], d["b"], d["metric"]): d for d in m["deltas"]}
    assert set(deltas) == {(a, b, metric) for a, b in [("explain_refine", "refine"), ("refine", "resample"),
                                                       ("explain_refine", "resample")]
                           for metric in ("pass@1", "success_rate")}
    for (a, b, metric), d in deltas.items():
        expected = (passk if metric == "pass@1" else rate)[a] - (passk if metric == "pass@1" else rate)[b]
        assert d["value"] == pytest.approx(expected)
        assert d["ci_low"] <= d["value"] <= d["ci_high"]
    assert deltas[("explain_refine", "refine", "success_rate")]["value"] == pytest.approx(3 / 6 - 2 / 6)  # wrong: 2 + 3 + 1


def two_runs():
    base = {"humaneval": records("humaneval", {"A": [wrong(), wrong(refine=True)], "B": [RIGHT, wrong()]})}
    trained = {"humaneval": records("humaneval", {"A": [RIGHT, wrong(refine=True)], "B": [RIGHT, RIGHT]})}
    return trained, base


def test_trained_minus_base_on_the_same_problems():
    trained, base = two_runs()
    out = compare_runs(trained, base, [1], n_boot=200)
    got = {(e["chain"], e["round"], e["metric"]): e for e in out["benchmarks"]["humaneval"]}
    assert got[("init", 0, "pass@1")]["value"] == pytest.approx(3 / 4 - 1 / 4)
    assert got[("refine", 1, "pass@1")]["value"] == pytest.approx(4 / 4 - 2 / 4)
    assert got[("refine", 1, "success_rate")]["value"] == pytest.approx(1 / 1 - 1 / 3)
    assert "MBPP & HE" in out["groups"]


def test_trained_minus_base_refuses_different_problems_or_n():
    trained, base = two_runs()
    other = {"humaneval": [r for r in base["humaneval"] if r["task_id"] == "A"]}
    with pytest.raises(ValueError, match=r"humaneval: the two runs hold different problems"):
        compare_runs(trained, other, [1])
    fewer = {"humaneval": [r for r in base["humaneval"] if not (r["task_id"] == "B" and r["sample"] == 1)]}
    with pytest.raises(ValueError, match=r"humaneval: .*different numbers of initial samples.*B: n=2 trained, n=1 base"):
        compare_runs(trained, fewer, [1])
    with pytest.raises(ValueError, match="different benchmarks"):
        compare_runs(trained, {"mbpp": base["humaneval"]}, [1])


def test_success_rate_average_counts_humaneval_once():
    # HumanEval and HumanEval+ score the same samples: rates 1/2 and 0/2; MBPP 1/1
    he = {"A": [wrong(refine=True), wrong()]}
    allm = compute_all({"humaneval": records("humaneval", he),
                        "humaneval_plus": records("humaneval_plus", {"A": [wrong(), wrong()]}),
                        "mbpp": records("mbpp", {"M": [wrong(refine=True)]})}, [1], n_boot=100)
    avg = {e["chain"]: e for e in allm["success_rate_average"]}
    # (mean(1/2, 0) + 1) / 2, not the mean over three benchmarks (1/2 + 0 + 1) / 3
    assert avg["refine"]["value"] == pytest.approx(0.625)
    assert avg["refine"]["groups"] == [["humaneval", "humaneval_plus"], ["mbpp"]]
