"""Fast check (``stop_at_first_failure``): the harness compares values as they stream in and stops the
program at the first failing test, with the verdict a full run gives; and values sent back byte for byte as
the reference sent them are judged without being parsed again, with the same verdicts (NaN included)."""

from __future__ import annotations

import pytest

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox import Job, Sandbox, SandboxConfig
from selfdebug.sandbox.types import _short

SLOW_WRONG_AT_3 = "import time\ndef f(x):\n    time.sleep(0.005)\n    return x + (1 if x == 3 else 0)\n"


def problem(tests: list[TestCase], reference: str = "", name: str = "p") -> Problem:
    return Problem(task_id=f"fast/{name}", benchmark="fast", prompt="", entry_point="f", style="full",
                   reference=reference, tests=tests)


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    with Sandbox(SandboxConfig(workers=2, timeout_floor_s=2.0, run_timeout_s=20.0)) as box:
        yield box


def ran(result) -> int:
    return sum(o.status != "not_run" for o in result.tests)


def test_fast_check_stops_at_the_first_wrong_value(sb: Sandbox) -> None:
    p = problem([TestCase(f"f({i})", i) for i in range(400)], name="stop")
    full = sb.run([Job(SLOW_WRONG_AT_3, p)])[0]
    # both paths: the pool (run) and a single job (run_job)
    for fast in (sb.run([Job(SLOW_WRONG_AT_3, p, stop_at_first_failure=True)])[0],
                 sb.run_job(Job(SLOW_WRONG_AT_3, p, stop_at_first_failure=True))):
        assert (fast.status, fast.feedback) == (full.status, full.feedback) == (
            "wrong_answer", "AssertionError: expect f(3) == 3, but was 4")
        assert [o.status for o in fast.tests[:4]] == ["passed"] * 3 + ["wrong_answer"]
        # 5 ms a test: without the stop all 400 run (2 s); the stop comes within a few tests
        assert ran(fast) < 60 and all(o.status == "not_run" for o in fast.tests[60:]), ran(fast)
    assert ran(full) == 400 and full.n_passed == 399


def test_fast_check_verdicts_equal_full_runs(sb: Sandbox) -> None:
    p = problem([TestCase(f"f({i})", i * i) for i in range(60)], name="verdicts")
    programs = ["def f(x):\n    return x * x\n",
                "def f(x):\n    return x * x if x < 59 else 0\n",
                "def f(x):\n    return x * x if x != 30 else 1 // 0\n",
                "def f(x):\n    return str(x * x) if x > 10 else x * x\n",
                "def f(x):\n    while x == 20:\n        pass\n    return x * x\n"]
    full = sb.run([Job(prog, p) for prog in programs])
    fast = sb.run([Job(prog, p, stop_at_first_failure=True) for prog in programs])
    assert [(r.status, r.feedback) for r in fast] == [(r.status, r.feedback) for r in full]
    assert [r.status for r in fast] == ["passed", "wrong_answer", "runtime_error", "wrong_answer", "timeout"]


def test_reference_bytes_get_the_verdict_a_parsed_value_gets() -> None:
    big = "[float(i) / 7 for i in range(200000)] + [1, 2**60]"
    ref = f"def f(k):\n    return {big} if k == 0 else [float('nan'), 1.0] if k == 1 else 2.0\n"
    calls = ["f(0)", "f(1)", "f(2)"]
    problems = [problem([TestCase(c, expected_from="reference", atol=atol) for c in calls], ref, f"ref{atol}")
                for atol in (0.0, 1e-6)]
    literal = problem([TestCase("f(2)", 2), TestCase("f(2)", 3)], ref, "literal")
    # equal values sent as other bytes (ints for floats) are parsed and compared
    other = "def f(k):\n    return [i / 7 if i % 7 else i // 7 for i in range(200000)] + [1, 2**60]\n"
    jobs = [Job(ref, p) for p in problems] + [Job(ref, literal), Job(other, problems[0])]
    with Sandbox(SandboxConfig(workers=1)) as box:
        fast = box.run(jobs)
        assert all(r.same for r in box._refs.values())
        for r in box._refs.values():  # the same jobs, every value parsed and compared
            r.same.clear()
        slow = box.run(jobs)
    view = [[(o.status, o.actual, o.message) for o in r.tests] for r in fast]
    assert view == [[(o.status, o.actual, o.message) for o in r.tests] for r in slow]
    assert [r.status for r in fast] == ["passed", "passed", "wrong_answer", "wrong_answer"]
    assert fast[0].tests[0].actual == _short([float(i) / 7 for i in range(200000)] + [1, 2**60])
    assert fast[3].tests[0].status == "passed" and fast[3].tests[0].actual != fast[0].tests[0].actual
