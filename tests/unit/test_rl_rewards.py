"""The paper's reward formulas (``selfdebug.rl.rewards``) on hand-computed values, and the no-reference rule."""

from __future__ import annotations

import pytest

from selfdebug.rl.rewards import explanation_constants, explanation_reward, refinement_reward


@pytest.mark.parametrize(("s_cb", "s_ut", "expected"), [
    (0.0, 0.0, -5.0),      # 5 * 0 - 5
    (1.0, 1.0, 5.0),       # 5 * 2 - 5
    (0.5, 0.5, 0.0),       # 5 * 1 - 5
    (0.4, 1.0, 2.0),       # 5 * 1.4 - 5: correct, but far from the references
    (0.8, 0.25, 0.25),     # 5 * 1.05 - 5
])
def test_refinement_reward_is_five_times_the_sum_minus_five(s_cb, s_ut, expected):
    assert refinement_reward(s_cb, s_ut) == pytest.approx(expected)


@pytest.mark.parametrize(("s_ex", "expected"), [
    (0.7, 0.0),            # (35 - 35) / 3: the good/bad border
    (1.0, 5.0),            # (50 - 35) / 3
    (0.4, -5.0),           # (20 - 35) / 3
    (0.85, 2.5),           # (42.5 - 35) / 3
    (0.0, -35.0 / 3.0),    # below the paper's observed range: not clipped unless asked
])
def test_explanation_reward_maps_point_four_to_one_onto_minus_five_to_five(s_ex, expected):
    assert explanation_reward(s_ex) == pytest.approx(expected)


def test_constants_are_parameters():
    assert refinement_reward(0.5, 1.0, scale=2.0, offset=-1.0) == pytest.approx(2.0)
    assert explanation_reward(1.0, scale=10.0, offset=-4.0, divisor=2.0) == pytest.approx(3.0)
    assert explanation_reward(0.0, clip=5.0) == -5.0
    assert refinement_reward(1.0, 1.0, scale=10.0, clip=5.0) == 5.0


def test_no_reference_rule():
    # no verified refinement: the tests count twice, so a full pass still earns the top reward
    assert refinement_reward(None, 1.0) == pytest.approx(5.0)
    assert refinement_reward(None, 0.0) == pytest.approx(-5.0)
    assert refinement_reward(None, 0.5) == pytest.approx(0.0)
    # no verified explanation: neutral, the reward at the border
    assert explanation_reward(None) == 0.0


def test_pass_fraction_out_of_range_is_an_error():
    with pytest.raises(ValueError):
        refinement_reward(0.5, 1.5)


@pytest.mark.parametrize("low, high", [(0.4, 1.0), (0.1, 0.6), (-0.2, 0.9)])
def test_a_similarity_range_maps_onto_minus_five_to_five(low, high):
    constants = explanation_constants(low, high)
    assert explanation_reward(low, *constants) == pytest.approx(-5.0)
    assert explanation_reward(high, *constants) == pytest.approx(5.0)
    assert explanation_reward((low + high) / 2, *constants) == pytest.approx(0.0, abs=1e-12)


def test_the_papers_range_gives_the_papers_constants():
    assert explanation_constants(0.4, 1.0) == pytest.approx((50.0, -35.0, 3.0))
    with pytest.raises(ValueError, match="low < high"):
        explanation_constants(0.7, 0.7)
