"""PPO's pieces (``selfdebug.rl.ppo``) against hand computations on 2-4 token tensors."""

from __future__ import annotations

import math

import pytest
import torch

from selfdebug.rl.ppo import (
    approx_kl,
    batched_gae,
    entropy_from_logits,
    gae,
    kl_penalty,
    logprobs_of,
    masked_mean,
    masked_var,
    policy_loss,
    ppo_loss,
    token_stats,
    value_loss,
    whiten,
)


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


def test_gae_three_tokens_by_hand():
    # gamma = lam = 0.5; V_3 = 0
    # delta_2 = 2 + 0 - 1 = 1;  delta_1 = 0 + 0.5 * 1 - 1 = -0.5;  delta_0 = 1 + 0.5 * 1 - 0.5 = 1
    # A_2 = 1;  A_1 = -0.5 + 0.25 * 1 = -0.25;  A_0 = 1 + 0.25 * -0.25 = 0.9375
    adv, ret = gae(t(1, 0, 2), t(0.5, 1, 1), gamma=0.5, lam=0.5)
    assert torch.allclose(adv, t(0.9375, -0.25, 1.0))
    assert torch.allclose(ret, t(1.4375, 0.75, 2.0))  # A + V


def test_gae_lambda_one_is_the_papers_sum_and_defaults_are_papers_gamma():
    # gamma = lam = 1: A_t = (sum of rewards from t) - V_t
    adv, _ = gae(t(1, 0, 2), t(0.5, 1, 1), gamma=1.0, lam=1.0)
    assert torch.allclose(adv, t(2.5, 1.0, 1.0))
    # defaults gamma 0.99, lam 0.95; a reward of 5 at the last of 4 tokens, V = 0: A_t = 5 (0.99 * 0.95)^(3 - t)
    adv, ret = gae(t(0, 0, 0, 5), torch.zeros(4))
    g = 0.99 * 0.95
    assert torch.allclose(adv, t(5 * g**3, 5 * g**2, 5 * g, 5.0))
    assert torch.allclose(ret, adv)


def test_batched_gae_matches_per_sequence_and_ignores_padding():
    rewards = torch.tensor([[1.0, 0.0, 2.0, 0.5], [0.3, -1.0, 7.0, 7.0]])
    values = torch.tensor([[0.5, 1.0, 1.0, -0.2], [0.1, 0.4, 9.0, 9.0]])  # 9s and 7s on padding must not leak
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    adv, ret = batched_gae(rewards, values, mask)
    for row, n in ((0, 4), (1, 2)):
        a, r = gae(rewards[row, :n], values[row, :n])
        assert torch.allclose(adv[row, :n], a) and torch.allclose(ret[row, :n], r)
    assert adv[1, 2:].tolist() == [0.0, 0.0] and ret[1, 2:].tolist() == [0.0, 0.0]
    # row 1 by hand: delta_1 = -1 - 0.4 = -1.4, delta_0 = 0.3 + 0.99 * 0.4 - 0.1 = 0.596
    assert adv[1, 1].item() == pytest.approx(-1.4)
    assert adv[1, 0].item() == pytest.approx(0.596 + 0.99 * 0.95 * -1.4)


def test_policy_loss_clips_by_hand():
    # ratios 1, 1.5, 0.5; advantages 1, 1, -1; clip 0.2
    # token 0: max(-1, -1) = -1; token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(0.5, 0.8) = 0.8 (clipped)
    logp, old, adv = torch.log(t(1.0, 1.5, 0.5)), torch.zeros(3), t(1, 1, -1)
    loss, frac = policy_loss(logp, old, adv)
    assert loss.item() == pytest.approx((-1 - 1.2 + 0.8) / 3)
    assert frac.item() == pytest.approx(2 / 3)
    loss, frac = policy_loss(logp, old, adv, mask=t(1, 1, 0))
    assert loss.item() == pytest.approx(-1.1) and frac.item() == pytest.approx(0.5)


