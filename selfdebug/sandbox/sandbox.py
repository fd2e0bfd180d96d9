"""The harness: a pool of warm fork servers, reference resolution, time limits and verdicts."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

try:
    from tqdm.auto import tqdm
except ImportError:  # the sandbox itself must run without it (e.g. a bare system interpreter)
    def tqdm(it: Any, **_: Any) -> Any:  # type: ignore[no-redef]
        return it

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox import isolation, plain
from selfdebug.sandbox.types import ExecResult, Job, SandboxConfig
from selfdebug.sandbox.verdict import build_result
from selfdebug.sandbox.worker import Worker, WorkerError

log = logging.getLogger(__name__)
OUTER_SLACK_S = 10.0
"""How much longer than a job's own bound the harness waits before killing the worker."""


class SandboxUnavailable(RuntimeError):
    """The machine allows less isolation than ``SandboxConfig.require_isolation`` asks for."""


@dataclass
class _Reference:
    values: list[Any] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    total_s: float | None = None


def suite_tests(problem: Problem, suite: str) -> list[TestCase]:
    if suite == "base":
        return list(problem.tests)
    if suite == "plus":
        return list(problem.plus_tests) or list(problem.tests)
    if suite == "all":
        return list(problem.tests) + list(problem.plus_tests)
    raise ValueError(f"unknown suite {suite!r} (expected base, plus or all)")


