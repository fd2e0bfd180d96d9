"""Resumable generation: requests in, each sample logged the moment it is done, keyed by what was asked.

Shared by every stage that asks a model for samples (the evaluation protocol, data collection): sample j of
a request is drawn with a seed derived from the run's seed, the request's key and j, and logged to an
append-only ``JsonlLog`` under ``<model tag>:<key>:s<j>``, so a rerun after a crash or kill, or with more
samples, asks the model only for what is missing, and a completion does not depend on chunking, order,
resuming or what else shared its engine call.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from selfdebug.generate.base import Backend, Chat, Completion, SamplingParams, sample_seed
from selfdebug.io import JsonlLog


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

    def __init__(self, desc: str, total: int, every_s: float = 30.0, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(__name__)
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
            self.log.info("%s: %d of %d prompts done, %d tokens, %.1f tok/s", self.desc, self.done, self.total,
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
    log_name: str = __name__
    """The logger of its progress lines: the stage's own (``selfdebug.evaluate.protocol`` for the evaluation's
    runner), so a stage's log names who generated."""
    _seeds_ok: bool | None = field(default=None, init=False, repr=False)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(self.log_name)

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
            self.log.info("%s: %d of %d requests already done (resuming)", desc, len(requests) - len(todo), len(requests))
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
        progress = _ProgressLog(desc, len(todo), logger=self.log)
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
                self.log.warning("backend %s: generate() takes no per-sample seeds; its samples depend on how "
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


def model_tag(model_id: str, chat_format: str, backend: Any = None) -> str:
    """Cache namespace: a reply is reused only from the same model. The backend's ``cache_tag`` names the
    engine, a fingerprint of the weights and the chat format; a backend without one (a test double) is named
    by its ``name`` and the configured chat format."""
    tag = getattr(backend, "cache_tag", None)
    if not tag:
        tag = f"{getattr(backend, 'name', type(backend).__name__)}|chat={chat_format}"
    return f"{model_id}|{tag}"


def backend_settings(model: Any) -> dict[str, Any]:
    """A ``ModelConfig`` as ``make_backend`` takes it; ``tiny:<dir>`` builds the tiny test model on first use."""
    from pathlib import Path

    from selfdebug.config import REPO_ROOT

    m = asdict(model)
    extra = m.pop("extra")
    settings = {k: v for k, v in m.items() if v is not None}
    settings.update(extra)
    if settings["id"].startswith("tiny:"):
        from selfdebug.generate.tiny import build_tiny_model

        path = Path(settings["id"][len("tiny:"):])
        path = path if path.is_absolute() else REPO_ROOT / path
        if not (path / "config.json").is_file():
            build_tiny_model(path)
        settings["id"] = str(path)
    return settings
