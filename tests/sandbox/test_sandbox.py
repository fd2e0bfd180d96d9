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
from selfdebug.sandbox.isolation import cpu_cgroup_usable

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
    assert r.status == "runtime_error"
    assert r.feedback == "NameError: name 'y' is not defined (program.py, line 2: return x + y)"


def test_reference_cache_tells_benchmarks_with_the_same_task_ids_apart(sb: Sandbox) -> None:
    """HumanEval and HumanEval+ share task ids; each must get its own reference values."""
    ref = "def f(x):\n    return x * 10\n"
    base = Problem(task_id="HumanEval/0", benchmark="humaneval", prompt="", entry_point="f", style="full",
                   reference=ref, tests=[TestCase("f(1)", expected_from="reference")])
    plus = Problem(task_id="HumanEval/0", benchmark="humaneval_plus", prompt="", entry_point="f", style="full",
                   reference=ref, tests=[TestCase("f(2)", expected_from="reference")],
                   plus_tests=[TestCase("f(3)", expected_from="reference")])
    r_base, r_plus = sb.run([Job(ref, base), Job(ref, plus, suite="all")])
    assert r_base.passed and r_base.n_total == 1
    assert r_plus.passed and r_plus.n_total == 2, r_plus.feedback


def test_reference_cache_tells_problems_with_the_same_ids_but_other_tests_apart(sb: Sandbox) -> None:
    """A fixture and the real file can share benchmark and task id (MBPP+'s Mbpp/2): their tests differ."""
    ref = "def f(x):\n    return x * 10\n"

    def make(calls: list[str]) -> Problem:
        return Problem(task_id="Mbpp/2", benchmark="mbpp_plus", prompt="", entry_point="f", style="full",
                       reference=ref, tests=[TestCase(c, expected_from="reference") for c in calls])

    small, large = make(["f(1)"]), make(["f(2)", "f(3)"])
    r_small, r_large = sb.run([Job(ref, small), Job(ref, large)])
    assert r_small.passed and r_large.passed and r_large.n_total == 2, r_large.feedback


