"""The training problems (LeDex §2.1): MBPP's train split (task ids 601-974), APPS and CodeContests train.

Rows are converted one by one with each benchmark's own ``problem_from_row``, so one malformed row is
recorded (file, line, id, what is wrong) and skipped instead of stopping the collection; a problem without
tests cannot verify anything and is skipped the same way. A source whose file is missing is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from selfdebug.config import Config
from selfdebug.problems.base import Problem
from selfdebug.problems.rows import read_rows

log = logging.getLogger(__name__)

SOURCE_LICENSES = {
    "mbpp": "cc-by-4.0",
    "apps": "mit",
    "codecontests": "cc-by-4.0",
}
"""Licenses of the problem sets (MBPP: google-research; APPS: hendrycks/apps; CodeContests: deepmind)."""

ID_KEYS = {"mbpp": "task_id", "apps": "problem_id", "codecontests": "name"}


def source_path(source: str, config: Config) -> Path:
    """The file a source is read from: ``collect.paths[source]``, else the data mirror's."""
    co = config.collect
    if source in co.paths:
        return Path(co.paths[source])
    from selfdebug.problems.sources import default_mirror, resolve

    if source == "mbpp":
        return Path(resolve("mbpp", config.data_mirror))
    folder = Path(config.data_mirror) if config.data_mirror else default_mirror()
    rel = {"apps": "apps/train.jsonl", "codecontests": "code_contests/train.jsonl"}[source]
    path = (folder / rel) if folder is not None else Path(rel)
    if not path.is_file():
        raise FileNotFoundError(f"collect.sources lists {source!r}, but {path} does not exist: export its train "
                                f"split there (see selfdebug/problems/{source}.py), set collect.paths.{source}, "
                                "or drop it from collect.sources")
    return path


def _converter(source: str):
    if source == "mbpp":
        from selfdebug.problems.mbpp import in_split, problem_from_row

        def mbpp(row: dict[str, Any]) -> Problem | None:
            num = row.get("task_id")
            if isinstance(num, int) and not in_split(num, "train"):
                return None  # another split: not a training problem, not an error
            return problem_from_row(row)

        return mbpp
    if source == "apps":
        from selfdebug.problems.apps import problem_from_row as apps

        return apps
    from selfdebug.problems.codecontests import problem_from_row as codecontests

    return codecontests


def load_training_problems(config: Config) -> tuple[list[Problem], list[dict[str, Any]]]:
    """(problems, bad rows) of every source in ``collect.sources``, the first ``collect.limit`` problems of
    each, in file order. A bad row is ``{source, path, line, id, error}``."""
    problems: list[Problem] = []
    bad: list[dict[str, Any]] = []
    for source in config.collect.sources:
        path = source_path(source, config)
        convert = _converter(source)
        kept = 0
        for lineno, row in read_rows(path):
            if config.collect.limit is not None and kept >= config.collect.limit:
                break
            rid = row.get(ID_KEYS[source], "?")
            try:
                problem = convert(row)
            except Exception as exc:  # noqa: BLE001 - any row error is the row's, recorded with where it is
                bad.append({"source": source, "path": str(path), "line": lineno, "id": str(rid),
                            "error": f"{type(exc).__name__}: {exc}"})
                log.warning("%s:%d (%s %s): skipped a malformed row: %s", path, lineno, source, rid, exc)
                continue
            if problem is None:
                continue
            if not problem.tests and not problem.test_script.strip():
                bad.append({"source": source, "path": str(path), "line": lineno, "id": str(rid),
                            "error": "the problem has no tests, so no solution can be verified"})
                continue
            problems.append(problem)
            kept += 1
        log.info("%s: %d training problems from %s", source, kept, path)
    ids = [p.task_id for p in problems]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"training problems: task ids {dup[:5]} occur more than once; they key every record")
    return problems, bad
