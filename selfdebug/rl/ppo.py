"""PPO's pieces (LeDex App. A.3, on the lines of HF TRL's PPO, which the paper used): GAE, the clipped policy and
value losses, entropy, approximate KL, clip fraction, masked means.

Tensors are ``[batch, tokens]`` over the response tokens; ``mask`` is 1 on real tokens and 0 on padding, with
responses right-padded (a prefix of ones), as generation leaves them once the prompt is cut off.

Defaults the paper leaves open (``LEDEX.md`` §4.4): ``lam = 0.95``, ``clip_range = 0.2`` and
``clip_range_value = 0.2`` are TRL's PPO defaults (and the PPO paper's clip). ``gamma = 0.99`` is the paper's.
The paper's printed loss has no clipping; we keep PPO's clipped objective, which with one epoch on fresh samples
(ratio 1) has the same gradient as the printed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GAMMA = 0.99
LAM = 0.95
CLIP_RANGE = 0.2
CLIP_RANGE_VALUE = 0.2


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | None = None) -> torch.Tensor:
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The unbiased variance over the masked entries (as TRL's, with Bessel's correction)."""
    mean = masked_mean(x, mask)
    n = x.numel() if mask is None else int(mask.sum())
    var = masked_mean((x - mean) ** 2, mask)
    return var * n / max(n - 1, 1)


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True) -> torch.Tensor:
    """``x`` normalised to unit variance over the masked entries (and zero mean unless ``shift_mean`` is off);
    padding stays 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out if mask is None else out * mask.to(x.dtype)


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float = GAMMA,
        lam: float = LAM) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of one response (``[T]`` each): ``delta_t = R_t + gamma V_{t+1} - V_t`` with
    ``V_T = 0`` (the response ends the episode), ``A_t = delta_t + gamma lam A_{t+1}``, returns ``A_t + V_t``.
    ``lam = 1`` is the paper's printed sum ``A_t = delta_t + gamma delta_{t+1} + ...``."""
    adv, ret = batched_gae(rewards[None], values[None], torch.ones_like(rewards)[None], gamma, lam)
    return adv[0], ret[0]


def batched_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = GAMMA,
                lam: float = LAM) -> tuple[torch.Tensor, torch.Tensor]:
    """``gae`` over ``[batch, T]`` right-padded responses: a padded position neither has a value nor passes one
    back, so each response ends at its last real token; advantages and returns are 0 on padding."""
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
                         f"{tuple(mask.shape)} must have one shape")
    m = mask.to(rewards.dtype)
    rewards, values = rewards * m, values.detach() * m
    T = rewards.shape[1]
    last = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)  # 0 on padding, after the end
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        out.append(last)
    advantages = torch.stack(out[::-1], dim=1)
    return advantages, (advantages + values) * m


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor | None = None, clip_range: float = CLIP_RANGE,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate ``mean(max(-A r, -A clip(r, 1-eps, 1+eps)))`` with ``r = exp(logp - logp_old)``,
    and the clip fraction (the share of tokens where the clipped term is the larger). ``weights``: a constant
    per-token factor of the surrogate (the truncated importance weights of ``truncated_is_weights`` when another
    engine sampled the tokens)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    per_token = torch.maximum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights.detach()
    loss = masked_mean(per_token, mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_frac.detach()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor | None = None,
               clip_range_value: float | None = CLIP_RANGE_VALUE) -> tuple[torch.Tensor, torch.Tensor]:
    """``0.5 * mean(max((V - G)^2, (V_clip - G)^2))`` with ``V_clip`` kept within ``clip_range_value`` of the
    values at sampling time (None: no clipping), and the clip fraction."""
    unclipped = (values - returns) ** 2
    if clip_range_value is None:
        return 0.5 * masked_mean(unclipped, mask), torch.zeros((), device=values.device)
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask).detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of the categorical distribution of ``logits`` (``[..., vocab]`` -> ``[...]``)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log p(token)`` under ``logits`` (``[B, T, V]``, ``[B, T]`` -> ``[B, T]``), in fp32."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _head_stats(hidden: torch.Tensor, head: torch.nn.Module, tokens: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(head(hidden).float() / temperature, dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)


