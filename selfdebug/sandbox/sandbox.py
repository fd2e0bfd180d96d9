"""The harness: a pool of warm fork servers, reference resolution, time limits and verdicts."""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

try:
    from tqdm.auto import tqdm
except ImportError:  # the sandbox itself must run without it (e.g. a bare system interpreter)
    def tqdm(it: Any, **_: Any) -> Any:  # type: ignore[no-redef]
        return it

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox import isolation
from selfdebug.sandbox.plan import Prepared, Reference, mode_of, suite_tests, time_limits
from selfdebug.sandbox.runner import compile_calls
from selfdebug.sandbox.types import ExecResult, Job, SandboxConfig, _short
from selfdebug.sandbox.verdict import Scorer, compare, payload_key, value_of
from selfdebug.sandbox.worker import Worker, WorkerError

log = logging.getLogger(__name__)
PIPELINE_DEPTH = 2
"""Jobs queued on each fork server at once."""
PIPELINE_MAX_BYTES = 16 << 10
"""Larger requests wait for an idle fork server (two queued must fit in a 64 KiB pipe)."""
OUTER_SLACK_S = 10.0
"""How much longer than a job's own bound the harness waits before killing the worker."""
REFERENCE_RUN_CAP_S = 600.0


def reference_key(problem: Problem) -> tuple[Any, ...]:
    """What the reference cache tells problems apart by: benchmark and task id (HumanEval and HumanEval+
    share task ids but not tests), and, cheaply, the reference and the tests (a fixture and the real file
    can share both ids)."""
    tests = suite_tests(problem, "all")
    ends = (tests[0].call, tests[-1].call) if tests else (problem.test_script,)
    return problem.benchmark, problem.task_id, problem.reference, len(problem.tests), len(tests), ends


def _same(test: TestCase, value: Any, reply: dict[str, Any], ev: dict[str, Any]) -> tuple[bytes, bool, str] | None:
    """``Reference.same`` for one test: the payload's key, and the verdict and text of a fresh copy of the
    value (a copy: ``[nan] == [nan]`` holds for one list, not for two)."""
    try:
        copy = value_of(reply, ev)
        expected = value if test.expected_from == "reference" else test.expected
        return payload_key(reply["payloads"][ev["p"]]), bool(compare(test, expected, copy)), _short(copy)
    except (ValueError, RecursionError):
        return None


def _reference_time(ev: dict[str, Any]) -> float:
    """What a test's deadline measures: the child's CPU time from its start line to its result (the call,
    serialising its value, sending it), which the load of the machine does not change; where the fork
    server could not read CPU time, its wall clock over the same span, and at least the reference's own
    timing of the call."""
    if type(ev.get("cpu")) is float:
        return float(ev["cpu"])
    return max(float(ev.get("t", 0.0)), float(ev["dur"]))