def test_feedback_quotes_strings_and_locates_module_level_errors(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f('ab')", "ba")])
    r = run1(sb, "def f(s):\n    return s\n", p)
    assert r.feedback == "AssertionError: expect f('ab') == 'ba', but was 'ab'"
    # a bare assert that fails while the program loads says where it is
    r = run1(sb, "def f(s):\n    return s[::-1]\n\nassert f('x') == 'y'\n", p)
    assert r.status == "runtime_error"
    assert r.feedback == "AssertionError (program.py, line 4: assert f('x') == 'y')"


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


BUSY = "import time\ndef busy(s):\n    t = time.process_time()\n    while time.process_time() - t < s:\n        pass\n"
"""Spends ``s`` seconds of CPU time."""


def test_expected_from_reference_and_time_limit(sb: Sandbox) -> None:
    ref = BUSY + "def f(x):\n    busy(0.6)\n    return sorted(x)\n"
    p = fn_problem([TestCase("f([3, 1, 2])", expected_from="reference")], reference=ref)
    r = run1(sb, "def f(x):\n    return sorted(x)\n", p)
    assert r.passed and r.tests[0].expected == "[1, 2, 3]"
    assert r.reference_time_s is not None and 0.58 <= r.reference_time_s < 0.9  # busy() and the sandbox read different CPU clocks: a few µs apart
    # evalplus's rule, max(floor, factor x t): 4 x 0.6 s beats the 2 s floor (not floor + 4 x t)
    assert r.time_limit_s == pytest.approx(max(2.0, 4.0 * r.reference_time_s), rel=0.01)
    slow = run1(sb, "def f(x):\n    while True:\n        pass\n", p)
    assert slow.status == "timeout" and slow.duration_s < r.time_limit_s + 3


def test_time_limits_are_cpu_time_so_a_loaded_machine_gives_the_same_verdicts() -> None:
    """The candidate shares one core with three busy processes: a test that needs 0.65 s of CPU gets a half
    (the sandbox's cgroup against the rest, as the scheduler shares by group) to a quarter of that core, so
    it takes 1.3-2.6 s of wall time, past its 1 s limit in wall time, and must still pass; a test that sleeps
    uses no CPU and passes too, unless it sleeps past WALL_FACTOR times its limit."""
    from selfdebug.sandbox.forkserver import WALL_FACTOR

    core = min(os.sched_getaffinity(0))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=lambda: os.sched_setaffinity(0, {core})) for _ in range(3)]
    try:
        with Sandbox(SandboxConfig(workers=1, timeout_floor_s=1.0, run_timeout_s=20.0)) as box:
            p = fn_problem([TestCase("f()", 1)])  # no reference: the 1 s floor
            pin = f"import os\nos.sched_setaffinity(0, {{{core}}})\n"  # onto the busy core
            busy, nap, stuck = box.run([Job(pin + BUSY + "def f():\n    busy(0.65)\n    return 1\n", p),
                                        Job("import time\ndef f():\n    time.sleep(1.5)\n    return 1\n", p),
                                        Job("import time\ndef f():\n    time.sleep(100)\n", p)])
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert busy.passed and busy.tests[0].duration_s > 1.0, (busy.status, busy.tests[0].duration_s)
    assert nap.passed, nap.feedback
    assert stuck.status == "timeout"
    assert WALL_FACTOR * 1.0 <= stuck.tests[0].duration_s < WALL_FACTOR * 1.0 + 2


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def test_a_fork_bomb_on_one_worker_does_not_starve_the_other_workers_candidate() -> None:
    """Each worker has its own cpu cgroup of equal weight, so the 48 spinning processes of a fork bomb on
    worker A get one core's share, not 48 of every 49 slices: worker B's candidate, which needs 0.65 s of
    CPU, still passes inside its 5 s run limit. Autogroup (per-session scheduling, which hides the problem)
    is turned off for the test where it can be; CI failed on exactly this, a memory bomb beside the fork
    bomb timing out."""
    if isolation_level() != "root-ns-cgroup" or not cpu_cgroup_usable():
        pytest.skip("needs root-ns-cgroup with a writable cpu cgroup")
    saved = AUTOGROUP.read_text() if AUTOGROUP.exists() else None
    try:
        if saved is not None:
            try:
                AUTOGROUP.write_text("0")
            except OSError:
                saved = None  # read-only here: the test runs with the machine's own setting
        cfg = SandboxConfig(workers=2, timeout_floor_s=2.0, per_test_timeout_cap_s=3.0, run_timeout_s=5.0)
        bomb = "import os\ndef f():\n    while True:\n        try: os.fork()\n        except OSError: pass\n"
        # the nap lets the bomb fill its pids cgroup first; sleeping costs no CPU time
        honest = "import time\ntime.sleep(0.3)\n" + BUSY + "def f():\n    busy(0.65)\n    return 1\n"
        p = fn_problem([TestCase("f()", 1)])
        with Sandbox(cfg) as box:
            bombed, *runs = box.run([Job(bomb, p), Job(honest, p), Job(honest, p)])
    finally:
        if saved is not None:
            AUTOGROUP.write_text(saved)
    assert bombed.status in ("timeout", "runtime_error")
    for r in runs:
        assert r.passed, (r.status, r.feedback, r.tests[0].duration_s)


def test_each_test_reports_the_calls_own_time(sb: Sandbox) -> None:
    """``call_s`` is the call alone as the child timed it (benchmarks sum it for the tests' own cost); the fork
    server's ``duration_s`` covers at least as much."""
    p = fn_problem([TestCase("f(0.3)", None), TestCase("f(0)", None)])
    r = run1(sb, "import time\ndef f(x):\n    time.sleep(x)\n", p)
    assert r.passed
    slow, fast = r.tests
    assert 0.3 <= slow.call_s < 1.0 and fast.call_s < 0.05
    assert slow.duration_s >= slow.call_s - 0.005


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