def token_stats(hidden: torch.Tensor, head: torch.nn.Module, tokens: torch.Tensor, temperature: float = 1.0,
                chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of ``tokens`` and entropies (``[B, T]`` each) under ``head(hidden) / temperature``, from the
    hidden states ``[B, T, H]`` that predict them, ``chunk`` positions at a time (None: all at once).

    Why chunked: at Qwen's 152k vocabulary a mini-batch of 4 x 512 response tokens has 1.2 GB of fp32 logits, and
    log-softmax, exp and product keep four such tensors for the backward pass. With grad enabled each chunk runs
    under activation checkpointing, so only the hidden states are kept and one chunk's logits are rebuilt at a
    time in the backward pass: the same numbers (a test checks values and gradients), a fraction of the memory."""
    n = hidden.shape[1]
    step = chunk or n
    if step >= n:
        return _head_stats(hidden, head, tokens, temperature)
    parts = []
    for start in range(0, n, step):
        args = (hidden[:, start: start + step], head, tokens[:, start: start + step], temperature)
        if torch.is_grad_enabled():
            parts.append(torch.utils.checkpoint.checkpoint(_head_stats, *args, use_reentrant=False))
        else:
            parts.append(_head_stats(*args))
    return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)


def truncated_is_weights(old_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Truncated importance sampling for tokens drawn by another engine (llama.cpp rollouts) than the one that
    scores them (the trainer): per token ``w = min(pi_trainer / pi_engine, cap)``, computed from the log-probs
    of the sampled tokens under both at sampling time, 0 on padding. PPO's own ratio is taken against the
    trainer's log-probs, so ``w`` corrects only for the engines' mismatch (other kernels, f16 weights); the cap
    bounds its variance at the price of a small bias, as verl, OpenRLHF and TRL do for vLLM rollouts.

    Also returned, the mismatch: ``engine_kl`` (mean over the sampled tokens of ``log pi_engine - log
    pi_trainer``, an estimate of KL(engine || trainer), since the tokens are the engine's samples),
    ``is_clip_frac`` (share of tokens whose weight was capped) and ``is_weight_mean``."""
    log_ratio = (old_logprobs - behaviour_logprobs).float()
    ratio = torch.exp(log_ratio)
    weights = torch.clamp(ratio, max=cap) * mask.to(ratio.dtype)
    stats = {"engine_kl": float(masked_mean(-log_ratio, mask)),
             "is_clip_frac": float(masked_mean((ratio > cap).float(), mask)),
             "is_weight_mean": float(masked_mean(weights, mask))}
    return weights, stats


def approx_kl(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean(0.5 (logp - logp_old)^2)``, TRL's PPO statistic: second-order close to KL(old || new), >= 0."""
    return masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """The per-token ``KL_t = log pi(y_t) - log pi_ref(y_t)`` of the paper's reward (TRL's ``k1`` estimator): its
    expectation over sampled tokens is KL(pi || pi_ref), though a single token's may be negative."""
    return logprobs - ref_logprobs


@dataclass
class PPOLoss:
    loss: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_frac: torch.Tensor
    value_clip_frac: torch.Tensor


def ppo_loss(logprobs: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor, old_logprobs: torch.Tensor,
             old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
             clip_range: float = CLIP_RANGE, clip_range_value: float | None = CLIP_RANGE_VALUE,
             vf_coef: float = 0.1, entropy_coef: float = 0.0, is_weights: torch.Tensor | None = None) -> PPOLoss:
    """``policy + vf_coef * value - entropy_coef * entropy`` on the response tokens, from the current policy's
    log-probs of the sampled tokens and its per-token entropies (``token_stats``). ``vf_coef`` (the paper's alpha,
    not given) is TRL's 0.1. ``is_weights``: truncated importance weights of the policy term (``truncated_is_weights``)."""
    pl, clip_frac = policy_loss(logprobs, old_logprobs, advantages, mask, clip_range, is_weights)
    vl, v_clip = value_loss(values, old_values, returns, mask, clip_range_value)
    ent = masked_mean(entropy, mask)
    loss = pl + vf_coef * vl - entropy_coef * ent
    return PPOLoss(loss, pl.detach(), vl.detach(), ent.detach(), approx_kl(logprobs, old_logprobs, mask).detach(),
                   clip_frac, v_clip)
