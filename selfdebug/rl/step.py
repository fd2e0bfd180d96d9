"""One PPO iteration on a batch of prompts: sample responses, score them under the policy, the reference and the
critic, place the rewards (``positions.token_rewards``), GAE, then a few epochs of clipped updates.

The reward itself is the caller's: ``reward_fn`` gets the prompts' indices and the sampled response ids and returns,
per response, the ``(token index, reward)`` placements (the paper's two: the explanation reward at the last
explanation token, the refinement reward at the last code token). Everything else is PPO as TRL does it, on the
pieces of ``selfdebug.rl.ppo``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from selfdebug.rl import ppo
from selfdebug.rl.policy import PolicyWithValue
from selfdebug.rl.positions import token_rewards

Placements = list[tuple[int | None, float]]


@dataclass
class PPOSettings:
    """The PPO knobs; ``RlConfig`` holds the same names. Beyond gamma (the paper's), TRL's PPO defaults."""

    gamma: float = ppo.GAMMA
    lam: float = ppo.LAM
    clip_range: float = ppo.CLIP_RANGE
    clip_range_value: float | None = ppo.CLIP_RANGE_VALUE
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    kl_coef: float = 0.05
    ppo_epochs: int = 4
    mini_batch_size: int = 8
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    max_new_tokens: int = 768
    temperature: float = 0.8
    """Sampling temperature; the scored (and trained) policy is the tempered one, ``logits / temperature``, as in
    TRL, so that the log-probs PPO uses are those of the distribution the tokens were drawn from."""
    logit_chunk: int | None = 128
    """Response positions whose vocabulary logits exist at once (``ppo.token_stats``; None: all): the logits of a
    mini-batch are most of the update's memory at a 152k vocabulary."""
    gradient_checkpointing: bool = True
    """Recompute the body's activations in the backward pass of the update: about a third more update time, a
    fraction of its memory (measured in ``benchmarks/bench_rl_memory.py``)."""
    top_p: float = 1.0
    """Below 1 the samples come from a truncated distribution that the scored log-probs do not describe (the
    ratio is then biased); 1, like TRL's PPO. Top-k is always off for the same reason."""
    is_cap: float = 2.0
    """Cap of the truncated importance weights when another engine sampled the rollout (``ppo.truncated_is_weights``)."""


@dataclass
class Rollout:
    """Prompt (left-padded) then response (right-padded) as one sequence per row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response_mask: torch.Tensor
    """``[B, T]``: 1 on the response's tokens up to and including its first end-of-turn token."""
    behaviour_logprobs: torch.Tensor | None = None
    """``[B, T]``: log-probs of the response tokens under the engine that sampled them, when that is not the
    trained model itself (``selfdebug.rl.engine``); PPO then weights its policy term by truncated importance
    sampling. None: the policy sampled them (transformers ``generate``)."""

    @property
    def responses(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]

    def response_ids(self, row: int) -> list[int]:
        return self.responses[row][self.response_mask[row].bool()].tolist()


@torch.no_grad()
def rollout(policy: PolicyWithValue, tokenizer: Any, prompts: Sequence[Sequence[int]],
            settings: PPOSettings) -> Rollout:
    """Sample one response per prompt (token ids) from the policy."""
    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    device = policy.value_head.weight.device
    eos = policy.model.generation_config.eos_token_id
    out = policy.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True,
                                temperature=settings.temperature, top_p=settings.top_p, top_k=0,
                                max_new_tokens=settings.max_new_tokens, pad_token_id=pad)
    response_mask = response_mask_of(out[:, width:], eos if isinstance(eos, list) else [eos])
    return Rollout(out, torch.cat([mask.to(device), response_mask], dim=1), width, response_mask)


def response_mask_of(responses: torch.Tensor, end_ids: Sequence[int | None]) -> torch.Tensor:
    """1 up to and including each row's first end-of-turn token, 0 after it (``generate`` pads finished rows)."""
    is_end = torch.zeros_like(responses, dtype=torch.bool)
    for e in set(end_ids) - {None}:
        is_end |= responses == e
    after_end = (is_end.long().cumsum(-1) - is_end.long()) > 0
    return (~after_end).long()


