"""A PPO iteration (``selfdebug.rl.step``) on the tiny model: the scored log-probs are those generation sampled
from, padding after the end of a response is masked, and a few PPO steps with a toy reward (one point per token
from a fixed fifth of the vocabulary) raise the policy's probability of those tokens, with a fixed seed."""

from __future__ import annotations

import pytest
import torch

from selfdebug.rl.policy import build_policy
from selfdebug.rl.step import PPOSettings, ppo_step, rollout, score, train_steps

TARGET = 100  # token ids below this earn the toy reward: about 20% of the tiny vocabulary


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    from selfdebug.generate.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("rl_step") / "model", seed=0)
    return path, AutoTokenizer.from_pretrained(str(path))


def prompts(tok, n: int) -> list[list[int]]:
    # two lengths, so rows are left-padded
    return [tok("def add(a, b):\n")["input_ids"], tok("The code above is wrong here")["input_ids"]] * (n // 2)


def test_scored_logprobs_are_the_sampling_distributions(tiny):
    path, tok = tiny
    torch.manual_seed(0)
    policy = build_policy(path, None, lora_r=4, lora_alpha=8)
    settings = PPOSettings(max_new_tokens=5, temperature=0.7)
    batch = prompts(tok, 2)
    torch.manual_seed(1)
    ro = rollout(policy, tok, batch, settings)
    # the same draw again, with generate's own (processed) scores
    width = ro.prompt_len
    torch.manual_seed(1)
    out = policy.model.generate(input_ids=ro.input_ids[:, :width], attention_mask=ro.attention_mask[:, :width],
                                do_sample=True, temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=5,
                                pad_token_id=tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
    assert torch.equal(out.sequences, ro.input_ids)
    expected = policy.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    with torch.no_grad():
        logprobs, values, ref = score(policy, ro, settings.temperature)
    m = ro.response_mask.bool()
    torch.testing.assert_close(logprobs[m], expected[m], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ref, logprobs)  # a fresh adapter: the policy is the reference


def test_ppo_steps_raise_a_toy_reward(tiny):
    path, tok = tiny
    torch.manual_seed(0)
    # the lm_head adapted too: the tiny model's near-uniform logits move slowly through its body alone
    policy = build_policy(path, None, lora_r=8, lora_alpha=16,
                          lora_targets=["q_proj", "v_proj", "o_proj", "down_proj", "lm_head"])
    settings = PPOSettings(max_new_tokens=6, temperature=1.0, ppo_epochs=2, mini_batch_size=6, kl_coef=0.05)
    batch = prompts(tok, 12)
    fixed = rollout(policy, tok, batch, settings)

    def target_mass() -> float:
        """Expected reward per token on fixed contexts: no sampling noise."""
        with torch.no_grad():
            logits, _ = policy(fixed.input_ids, fixed.attention_mask)
        p = torch.softmax(logits[:, fixed.prompt_len - 1: -1], -1)[..., :TARGET].sum(-1)
        return float(p[fixed.response_mask.bool()].mean())

    def reward_fn(ro):
        return [[(i, 1.0) for i, t in enumerate(ro.response_ids(r)) if t < TARGET] for r in range(len(batch))]

    before = target_mass()
    history = train_steps(policy, tok, batch, reward_fn, settings, steps=8, learning_rate=1e-2)
    after = target_mass()
    assert after > before + 0.05, (before, after, [round(h["reward_mean"], 2) for h in history])
    assert history[0]["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert history[-1]["kl_ref"] > 0


def test_response_mask_ends_after_the_first_end_token():
    from selfdebug.rl.step import response_mask_of

    responses = torch.tensor([[5, 6, 2, 0, 0], [5, 2, 6, 2, 0], [5, 6, 7, 8, 9], [3, 0, 0, 0, 0]])
    assert response_mask_of(responses, [2, 3, None]).tolist() == [
        [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_the_memory_saving_update_is_the_same_update(tiny):
    """Logits a chunk at a time and checkpointed activations change memory, not the step: from the same policy and
    rollout, a plain update and a chunked, checkpointed one end at the same weights with the same statistics, and
    generation afterwards still runs in eval mode with its cache."""
    path, tok = tiny
    batch = prompts(tok, 4)
    base = PPOSettings(max_new_tokens=6, temperature=1.0, ppo_epochs=2, mini_batch_size=2,
                       logit_chunk=None, gradient_checkpointing=False)
    saving = PPOSettings(**{**base.__dict__, "logit_chunk": 2, "gradient_checkpointing": True})
    results = []
    for settings in (base, saving):
        torch.manual_seed(0)
        policy = build_policy(path, None, lora_r=4, lora_alpha=8)
        # a moved adapter (a fresh one has B = 0, whose gradients reach A only through B)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
        torch.manual_seed(1)
        ro = rollout(policy, tok, batch, settings)
        places = [[(0, 1.0), (2, -0.5)] for _ in batch]
        # plain SGD: the weights move by lr x gradient (Adam would blow float noise in a near-zero gradient up to lr)
        optimizer = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
        start = [p.detach().clone() for p in policy.trainable_parameters()]
        torch.manual_seed(2)
        stats = ppo_step(policy, optimizer, ro, places, settings)
        assert not policy.training and not policy.model.is_activation_checkpointing
        results.append((stats, [p.detach().clone() for p in policy.trainable_parameters()]))
        assert any(not torch.equal(a, b) for a, b in zip(start, results[-1][1], strict=True))
    (stats_a, weights_a), (stats_b, weights_b) = results
    assert stats_a.keys() == stats_b.keys()
    for key in stats_a:
        assert stats_b[key] == pytest.approx(stats_a[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(weights_a, weights_b, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
