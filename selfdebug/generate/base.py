"""One interface for every generation backend: chats or prompts in, n completions per prompt out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]
"""``{"role": "system"|"user"|"assistant", "content": str}``"""
Chat = list[Message]
PromptLike = Chat | str
"""A chat (rendered with the model's chat template, or the StarChat format for base models) or a raw
prompt string (sent as is)."""

Seeds = list[list[int]]
"""``seeds[i][j]``: the seed of sample ``j`` of prompt ``i`` (non-negative, below 2**63)."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0
    """Used only when ``generate`` is given no per-sample seeds: then sample j of prompt i gets
    ``sample_seed(seed, i, j)`` (see ``resolve_seeds``)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    """``stop`` (EOS or a stop string), ``length`` (hit max_new_tokens)."""
    meta: dict = field(default_factory=dict)
    prompt_token_ids: list[int] | None = None
    """The prompt as the engine saw it (None where the engine does not say, e.g. a remote endpoint)."""
    token_ids: list[int] | None = None
    """Every token the engine sampled, in order: the end-of-generation token included when it was sampled,
    and the tokens of a stop string included (``text`` is cut before the stop string; re-tokenising
    ``text`` does not give these ids back)."""
    logprobs: list[float] | None = None
    """Per sampled token, its log-probability under the model's raw distribution (log-softmax of the
    logits at temperature 1, before temperature and top-p); aligned with ``token_ids`` where both exist.
    None where the engine does not provide them."""


def sample_seed(*parts: object) -> int:
    """A seed in [0, 2**63) from any parts (their ``str``), well spread: ``sample_seed(run_seed, key, j)``.
    Hashing, not arithmetic: ``seed + j`` schemes make sample j of one request replay sample j+1 of another."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def resolve_seeds(seeds: Seeds | None, params: SamplingParams, n_prompts: int, where: str = "generate") -> Seeds:
    """Check caller-given per-sample seeds (one list of ``params.n`` per prompt), or derive them from
    ``params.seed`` and the positions (for direct callers that do not care about chunking)."""
    if seeds is None:
        return [[sample_seed(params.seed, i, j) for j in range(params.n)] for i in range(n_prompts)]
    if len(seeds) != n_prompts:
        raise ValueError(f"{where}: seeds has {len(seeds)} rows for {n_prompts} prompts")
    for i, row in enumerate(seeds):
        if len(row) != params.n:
            raise ValueError(f"{where}: seeds[{i}] has {len(row)} seeds, expected n={params.n}")
        for s in row:
            if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**63:
                raise ValueError(f"{where}: seeds[{i}] holds {s!r}; a seed is an int in [0, 2**63)")
    return seeds


class Backend(Protocol):
    name: str
    cache_tag: str
    """What decides the replies besides the prompt and the seed: engine, a fingerprint of the weights, the
    chat format. The evaluation's generation log reuses a reply only under the same tag."""

    def generate(
        self, prompts: list[PromptLike], params: SamplingParams, seeds: Seeds | None = None
    ) -> list[list[Completion]]:
        """Return, for each prompt in order, ``params.n`` completions; completion j of prompt i is drawn
        with ``seeds[i][j]`` alone, so it does not depend on the other prompts or samples of the call
        (deterministic for a seed where the engine allows it; see each backend for what it guarantees)."""
        ...

    def close(self) -> None: ...
