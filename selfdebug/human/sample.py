"""The items to rate, drawn from saved evaluation records (``<records>/samples/<benchmark>.jsonl.gz``).

A *model* is a named records folder (``{"base": "figures/results/cpu"}``; the SFT and RL models' folders
once they exist). As in the paper (§4.4: 50 problems with incorrect initial solutions, MBPP + HumanEval),
the sample is ``n_problems`` problems drawn with ``seed`` from those for which *every* model has an
Explain + Refine attempt at ``round`` (default 1: the explanation of a wrong initial solution), so all
models are rated on the same problems; for each (problem, model) one such attempt is drawn. An item is that
attempt's explanation with what the model was shown: the problem, the wrong code it was refining and that
code's execution feedback, i.e. those of the attempt's parent (``parent_id`` when the record has one; else
the record of the previous round of the same chain, or round 0 ``init``, with the same benchmark, task and
sample).

Items whose explanation is empty stay in the sample (``empty: true``), are listed in ``sample.json`` and
are never shown to a rater: nothing is silently dropped, and the judge sees the same sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from selfdebug.io import atomic_write_json, read_jsonl, write_jsonl
from selfdebug.problems import Problem, load_benchmark
from selfdebug.prompts import shown_code, truncate_feedback

CHAIN = "explain_refine"
DEFAULT_BENCHMARKS = ("humaneval", "mbpp")
"""MBPP and HumanEval, as in the paper; HumanEval+ repeats HumanEval's problems and explanations."""

ProblemLookup = Callable[[str, str], "Problem | None"]
"""``(benchmark, task_id) -> Problem`` (None when unknown): where the problem text comes from."""


@dataclass
class Sample:
    items: list[dict[str, Any]]
    """Every drawn item, empty explanations included (``empty``); ordered by item id."""
    report: dict[str, Any] = field(default_factory=dict)
    """What was asked for and what was drawn: models, n_problems, seed, round, the problems, the empty items,
    and a ``shortfall`` note when fewer problems qualified than were asked for."""

    @property
    def ratable(self) -> list[dict[str, Any]]:
        """The items a rater sees: those with an explanation."""
        return [it for it in self.items if not it["empty"]]

    @property
    def empty(self) -> list[dict[str, Any]]:
        return [it for it in self.items if it["empty"]]


