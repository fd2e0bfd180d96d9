"""Public data types of the sandbox: configuration, a job, and the structured results."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from selfdebug.problems.base import Problem

Status = Literal[
    "passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit", "sandbox_error"
]
STATUSES: tuple[str, ...] = (
    "passed", "wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit", "sandbox_error"
)
# When several tests fail differently, the job's status is the first failing test's status, except that a
# sandbox failure always wins: it must never be reported as a model failure.


def _default_workers() -> int:
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


@dataclass
class SandboxConfig:
    workers: int = field(default_factory=_default_workers)
    """Warm fork servers, each running one job at a time. Two per core by default: a worker spends part of
    each job waiting on pipes and wake-ups, which a second one per core fills."""
    timeout_floor_s: float = 1.0
    timeout_factor: float = 4.0
    """Per-test limit = min(cap, max(floor, factor * reference time of that test)), evalplus's rule; the
    floor for a problem without a reference solution. Both times are CPU time of the child process (wall
    time only where the kernel's per-process CPU clock cannot be read), so verdicts do not change with the
    machine's load; a test is also stopped at ``forkserver.WALL_FACTOR`` times its limit in wall time."""
    per_test_timeout_cap_s: float = 10.0
    run_timeout_s: float = 30.0
    """Wall-clock bound on one job (program load + all its tests), enforced outside the candidate."""
    memory_mb: int = 1024
    """Address space granted on top of the warm interpreter's own size."""
    max_output_bytes: int = 1 << 20
    """Cap on the candidate's stdout+stderr and on any file it writes (RLIMIT_FSIZE)."""
    max_value_bytes: int = 32 << 20
    """Cap on one returned value, serialised (HumanEval+ has tests returning million-element lists)."""
    max_result_bytes: int = 256 << 20
    """Cap on everything one job sends back (all its values together)."""
    max_processes: int = 32
    max_open_files: int = 64
    require_isolation: str = "rlimits"
    """Refuse to start below this level (see ``isolation.LEVELS``)."""
    force_level: str | None = None
    """Run at this weaker level instead of the strongest available (tests, debugging); never stronger."""
    preload_modules: tuple[str, ...] = (
        "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "typing",
        "random", "statistics", "fractions", "decimal", "datetime", "operator", "copy", "json",
        "hashlib", "array", "numbers", "sys", "io",
    )
    """Modules imported once in each warm interpreter, so candidates do not pay for them."""

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SandboxConfig:
        """The sandbox a profile's ``sandbox:`` section asks for (``config.SandboxSettings``: workers and limits),
        the rest at these defaults: the one place a run's settings become a sandbox, so an evaluation, a
        collection and the gold check run under the same limits."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in dataclasses.asdict(settings).items() if k in names}
        return cls(**{**given, **overrides})


@dataclass
class Job:
    program: str
    problem: Problem
    suite: Literal["base", "plus", "all"] = "base"
    stop_at_first_failure: bool = False


def _short(value: Any, limit: int = 300) -> str:
    """A truncated repr that cannot fail (huge ints exceed Python's int-to-str digit limit)."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:
        text = f"<int with about {int(value.bit_length() * 0.30103) + 1} digits>" if isinstance(value, int) \
            else f"<{type(value).__name__} without a repr>"
    except Exception as e:  # noqa: BLE001 - only trusted builtins reach here, but never crash the harness
        text = f"<{type(value).__name__}: repr failed ({type(e).__name__})>"
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


@dataclass
class TestOutcome:
    index: int
    status: str
    call: str
    expected: str = ""
    actual: str = ""
    message: str = ""
    duration_s: float = 0.0
    time_limit_s: float = 0.0
    call_s: float = 0.0
    """The call's own time as the child timed it (informative only: the child could say anything);
    ``duration_s`` is the fork server's clock, which also covers sending the value."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ExecResult:
    status: str
    passed: bool
    n_passed: int
    n_total: int
    tests: list[TestOutcome] = field(default_factory=list)
    feedback: str = ""
    isolation: str = ""
    trust: str = "structured"
    duration_s: float = 0.0
    time_limit_s: float = 0.0
    task_id: str = ""
    reference_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def outcome_counts(results: list[ExecResult]) -> dict[str, int]:
    """Outcome counts of one evaluation, every status listed (zeros included), plus trust counts."""
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    counts["trust_structured"] = sum(r.trust == "structured" for r in results)
    counts["trust_script"] = sum(r.trust == "script" for r in results)
    return counts
