"""What the three collection stages share: the run folder, stage markers, the sandbox and the models.

A stage writes its outputs into ``<run_dir>/<stage>/`` atomically and, last, ``done.json`` holding a hash of
everything its result depends on (the config keys it reads and the digests of its input files). A rerun
with the same hash does nothing; with another hash (a changed config, a re-run upstream stage) it runs
again, and asks models and the sandbox only for what its append-only logs do not hold yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, Config, ModelConfig
from selfdebug.io import JsonlLog, atomic_write_json
from selfdebug.problems.base import Problem

log = logging.getLogger(__name__)

SUITE = "base"
"""Training problems have one test suite (MBPP train, APPS and CodeContests have no EvalPlus tests)."""


def collect_dir(config: Config, run_dir: str | Path | None) -> Path:
    """``run_dir`` if given, else ``runs/<profile>/collect``."""
    return Path(run_dir) if run_dir else REPO_ROOT / "runs" / config.profile / "collect"


def stage_hash(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def finished(stage_dir: Path, key: str, outputs: list[str]) -> dict[str, Any] | None:
    """The saved summary when the stage finished with this hash and its outputs are all there, else None."""
    marker = stage_dir / "done.json"
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text())
    if done.get("hash") != key or not all((stage_dir / o).is_file() for o in outputs):
        return None
    return done["summary"]


def mark_done(stage_dir: Path, key: str, summary: dict[str, Any]) -> None:
    atomic_write_json(stage_dir / "done.json", {"hash": key, "summary": summary})


def sample_models(config: Config) -> list[ModelConfig]:
    """The models that sample solutions: ``collect.models``, or the profile's ``model``."""
    return list(config.collect.models) or [config.model]


def teacher_label(teacher: str | ModelConfig) -> str:
    return teacher if isinstance(teacher, str) else teacher.id


def open_backend(model: ModelConfig, given: Any = None) -> tuple[Any, bool]:
    """(backend, owned): the one given (tests inject doubles), else one built from the model section."""
    if given is not None:
        return given, False
    from selfdebug.generate import make_backend
    from selfdebug.generate.runner import backend_settings

    return make_backend(backend_settings(model)), True


def make_sandbox(config: Config) -> Any:
    from selfdebug.sandbox import Sandbox, SandboxConfig

    return Sandbox(SandboxConfig.from_settings(config.sandbox))


class LazySandbox:
    """The configured sandbox, started on first use (a stage whose verdicts are all logged starts none)."""

    def __init__(self, config: Config, given: Any = None):
        self.config, self.box, self.owned = config, given, given is None

    def run(self, jobs: list[Any], progress: bool = False) -> list[Any]:
        if self.box is None:
            self.box = make_sandbox(self.config)
        return self.box.run(jobs, progress=progress)

    def close(self) -> None:
        if self.owned and self.box is not None and hasattr(self.box, "close"):
            self.box.close()


def _canonical(value: Any) -> Any:
    """JSON-safe and the same in every process: a test's values can be dicts with tuple keys, sets, ..."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        items = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return ["dict", sorted(items, key=repr)]
    if isinstance(value, (set, frozenset)):
        return [type(value).__name__, sorted((_canonical(v) for v in value), key=repr)]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canonical(v) for v in value]]
    return [type(value).__name__, repr(value)]


def problem_digest(problem: Problem) -> str:
    """The whole problem (text, tests, reference), the same in every process: what a stage's hash names its
    problems by (``str(to_dict())`` would list a set of strings in the process's hash order)."""
    return hashlib.sha256(json.dumps(_canonical(asdict(problem))).encode()).hexdigest()[:32]


def _tests_digest(problem: Problem) -> str:
    blob = json.dumps(_canonical([problem.setup_code, problem.test_script, [asdict(t) for t in problem.tests]]))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CachedExecutor:
    """Runs (program, problem) pairs in the sandbox, each verdict logged to ``executions.jsonl`` keyed by the
    problem, its tests and the program: a resumed stage never reruns a program, and the verdict it reuses
    is the one the first run recorded (a verdict near a time limit cannot flip between invocations).

    The result dicts are the sandbox's own (``ExecResult.to_dict`` less per-test details): ``feedback`` is
    the text evaluation shows a model (the error or the first failed test)."""

    def __init__(self, path: Path, sandbox: Any):
        self.log = JsonlLog(path)
        self.sandbox = sandbox
        self._digests: dict[str, str] = {}
        self.stats = {"runs": 0, "resumed": 0, "seconds": 0.0}

    def key(self, program: str, problem: Problem) -> str:
        if problem.task_id not in self._digests:
            self._digests[problem.task_id] = _tests_digest(problem)
        blob = f"{problem.task_id}\x1f{self._digests[problem.task_id]}\x1f{SUITE}\x1f{program}"
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def __call__(self, pairs: list[tuple[str, Problem]]) -> list[dict[str, Any]]:
        from selfdebug.sandbox import Job

        keys = [self.key(prog, p) for prog, p in pairs]
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.log}.values())
        self.stats["resumed"] += len(pairs) - len(todo)
        if todo:
            t0 = time.perf_counter()
            results = self.sandbox.run([Job(program=pairs[i][0], problem=pairs[i][1], suite=SUITE) for i in todo],
                                       progress=False)
            self.stats["seconds"] += time.perf_counter() - t0
            self.stats["runs"] += len(todo)
            items = []
            for i, res in zip(todo, results, strict=True):
                row = res.to_dict() if hasattr(res, "to_dict") else dict(res)
                row.pop("tests", None)  # per-test details stay out of the log: the verdict and feedback suffice
                items.append((keys[i], row))
            self.log.extend(items)
        return [{f: v for f, v in self.log.get(key).items() if f != "key"} for key in keys]


class Progress:
    """A stage's progress line in its log every ``every_s`` seconds and at the end: units done, rate, and the
    stage's own counters (pass rate, verified pairs)."""

    def __init__(self, desc: str, total: int, unit: str, every_s: float = 20.0, logger: str = __name__):
        self.log = logging.getLogger(logger)
        self.desc, self.total, self.unit, self.every_s = desc, total, unit, every_s
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int, text: str, rate_count: int, rate_unit: str) -> None:
        """Log ``text`` with ``rate_count / elapsed`` as ``rate_unit`` per second, when a line is due."""
        now = time.perf_counter()
        if done >= self.total or now - self.last >= self.every_s:
            self.last = now
            self.log.info("%s: %d of %d %s done, %.2f %s/s; %s", self.desc, done, self.total, self.unit,
                     rate_count / max(now - self.t0, 1e-9), rate_unit, text)
