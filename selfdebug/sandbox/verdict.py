"""Turning a fork server's raw events into verdicts, in the harness process.

Only the harness knows the expected values. A test passes only on positive evidence: a plain value
that compares equal here, or (script mode) a success record carrying this run's secret. Everything
else (missing events, exits, signals, garbage on the channel) is a failure of the candidate, except
failures that happen before any candidate code ran, which are sandbox failures.
"""

from __future__ import annotations

import hashlib
import json
import signal
from typing import Any

from selfdebug import plain
from selfdebug.problems.base import TestCase
from selfdebug.sandbox.types import ExecResult, TestOutcome, _short

NOT_RUN = "not_run"


def value_of(reply: dict[str, Any], ev: dict[str, Any]) -> Any:
    """The decoded value of a ``value`` event (its payload line, parsed here); ``ValueError`` if malformed."""
    p = ev.get("p")
    payloads = reply.get("payloads", [])
    if type(p) is not int or not 0 <= p < len(payloads):
        raise ValueError("value without payload")
    return plain.decode(json.loads(payloads[p]))


def payload_key(line: bytes) -> bytes:
    """What two value payloads are told apart by: short ones by their bytes, long ones by a 128-bit BLAKE2b
    digest (a candidate cannot make other bytes collide with a value it was never shown)."""
    return b"=" + line if len(line) <= 64 else b"#" + hashlib.blake2b(line, digest_size=16).digest()


def _signal_status(sig: int, cgroup_memory: bool) -> tuple[str, str]:
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    if sig == signal.SIGXFSZ:
        return "output_limit", "Output limit: the program wrote more output than allowed"
    if sig == signal.SIGXCPU:
        return "timeout", "Timeout: CPU time limit exceeded"
    if sig == signal.SIGKILL and cgroup_memory:
        return "memory_limit", "MemoryError: killed by the memory limit"
    return "runtime_error", f"the program was killed by signal {name}"


def _norm(text: object) -> str:
    """Standard output compared line by line, trailing whitespace ignored."""
    return "\n".join(line.rstrip() for line in str(text).rstrip().splitlines())


def compare(test: TestCase, expected: Any, actual: Any) -> bool:
    c = test.comparison
    if c == "eq":
        return plain.equal(actual, expected, test.atol, test.rtol)
    if c == "close":
        return plain.close(actual, expected, test.atol)
    if c == "truthy":
        return bool(actual)
    if c == "falsy":
        return not actual
    if c == "stdout":
        return type(actual) is str and _norm(actual) == _norm(expected)
    raise ValueError(f"unknown comparison {c!r}")


def _value(value: Any) -> str:
    """A value as Python source (strings quoted), so ``'3'`` and ``3`` read differently in feedback."""
    return _short(repr(value) if isinstance(value, str) else value)


def failure_message(test: TestCase, expected: Any, actual: Any) -> str:
    """Paper style: ``AssertionError: expect f(x) == y, but was z``."""
    if test.comparison == "truthy":
        return f"AssertionError: expect {test.call} to be true, but was {_value(actual)}"
    if test.comparison == "falsy":
        return f"AssertionError: expect {test.call} to be false, but was {_value(actual)}"
    if test.comparison == "stdout":
        return (f"AssertionError: for input {_short(test.call, 200)} expect output {_short(expected, 200)}, "
                f"but was {_short(actual, 200)}")
    return f"AssertionError: expect {test.call} == {_value(expected)}, but was {_value(actual)}"


