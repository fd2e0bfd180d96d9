"""Benchmark loaders: real HumanEval/HumanEval+/MBPP files (package and offline mirror) and format fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfdebug.problems import ProblemFormatError, TestCase, load_benchmark
from selfdebug.problems.base import Problem
from selfdebug.problems.sources import default_mirror

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
needs_mirror = pytest.mark.skipif(
    default_mirror() is None or not (default_mirror() / "mbpp" / "mbpp.jsonl").is_file(),  # type: ignore[operator]
    reason="offline benchmark mirror (../shared/data or SELFDEBUG_DATA_DIR) not present",
)


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Problem]:
    return {p.task_id: p for p in load_benchmark("humaneval")}


def test_humaneval_loads_164_with_fields(humaneval):
    assert len(humaneval) == 164
    p = humaneval["HumanEval/0"]
    assert p.style == "completion" and p.entry_point == "has_close_elements" and p.benchmark == "humaneval"
    assert p.reference.startswith(p.prompt) and "distance = abs(elem - elem2)" in p.reference
    assert p.test_script.endswith("\ncheck(has_close_elements)\n") and "def check(candidate)" in p.test_script
    assert p.program("    return True\n") == p.prompt + "    return True\n"
    assert p.tests[0] == TestCase(
        call="has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)", expected=True, comparison="eq",
        source="assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True",
    )
    assert len(p.tests) == 7


def test_humaneval_all_structured(humaneval):
    # 160 from the asserts, 4 (random-input checks) from HumanEval+'s base_input when the mirror has it.
    origins = [p.metadata["tests_from"] for p in humaneval.values()]
    assert origins.count("asserts") == 160
    assert all(p.tests for p in humaneval.values() if p.metadata["tests_from"] != "script")
    t0, t1 = humaneval["HumanEval/2"].tests[:2]
    assert (t0.call, t0.expected, t0.comparison, t0.atol) == ("truncate_number(3.5)", 0.5, "eq", 0.0)
    assert (t1.call, t1.expected, t1.comparison, t1.atol) == ("truncate_number(1.33)", 0.33, "close", 1e-6)
    assert t1.source == "assert abs(truncate_number(1.33) - 0.33) < 1e-6"
    assert [t.call for t in humaneval["HumanEval/44"].tests][-6:] == [f"change_base({x}, {x} + 1)" for x in range(2, 8)]


@needs_mirror
def test_humaneval_random_checks_use_plus_base_inputs(humaneval):
    for tid in ("HumanEval/32", "HumanEval/38", "HumanEval/50", "HumanEval/53"):
        assert humaneval[tid].metadata["tests_from"] == "humaneval_plus_base_input"
        assert len(humaneval[tid].tests) >= 100
    fz = humaneval["HumanEval/32"].tests[0]
    assert (fz.comparison, fz.expected, fz.atol) == ("close", 0.0, 1e-4) and "find_zero([-10, -2])" in fz.call
    assert humaneval["HumanEval/53"].tests[0] == TestCase(call="add(0, 1)", atol=1e-6, rtol=1e-7,
                                                          expected_from="reference", source="add(0, 1)")


@needs_mirror
def test_humaneval_plus_from_mirror(humaneval):
    plus = {p.task_id: p for p in load_benchmark("humaneval+")}
    assert len(plus) == 164
    p = plus["HumanEval/0"]
    assert p.prompt == humaneval["HumanEval/0"].prompt and p.benchmark == "humaneval_plus"
    assert len(p.tests) == 7 and len(p.plus_tests) > 7
    assert all(t.expected_from == "reference" and t.atol == 1e-6 for t in p.tests + p.plus_tests)
    assert p.tests[0].call == "has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)"
    assert sum(len(q.tests) for q in plus.values()) == 1570
    assert sum(len(q.plus_tests) for q in plus.values()) == 122683


@needs_mirror
def test_mbpp_splits_and_fields():
    sizes = {s: len(load_benchmark("mbpp", split=s)) for s in ("test", "train", "validation", "prompt")}
    assert sizes == {"test": 500, "train": 374, "validation": 90, "prompt": 10}
    train = load_benchmark("mbpp", split="train", limit=3)
    assert [p.task_id for p in train] == ["MBPP/601", "MBPP/602", "MBPP/603"]
    p = load_benchmark("mbpp", split="prompt")[1]
    assert p.task_id == "MBPP/2" and p.entry_point == "similar_elements" and p.style == "full"
    assert p.description == "Write a function to find the similar elements from the given two tuple lists."
    assert p.prompt == p.description + "\nassert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)"
    assert p.tests[0] == TestCase(call="similar_elements((3, 4, 5, 6), (5, 7, 4, 10))", expected=(4, 5),
                                  source="assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)")
    assert "\r" not in p.reference and p.reference.startswith("def similar_elements")


@needs_mirror
def test_mbpp_setup_code_and_challenge_tests():
    probs = {p.task_id: p for p in load_benchmark("mbpp", split="all", include_challenge=True)}
    assert len(probs) == 974 and all(p.tests for p in probs.values())
    p367 = probs["MBPP/367"]  # its setup uses the program's Node class: folded into the calls
    assert p367.setup_code == "" and p367.metadata["setup_in_calls"]
    assert p367.tests[0].call.startswith("(exec(") and p367.tests[0].call.endswith("is_tree_balanced(root))[1]")
    with_challenge = [p for p in probs.values() if p.metadata["n_challenge_tests"]]
    assert with_challenge and all(len(p.tests) > 3 for p in with_challenge)


@needs_mirror
def test_mbpp_plus_v020_from_mirror():
    """The pinned v0.2.0 file: 378 tasks, about 40k plus tests; Mbpp/793 stores its (no) plus inputs as {}."""
    probs = {p.task_id: p for p in load_benchmark("mbpp_plus")}
    assert len(probs) == 378 and all(p.benchmark == "mbpp_plus" and p.reference and p.tests for p in probs.values())
    assert sum(len(p.tests) for p in probs.values()) == 1174
    assert sum(len(p.plus_tests) for p in probs.values()) == 39841
    assert probs["Mbpp/793"].plus_tests == [] and len(probs["Mbpp/793"].tests) == 3
    p2 = probs["Mbpp/2"]
    assert p2.prompt == ("Write a function to find the shared elements from the given two lists.\n"
                         "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))")
    assert p2.reference.startswith("def similar_elements(") and p2.tests[0].call.startswith("set(similar_elements(")
    assert probs["Mbpp/793"].test_script.strip().startswith("assert last(")  # MBPP's asserts, for display


def test_mbpp_plus_fixture():
    probs = load_benchmark("mbpp_plus", path=FIXTURES / "mbppplus_sample.jsonl")
    p2, p3, p17 = probs
    assert p2.task_id == "Mbpp/2" and p2.metadata["mbpp_task_id"] == "MBPP/2"
    assert p2.description == "Write a function to find the shared elements from the given two lists."
    assert p2.prompt.endswith("\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))")
    # Mbpp/2: arguments restored to tuples, set-equality oracle.
    assert p2.tests[0].call == "set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10)))"
    assert p2.plus_tests[1].call == "set(similar_elements((), (1,)))"
    assert p3.setup_code == "import math" and p3.plus_tests[2].call == "is_not_prime(1000003)"
    assert p17.metadata["atol"] == 1e-6 and p17.tests[0].atol == 1e-6
    assert all(t.expected_from == "reference" for p in probs for t in p.tests + p.plus_tests)


def test_apps_fixture():
    probs = {p.task_id: p for p in load_benchmark("apps", path=FIXTURES / "apps_sample.jsonl")}
    stdin = probs["APPS/4001"]
    assert stdin.entry_point == "" and stdin.metadata["io_format"] == "stdin" and stdin.metadata["n_solutions"] == 2
    assert stdin.tests[0] == TestCase(call="1 2\n", expected="3\n", comparison="stdout", source="1 2\n")
    call = probs["APPS/4002"]
    assert call.tests[0] == TestCase(call="double_all([1, 2, 3])", expected=[2, 4, 6], source="double_all([1, 2, 3])")
    assert call.prompt.endswith("def double_all(xs):\n\t")
    assert probs["APPS/4003"].tests[1].call == "Solution().isPowerOfTwo(6)"
    assert probs["APPS/4004"].tests[0].call == "a\nb\nc"


def test_codecontests_fixture():
    probs = load_benchmark("codecontests", path=FIXTURES / "codecontests_sample.jsonl")
    a, b = probs
    assert a.reference == "a, b = map(int, input().split())\nprint(a + b)\n"  # the PYTHON3 one, not C++/py2
    assert [t.call for t in a.tests] == ["1 2\n", "5 7\n", "-1 1\n"] and a.metadata["n_public_tests"] == 1
    assert a.metadata["time_limit_s"] == 1.5 and all(t.comparison == "stdout" for t in a.tests)
    assert b.reference == "" and not b.metadata["has_python3_reference"]
    assert len(load_benchmark("codecontests", path=FIXTURES / "codecontests_sample.jsonl",
                              include_generated=True)[0].tests) == 4
    assert len(load_benchmark("codecontests", path=FIXTURES / "codecontests_sample.jsonl",
                              require_python3=True)) == 1


def test_unknown_benchmark_lists_known_ones():
    with pytest.raises(KeyError) as e:
        load_benchmark("humaneval-x")
    assert "humaneval_plus" in str(e.value) and "codecontests" in str(e.value)


def test_malformed_row_names_file_and_task(tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = [json.loads(line) for line in (FIXTURES / "mbppplus_sample.jsonl").read_text().splitlines()]
    del rows[1]["entry_point"]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ProblemFormatError, match=r"bad\.jsonl: line 2 \(task_id='Mbpp/3'\).*entry_point"):
        load_benchmark("mbpp_plus", path=bad)
    bad.write_text('{"problem_id": 1, "question": "q", "input_output": "{not json"}\n')
    with pytest.raises(ProblemFormatError, match=r"bad\.jsonl: line 1 \(problem_id=1\).*input_output"):
        load_benchmark("apps", path=bad)
    bad.write_text("not json\n")
    with pytest.raises(ProblemFormatError, match=r"bad\.jsonl: line 1: invalid JSON"):
        load_benchmark("codecontests", path=bad)


def test_problem_round_trips_through_dict(humaneval):
    p = humaneval["HumanEval/4"]
    assert Problem.from_dict(json.loads(json.dumps(p.to_dict()))) == p
