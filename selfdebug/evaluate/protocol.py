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

import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.generate.base import Backend, Chat, Completion, SamplingParams, sample_seed
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
    """Hash of tag, chat and sampling parameters less ``n`` and ``seed``: sample j of the request is logged
    under ``<model tag>:<key>:s<j>``, so asking n=4 after n=2 generates only samples 2 and 3."""

    def __post_init__(self) -> None:
        p = asdict(self.params)
        p.pop("seed")  # each sample's seed derives from this key (GenerationRunner.sample_seed)
        p.pop("n")  # samples are keyed one by one: how many were asked is not what was asked
        blob = json.dumps({"tag": self.tag, "chat": self.chat, "params": p}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:24]


LOGPROB_DECIMALS = 5
"""Log-probabilities are logged rounded (absolute error <= 5e-6), to keep the resume log compact."""
TOKEN_FIELDS = ("prompt_token_ids", "token_ids", "logprobs")
"""The generation log's bulky fields: a stage's log keeps them on disk only (``JsonlLog(drop_in_memory=)``)."""


class _ProgressLog:
    """Progress lines in the stage's log (a notebook's bars are widgets that a terminal or a log never sees):
    one every ``every_s`` seconds and one at the end, with prompts done and throughput."""

    def __init__(self, desc: str, total: int, every_s: float = 30.0) -> None:
        self.desc, self.total, self.every_s = desc, total, every_s
        self.done, self.tokens, self.base_tokens = 0, 0, 0
        self.t0 = self.last = time.perf_counter()

    def start_chunk(self) -> None:
        self.base_tokens = self.tokens  # a chunk's tick reports its own running total

    def tick(self, chunk_tokens: int) -> None:
        self.done += 1
        self.tokens = self.base_tokens + chunk_tokens
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            log.info("%s: %d of %d prompts done, %d tokens, %.1f tok/s", self.desc, self.done, self.total,
                     self.tokens, self.tokens / max(now - self.t0, 1e-9))


