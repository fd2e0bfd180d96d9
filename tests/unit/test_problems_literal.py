"""Rendering EvalPlus inputs as call source: exact round-trips, including the values repr gets wrong."""

from __future__ import annotations

import math

import pytest

from selfdebug.problems.evalplus import mbpp_plus_args, mbpp_plus_case
from selfdebug.problems.pyliteral import NotRenderable, call_source, check_round_trip, to_source


@pytest.mark.parametrize("value", [
    0, -7, 10**40, 1.5, -0.0, 1e-300, "a'b\"c\n", True, None, [], (), (1,), {}, set(), {1, 2},
    frozenset({3}), {"k": [1, (2, 3)]}, [float("inf"), -float("inf")], 1 + 2j, b"\x00",
])
def test_round_trip(value):
    assert check_round_trip(value, to_source(value))


def test_nan_and_special_forms():
    assert to_source(float("nan")) == "float('nan')" and check_round_trip([math.nan], to_source([math.nan]))
    assert to_source(set()) == "set()" and to_source((1,)) == "(1,)"
    assert not check_round_trip((1, 2), "[1, 2]") and not check_round_trip(1, "True")


def test_unrenderable_values_are_refused():
    with pytest.raises(NotRenderable):
        to_source(object())
    with pytest.raises(NotRenderable):
        call_source("f", [lambda: 0])


def test_mbpp_plus_argument_types_restored():
    assert mbpp_plus_args(2, [[1, 2], [3]]) == [(1, 2), (3,)]
    assert mbpp_plus_args(124, ["1", "(2+1j)"]) == [1.0, 2 + 1j]
    assert mbpp_plus_args(115, [[[1], []]]) == [[{1}, {}]]
    assert mbpp_plus_args(580, [[1, [2, [3]]]]) == [(1, (2, (3,)))]
    assert mbpp_plus_args(17, [10]) == [10]
    t = mbpp_plus_case(124, "angle_complex", ["0", "1j"], 0)  # stored as strings upstream
    assert t.call == "angle_complex(0.0, 1j)" and t.atol == 1e-6 and t.expected_from == "reference"
    t = mbpp_plus_case(164, "are_equivalent", [36, 57], 0)
    assert (t.call, t.comparison) == ("(are_equivalent(36, 57), True)[1]", "truthy")
