"""The paper's evaluation protocol (§4.1), resumable, for any backend and benchmark.

For each problem: ``n_samples`` initial solutions at ``temperature``; every wrong one gets one refinement
per prompt type ("Refine", "Expl.+Refine"), and what still fails is refined again, up to ``rounds``
rounds (Fig. 4). Beside the paper, a compute-matched baseline ("Resample"): each still-wrong sample is
replaced by a fresh sample drawn without feedback, one per round, so self-repair is compared with plain
resampling at the same number of samples (Olausson et al., 2024).

Every generation is logged to ``generations.jsonl`` as soon as its chunk finishes, one record per sample
(with its seed, token ids and log-probabilities), keyed by the model and what was asked; a rerun after a
crash or kill, or with more samples, asks the model only for what is missing. Benchmarks that share their
prompts share their samples (``SAMPLE_GROUPS``: HumanEval+ is scored on HumanEval's samples, as EvalPlus
does), so the same request is never generated twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfdebug.generate.base import Chat, SamplingParams
from selfdebug.generate.runner import LOGPROB_DECIMALS, TOKEN_FIELDS, Request, _ProgressLog
from selfdebug.generate.runner import GenerationRunner as _GenerationRunner
from selfdebug.problems import SUBSET_OF
from selfdebug.problems.base import Problem
from selfdebug.prompts import PROMPT_TYPES, initial_chat, parse_reply, refine_chat

log = logging.getLogger(__name__)

SAMPLE_GROUPS = {"humaneval_plus": "humaneval", **SUBSET_OF}  # SUBSET_OF: MBPP+ held-out scores MBPP+'s samples
"""Benchmarks whose problems have the same ids and prompts as another's: their requests use that one's
tags, so identical requests (same chat, same sample index) are answered once, from the log."""

__all__ = ["LOGPROB_DECIMALS", "SAMPLE_GROUPS", "TOKEN_FIELDS", "Executor", "GenerationRunner", "Request",
           "_ProgressLog", "attempt_id", "evaluate_benchmark", "save_records"]


@dataclass
class GenerationRunner(_GenerationRunner):
    """The evaluation's runner (selfdebug.generate.runner): its progress lines are the evaluation's."""

    log_name: str = __name__


Executor = Callable[[list[tuple[str, Problem]]], list[dict[str, Any]]]
"""Runs (program, problem) pairs in the sandbox; returns per-program result dicts with at least
``passed``, ``status``, ``feedback``, ``n_passed``, ``n_total``."""


def attempt_id(bench: str, task_id: str, chain: str, round_: int, sample: int) -> str:
    """The stable id of one attempt (one record): ``humaneval/HumanEval/0/refine/r1/s3``; init is round 0."""
    return f"{bench}/{task_id}/{chain}/r{round_}/s{sample}"


def _attempt(completion: dict[str, Any], chat: Chat, parent_id: str | None) -> dict[str, Any]:
    """A logged completion with what the record needs besides it: the chat sent and the attempt refined."""
    return {**completion, "chat": chat, "parent_id": parent_id}


def _record(bench: str, problem: Problem, sample: int, chain: str, round_: int, completion: dict[str, Any],
            result: dict[str, Any], code: str, explanation: str, found_block: bool) -> dict[str, Any]:
    """One attempt, self-contained for training: the chat sent (``chat``), the reply, its verdict, and
    ``parent_id``, the attempt whose code it refines (for Resample: the attempt it replaces; None for init).
    Token ids stay in the generation log (``generation_key``), keeping these records small."""
    return {
        "benchmark": bench, "task_id": problem.task_id, "sample": sample, "chain": chain, "round": round_,
        "attempt_id": attempt_id(bench, problem.task_id, chain, round_, sample),
        "parent_id": completion.get("parent_id"), "chat": completion.get("chat"),
        "seed": completion.get("seed"), "generation_key": completion.get("key"),
        "completion": completion["text"], "code": code, "explanation": explanation, "found_block": found_block,
        "prompt_tokens": completion["prompt_tokens"], "completion_tokens": completion["completion_tokens"],
        "finish_reason": completion["finish_reason"],
        "passed": bool(result["passed"]), "status": result["status"], "feedback": result.get("feedback", ""),
        "n_passed": result.get("n_passed"), "n_total": result.get("n_total"),
        "isolation": result.get("isolation"), "trust": result.get("trust"),
    }


def evaluate_benchmark(
    bench: str,
    problems: list[Problem],
    *,
    runner: GenerationRunner,
    execute: Executor,
    n_samples: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    refine_temperature: float,
    refine_max_new_tokens: int,
    prompts: tuple[str, ...] = PROMPT_TYPES,
    rounds: int = 1,
    matched_baseline: bool = True,
) -> list[dict[str, Any]]:
    """Run the protocol on one benchmark; return one record per (sample, chain, round)."""
    records: list[dict[str, Any]] = []
    group = SAMPLE_GROUPS.get(bench, bench)
    init_params = SamplingParams(n=n_samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    reqs = [Request(f"{group}/{p.task_id}/init", initial_chat(p), init_params) for p in problems]
    outs = runner.run(reqs, f"{bench}: initial samples")
    states: dict[tuple[str, int], dict[str, Any]] = {}  # (task_id, sample) -> latest init-chain record
    items = [(p, s, _attempt(comp, req.chat, None))
             for p, req, comps in zip(problems, reqs, outs, strict=True) for s, comp in enumerate(comps)]
    if any(len(comps) != n_samples for comps in outs):
        raise RuntimeError(f"{bench}: the backend returned a number of samples other than n={n_samples}")
    for rec in _score(bench, items, "init", 0, execute):
        records.append(rec)
        states[(rec["task_id"], rec["sample"])] = rec

    by_id = {p.task_id: p for p in problems}
    chains = list(prompts) + (["resample"] if matched_baseline else [])
    latest = {chain: dict(states) for chain in chains}
    for round_ in range(1, rounds + 1):
        # Every chain's requests of a round go to the engine together (a chain's round r depends only on
        # its own round r-1): more sequences to batch, and the prompts of one wrong sample under "Refine"
        # and "Expl.+Refine" share all but their last sentence, which an engine's prefix cache reuses.
        # A sample whose latest verdict is a sandbox failure is never refined: the failure is the harness's,
        # not the model's, so "sandbox failure" is no feedback to repair from (metrics drop such samples).
        todo = [(chain, tid, s) for chain in chains
                for (tid, s), rec in sorted(latest[chain].items())
                if not rec["passed"] and rec["status"] != "sandbox_error"]
        if not todo:
            break
        reqs = []
        for chain, tid, s in todo:
            p, prev = by_id[tid], latest[chain][(tid, s)]
            tag = f"{group}/{tid}/{chain}/r{round_}/s{s}"
            if chain == "resample":
                params = SamplingParams(n=1, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
                reqs.append(Request(tag, initial_chat(p), params))
            else:
                params = SamplingParams(n=1, temperature=refine_temperature, top_p=top_p,
                                        max_new_tokens=refine_max_new_tokens)
                reqs.append(Request(tag, refine_chat(p, prev["code"], prev["feedback"], chain), params))
        outs = runner.run(reqs, f"{bench}: round {round_} ({', '.join(sorted({c for c, _, _ in todo}))})")
        parents = [latest[chain][(tid, s)]["attempt_id"] for chain, tid, s in todo]
        for chain in chains:
            idx = [j for j, (c, _, _) in enumerate(todo) if c == chain]
            items = [(by_id[todo[j][1]], todo[j][2], _attempt(outs[j][0], reqs[j].chat, parents[j])) for j in idx]
            for rec in _score(bench, items, chain, round_, execute) if items else []:
                records.append(rec)
                latest[chain][(rec["task_id"], rec["sample"])] = rec
    return records


def _score(bench: str, items: list[tuple[Problem, int, dict[str, Any]]], chain: str, round_: int,
           execute: Executor) -> list[dict[str, Any]]:
    from dataclasses import replace

    from selfdebug.sanitize import sanitize_for

    parsed = [parse_reply(comp["text"], p.entry_point) for p, _, comp in items]
    # what runs, and is recorded as `code`, is the sanitized answer: the model's own top-level asserts,
    # prints and __main__ blocks would otherwise fail a sample before any real test (issue 9, §7)
    parsed = [replace(pr, code=sanitize_for(p, pr.code)) for (p, _, _), pr in zip(items, parsed, strict=True)]
    programs = [(p.program(pr.code), p) for (p, _, _), pr in zip(items, parsed, strict=True)]
    results = execute(programs)
    return [
        _record(bench, p, s, chain, round_, comp, res, pr.code, pr.explanation if chain != "resample" else "",
                pr.found_block)
        for (p, s, comp), pr, res in zip(items, parsed, results, strict=True)
    ]


def save_records(path: str | Path, records: list[dict[str, Any]]) -> Path:
    from selfdebug.io import write_jsonl

    return write_jsonl(path, records)