class Scorer:
    """Turns one job's events into outcomes, in the order they came, as they come: ``feed`` may be called
    with a streamed job's partial events (``failed`` then says whether to stop it), and ``finish`` with
    the final reply, whose events continue the ones fed. Feeding in parts gives the same result as one
    ``build_result`` on the whole reply."""

    def __init__(self, tests: list[TestCase], expected: list[Any], limits: list[float], secret: str, mode: str,
                 ref_errors: dict[int, str], shown: tuple[list[str], list[str]] | None = None,
                 same: list[tuple[bytes, bool, str] | None] | None = None) -> None:
        self.tests, self.expected, self.limits = tests, expected, limits
        self.secret, self.mode, self.ref_errors = secret, mode, ref_errors
        # the short texts of calls and expected values, computed once per problem by the caller when given
        calls, exps = shown or ([_short(t.call) for t in tests], [_short(e) for e in expected])
        self._shown = (calls, exps)
        self.same = same if same is not None and len(same) == len(tests) else None
        self.outcomes = self._fresh()
        self.cursor = 0  # events consumed
        self.started: int | None = None
        self.candidate_ran = False
        self.ended: ExecResult | None = None  # a result decided by an event (load error, early sandbox error)
        self.failed = False  # some test has failed (or the run ended): nothing later can make the job pass
        self._signals: dict[int, int] = {}  # tests whose outcome is a signal: their status waits for the OOM count

    def _fresh(self) -> list[TestOutcome]:
        calls, exps = self._shown
        return [TestOutcome(index=i, status=NOT_RUN, call=calls[i], expected=exps[i], time_limit_s=self.limits[i])
                for i in range(len(self.tests))]

    def feed(self, events: list[dict[str, Any]], payloads: list[bytes]) -> bool:
        """Consume ``events[self.cursor:]``; returns ``failed``."""
        n = len(self.tests)
        outcomes, tests, expected = self.outcomes, self.tests, self.expected
        while self.cursor < len(events) and self.ended is None:
            ev = events[self.cursor]
            self.cursor += 1
            if not isinstance(ev, dict):
                continue
            kind, i = ev.get("ev"), ev.get("i")
            if kind == "sandbox_error" and not self.candidate_ran:
                self.ended = _finish(outcomes, "sandbox_error", f"sandbox failure: {str(ev.get('error'))[-500:]}")
            elif kind == "load":
                self.candidate_ran = True
            elif kind == "load_error":
                status = {"memory": "memory_limit", "output": "output_limit"}.get(ev.get("kind"), "runtime_error")
                for o in outcomes:
                    o.status, o.message = status, _short(str(ev.get("error")), 1000)
                self.ended = _finish(outcomes, status, _short(str(ev.get("error")), 2000))
            elif kind == "start" and type(i) is int and 0 <= i < n:
                self.started = i
            elif kind in ("value", "error", "signal", "script_ok") and type(i) is int and 0 <= i < n:
                self.started = None
                self._signals.pop(i, None)
                o, t = outcomes[i], tests[i]
                o.duration_s = float(ev.get("dur", 0.0))
                call_s = ev.get("t")
                o.call_s = call_s if type(call_s) is float else 0.0
                if i in self.ref_errors:
                    o.status, o.message = "sandbox_error", f"reference failed on this test: {self.ref_errors[i]}"
                elif kind == "script_ok":
                    ok = isinstance(ev.get("secret"), str) and ev["secret"] == self.secret
                    o.status = "passed" if ok else "wrong_answer"
                    o.message = "" if ok else "forged success record"
                elif kind == "signal":
                    o.status, o.message = _signal_status(int(ev.get("sig", 0)), False)
                    self._signals[i] = int(ev.get("sig", 0))
                elif kind == "error":
                    o.message = _short(str(ev.get("error")), 1000)
                    o.status = {"memory": "memory_limit", "nonplain": "wrong_answer",
                                "output": "output_limit"}.get(ev.get("kind"), "runtime_error")
                    if ev.get("kind") == "nonplain":
                        o.message = f"TypeError: {t.call} {o.message}"
                else:
                    p, same = ev.get("p"), self.same[i] if self.same is not None else None
                    if (same is not None and same[1] and type(p) is int and 0 <= p < len(payloads)
                            and payload_key(payloads[p]) == same[0]):
                        # the reference's own bytes, which pass: what parsing and comparing them would say
                        o.status, o.actual = "passed", same[2]
                        continue
                    try:
                        actual = value_of({"payloads": payloads}, ev)
                    except (ValueError, RecursionError) as e:
                        o.status, o.message = "wrong_answer", f"malformed result: {e}"
                        self.failed = True
                        continue
                    o.actual = _short(actual)
                    if compare(t, expected[i], actual):
                        o.status = "passed"
                    else:
                        o.status, o.message = "wrong_answer", failure_message(t, expected[i], actual)
                if o.status != "passed":
                    self.failed = True
        if self.ended is not None:
            self.failed = True
        return self.failed

    def finish(self, reply: dict[str, Any]) -> ExecResult:
        """The job's result, from the final reply (its events continue those already fed)."""
        if "sandbox_error" in reply:
            return _finish(self._fresh(), "sandbox_error", f"sandbox failure: {reply['sandbox_error'][-500:]}")
        self.feed(reply.get("events", []), reply.get("payloads", []))
        if self.ended is not None:
            return self.ended
        cgroup_memory = bool(reply.get("oom"))
        if cgroup_memory:  # a SIGKILL's meaning depends on the OOM counter, read once the job is over
            for i, sig in self._signals.items():
                self.outcomes[i].status, self.outcomes[i].message = _signal_status(sig, True)
        outcomes, tests, n, started = self.outcomes, self.tests, len(self.tests), self.started
        timeout = reply.get("timeout")
        exit_ = reply.get("exit", {})
        if reply.get("stopped"):
            pass  # the harness stopped it after a failure: the test it was running stays not run
        elif reply.get("output_limit"):
            target = started if started is not None else _first(outcomes, NOT_RUN)
            if target is not None:
                outcomes[target].status = "output_limit"
                outcomes[target].message = "Output limit: the program sent more output than allowed"
        elif timeout is not None:
            at = timeout.get("at")
            if type(at) is int and 0 <= at < n:
                outcomes[at].status = "timeout"
                outcomes[at].duration_s = float(timeout.get("elapsed", 0.0))
                # the limit itself (measured from the reference's timing) stays out of the text: feedback goes
                # into refinement prompts, which must not change with the machine's speed (it is in time_limit_s)
                outcomes[at].message = (f"Timeout: {tests[at].call if self.mode != 'stdout' else 'the program'} "
                                        "did not finish within the time limit")
            else:
                for o in outcomes:
                    if o.status == NOT_RUN:
                        o.status, o.message = "timeout", "Timeout: the program did not finish loading in time"
        elif started is not None:  # the child ended in the middle of a test
            o = outcomes[started]
            if "signal" in exit_:
                o.status, o.message = _signal_status(int(exit_["signal"]), cgroup_memory)
            else:
                o.status = "runtime_error"
                o.message = (f"SystemExit: the program exited with status {exit_.get('code')} during "
                             f"{tests[started].call}")
        elif not self.candidate_ran:
            return _finish(outcomes, "sandbox_error", f"sandbox failure: child ended before the program ran: {exit_}")
        elif _first(outcomes, NOT_RUN) is not None and not any(o.status not in (NOT_RUN, "passed")
                                                               for o in outcomes):
            i = _first(outcomes, NOT_RUN)
            outcomes[i].status = "runtime_error"
            if "signal" in exit_:
                outcomes[i].status, outcomes[i].message = _signal_status(int(exit_["signal"]), cgroup_memory)
            else:
                outcomes[i].message = f"the program ended (status {exit_.get('code')}) before the tests finished"
        if reply.get("leftover"):
            return _finish(outcomes, "sandbox_error", f"sandbox failure: {reply['leftover']} processes survived")
        return _finish(outcomes, None, None)


