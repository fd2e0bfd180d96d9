"""Behaviour of the sandbox on ordinary programs: comparisons, references, time limits, script mode, pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox import ExecResult, Job, Sandbox, SandboxConfig, isolation_level, outcome_counts
from selfdebug.sandbox.gold import gold_check

REPO = Path(__file__).resolve().parents[2]


def fn_problem(tests: list[TestCase], reference: str = "", entry: str = "f", **kw: object) -> Problem:
    return Problem(task_id=f"t/{entry}/{len(tests)}/{abs(hash(reference)) % 10**6}", benchmark="t", prompt="",
                   entry_point=entry, style="full", reference=reference, tests=tests, **kw)


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    with Sandbox(SandboxConfig(workers=2, timeout_floor_s=2.0, run_timeout_s=10.0)) as box:
        yield box


def run1(sb: Sandbox, program: str, problem: Problem, **kw: object) -> ExecResult:
    return sb.run([Job(program=program, problem=problem, **kw)])[0]


def test_isolation_level_reported(sb: Sandbox) -> None:
    level = isolation_level()
    r = run1(sb, "def f(x):\n    return x\n", fn_problem([TestCase("f(1)", 1)]))
    assert r.passed and r.isolation.startswith(level)
    if os.geteuid() == 0:
        assert level.startswith("root-ns"), "root with unshare should get namespaces"


def test_pass_and_wrong_answer_feedback(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f(2)", 4), TestCase("f(3)", 9)])
    ok, bad = sb.run([Job("def f(x):\n    return x * x\n", p), Job("def f(x):\n    return x + x\n", p)])
    assert (ok.status, ok.n_passed, ok.n_total, ok.trust) == ("passed", 2, 2, "structured")
    assert (bad.status, bad.n_passed) == ("wrong_answer", 1)
    assert bad.feedback == "AssertionError: expect f(3) == 9, but was 6"
    assert bad.tests[1].expected == "9" and bad.tests[1].actual == "6"


def test_runtime_error_feedback_is_paper_style(sb: Sandbox) -> None:
    r = run1(sb, "def f(x):\n    return x + y\n", fn_problem([TestCase("f(1)", 1)]))
    assert r.status == "runtime_error" and r.feedback == "NameError: name 'y' is not defined"


def test_comparisons(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f(0.1, 0.2)", 0.3, atol=1e-9), TestCase("[f(0.1, 0.2)]", [0.3], atol=1e-9),
                    TestCase("f(1, 1)", 2.0, comparison="close", atol=1e-6),
                    TestCase("f(1, 0)", comparison="truthy"), TestCase("f(0, 0)", comparison="falsy")])
    r = run1(sb, "def f(a, b):\n    return a + b\n", p)
    assert r.passed, r.feedback
    exact = run1(sb, "def f(a, b):\n    return a + b\n", fn_problem([TestCase("f(0.1, 0.2)", 0.3)]))
    assert exact.status == "wrong_answer"  # no tolerance unless the test asks for one


def test_types_must_match_plain_data(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f()", {"a": 1}), TestCase("g()", (1, 2)), TestCase("h()", {1, 2})])
    prog = ("import collections\ndef f():\n    return collections.Counter(a=1)\n"
            "def g():\n    return (1, 2)\ndef h():\n    return frozenset({1, 2})\n")
    r = run1(sb, prog, p)
    assert r.passed, r.feedback  # Counter is read as a dict; frozenset == set as in Python
    r = run1(sb, "import numpy\ndef f():\n    return numpy.int64(1)\n", fn_problem([TestCase("f()", 1)]))
    assert r.status == "wrong_answer" and "non-plain type" in r.feedback


def test_expected_from_reference_and_time_limit(sb: Sandbox) -> None:
    ref = "import time\ndef f(x):\n    time.sleep(0.2)\n    return sorted(x)\n"
    p = fn_problem([TestCase("f([3, 1, 2])", expected_from="reference")], reference=ref)
    r = run1(sb, "def f(x):\n    return sorted(x)\n", p)
    assert r.passed and r.tests[0].expected == "[1, 2, 3]"
    assert r.reference_time_s is not None and r.reference_time_s >= 0.2
    assert r.time_limit_s == pytest.approx(2.0 + 4.0 * r.reference_time_s, rel=0.01)
    slow = run1(sb, "import time\ndef f(x):\n    time.sleep(30)\n", p)
    assert slow.status == "timeout" and slow.duration_s < r.time_limit_s + 3


def test_suites(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f(1)", 1)], plus_tests=[TestCase("f(-1)", 1)])
    prog = "def f(x):\n    return x\n"
    base, plus, allr = sb.run([Job(prog, p, "base"), Job(prog, p, "plus"), Job(prog, p, "all")])
    assert base.passed and not plus.passed and (allr.n_passed, allr.n_total) == (1, 2)


def test_stdout_problems(sb: Sandbox) -> None:
    p = fn_problem([TestCase("3\n1 2 3\n", "6\n", comparison="stdout"),
                    TestCase("2\n5 5\n", "10", comparison="stdout")])
    good = "n = int(input())\nprint(sum(map(int, input().split())))   \n"
    r = run1(sb, good, p)
    assert r.passed, r.feedback
    r = run1(sb, "print(0)\n", p)
    assert r.status == "wrong_answer" and "expect output" in r.feedback


def test_script_mode_trust(sb: Sandbox) -> None:
    script = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n"
    p = Problem(task_id="t/script", benchmark="t", prompt="def sq(x):\n", entry_point="sq", style="completion",
                reference="def sq(x):\n    return x * x\n", tests=[], test_script=script)
    good, bad, forged = sb.run([
        Job(p.program("    return x * x\n"), p), Job(p.program("    return x + x\n"), p),
        Job(p.program("    class A:\n        def __eq__(s, o): return True\n    return A()\n"), p)])
    assert good.passed and good.trust == "script"
    assert bad.status == "runtime_error" and bad.feedback.startswith("AssertionError")
    assert not forged.passed and "non-plain" in forged.feedback
    assert outcome_counts([good, bad])["trust_script"] == 2


def test_worker_recovers_after_death(sb: Sandbox) -> None:
    for w in sb._workers:
        os.killpg(w.proc.pid, signal.SIGKILL)
        w.proc.wait()
    p = fn_problem([TestCase("f(1)", 1)])
    results = sb.run([Job("def f(x):\n    return x\n", p) for _ in range(4)])
    assert all(r.passed for r in results), [r.feedback for r in results]


def test_parallel_batch_is_ordered(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f()", 0)])
    jobs = [Job(f"def f():\n    return {i % 3}\n", p) for i in range(30)]
    assert [r.passed for r in sb.run(jobs)] == [i % 3 == 0 for i in range(30)]


def test_gold_check_reports_reasons(sb: Sandbox) -> None:
    good = fn_problem([TestCase("f(2)", 4)], reference="def f(x):\n    return x * x\n", entry="f")
    broken = fn_problem([TestCase("g(2)", 7)], reference="def g(x):\n    return x * x\n", entry="g")
    weak = fn_problem([TestCase("h(2)", comparison="truthy")], reference="def h(x):\n    return [x]\n",
                      entry="h")
    rep = gold_check([good, broken, weak], sb, progress=False)
    assert not rep.ok
    assert [f["task_id"] for f in rep.reference_failures] == [broken.task_id]
    assert "expect g(2) == 7" in rep.reference_failures[0]["reason"]
    assert [f["task_id"] for f in rep.wrong_passes] == [weak.task_id]


def test_cli_humaneval_and_mbpp(tmp_path: Path) -> None:
    he = {"task_id": "HumanEval/x", "prompt": "def inc(x):\n    \"\"\"Add one.\"\"\"\n",
          "canonical_solution": "    return x + 1\n", "entry_point": "inc",
          "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n"}
    mb = {"task_id": 9001, "text": "Write a function to double.", "code": "def dbl(x):\n    return 2 * x\n",
          "test_list": ["assert dbl(2) == 4", "assert dbl(0) == 0"], "test_setup_code": "",
          "challenge_test_list": []}
    (tmp_path / "he.json").write_text(json.dumps(he))
    (tmp_path / "mb.json").write_text(json.dumps(mb))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "selfdebug.sandbox", "--timeout", "2"]
    out = subprocess.run([*cmd, "--problem", str(tmp_path / "he.json")], input="    return x + 1\n",
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "passed"
    out = subprocess.run([*cmd, "--problem", str(tmp_path / "mb.json")], input="def dbl(x):\n    return x\n",
                         capture_output=True, text=True, env=env, timeout=60)
    res = json.loads(out.stdout)
    assert res["status"] == "wrong_answer" and res["time_limit_s"] == 2.0
    assert "expect dbl(2) == 4, but was 2" in res["feedback"]


@pytest.mark.parametrize("level", ["user-ns", "rlimits"])
def test_weaker_levels_still_decide_correctly(level: str, tmp_path: Path) -> None:
    from selfdebug.sandbox import isolation

    if isolation.LEVELS.index(level) > isolation.LEVELS.index(isolation_level()):
        pytest.skip(f"{level} not available here")
    p = fn_problem([TestCase("f(2)", 4), TestCase("f(3)", 9)])
    cfg = SandboxConfig(workers=1, timeout_floor_s=1.0, run_timeout_s=5.0, force_level=level)
    with Sandbox(cfg) as box:
        res = box.run([Job("def f(x):\n    return x * x\n", p), Job("def f(x):\n    return x\n", p),
                       Job("def f(x):\n    while True: pass\n", p),
                       Job("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                           "def f(x):\n    return x * x\n", p),
                       Job(f"def f(x):\n    open({str(tmp_path / 'x')!r}, 'w').write('x')\n    return x * x\n", p)])
    assert [r.status for r in res[:3]] == ["passed", "wrong_answer", "timeout"]
    assert all(r.isolation.startswith(level) for r in res)
    assert res[3].passed  # its daemon is killed by the subreaper / PID namespace, or the job is a sandbox_error
    if level != "rlimits":  # a private /tmp; at the weakest level /tmp is shared (documented)
        assert not (tmp_path / "x").exists()
