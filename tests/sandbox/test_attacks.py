"""The attack suite: every hostile program gets its required outcome, nothing escapes, nothing hangs.

The whole suite runs in one subprocess inside an outer PID namespace with its own pids and memory cgroup
limits, so a sandbox bug fails a test instead of taking the machine down. Where no such outer jail can be
built (no root, no cgroups), the attacks that signal everything, fork without bound or exhaust memory are
not run, and the tests say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfdebug.sandbox import isolation

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from attacks import ATTACKS, NEEDS_TIME  # noqa: E402

DANGEROUS = {"kill_everything", "fork_bomb", "memory_bomb_alloc", "memory_bomb_grow"}
OUTER_MEMORY = 6 << 30
OUTER_PIDS = 400


def _outer_jail() -> tuple[list[str], list[str]] | None:
    """Command prefix for the outer PID namespace, and the outer cgroups; None if unavailable."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0 or not isolation._cgroups_usable():
        return None
    name = f"selfdebug-attack-tests-{os.getpid()}"
    dirs = isolation.make_cgroups(name, OUTER_MEMORY, OUTER_PIDS)
    return [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"], dirs


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    jail = _outer_jail()
    if jail is None:
        pytest.skip("no outer jail (needs root, unshare and cgroup v1 memory+pids): attack suite not run")
    prefix, cgroups = jail
    canary = tmp_path_factory.mktemp("canary")

    def enter_cgroups() -> None:  # runs in the child before exec: the whole jail is inside the limits
        for d in cgroups:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    t0 = time.monotonic()
    try:
        proc = subprocess.run([*prefix, sys.executable, str(HERE / "attack_runner.py"), str(canary)],
                              capture_output=True, text=True, timeout=150, preexec_fn=enter_cgroups)
    finally:
        time.sleep(0.1)
        isolation.remove_cgroups(cgroups)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    rep["outer_wall_s"] = time.monotonic() - t0
    return rep


def test_suite_is_large_enough() -> None:
    assert len(ATTACKS) >= 30
    assert NEEDS_TIME <= set(ATTACKS)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_outcome(report: dict, name: str) -> None:
    allowed = ATTACKS[name][2]
    r = report["results"][name]
    assert r["status"] in allowed, (f"{name}: got {r['status']} ({r['feedback']!r}), allowed {allowed}; tests "
                                      f"{[(t['status'], round(t['duration_s'], 2)) for t in r['tests']]}")
    if "passed" not in allowed:
        assert not r["passed"], f"{name}: false pass"
    assert r["isolation"].startswith("root-ns"), r["isolation"]
    assert r["duration_s"] < report["bound_s"][name], f"{name} held the harness for {r['duration_s']:.1f}s"


def test_nothing_escapes(report: dict) -> None:
    assert report["processes_after_jobs"] == [], "sandbox processes outlived their jobs"
    assert report["processes_after_close"] == []
    assert report["changed_files"] == [], "files outside the sandbox changed"
    assert not report["etc_pwned"]


def test_harness_bounded(report: dict) -> None:
    # 2 workers; the slowest attacks are bounded by their time limits, not by the attacks
    assert report["wall_s"] < 60, report["wall_s"]