def build_result(reply: dict[str, Any], tests: list[TestCase], expected: list[Any], limits: list[float],
                 secret: str, mode: str, ref_errors: dict[int, str]) -> ExecResult:
    """The result of a job from its whole reply (what ``Scorer`` gives when fed all at once)."""
    return Scorer(tests, expected, limits, secret, mode, ref_errors).finish(reply)


def _first(outcomes: list[TestOutcome], status: str) -> int | None:
    return next((o.index for o in outcomes if o.status == status), None)


def _finish(outcomes: list[TestOutcome], status: str | None, feedback: str | None) -> ExecResult:
    n_passed = sum(o.status == "passed" for o in outcomes)
    if status is None:
        if any(o.status == "sandbox_error" for o in outcomes):
            bad = next(o for o in outcomes if o.status == "sandbox_error")
            status, feedback = "sandbox_error", bad.message
        elif outcomes and n_passed == len(outcomes):
            status, feedback = "passed", ""
        elif not outcomes:
            status, feedback = "sandbox_error", "sandbox failure: the problem has no tests"
        else:
            bad = next((o for o in outcomes if o.status not in ("passed", NOT_RUN)), None)
            status, feedback = (bad.status, bad.message) if bad else ("runtime_error", "tests did not run")
    return ExecResult(status=status, passed=status == "passed", n_passed=n_passed, n_total=len(outcomes),
                      tests=outcomes, feedback=feedback or "")