def test_cli_rows_without_a_reference_get_the_floor_and_say_so(tmp_path: Path) -> None:
    """A user checking a program against their own tests has no reference solution."""
    he = {"task_id": "mine/1", "prompt": "def inc(x):\n", "entry_point": "inc",
          "test": "def check(candidate):\n    assert candidate(1) == 2\n"}
    mb = {"task_id": 9002, "text": "Write a function to double.", "test_list": ["assert dbl(2) == 4"]}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name, row, answer, status in (("he", he, "    return x + 1\n", "passed"),
                                      ("mb", mb, "def dbl(x):\n    return x\n", "wrong_answer")):
        (tmp_path / f"{name}.json").write_text(json.dumps(row))
        out = subprocess.run([sys.executable, "-m", "selfdebug.sandbox", "--problem", str(tmp_path / f"{name}.json")],
                             input=answer, capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["status"] == status, res["feedback"]
        assert res["time_limit_s"] == SandboxConfig().timeout_floor_s and res["reference_time_s"] is None
        assert res["note"].startswith("no reference solution: every test got the time-limit floor of 1 s")


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
        probe = ("import ctypes, os\ndef probe():\n    libc = ctypes.CDLL(None)\n    got = []\n"
                 f"    for d in (b'/work', b'/root', b'/home', b'/tmp', {str(REPO).encode()!r}):\n"
                 "        if libc.umount2(d, 2) == 0: got.append(d.decode())\n"
                 "    if libc.mount(b'x', b'/usr', b'tmpfs', 0, None) == 0: got.append('mount')\n"
                 "    return got or None\n")
        pp = Problem(task_id="t/probe", benchmark="t", prompt="", entry_point="probe", style="full",
                     reference="", tests=[TestCase("probe()", None)])
        with Sandbox(cfg) as box:
            r = box.run([Job(probe, pp)])[0]
        assert r.passed, f"{level}: {r.feedback} {r.tests[0].actual}"


def test_worker_death_mid_batch_loses_nothing() -> None:
    """Fork servers killed while jobs are queued on them: every job still gets a result, and none of them
    is reported as the model's failure."""
    import threading
    import time

    p = fn_problem([TestCase("f(1)", 1)])
    jobs = [Job("import time\ndef f(x):\n    time.sleep(0.1)\n    return x\n", p) for _ in range(16)]
    with Sandbox(SandboxConfig(workers=2, timeout_floor_s=2.0, run_timeout_s=5.0)) as box:
        box.start()

        def kill_soon() -> None:
            time.sleep(0.35)
            for w in list(box._workers):
                if w.proc is not None:
                    os.killpg(w.proc.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        results = box.run(jobs)
        killer.join()
    assert len(results) == 16
    assert all(r.status in ("passed", "sandbox_error") for r in results), [r.status for r in results]
    assert sum(r.passed for r in results) >= 14  # a death costs at most a retry, not the job


def test_no_state_leaks_between_jobs(sb: Sandbox) -> None:
    """A job's files in the shared scratch directories are gone before the next job on any worker."""
    p = fn_problem([TestCase("f()", None)])
    plant = ("import os\ndef f():\n    for d in ('/tmp', '/var/tmp', '/dev/shm'):\n"
             "        try:\n            open(os.path.join(d, 'planted'), 'w').write('x')\n"
             "        except OSError:\n            pass\n    open('here', 'w').write('x')\n    return None\n")
    look = ("import os\ndef f():\n    found = [d for d in ('/tmp', '/var/tmp', '/dev/shm') "
            "if os.path.exists(os.path.join(d, 'planted'))]\n"
            "    found += [n for n in os.listdir('.') if not n.startswith('.')]\n    return found or None\n")
    results = sb.run([Job(plant, p)] * 4 + [Job(look, p)] * 4)
    assert all(r.passed for r in results), [(r.feedback, r.tests[0].actual) for r in results]


def test_large_requests_and_replies_do_not_deadlock() -> None:
    """Jobs whose request and reply each exceed a pipe's buffer, queued back to back on one worker."""
    import threading

    tests = [TestCase(f"f({i}, {'x' * 20!r})", [i, "x" * 20]) for i in range(3000)]
    big, small = fn_problem(tests), fn_problem([TestCase("f(1, 2)", 0)])
    jobs = [Job("def f(i, s):\n    return [i, s]\n", big)] * 4 + [Job("def f(i, s):\n    return 0\n", small)] * 4
    out: list = []
    with Sandbox(SandboxConfig(workers=1, timeout_floor_s=2.0, run_timeout_s=20.0)) as box:
        t = threading.Thread(target=lambda: out.extend(box.run(jobs)), daemon=True)
        t.start()
        t.join(60)
        hung = t.is_alive()
    assert not hung, "harness and fork server deadlocked on their pipes"
    assert [r.passed for r in out] == [True] * 8
    assert out[0].n_total == 3000


def test_huge_values_do_not_crash_the_harness(sb: Sandbox) -> None:
    p = fn_problem([TestCase("f()", 10 ** 5000), TestCase("[f()]", [10 ** 5000 + 1])])
    r = run1(sb, "def f():\n    return 10 ** 5000\n", p)
    assert r.status == "wrong_answer" and r.n_passed == 1
    assert "digits" in r.tests[0].expected or "repr" in r.tests[0].expected
