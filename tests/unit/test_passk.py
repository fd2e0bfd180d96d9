import math

import numpy as np
import pytest

from selfdebug.evaluate.bootstrap import bootstrap_ci
from selfdebug.evaluate.passk import mean_pass_at_k, pass_at_k, pass_at_k_per_problem


def binomial_form(n, c, k):
    """The estimator as written in Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 0, 1, 0.0),
    (10, 10, 1, 1.0),
    (10, 3, 1, 0.3),          # pass@1 is the fraction correct
    (10, 1, 10, 1.0),         # any correct sample among all 10 drawn
    (5, 2, 2, 1 - 3 / 10),    # hand count: C(3,2)=3 all-wrong pairs of C(5,2)=10
    (4, 1, 2, 0.5),           # C(3,2)/C(4,2) = 3/6 wrong
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_matches_binomial_form_and_is_stable_for_large_n():
    for n, c, k in [(100, 37, 1), (100, 37, 10), (100, 1, 10), (50, 49, 5), (200, 3, 100)]:
        assert pass_at_k(n, c, k) == pytest.approx(binomial_form(n, c, k), rel=1e-9)
    # C(2000, 1000) overflows floats; the product form does not
    value = pass_at_k(2000, 5, 1000)
    assert 0.0 < value <= 1.0 and math.isfinite(value)


def test_k_larger_than_n_is_an_error_not_one():
    with pytest.raises(ValueError, match="undefined"):
        pass_at_k(5, 5, 10)
    with pytest.raises(ValueError, match="problem #1"):
        pass_at_k_per_problem([10, 5], [1, 1], 10)


def test_invalid_counts_are_errors():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(TypeError):
        pass_at_k(5.0, 1, 1)


def test_mean_over_problems():
    assert mean_pass_at_k([10, 10], [10, 0], 1) == pytest.approx(0.5)


def test_bootstrap_ci_against_independent_computation():
    rng = np.random.default_rng(1)
    values = rng.random(200)
    mean, low, high = bootstrap_ci(values, n_boot=4000, ci=0.95, seed=3)
    assert mean == pytest.approx(values.mean())
    # the bootstrap standard error of a mean is close to sd/sqrt(n); a normal interval is a close check
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - 1.96 * se, abs=0.01)
    assert high == pytest.approx(values.mean() + 1.96 * se, abs=0.01)


def test_bootstrap_ratio_pools_numerators_and_denominators():
    pairs = np.array([[1, 4], [3, 4], [0, 0]])
    mean, low, high = bootstrap_ci(pairs, n_boot=500, seed=0)
    assert mean == pytest.approx(4 / 8)
    assert 0 <= low <= mean <= high <= 1


def test_bootstrap_constant_has_zero_width():
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0, 1.0)