def int_seed(*parts: object) -> int:
    """A seed from strings, the same in every Python process (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:8], "big")


def item_id(model: str, attempt: str, explanation: str) -> str:
    """Stable id of an item: the same records give the same ids; it does not reveal the model."""
    return hashlib.sha256(f"{model}\0{attempt}\0{explanation}".encode()).hexdigest()[:12]


@cache
def _benchmark_problems(bench: str, mirror: str | None) -> dict[str, Problem]:
    return {p.task_id: p for p in load_benchmark(bench, mirror=mirror)}


def benchmark_problems(mirror: str | None = None) -> ProblemLookup:
    """Problems from the benchmark files (:func:`selfdebug.problems.load_benchmark`), loaded once each."""

    def lookup(bench: str, task_id: str) -> Problem | None:
        try:
            return _benchmark_problems(bench, mirror).get(task_id)
        except (OSError, KeyError, ValueError):  # benchmark files absent here: the caller falls back
            return None

    return lookup


def _attempt_id(rec: dict[str, Any]) -> str:
    # records written before attempt ids existed get the id the protocol gives them now
    return rec.get("attempt_id") or f"{rec['benchmark']}/{rec['task_id']}/{rec['chain']}/r{rec['round']}/s{rec['sample']}"


def load_records(records_dir: str | Path, benchmarks: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The per-sample records of ``benchmarks`` in one records folder; a clear error for a missing one."""
    folder = Path(records_dir) / "samples"
    out = {}
    for bench in benchmarks:
        path = next((p for p in (folder / f"{bench}.jsonl.gz", folder / f"{bench}.jsonl") if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{folder}: no records for benchmark {bench!r} ({bench}.jsonl.gz)")
        out[bench] = list(read_jsonl(path))
    return out


def has_records(records_dir: str | Path) -> bool:
    return any((Path(records_dir) / "samples").glob("*.jsonl*"))


def _parent(rec: dict[str, Any], by_id: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    if rec.get("parent_id"):
        parent = by_id.get(rec["parent_id"])
        if parent is None:
            raise ValueError(f"{where}: parent_id {rec['parent_id']!r} is not among the records")
        return parent
    chain, rnd = (rec["chain"], rec["round"] - 1) if rec["round"] > 1 else ("init", 0)
    want = f"{rec['benchmark']}/{rec['task_id']}/{chain}/r{rnd}/s{rec['sample']}"
    parent = by_id.get(want)
    if parent is None:
        raise ValueError(f"{where}: no record of the attempt it refines ({want})")
    return parent


def _problem_text(rec: dict[str, Any], parent: dict[str, Any], problem: Problem | None, where: str) -> str:
    if problem is not None:
        return problem.prompt.strip("\n")
    for r in (rec, parent):  # the chat the model was sent starts with the task
        chat = r.get("chat") or []
        if chat and chat[0].get("role") == "user":
            return chat[0]["content"]
    raise ValueError(f"{where}: the problem text is unknown (benchmark files not found and no 'chat' in the record)")


def draw_sample(
    models: Mapping[str, str | Path],
    n_problems: int,
    seed: int,
    *,
    benchmarks: Sequence[str] = DEFAULT_BENCHMARKS,
    round_: int = 1,
    problems: ProblemLookup | None = None,
) -> Sample:
    """Draw the sample (see the module docstring); ``problems`` defaults to the benchmark files."""
    if not models:
        raise ValueError("draw_sample: no models given (a name -> records folder mapping)")
    if n_problems < 1:
        raise ValueError(f"draw_sample: n_problems must be >= 1, got {n_problems}")
    problems = problems or benchmark_problems()
    candidates: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    for model, folder in models.items():
        recs = load_records(folder, benchmarks)
        by_id[model] = {_attempt_id(r): r for rows in recs.values() for r in rows}
        cands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for bench, rows in recs.items():
            for r in rows:
                if r.get("chain") == CHAIN and r.get("round") == round_:
                    cands.setdefault((bench, r["task_id"]), []).append(r)
        candidates[model] = cands
    common = sorted(set.intersection(*(set(c) for c in candidates.values())))
    rng = random.Random(int_seed("problems", seed))
    drawn = sorted(rng.sample(common, min(n_problems, len(common))))
    items = []
    for bench, task_id in drawn:
        for model in models:
            pool = sorted(candidates[model][(bench, task_id)], key=lambda r: r["sample"])
            rec = random.Random(int_seed("attempt", seed, model, bench, task_id)).choice(pool)
            items.append(_item(model, rec, by_id[model], problems(bench, task_id)))
    items.sort(key=lambda it: it["item_id"])
    report: dict[str, Any] = {
        "models": {m: str(p) for m, p in models.items()}, "n_problems": n_problems, "seed": seed,
        "benchmarks": list(benchmarks), "round": round_, "chain": CHAIN,
        "problems": [f"{b}/{t}" for b, t in drawn], "n_items": len(items),
        "empty": [{k: it[k] for k in ("item_id", "model", "benchmark", "task_id", "attempt_id")}
                  for it in items if it["empty"]],
    }
    if len(drawn) < n_problems:
        report["shortfall"] = (f"asked for {n_problems} problems; only {len(common)} have an Explain + Refine "
                               f"attempt at round {round_} for every model")
    return Sample(items, report)


def _item(model: str, rec: dict[str, Any], by_id: dict[str, dict[str, Any]], problem: Problem | None) -> dict[str, Any]:
    where = f"model {model!r}, attempt {_attempt_id(rec)}"
    parent = _parent(rec, by_id, where)
    explanation = (rec.get("explanation") or "").strip()
    wrong = parent.get("code") or ""
    return {
        "item_id": item_id(model, _attempt_id(rec), explanation),
        "model": model, "benchmark": rec["benchmark"], "task_id": rec["task_id"], "sample": rec["sample"],
        "round": rec["round"], "attempt_id": _attempt_id(rec), "parent_id": _attempt_id(parent),
        "problem": _problem_text(rec, parent, problem, where),
        # what the model was shown: the wrong code as a whole function, the feedback as cut for its prompt
        "wrong_code": (shown_code(problem, wrong) if problem is not None else wrong).strip("\n"),
        "feedback": truncate_feedback(parent.get("feedback") or ""),
        "explanation": explanation, "empty": not explanation,
        "refined_code": rec.get("code") or "", "refined_passed": bool(rec.get("passed")),
    }


def write_sample(sample: Sample, out_dir: str | Path) -> tuple[Path, Path]:
    """``items.jsonl`` (every item) and ``sample.json`` (the report) in ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    return write_jsonl(out_dir / "items.jsonl", sample.items), atomic_write_json(out_dir / "sample.json", sample.report)


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """The items of a written sample (``items.jsonl``), checked for the fields a rater and a judge need."""
    items = list(read_jsonl(path))
    need = ("item_id", "model", "problem", "wrong_code", "feedback", "explanation", "empty")
    for i, it in enumerate(items, 1):
        missing = [k for k in need if k not in it]
        if missing:
            raise ValueError(f"{path}:{i}: an item lacks {', '.join(missing)}")
    return items