def _mode(problem: Problem, tests: list[TestCase]) -> str:
    if not tests:
        if problem.test_script:
            return "script"
        raise ValueError(f"problem {problem.task_id} has neither tests nor a test script")
    kinds = {t.comparison == "stdout" for t in tests}
    if len(kinds) > 1:
        raise ValueError(f"problem {problem.task_id} mixes stdout tests with call tests")
    return "stdout" if kinds == {True} else "structured"


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.cfg = config or SandboxConfig()
        self.level = isolation.isolation_level()
        forced = self.cfg.force_level
        if forced is not None:
            if forced not in isolation.LEVELS:
                raise ValueError(f"force_level {forced!r} is not one of {isolation.LEVELS}")
            if isolation.LEVELS.index(forced) > isolation.LEVELS.index(self.level):
                raise SandboxUnavailable(f"force_level {forced} is stronger than what this machine allows "
                                         f"({self.level})")
            self.level = forced
        if isolation.LEVELS.index(self.level) < isolation.LEVELS.index(self.cfg.require_isolation):
            raise SandboxUnavailable(f"isolation level {self.level} is below the required "
                                     f"{self.cfg.require_isolation}")
        if self.level == "rlimits":
            log.warning("sandbox: no namespaces available; running at the weakest level (%s)",
                        isolation.describe(self.level, None))
        self._refs: dict[str, _Reference] = {}
        self._ref_lock = threading.Lock()
        self._pool: queue.Queue[Worker] = queue.Queue()
        self._workers: list[Worker] = []
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._started:
            return self
        cfg = self.cfg
        conf = {"keep": isolation.interpreter_paths(), "hide": [], "preload": list(cfg.preload_modules)}
        mem = (cfg.memory_mb + 512) * (1 << 20) + 256 * (1 << 20)
        workers = [Worker(i, self.level, conf, mem, cfg.max_processes + 16) for i in range(cfg.workers)]
        with ThreadPoolExecutor(len(workers)) as ex:
            list(ex.map(lambda w: w.start(), workers))
        for w in workers:
            self._workers.append(w)
            self._pool.put(w)
        self._started = True
        return self

    def close(self) -> None:
        for w in self._workers:
            w.kill()
        self._workers.clear()
        self._pool = queue.Queue()
        self._started = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def isolation(self) -> str:
        return isolation.describe(self.level, isolation.UID_BASE if self.level.startswith("root-ns") else None)

    # --- running ---------------------------------------------------------------------------------------
    def _request(self, program: str, problem: Problem, tests: list[TestCase], mode: str,
                 limits: list[float], stop: bool, secret: str) -> dict[str, Any]:
        cfg = self.cfg
        script_entry = problem.entry_point
        return {"program": program, "setup": problem.setup_code, "mode": mode,
                "tests": [{"call": t.call} for t in tests] if mode != "script" else [{"call": "test script"}],
                "script": problem.test_script, "entry": script_entry,
                "call_check": "def check(" in problem.test_script and f"check({script_entry})"
                not in problem.test_script,
                "test_limits": limits, "run_timeout": cfg.run_timeout_s, "memory_mb": cfg.memory_mb,
                "max_output_bytes": cfg.max_output_bytes, "max_open_files": cfg.max_open_files,
                "max_processes": cfg.max_processes, "stop": stop, "secret": secret}

    def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._started:
            self.start()
        worker = self._pool.get()
        try:
            for attempt in range(2):
                try:
                    return worker.request(req, self.cfg.run_timeout_s + OUTER_SLACK_S)
                except WorkerError as e:
                    if not e.died or attempt == 1:
                        return {"sandbox_error": str(e)}
            raise AssertionError("unreachable")
        except WorkerError as e:  # the restart itself failed
            return {"sandbox_error": str(e)}
        finally:
            self._pool.put(worker)

    def reference(self, problem: Problem) -> _Reference:
        """Run the reference once per problem (cached): expected values and per-test times."""
        with self._ref_lock:
            if problem.task_id in self._refs:
                return self._refs[problem.task_id]
        ref = _Reference()
        tests = suite_tests(problem, "all")
        if problem.reference:
            mode = _mode(problem, tests)
            n = max(len(tests), 1)
            req = self._request(problem.reference, problem, tests, mode, [self.cfg.per_test_timeout_cap_s] * n,
                                False, secrets.token_hex(16))
            reply = self._call(req)
            events = {e.get("i"): e for e in reply.get("events", []) if e.get("ev") in
                      ("value", "error", "signal", "script_ok")}
            # the reference is trusted code, so its own fine-grained timing ("t") is used when present
            ref.times = [float(events[i].get("t", events[i]["dur"])) if i in events else None
                         for i in range(n)]
            for i in range(len(tests)):
                ev = events.get(i)
                if ev is not None and ev.get("ev") == "value":
                    try:
                        ref.values.append(plain.decode(ev["v"]))
                        continue
                    except ValueError as e:
                        ref.errors[i] = str(e)
                else:
                    ref.errors[i] = str((ev or {}).get("error") or reply.get("sandbox_error") or
                                        reply.get("timeout") or "no result")
                ref.values.append(None)
            known = [t for t in ref.times if t is not None]
            ref.total_s = sum(known) if known else None
        with self._ref_lock:
            self._refs[problem.task_id] = ref
        return ref

    def _limits(self, n: int, times: list[float | None]) -> list[float]:
        c = self.cfg
        out = []
        for i in range(n):
            t = times[i] if i < len(times) else None
            limit = c.timeout_floor_s + c.timeout_factor * t if t is not None else c.timeout_floor_s
            out.append(min(c.per_test_timeout_cap_s, limit))
        return out

    def run_job(self, job: Job) -> ExecResult:
        t0 = time.monotonic()
        problem = job.problem
        try:
            tests = suite_tests(problem, job.suite)
            mode = _mode(problem, tests)
        except ValueError as e:
            return ExecResult(status="sandbox_error", passed=False, n_passed=0, n_total=0, feedback=str(e),
                              isolation=self.isolation, task_id=problem.task_id)
        needs_ref = any(t.expected_from == "reference" for t in tests)
        timed = bool(problem.reference) and self.cfg.timeout_factor > 0
        ref = self.reference(problem) if (timed or needs_ref) else _Reference()
        offset = len(problem.tests) if (job.suite == "plus" and problem.plus_tests) else 0
        times = ref.times[offset:offset + len(tests)] if mode != "script" else ref.times[:1]
        n = len(tests) if mode != "script" else 1
        limits = self._limits(n, times)
        expected, ref_errors = [], {}
        for i, t in enumerate(tests if mode != "script" else [TestCase(call="test script")]):
            if t.expected_from == "reference":
                j = offset + i
                if j in ref.errors or j >= len(ref.values):
                    ref_errors[i] = ref.errors.get(j, "reference not run")
                    expected.append(None)
                else:
                    expected.append(ref.values[j])
            else:
                expected.append(t.expected)
        secret = secrets.token_hex(16)
        program = job.program
        req = self._request(program, problem, tests, mode, limits, job.stop_at_first_failure, secret)
        reply = self._call(req)
        shown = tests if mode != "script" else [TestCase(call="test script", source=problem.test_script)]
        result = build_result(reply, shown, expected, limits, secret, mode, ref_errors)
        result.isolation = self.isolation
        result.trust = "script" if mode == "script" else "structured"
        result.duration_s = time.monotonic() - t0
        result.time_limit_s = max(limits) if limits else 0.0
        result.task_id = problem.task_id
        result.reference_time_s = ref.total_s
        return result

    def run(self, jobs: list[Job], progress: bool = False) -> list[ExecResult]:
        """Run jobs in parallel on the warm workers; results come back in the order of ``jobs``."""
        if not self._started:
            self.start()
        # references first, so candidate jobs of the same problem do not race to compute them
        probs = {j.problem.task_id: j.problem for j in jobs
                 if (j.problem.reference and self.cfg.timeout_factor > 0)
                 or any(t.expected_from == "reference" for t in suite_tests(j.problem, "all"))}
        with ThreadPoolExecutor(self.cfg.workers) as ex:
            list(tqdm(ex.map(self.reference, probs.values()), total=len(probs), disable=not progress,
                      desc="sandbox references"))
            return list(tqdm(ex.map(self.run_job, jobs), total=len(jobs), disable=not progress,
                             desc="sandbox"))
