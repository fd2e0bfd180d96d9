"""The assert -> TestCase converter on hand-checked HumanEval/MBPP-style asserts."""

from __future__ import annotations

import pytest

from selfdebug.problems.asserts import NotStructurable, convert_asserts, convert_check, rename_source
from selfdebug.problems.base import TestCase


def check(body: str) -> str:
    lines = "\n".join("    " + ln for ln in body.strip().splitlines())
    return f"\n\nMETADATA = {{'author': 'jt'}}\n\n\ndef check(candidate):\n{lines}\n"


def one(body: str, entry: str = "f") -> TestCase:
    tests = convert_check(check(body), entry).tests
    assert len(tests) == 1, tests
    return tests[0]


def test_eq_literal_becomes_call_and_expected():
    t = one("assert candidate([1.0, 2.0], 0.5) == True")
    assert t == TestCase(call="f([1.0, 2.0], 0.5)", expected=True, comparison="eq",
                         source="assert f([1.0, 2.0], 0.5) == True")


def test_literal_on_the_left_and_containers():
    t = one("assert ('a', [1, {2: None}]) == candidate('x')")
    assert (t.call, t.expected, t.comparison) == ("f('x')", ("a", [1, {2: None}]), "eq")


def test_non_literal_expected_comes_from_reference():
    t = one("assert abs(candidate([1.0, 2.0, 3.0]) - 2.0/3.0) < 1e-6")
    assert (t.call, t.comparison, t.atol, t.expected_from) == ("f([1.0, 2.0, 3.0])", "close", 1e-6, "reference")
    t = one("assert candidate(3) == (3 + 5, 3 * 5)")
    assert (t.call, t.expected_from, t.comparison) == ("f(3)", "reference", "eq")


def test_close_with_literal_and_reversed_subtraction():
    t = one("assert abs(0.5 - candidate(3.5)) <= 1e-3")
    assert (t.call, t.expected, t.comparison, t.atol, t.expected_from) == ("f(3.5)", 0.5, "close", 1e-3, "literal")


def test_truthy_falsy_and_is():
    assert one("assert candidate('abc')") == TestCase(call="f('abc')", comparison="truthy",
                                                      source="assert f('abc')")
    t = one("assert not candidate('abc')")
    assert (t.call, t.comparison) == ("f('abc')", "falsy")
    t = one("assert candidate(0) is None")
    assert (t.call, t.expected, t.comparison) == ("f(0)", None, "eq")


def test_complex_lhs_keeps_expression_text():
    t = one("assert set(candidate([1, 2])) == set([2, 1])")
    assert (t.call, t.expected_from) == ("set(f([1, 2]))", "reference")
    t = one("assert sorted(candidate(5)) == [1, 2]")
    assert (t.call, t.expected) == ("sorted(f(5))", [1, 2])


def test_other_forms_fall_back_to_truthy_of_the_whole_assertion():
    t = one("assert candidate(1) != 2")
    assert (t.call, t.comparison) == ("f(1) != 2", "truthy")
    t = one("assert candidate(1) == candidate(2)")
    assert (t.call, t.comparison) == ("f(1) == f(2)", "truthy")


def test_math_isclose():
    t = convert_asserts(["assert math.isclose(area(2), 12.5, rel_tol=0.001)"], "area").tests[0]
    assert (t.call, t.expected, t.comparison) == ("area(2)", 12.5, "close")
    assert t.atol == pytest.approx(0.0125)


def test_trivial_asserts_dropped_and_print_ignored():
    tests = convert_check(check("assert True, 'msg'\nassert candidate(1) == 1\nprint"), "f").tests
    assert [t.call for t in tests] == ["f(1)"]


def test_constant_loop_unrolled_and_constants_inlined():
    tests = convert_check(check("for x in range(2, 4):\n    assert candidate(x, x + 1) == str(x)"), "g").tests
    assert [t.call for t in tests] == ["g(2, 2 + 1)", "g(3, 3 + 1)"]
    assert all(t.expected_from == "reference" for t in tests)
    tests = convert_check(check("lst = list(range(3))\nassert candidate(lst) == 3"), "g").tests
    assert (tests[0].call, tests[0].expected) == ("g(list(range(3)))", 3)


def test_random_tests_are_not_structurable():
    body = "import random\nfor i in range(3):\n    x = random.randint(0, 9)\n    assert candidate(x) == x"
    with pytest.raises(NotStructurable):
        convert_check(check(body), "f")
    with pytest.raises(NotStructurable):
        convert_check(check("def helper():\n    pass\nassert candidate(1)"), "f")


def test_mbpp_style_asserts_and_source_kept_verbatim():
    tests = convert_asserts(["assert similar_elements((3, 4),(5, 4)) == (4,)"], "similar_elements").tests
    assert tests[0].call == "similar_elements((3, 4), (5, 4))"
    assert tests[0].expected == (4,)
    assert tests[0].source == "assert similar_elements((3, 4),(5, 4)) == (4,)"


def test_rename_source_leaves_strings_alone():
    assert rename_source("candidate('candidate') + candidate_x", "candidate", "f") == "f('candidate') + candidate_x"