class SandboxUnavailable(RuntimeError):
    """The machine allows less isolation than ``SandboxConfig.require_isolation`` asks for."""


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
        self._refs: dict[tuple[Any, ...], Reference] = {}  # reference_key -> the reference's run
        self._ref_lock = threading.Lock()
        # (reference_key, suite) -> short texts of the calls and expected values, and the compiled calls
        self._per_suite: dict[tuple[Any, ...], tuple[list[str], list[str], str | None]] = {}
        self._pool: queue.Queue[Worker] = queue.Queue()
        self._workers: list[Worker] = []
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._started:
            return self
        cfg = self.cfg
        # also hide the project itself and wherever the harness runs from (they may hold data or secrets)
        repo = str(Path(__file__).resolve().parents[2])
        conf = {"keep": isolation.interpreter_paths(), "hide": [repo, os.getcwd()],
                "preload": list(cfg.preload_modules)}
        mem = (cfg.memory_mb + 512) * (1 << 20) + 256 * (1 << 20)
        if self.level == "root-ns-cgroup":
            isolation.remove_stale_cgroups()
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
                "max_value_bytes": cfg.max_value_bytes, "max_result_bytes": cfg.max_result_bytes,
                "max_processes": cfg.max_processes, "stop": stop, "secret": secret,
                "id": secrets.token_hex(8), "stream": False}

    def _call(self, req: dict[str, Any], prep: Prepared | None = None) -> tuple[dict[str, Any], Scorer | None]:
        """Run one request on an idle worker (retried once on a fresh worker if it died); with ``prep``,
        also the scorer that saw the reply (a streamed job is stopped at its first failure)."""
        if not self._started:
            self.start()
        worker = self._pool.get()
        scorer = None
        try:
            for attempt in range(2):
                scorer = prep.scorer() if prep is not None else None  # fresh per attempt
                on_partial = scorer.feed if (scorer is not None and prep is not None and prep.stream) else None
                try:
                    return worker.request(req, float(req["run_timeout"]) + OUTER_SLACK_S, on_partial), scorer
                except WorkerError as e:
                    if not e.died or attempt == 1:
                        return {"sandbox_error": str(e)}, scorer
            raise AssertionError("unreachable")
        except WorkerError as e:  # the restart itself failed
            return {"sandbox_error": str(e)}, scorer
        finally:
            self._pool.put(worker)

    def reference(self, problem: Problem) -> Reference:
        """Run the reference once per problem (cached): expected values and per-test times."""
        key = reference_key(problem)
        with self._ref_lock:
            if key in self._refs:
                return self._refs[key]
        ref = Reference()
        tests = suite_tests(problem, "all")
        if problem.reference:
            mode = mode_of(problem, tests)
            n = max(len(tests), 1)
            req = self._request(problem.reference, problem, tests, mode, [self.cfg.per_test_timeout_cap_s] * n,
                                False, secrets.token_hex(16))
            # the reference is trusted and runs every test of every suite: a longer bound than a candidate
            req["run_timeout"] = max(self.cfg.run_timeout_s, min(REFERENCE_RUN_CAP_S,
                                                                 n * self.cfg.per_test_timeout_cap_s))
            reply, _ = self._call(req)
            events = {e.get("i"): e for e in reply.get("events", []) if e.get("ev") in
                      ("value", "error", "signal", "script_ok")}
            ref.times = [_reference_time(events[i]) if i in events else None for i in range(n)]
            for i in range(len(tests)):
                ev = events.get(i)
                ref.same.append(None)
                if ev is not None and ev.get("ev") == "value":
                    try:
                        ref.values.append(value_of(reply, ev))
                        ref.same[i] = _same(tests[i], ref.values[i], reply, ev)
                        continue
                    except (ValueError, RecursionError) as e:
                        ref.errors[i] = str(e)
                else:
                    ref.errors[i] = str((ev or {}).get("error") or reply.get("sandbox_error") or
                                        reply.get("timeout") or "no result")
                ref.values.append(None)
            known = [t for t in ref.times if t is not None]
            ref.total_s = sum(known) if known else None
        with self._ref_lock:
            self._refs[key] = ref
        return ref

    def _prepare(self, job: Job) -> Prepared | ExecResult:
        """Everything about a job that the harness knows before running it (expected values stay here)."""
        problem = job.problem
        try:
            tests = suite_tests(problem, job.suite)
            mode = mode_of(problem, tests)
        except ValueError as e:
            return ExecResult(status="sandbox_error", passed=False, n_passed=0, n_total=0, feedback=str(e),
                              isolation=self.isolation, task_id=problem.task_id)
        needs_ref = any(t.expected_from == "reference" for t in tests)
        timed = bool(problem.reference) and self.cfg.timeout_factor > 0
        ref = self.reference(problem) if (timed or needs_ref) else Reference()
        offset = len(problem.tests) if (job.suite == "plus" and problem.plus_tests) else 0
        times = ref.times[offset:offset + len(tests)] if mode != "script" else ref.times[:1]
        limits = time_limits(self.cfg, len(tests) if mode != "script" else 1, times)
        expected, ref_errors = [], {}
        shown = tests if mode != "script" else [TestCase(call="test script", source=problem.test_script)]
        for i, t in enumerate(shown):
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
        req = self._request(job.program, problem, tests, mode, limits, job.stop_at_first_failure, secret)
        req["stream"] = job.stop_at_first_failure and mode != "script" and not ref_errors
        # per problem and suite, once: the texts shown in outcomes (repr of every expected value of a HumanEval+
        # problem takes milliseconds) and the calls compiled (tens of milliseconds)
        key = (reference_key(problem), job.suite)
        cached = self._per_suite.get(key)
        if cached is None or len(cached[0]) != len(shown):
            code = compile_calls([t.call for t in tests]) if mode == "structured" else None
            cached = self._per_suite[key] = ([_short(t.call) for t in shown], [_short(e) for e in expected], code)
        calls, exps, code = cached
        if code is not None:
            req["code"], req["tests"] = code, [{}] * len(tests)  # the calls travel compiled only
        same = ref.same[offset:offset + len(tests)] if mode != "script" and ref.same else None
        return Prepared(job, req, shown, expected, limits, secret, mode, ref_errors, ref.total_s, (calls, exps),
                        same)

    def _finish(self, prep: Prepared, reply: dict[str, Any], waited_s: float,
                scorer: Scorer | None = None) -> ExecResult:
        try:
            result = (scorer or prep.scorer()).finish(reply)
        except Exception as e:  # noqa: BLE001 - a harness bug is reported as such, never as the model's
            log.exception("sandbox: could not build the result of %s", prep.job.problem.task_id)
            result = ExecResult(status="sandbox_error", passed=False, n_passed=0, n_total=len(prep.shown),
                                feedback=f"sandbox failure: harness error {type(e).__name__}: {e}")
        result.isolation = self.isolation
        result.trust = "script" if prep.mode == "script" else "structured"
        elapsed = reply.get("elapsed")
        result.duration_s = float(elapsed) if isinstance(elapsed, (int, float)) else waited_s
        result.time_limit_s = max(prep.limits) if prep.limits else 0.0
        result.task_id = prep.job.problem.task_id
        result.reference_time_s = prep.ref_total_s
        return result

    def run_job(self, job: Job) -> ExecResult:
        prep = self._prepare(job)
        if isinstance(prep, ExecResult):
            return prep
        t0 = time.monotonic()
        reply, scorer = self._call(prep.req, prep)
        return self._finish(prep, reply, time.monotonic() - t0, scorer)

    def _drive(self, todo: deque[tuple[int, Job]], lock: threading.Lock, results: list[ExecResult | None],
               bar: Any) -> None:
        """One worker's loop: keep ``PIPELINE_DEPTH`` jobs queued on its fork server, so it starts the next
        job the moment one ends instead of waiting for the harness (hides wake-up latency)."""
        worker = self._pool.get()
        inflight: deque[tuple[int, Prepared, bool]] = deque()
        held: tuple[int, Prepared, bytes] | None = None
        bound = self.cfg.run_timeout_s + OUTER_SLACK_S
        try:
            while True:
                while len(inflight) < PIPELINE_DEPTH:
                    if held is None:
                        with lock:
                            item = todo.popleft() if todo else None
                        if item is None:
                            break
                        prep = self._prepare(item[1])
                        if isinstance(prep, ExecResult):
                            results[item[0]] = prep
                            bar.update()
                            continue
                        held = (item[0], prep, (json.dumps(prep.req) + "\n").encode())
                    idx, prep, data = held
                    if inflight and len(data) > PIPELINE_MAX_BYTES:
                        # only small requests are queued behind a running job: they always fit in the pipe,
                        # so the harness never blocks writing while the fork server blocks writing its reply
                        break
                    held = None
                    try:
                        worker.send(data)
                    except WorkerError as e:
                        results[idx] = self._finish(prep, {"sandbox_error": str(e)}, 0.0)
                        bar.update()
                        continue
                    inflight.append((idx, prep, False))
                if not inflight:
                    return
                idx, prep, retried = inflight.popleft()
                t0 = time.monotonic()
                scorer = prep.scorer()  # fresh per attempt: a retry must not see the failed attempt's events
                try:
                    reply = worker.receive(bound, scorer.feed if prep.stream else None, prep.req["id"])
                except WorkerError as e:
                    # the worker was restarted: jobs queued behind this one were lost, so queue them again
                    with lock:
                        for lost_idx, lost, _ in reversed(inflight):
                            todo.appendleft((lost_idx, lost.job))
                    inflight.clear()
                    if e.died and not retried:  # a worker death is the sandbox's failure: retry once
                        try:
                            worker.send(prep.req)
                            inflight.append((idx, prep, True))
                            continue
                        except WorkerError as e2:
                            e = e2
                    reply = {"sandbox_error": str(e)}
                results[idx] = self._finish(prep, reply, time.monotonic() - t0, scorer)
                bar.update()
        finally:
            self._pool.put(worker)

    def run(self, jobs: list[Job], progress: bool = False) -> list[ExecResult]:
        """Run jobs in parallel on the warm workers; results come back in the order of ``jobs``."""
        if not self._started:
            self.start()
        # references first, so candidate jobs of the same problem do not race to compute them
        probs = {reference_key(j.problem): j.problem for j in jobs
                 if (j.problem.reference and self.cfg.timeout_factor > 0)
                 or any(t.expected_from == "reference" for t in suite_tests(j.problem, "all"))}
        with ThreadPoolExecutor(self.cfg.workers) as ex:
            list(tqdm(ex.map(self.reference, probs.values()), total=len(probs), disable=not progress,
                      desc="sandbox references"))
        results: list[ExecResult | None] = [None] * len(jobs)
        todo = deque(enumerate(jobs))
        lock = threading.Lock()
        bar = tqdm(total=len(jobs), disable=not progress, desc="sandbox")
        with ThreadPoolExecutor(self.cfg.workers) as ex:
            for f in [ex.submit(self._drive, todo, lock, results, bar) for _ in range(self.cfg.workers)]:
                f.result()
        bar.close()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # cannot happen unless a driver crashed; never drop a job silently
            raise RuntimeError(f"sandbox lost jobs {missing[:10]}")
        return [r for r in results if r is not None]