@dataclass
class GenerationRunner:
    """Sends requests to a backend in chunks, logging each finished sample for resumption.

    Sample j of a request is drawn with seed ``sample_seed(seed, request.key, j)``: the same whatever the
    chunking, the order of benchmarks, an interruption, or the other prompts of the engine call. Resample
    requests of one problem differ in tag, hence in key and seed, so they are fresh samples."""

    backend: Backend
    cache: JsonlLog
    model_tag: str
    """Names the model that answers (weights, engine, chat format: ``stage._model_tag``)."""
    chunk_size: int = 16
    stream_chunk_size: int = 1024
    """Prompts per call for engines that stream results (``streams_results``)."""
    seed: int = 0
    stats: dict[str, float] = field(
        default_factory=lambda: {"completion_tokens": 0, "seconds": 0.0, "calls": 0, "requests": 0, "resumed": 0,
                                 "samples": 0, "samples_resumed": 0})
    """What this invocation asked the engine for; ``resumed`` requests (``samples_resumed`` samples) were
    answered from the log."""
    _seeds_ok: bool | None = field(default=None, init=False, repr=False)

    def sample_key(self, request: Request, j: int) -> str:
        return f"{self.model_tag}:{request.key}:s{j}"

    def prompt_key(self, request: Request) -> str:
        """The log record holding a request's prompt token ids, once for all its samples."""
        return f"{self.model_tag}:{request.key}:prompt"

    def sample_seed(self, request: Request, j: int) -> int:
        return sample_seed(self.seed, request.key, j)

    def run(self, requests: list[Request], desc: str) -> list[list[dict[str, Any]]]:
        """For each request, its ``params.n`` samples as the log holds them in memory: text, token counts,
        finish reason, seed, ``key`` (its line in the log), and the ``TOKEN_FIELDS`` unless the log keeps
        those on disk only."""
        missing = [[j for j in range(r.params.n) if self.sample_key(r, j) not in self.cache] for r in requests]
        todo = [i for i, m in enumerate(missing) if m]
        self.stats["requests"] += len(requests)
        self.stats["resumed"] += len(requests) - len(todo)
        self.stats["samples"] += sum(r.params.n for r in requests)
        self.stats["samples_resumed"] += sum(r.params.n - len(m) for r, m in zip(requests, missing, strict=True))
        if len(todo) < len(requests):
            log.info("%s: %d of %d requests already done (resuming)", desc, len(requests) - len(todo), len(requests))
        # group by sampling params and the number of samples still missing, since one backend call takes one
        # SamplingParams (n = samples to draw; their seeds say which)
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            p = requests[i].params
            groups.setdefault((len(missing[i]), p.temperature, p.top_p, p.max_new_tokens, p.stop), []).append(i)
        # An engine that hands back each prompt as it finishes gets whole groups: every reply is logged the
        # moment it is done, and its parallel slots stay busy until the work runs out (a chunk boundary
        # would drain them). Other engines get chunks, logged per chunk.
        streams = bool(getattr(self.backend, "streams_results", False))
        size = max(self.chunk_size, self.stream_chunk_size) if streams else self.chunk_size
        chunks = [idx[j : j + size] for idx in groups.values() for j in range(0, len(idx), size)]
        progress = _ProgressLog(desc, len(todo))
        with tqdm(total=len(todo), desc=desc, unit="prompt", disable=not todo) as bar:
            for chunk in chunks:
                progress.start_chunk()
                self.stats["calls"] += 1
                base = requests[chunk[0]].params
                params = SamplingParams(
                    n=len(missing[chunk[0]]), temperature=base.temperature, top_p=base.top_p,
                    max_new_tokens=base.max_new_tokens, stop=base.stop, seed=self.seed,
                )
                seeds = [[self.sample_seed(requests[i], j) for j in missing[i]] for i in chunk]
                done: dict[int, int] = {}  # chunk position -> completion tokens, once logged

                def log_result(pos: int, comps: list[Completion], chunk: list[int] = chunk,
                               done: dict[int, int] = done, seeds: list[list[int]] = seeds) -> None:
                    if pos not in done:
                        i = chunk[pos]
                        done[pos] = self._log(requests[i], missing[i], seeds[pos], comps)
                        bar.update(1)
                        progress.tick(sum(done.values()))

                t0 = time.perf_counter()
                chats = [requests[i].chat for i in chunk]
                kwargs: dict[str, Any] = {"seeds": seeds} if self._takes_seeds() else {}
                if streams:
                    kwargs["on_result"] = log_result
                outs = self.backend.generate(chats, params, **kwargs)
                dt = time.perf_counter() - t0
                if len(outs) != len(chunk):
                    raise RuntimeError(f"backend {self.backend.name} returned {len(outs)} results for "
                                       f"{len(chunk)} prompts")
                for pos, comps in enumerate(outs):
                    log_result(pos, comps)
                ntok = sum(done.values())
                self.stats["completion_tokens"] += ntok
                self.stats["seconds"] += dt
                bar.set_postfix(tok_s=f"{ntok / max(dt, 1e-9):.1f}")
        return [[self._sample(r, j) for j in range(r.params.n)] for r in requests]

    def _takes_seeds(self) -> bool:
        """Every backend of selfdebug.generate takes per-sample seeds; a foreign one (or a test double)
        without the parameter still runs, with a warning: its samples then depend on the call."""
        if self._seeds_ok is None:
            try:
                sig = inspect.signature(self.backend.generate)
                self._seeds_ok = "seeds" in sig.parameters or any(
                    p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
            except (TypeError, ValueError):
                self._seeds_ok = True
            if not self._seeds_ok:
                log.warning("backend %s: generate() takes no per-sample seeds; its samples depend on how "
                            "requests are chunked and are not reproducible across resumptions",
                            getattr(self.backend, "name", type(self.backend).__name__))
        return self._seeds_ok

    def _sample(self, request: Request, j: int) -> dict[str, Any]:
        row = dict(self.cache.get(self.sample_key(request, j)) or {})
        prompt = self.cache.get(self.prompt_key(request))
        row["prompt_token_ids"] = prompt.get("prompt_token_ids") if prompt else None
        return row

    def _log(self, request: Request, samples: list[int], seeds: list[int], comps: list[Completion]) -> int:
        """Append one request's new samples to the resume log; return their completion tokens."""
        if len(comps) != len(samples):
            raise RuntimeError(f"backend {self.backend.name} returned {len(comps)} completions for request "
                               f"{request.tag}, expected n={len(samples)}")
        items: list[tuple[str, dict[str, Any]]] = []
        ids = next((c.prompt_token_ids for c in comps if c.prompt_token_ids is not None), None)
        if ids is not None and self.prompt_key(request) not in self.cache:
            items.append((self.prompt_key(request), {"tag": request.tag, "prompt_token_ids": list(ids)}))
        for j, seed, c in zip(samples, seeds, comps, strict=True):
            lps = None if c.logprobs is None else [round(float(x), LOGPROB_DECIMALS) for x in c.logprobs]
            items.append((self.sample_key(request, j), {
                "tag": request.tag, "sample": j, "seed": seed, "text": c.text, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason,
                "token_ids": None if c.token_ids is None else list(c.token_ids), "logprobs": lps,
            }))
        self.cache.extend(items)  # one fsync per request: the prompt record is written with its samples
        return sum(c.completion_tokens for c in comps)


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