def test_clipped_loss_has_the_printed_losss_gradient_on_fresh_samples():
    # at ratio 1 (first epoch) the gradient is that of -mean(A * logp), the paper's printed objective
    logits = torch.randn(1, 3, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    tokens, adv = torch.tensor([[0, 3, 1]]), torch.tensor([[1.0, -2.0, 0.5]])
    logp = logprobs_of(logits, tokens)
    loss, _ = policy_loss(logp, logp.detach(), adv)
    (g1,) = torch.autograd.grad(loss, logits)
    (g2,) = torch.autograd.grad(-(adv * logprobs_of(logits, tokens)).mean(), logits)
    assert torch.allclose(g1, g2)


def test_value_loss_by_hand():
    values, old, returns = t(1.0, 0.0), t(0.5, 0.5), t(2.0, 0.0)
    # token 0: (1 - 2)^2 = 1 vs (0.7 - 2)^2 = 1.69; token 1: 0 vs (0.3 - 0)^2 = 0.09
    loss, frac = value_loss(values, old, returns)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.09) / 2) and frac.item() == 1.0
    loss, _ = value_loss(values, old, returns, clip_range_value=None)
    assert loss.item() == pytest.approx(0.25)


def test_entropy_kl_and_masked_statistics():
    logits = torch.log(t(0.5, 0.25, 0.25))
    assert entropy_from_logits(logits).item() == pytest.approx(1.5 * math.log(2))
    assert entropy_from_logits(torch.zeros(2, 4)).tolist() == pytest.approx([math.log(4)] * 2)
    assert approx_kl(t(0.0, 0.2), t(0.0, 0.0)).item() == pytest.approx(0.01)
    assert kl_penalty(t(-1.0, -2.0), t(-1.5, -1.0)).tolist() == pytest.approx([0.5, -1.0])
    x, m = t(1, 2, 3, 100), t(1, 1, 1, 0)
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    assert masked_var(x, m).item() == pytest.approx(1.0)  # unbiased: ((1 + 0 + 1) / 2)
    w = whiten(x, m)
    assert w.tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert masked_mean(torch.tensor([[1.0, 3.0], [5.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]), dim=1).tolist() == [2.0, 5.0]


def test_ppo_loss_combines_the_parts():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 6, generator=g)
    tokens = torch.randint(0, 6, (2, 3), generator=g)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    values, old_values = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    old_logp = logprobs_of(logits, tokens) - 0.1
    adv, ret = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    out = ppo_loss(logprobs_of(logits, tokens), entropy_from_logits(logits), values, old_logp, old_values, adv, ret,
                   mask, vf_coef=0.3, entropy_coef=0.01)
    pl, _ = policy_loss(logprobs_of(logits, tokens), old_logp, adv, mask)
    vl, _ = value_loss(values, old_values, ret, mask)
    ent = masked_mean(entropy_from_logits(logits), mask)
    assert out.loss.item() == pytest.approx((pl + 0.3 * vl - 0.01 * ent).item())
    assert out.approx_kl.item() == pytest.approx(0.5 * 0.01)


@pytest.mark.parametrize("chunk", [None, 1, 2, 5])
def test_token_stats_in_chunks_give_the_same_values_and_gradients(chunk):
    """Chunked (and, with grad on, checkpointed) log-probs and entropies through the head equal the one-shot
    ones, and so do the gradients they send back to the hidden states and the head's weight."""
    g = torch.Generator().manual_seed(3)
    head = torch.nn.Linear(4, 7, bias=False)
    hidden = torch.randn(2, 5, 4, generator=g, requires_grad=True)
    tokens = torch.randint(0, 7, (2, 5), generator=g)
    weights = torch.randn(2, 5, generator=g)
    logits = head(hidden) / 0.7
    want_lp, want_ent = logprobs_of(logits, tokens), entropy_from_logits(logits)
    want = torch.autograd.grad((weights * (want_lp + 0.3 * want_ent)).sum(), [hidden, head.weight])
    lp, ent = token_stats(hidden, head, tokens, 0.7, chunk)
    torch.testing.assert_close(lp, want_lp)
    torch.testing.assert_close(ent, want_ent)
    got = torch.autograd.grad((weights * (lp + 0.3 * ent)).sum(), [hidden, head.weight])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(token_stats(hidden, head, tokens, 0.7, chunk)[0], want_lp)