def _response_outputs(policy: PolicyWithValue, ro: Rollout, rows: Any = slice(None), temperature: float = 1.0,
                      chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs ``[b, T]`` of each response token under the tempered policy, the entropies of the distributions
    they were drawn from, and the values of the states before each."""
    p, n = ro.prompt_len, ro.responses.shape[1]
    # the hidden state at position t predicts token t + 1; the value at t is that of the state before token
    # t + 1. Positions p - 1 .. p + n - 2 predict the n response tokens.
    hidden, values = policy.hidden_and_values(ro.input_ids[rows], ro.attention_mask[rows])
    logprobs, entropy = ppo.token_stats(hidden[:, p - 1: p - 1 + n], policy.head, ro.responses[rows], temperature,
                                        chunk)
    return logprobs, entropy, values[:, p - 1: p - 1 + n]


def score(policy: PolicyWithValue, ro: Rollout, temperature: float = 1.0, rows_at_once: int | None = None,
          chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs and values of the response tokens under the policy, and log-probs under the reference,
    ``rows_at_once`` rows at a time (None: all at once), ``chunk`` positions at a time through the head."""
    batch = ro.input_ids.shape[0]
    step = rows_at_once or batch
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for start in range(0, batch, step):
        rows = slice(start, start + step)
        logprobs, _, values = _response_outputs(policy, ro, rows, temperature, chunk)
        with policy.reference():
            ref_logprobs, _, _ = _response_outputs(policy, ro, rows, temperature, chunk)
        parts.append((logprobs, values, ref_logprobs))
    return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


@contextlib.contextmanager
def _updating(policy: PolicyWithValue, checkpointing: bool) -> Iterator[None]:
    """Train mode for the update, with the body's activations checkpointed when asked (transformers checkpoints
    only in train mode); eval mode again afterwards, so that generation keeps its KV cache (transformers turns
    the cache off while checkpointing in train mode)."""
    model = policy.model
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    policy.train()
    try:
        yield
    finally:
        policy.eval()
        if checkpointing:
            model.activation_checkpointing_disable()


def ppo_step(policy: PolicyWithValue, optimizer: torch.optim.Optimizer, ro: Rollout,
             placements: Sequence[Placements], settings: PPOSettings,
             sync_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None) -> dict[str, float]:
    """PPO on one rollout with the rewards placed at ``placements`` (indices into each response's real
    tokens); returns the statistics of the update. ``sync_gradients``: called on the trainable parameters after
    each backward pass, before clipping (data-parallel ranks average their gradients there). Advantages are
    whitened over this rollout (one rank's share, when several ranks train)."""
    mask = ro.response_mask
    with torch.no_grad():
        old_logprobs, old_values, ref_logprobs = score(policy, ro, settings.temperature, settings.mini_batch_size,
                                                       settings.logit_chunk)
        is_weights, is_stats = None, {}
        if ro.behaviour_logprobs is not None:
            is_weights, is_stats = ppo.truncated_is_weights(old_logprobs, ro.behaviour_logprobs.to(old_logprobs),
                                                            mask, settings.is_cap)
        kl = ppo.kl_penalty(old_logprobs, ref_logprobs) * mask
        rewards = torch.zeros_like(old_logprobs)
        for row, places in enumerate(placements):
            n = int(mask[row].sum())
            rewards[row, :n] = token_rewards(n, places, kl[row, :n], settings.kl_coef)
        advantages, returns = ppo.batched_gae(rewards, old_values, mask, settings.gamma, settings.lam)
        if settings.whiten_advantages:
            advantages = ppo.whiten(advantages, mask)
    stats: dict[str, list[float]] = {}
    batch = ro.input_ids.shape[0]
    with _updating(policy, settings.gradient_checkpointing):
        for _ in range(settings.ppo_epochs):
            order = torch.randperm(batch)
            for start in range(0, batch, settings.mini_batch_size):
                idx = order[start: start + settings.mini_batch_size]
                logprobs, entropy, values = _response_outputs(policy, ro, idx, settings.temperature,
                                                              settings.logit_chunk)
                out = ppo.ppo_loss(logprobs, entropy, values,
                                   old_logprobs[idx], old_values[idx], advantages[idx], returns[idx], mask[idx],
                                   settings.clip_range, settings.clip_range_value, settings.vf_coef,
                                   settings.entropy_coef, None if is_weights is None else is_weights[idx])
                optimizer.zero_grad()
                out.loss.backward()
                if sync_gradients is not None:
                    sync_gradients(policy.trainable_parameters())
                torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), settings.max_grad_norm)
                optimizer.step()
                for key in ("loss", "policy", "value", "entropy", "approx_kl", "clip_frac", "value_clip_frac"):
                    stats.setdefault(key, []).append(float(getattr(out, key).detach()))
    summary = {k: sum(v) / len(v) for k, v in stats.items()}
    summary.update(is_stats)
    summary["kl_ref"] = float(ppo.masked_mean(kl, mask))
    summary["reward_mean"] = float(sum(r for places in placements for _, r in places)) / max(len(placements), 1)
    summary["reward_total"] = float(ppo.masked_mean(rewards, mask))
    return summary


def train_steps(policy: PolicyWithValue, tokenizer: Any, prompts: Sequence[Sequence[int]],
                reward_fn: Callable[[Rollout], Sequence[Placements]], settings: PPOSettings, steps: int,
                learning_rate: float) -> list[dict[str, float]]:
    """``steps`` iterations of rollout + ``ppo_step`` on the same prompts (AdamW on the trainable parameters):
    what a trainer loop does per batch, for tests and small runs."""
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=learning_rate)
    history = []
    for _ in range(steps):
        ro = rollout(policy, tokenizer, prompts, settings)
        places = reward_fn(ro)
        history.append(ppo_step(policy, optimizer, ro, places, settings))
    return history
