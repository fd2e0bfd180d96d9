"""Runs the whole attack suite in one Sandbox and prints a JSON report; meant to run inside the outer
PID namespace with its own process and memory limits (see ``outer_command`` in ``test_attacks.py``).

Usage: python attack_runner.py CANARY_DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import site
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from attacks import ADD, ATTACKS, NEEDS_TIME, PROBE  # noqa: E402

from selfdebug.problems.base import Problem, TestCase  # noqa: E402
from selfdebug.sandbox import Job, Sandbox, SandboxConfig  # noqa: E402
from selfdebug.sandbox.isolation import UID_BASE  # noqa: E402

SECRET_ENV = "SELFDEBUG_CANARY_SECRET"
CONFIG = SandboxConfig(workers=2, timeout_floor_s=2.0, timeout_factor=4.0, per_test_timeout_cap_s=3.0,
                       run_timeout_s=5.0, memory_mb=512, max_output_bytes=1 << 20)
# for ``attacks.NEEDS_TIME``: 8 s of CPU a test, over 4x the slowest first-touch fill of 512 MB measured
TOUCH_CONFIG = replace(CONFIG, timeout_floor_s=8.0, per_test_timeout_cap_s=8.0, run_timeout_s=12.0)


def add_problem() -> Problem:
    return Problem(task_id="attack/add", benchmark="attack", prompt="", entry_point="add", style="full",
                   reference="def add(a, b):\n    return a + b\n",
                   tests=[TestCase("add(1, 2)", 3), TestCase("add(5, 7)", 12), TestCase("add(-1, 1)", 0)])


def probe_problem(name: str, expected: object) -> Problem:
    return Problem(task_id=f"attack/{name}", benchmark="attack", prompt="", entry_point="probe", style="full",
                   reference="", tests=[TestCase("probe()", expected)])


def snapshot(paths: list[str]) -> dict[str, str]:
    out = {}
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                except OSError as e:
                    out[p] = f"unreadable: {e}"
    return out


def sandbox_processes() -> list[str]:
    """Processes running under any sandbox uid, anywhere visible to us."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                status = Path(f"/proc/{p}/status").read_text()
            except OSError:
                continue
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            if UID_BASE <= uid < UID_BASE + 64:
                found.append(f"{p} uid={uid}")
    return found


def main() -> None:
    canary_dir = sys.argv[1]
    canary = os.path.join(canary_dir, "secret.txt")
    Path(canary).write_text("canary secret\n")
    os.environ[SECRET_ENV] = "s3cr3t-canary"
    # only what the attacks target: site-packages itself may change under us (other pip installs)
    targets = [os.path.join(d, "sitecustomize.py") for d in site.getsitepackages()] + ["/etc/selfdebug_pwned"]
    watched = [canary_dir]
    before = snapshot(watched) | {t: str(os.path.exists(t) and os.path.getmtime(t)) for t in targets}
    jobs, names = [], []
    for name, (target, program, _allowed, expected) in ATTACKS.items():
        program = program.replace("{canary!r}", repr(canary)).replace("{secret_env!r}", repr(SECRET_ENV))
        problem = add_problem() if target == ADD else probe_problem(name, expected)
        assert target in (ADD, PROBE)
        jobs.append(Job(program=program, problem=problem))
        names.append(name)
    t0 = time.monotonic()
    slow = [i for i, n in enumerate(names) if n in NEEDS_TIME]
    fast = [i for i in range(len(names)) if i not in slow]
    results: list = [None] * len(jobs)
    during: list[str] = []
    for config, which in ((CONFIG, fast), (TOUCH_CONFIG, slow)):
        with Sandbox(config) as sb:
            for i, r in zip(which, sb.run([jobs[i] for i in which]), strict=True):
                results[i] = r
            during += sandbox_processes()
    wall = time.monotonic() - t0
    after = snapshot(watched) | {t: str(os.path.exists(t) and os.path.getmtime(t)) for t in targets}
    report = {
        "results": {n: r.to_dict() for n, r in zip(names, results, strict=True)},
        "wall_s": wall, "bound_s": {n: (TOUCH_CONFIG if n in NEEDS_TIME else CONFIG).run_timeout_s + 10.0
                                    for n in names},
        "processes_after_jobs": during, "processes_after_close": sandbox_processes(),
        "changed_files": sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)),
        "etc_pwned": os.path.exists("/etc/selfdebug_pwned"),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
