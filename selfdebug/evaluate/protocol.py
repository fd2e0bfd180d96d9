"""The paper's evaluation protocol (§4.1), resumable, for any backend and benchmark.

For each problem: ``n_samples`` initial solutions at ``temperature``; every wrong one gets one refinement
per prompt type ("Refine", "Expl.+Refine"), and what still fails is refined again, up to ``rounds``
rounds (Fig. 4). Beside the paper, a compute-matched baseline ("Resample"): each still-wrong sample is
replaced by a fresh sample drawn without feedback, one per round, so self-repair is compared with plain
resampling at the same number of samples (Olausson et al., 2024).

Every generation is logged to ``generations.jsonl`` as soon as its chunk finishes, keyed by what was
asked; a rerun after a crash or kill asks the model only for what is missing. Benchmarks that share their
prompts share their samples (``SAMPLE_GROUPS``: HumanEval+ is scored on HumanEval's samples, as EvalPlus
does), so the same request is never generated twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.generate.base import Backend, Chat, Completion, SamplingParams
from selfdebug.io import JsonlLog
from selfdebug.problems.base import Problem
from selfdebug.prompts import PROMPT_TYPES, initial_chat, parse_reply, refine_chat

log = logging.getLogger(__name__)

SAMPLE_GROUPS = {"humaneval_plus": "humaneval"}
"""Benchmarks whose problems have the same ids and prompts as another's: their requests use that one's
tags, so identical requests (same chat, same sample index) are answered once, from the log."""


@dataclass
class Request:
    tag: str
    """What this request is, e.g. ``humaneval/HumanEval/0/refine/r1/s3``; part of the cache key."""
    chat: Chat
    params: SamplingParams
    key: str = ""

    def __post_init__(self) -> None:
        p = asdict(self.params)
        p.pop("seed")  # the seed is per backend call, not part of what was asked
        blob = json.dumps({"tag": self.tag, "chat": self.chat, "params": p}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class GenerationRunner:
    """Sends requests to a backend in chunks, logging each finished chunk for resumption."""

    backend: Backend
    cache: JsonlLog
    model_tag: str
    chunk_size: int = 16
    stream_chunk_size: int = 1024
    """Prompts per call for engines that stream results (``streams_results``)."""
    seed: int = 0
    stats: dict[str, float] = field(
        default_factory=lambda: {"completion_tokens": 0, "seconds": 0.0, "calls": 0, "requests": 0, "resumed": 0})
    """What this invocation asked the engine for; ``resumed`` requests were answered from the log."""

    def run(self, requests: list[Request], desc: str) -> list[list[dict[str, Any]]]:
        keys = [f"{self.model_tag}:{r.key}" for r in requests]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        self.stats["requests"] += len(requests)
        self.stats["resumed"] += len(requests) - len(todo)
        if len(todo) < len(requests):
            log.info("%s: %d of %d requests already done (resuming)", desc, len(requests) - len(todo), len(requests))
        # group by sampling params (n, temperature, ...) since one backend call takes one SamplingParams
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            p = requests[i].params
            groups.setdefault((p.n, p.temperature, p.top_p, p.max_new_tokens, p.stop), []).append(i)
        # An engine that hands back each prompt as it finishes gets whole groups: every reply is logged the
        # moment it is done, and its parallel slots stay busy until the work runs out (a chunk boundary
        # would drain them). Other engines get chunks, logged per chunk.
        streams = bool(getattr(self.backend, "streams_results", False))
        size = max(self.chunk_size, self.stream_chunk_size) if streams else self.chunk_size
        chunks = [idx[j : j + size] for idx in groups.values() for j in range(0, len(idx), size)]
        with tqdm(total=len(todo), desc=desc, unit="prompt", disable=not todo) as bar:
            for chunk in chunks:
                self.stats["calls"] += 1
                base = requests[chunk[0]].params
                params = SamplingParams(
                    n=base.n, temperature=base.temperature, top_p=base.top_p, max_new_tokens=base.max_new_tokens,
                    stop=base.stop, seed=self.seed + int(self.stats["calls"]),
                )
                done: dict[int, int] = {}  # chunk position -> completion tokens, once logged

                def log_result(j: int, comps: list[Completion], chunk: list[int] = chunk, n: int = base.n,
                               done: dict[int, int] = done) -> None:
                    if j not in done:
                        done[j] = self._log(keys[chunk[j]], requests[chunk[j]], comps, n)
                        bar.update(1)

                t0 = time.perf_counter()
                chats = [requests[i].chat for i in chunk]
                if streams:
                    outs = self.backend.generate(chats, params, on_result=log_result)
                else:
                    outs = self.backend.generate(chats, params)
                dt = time.perf_counter() - t0
                if len(outs) != len(chunk):
                    raise RuntimeError(f"backend {self.backend.name} returned {len(outs)} results for "
                                       f"{len(chunk)} prompts")
                for j, comps in enumerate(outs):
                    log_result(j, comps)
                ntok = sum(done.values())
                self.stats["completion_tokens"] += ntok
                self.stats["seconds"] += dt
                bar.set_postfix(tok_s=f"{ntok / max(dt, 1e-9):.1f}")
        return [self.cache.get(k)["completions"] for k in keys]

    def _log(self, key: str, request: Request, comps: list[Completion], n: int) -> int:
        """Append one request's completions to the resume log; return their completion tokens."""
        rows = [{"text": c.text, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                 "finish_reason": c.finish_reason} for c in comps]
        if len(rows) != n:
            raise RuntimeError(f"backend {self.backend.name} returned {len(rows)} completions for request "
                               f"{request.tag}, expected n={n}")
        self.cache.append(key, {"tag": request.tag, "completions": rows})
        return sum(r["completion_tokens"] for r in rows)


Executor = Callable[[list[tuple[str, Problem]]], list[dict[str, Any]]]
"""Runs (program, problem) pairs in the sandbox; returns per-program result dicts with at least
``passed``, ``status``, ``feedback``, ``n_passed``, ``n_total``."""


def _record(bench: str, problem: Problem, sample: int, chain: str, round_: int, completion: dict[str, Any],
            result: dict[str, Any], code: str, explanation: str, found_block: bool) -> dict[str, Any]:
    return {
        "benchmark": bench, "task_id": problem.task_id, "sample": sample, "chain": chain, "round": round_,
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
    items = [(p, s, comp) for p, comps in zip(problems, outs, strict=True) for s, comp in enumerate(comps)]
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
        todo = [(chain, tid, s) for chain in chains
                for (tid, s), rec in sorted(latest[chain].items()) if not rec["passed"]]
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
        for chain in chains:
            idx = [j for j, (c, _, _) in enumerate(todo) if c == chain]
            items = [(by_id[todo[j][1]], todo[j][2], outs[j][0]) for j in idx]
            for rec in _score(bench, items, chain, round_, execute) if items else []:
                records.append(rec)
                latest[chain][(rec["task_id"], rec["sample"])] = rec
    return records


def _score(bench: str, items: list[tuple[Problem, int, dict[str, Any]]], chain: str, round_: int,
           execute: Executor) -> list[dict[str, Any]]:
    parsed = [parse_reply(comp["text"], p.entry_point) for p, _, comp in items]
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
