"""One interface for every generation backend: chats or prompts in, n completions per prompt out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]
"""``{"role": "system"|"user"|"assistant", "content": str}``"""
Chat = list[Message]
PromptLike = Chat | str
"""A chat (rendered with the model's chat template, or the StarChat format for base models) or a raw
prompt string (sent as is)."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0

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


class Backend(Protocol):
    name: str

    def generate(self, prompts: list[PromptLike], params: SamplingParams) -> list[list[Completion]]:
        """Return, for each prompt in order, ``params.n`` completions. Deterministic for a fixed seed
        where the engine allows it."""
        ...

    def close(self) -> None: ...
