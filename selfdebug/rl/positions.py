"""Where the rewards land in a response (LeDex App. A.3): the explanation reward at the last explanation token,
the refinement reward at the last code token, ``-kl_coef * KL_t`` at every token.

A response is read as ``selfdebug.prompts.parse_reply`` reads it: the code is the Python block it picks (the one
defining the entry point, else the longest), the explanation the prose before that block. The *last code token*
is the token that holds the last non-whitespace character of the code inside that block, not the closing fence
nor the end-of-turn token after it: the refinement reward grades the code, and the paper puts it at ``t = T`` with
``T = |e| + |r|`` counting explanation and refinement tokens only; the fence and EOS carry nothing the reward
depends on. (With gamma = 0.99 the two or three tokens' difference hardly changes the advantages; what matters is
that the explanation tokens do not get credit for the code.) Where a byte-level tokenizer merges that character
with the newline and the fence (``)\\n```"``), the merged token is it. The *last explanation token* is likewise the
token holding the last non-whitespace character of the prose. A "Refine" response has only the code position;
so has an "Explain + Refine" response whose prose is empty, and a reply without a block (all of it is code).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from selfdebug.prompts import reply_layout


@dataclass(frozen=True)
class CharSpans:
    """Character indices (inclusive) of the last non-whitespace character of each part; None: no such part."""

    explanation_end: int | None
    code_end: int | None


@dataclass(frozen=True)
class RewardPositions:
    """Token indices in the response (0 = its first generated token)."""

    explanation: int | None
    code: int | None


def _last_visible(text: str, start: int, end: int) -> int | None:
    i = end - 1
    while i >= start and text[i].isspace():
        i -= 1
    return i if i >= start else None


def reply_spans(text: str, entry_point: str | None = None, mode: str = "explain_refine") -> CharSpans:
    """The ends of the explanation and of the code in ``text``, the parts ``parse_reply`` returns (its choice of
    block, the prose before it without other blocks: ``prompts.reply_layout``). ``mode="refine"``: no
    explanation, whatever the prose."""
    layout = reply_layout(text, entry_point)
    code_end = _last_visible(text, *layout.code)
    explanation_end = None
    if mode != "refine":  # the last non-empty prose segment before the chosen block ends the explanation
        for s, e in reversed(layout.prose):
            if (end := _last_visible(text, s, e)) is not None:
                explanation_end = end
                break
    return CharSpans(explanation_end, code_end)


def token_at(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """The index of the token whose character span holds ``char`` (spans are ``[start, end)``; empty spans, of
    special tokens, hold nothing)."""
    for i, (s, e) in enumerate(offsets):
        if s <= char < e:
            return i
    raise ValueError(f"no token covers character {char} (offsets end at {offsets[-1][1] if offsets else 0})")


def offsets_from_ids(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """The text of generated ``ids`` and each token's character span in it, by decoding growing prefixes:
    re-tokenising the decoded text may split it differently from how it was sampled, and the reward must land
    on the sampled tokens. A token that ends inside a multi-byte character (decoded as U+FFFD until the next
    one completes it) gets an empty span; special tokens (skipped) too."""
    text = tokenizer.decode(list(ids), skip_special_tokens=True)
    spans, prev = [], 0
    for i in range(len(ids)):
        prefix = tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True)
        end = len(prefix) if text.startswith(prefix) else prev
        spans.append((prev, end))
        prev = end
    return text, spans


def positions_from_offsets(text: str, offsets: Sequence[tuple[int, int]], entry_point: str | None = None,
                           mode: str = "explain_refine") -> RewardPositions:
    """Positions in tokens whose character spans in ``text`` are ``offsets`` (``offsets_from_ids``)."""
    spans = reply_spans(text, entry_point, mode)
    return RewardPositions(
        explanation=None if spans.explanation_end is None else token_at(offsets, spans.explanation_end),
        code=None if spans.code_end is None else token_at(offsets, spans.code_end),
    )


def reward_positions(tokenizer: Any, response: str, entry_point: str | None = None,
                     mode: str = "explain_refine") -> RewardPositions:
    """Positions in ``tokenizer(response)`` (no special tokens added), from the tokenizer's offset mapping."""
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    return positions_from_offsets(response, [tuple(o) for o in enc["offset_mapping"]], entry_point, mode)


def reward_positions_for_ids(tokenizer: Any, ids: Sequence[int], entry_point: str | None = None,
                             mode: str = "explain_refine") -> RewardPositions:
    """Positions in generated token ``ids`` (``offsets_from_ids``)."""
    text, offsets = offsets_from_ids(tokenizer, ids)
    return positions_from_offsets(text, offsets, entry_point, mode)


def token_rewards(n_tokens: int, placements: Iterable[tuple[int | None, float]], kl_per_token: Any = None,
                  kl_coef: float = 0.0) -> torch.Tensor:
    """The per-token reward ``R_t`` of one response: each ``(index, reward)`` of ``placements`` added at its token
    (None: not placed; two at one token add up), minus ``kl_coef * KL_t`` at every token."""
    out = torch.zeros(n_tokens, dtype=torch.float32)
    if kl_per_token is not None:
        kl = torch.as_tensor(kl_per_token, dtype=torch.float32)
        if kl.shape != (n_tokens,):
            raise ValueError(f"kl_per_token has shape {tuple(kl.shape)}, expected ({n_tokens},)")
        out -= kl_coef * kl
    for index, reward in placements:
        if index is None:
            continue
        if not -n_tokens <= index < n_tokens:
            raise IndexError(f"reward position {index} outside a response of {n_tokens} tokens")
        out[index] += reward
    return out
