"""What the harness decides before a job runs: which tests, which mode, expected values, time limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox.types import Job, SandboxConfig
from selfdebug.sandbox.verdict import Scorer


@dataclass
class Prepared:
    """A job ready to send: the request, and what only the harness keeps (expected values, the secret)."""

    job: Job
    req: dict[str, Any]
    shown: list[TestCase]
    expected: list[Any]
    limits: list[float]
    secret: str
    mode: str
    ref_errors: dict[int, str]
    ref_total_s: float | None
    texts: tuple[list[str], list[str]] | None = None
    """The short texts of the calls and expected values shown in outcomes (cached per problem and suite)."""
    same: list[tuple[bytes, bool, str] | None] | None = None
    """``Reference.same`` for these tests."""

    @property
    def stream(self) -> bool:
        """Fast check with the harness stopping the job at the first failing value. Not when the reference
        failed on a test: that test must be reached to report the sandbox's failure, as without a stop."""
        return bool(self.req.get("stream"))

    def scorer(self) -> Scorer:
        """A fresh scorer for one attempt at this job."""
        return Scorer(self.shown, self.expected, self.limits, self.secret, self.mode, self.ref_errors, self.texts,
                      self.same)


@dataclass
class Reference:
    """The reference's run of a problem: its values (expected values for ``expected_from="reference"``) and
    its per-test times (the time limits)."""

    values: list[Any] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    total_s: float | None = None
    same: list[tuple[bytes, bool, str] | None] = field(default_factory=list)
    """Per test: the key of the reference's value payload (``verdict.payload_key``), whether a fresh copy of
    that value passes the test, and its short text. A candidate that sends the very same bytes gets the
    same verdict and text without its value being parsed again (see ``Scorer``)."""


def suite_tests(problem: Problem, suite: str) -> list[TestCase]:
    """``base``: the benchmark's tests; ``plus``: the EvalPlus extra tests only (the base tests when there are
    none); ``all``: both."""
    if suite == "base":
        return list(problem.tests)
    if suite == "plus":
        return list(problem.plus_tests) or list(problem.tests)
    if suite == "all":
        return list(problem.tests) + list(problem.plus_tests)
    raise ValueError(f"unknown suite {suite!r} (expected base, plus or all)")


def mode_of(problem: Problem, tests: list[TestCase]) -> str:
    if not tests:
        if problem.test_script:
            return "script"
        raise ValueError(f"problem {problem.task_id} has neither tests nor a test script")
    kinds = {t.comparison == "stdout" for t in tests}
    if len(kinds) > 1:
        raise ValueError(f"problem {problem.task_id} mixes stdout tests with call tests")
    return "stdout" if kinds == {True} else "structured"


def time_limits(cfg: SandboxConfig, n: int, times: list[float | None]) -> list[float]:
    """``max(floor, factor * reference time)``, capped: evalplus's rule (``untrusted_check`` in evalplus
    0.3.1: ``max(min_time_limit, gt_time_limit_factor * t)``), so a program slow enough to time out there
    times out here too. The floor when there is no reference timing at all (no reference solution), and
    the cap for a test the reference itself did not finish (a slow test must not get the floor)."""
    c = cfg
    out = []
    for i in range(n):
        t = times[i] if i < len(times) else None
        if t is not None:
            limit = max(c.timeout_floor_s, c.timeout_factor * t)
        else:
            limit = c.per_test_timeout_cap_s if times else c.timeout_floor_s
        out.append(min(c.per_test_timeout_cap_s, limit))
    return out
