"""llama.cpp rollouts for PPO (``selfdebug.rl.engine``): the sampler's log-prob of the distribution it drew from,
truncated importance weights with hand values, rollouts packed from token lists, the engine serving the live RL
adapter (its log-probs match the trainer's with the adapter, not without it), the fallback to transformers with
its reason, and ``run_rl`` on llama.cpp rollouts logging the mismatch."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from selfdebug.generate.llamacpp import sample_token_logprob
from selfdebug.rl import ppo
from selfdebug.rl.engine import pack_rollout


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_the_sampler_reports_the_log_prob_of_the_distribution_it_drew_from():
    logits = np.random.default_rng(0).normal(size=500).astype(np.float32) * 3
    for seed in range(5):
        tok, lp = sample_token_logprob(logits, 0.8, 1.0, np.random.default_rng(seed), sampling=True)
        assert lp == pytest.approx(_log_softmax(logits / 0.8)[tok], abs=1e-4)
        raw_tok, raw = sample_token_logprob(logits, 0.8, 1.0, np.random.default_rng(seed))
        assert raw_tok == tok and raw == pytest.approx(_log_softmax(logits)[tok], abs=1e-4)
    # with top-p, renormalised over the nucleus the token came from
    tok, lp = sample_token_logprob(logits, 1.0, 0.5, np.random.default_rng(3), sampling=True)
    probs = np.exp(_log_softmax(logits))
    order = np.argsort(-probs)
    nucleus = order[: int(np.searchsorted(np.cumsum(probs[order]), 0.5)) + 1]
    assert tok in nucleus and lp == pytest.approx(math.log(probs[tok] / probs[nucleus].sum()), abs=1e-4)
    assert sample_token_logprob(logits, 0.0, 1.0, np.random.default_rng(0), sampling=True) == (int(logits.argmax()), 0.0)


def test_truncated_importance_weights_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.2, 0.3]]))  # the trainer's
    engine = torch.log(torch.tensor([[0.25, 0.5, 0.9]]))
    mask = torch.tensor([[1, 1, 0]])
    weights, stats = ppo.truncated_is_weights(old, engine, mask, cap=1.5)
    assert weights[0].tolist() == pytest.approx([1.5, 0.4, 0.0])  # 2.0 capped; 0.4; padding
    assert stats["is_clip_frac"] == pytest.approx(0.5)
    assert stats["engine_kl"] == pytest.approx((math.log(0.5) + math.log(2.5)) / 2, rel=1e-5)  # mean log(engine/trainer)
    assert stats["is_weight_mean"] == pytest.approx(0.95)


def test_the_weights_scale_each_tokens_policy_term():
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old, adv, mask = torch.tensor([[-1.1, -1.9]]), torch.tensor([[1.0, -2.0]]), torch.ones(1, 2)
    plain, _ = ppo.policy_loss(logprobs, old, adv, mask)
    ones, _ = ppo.policy_loss(logprobs, old, adv, mask, weights=torch.ones(1, 2))
    assert float(ones) == pytest.approx(float(plain))
    first_only, _ = ppo.policy_loss(logprobs, old, adv, mask, weights=torch.tensor([[1.0, 0.0]]))
    first_only.backward()
    assert logprobs.grad[0, 1] == 0 and logprobs.grad[0, 0] != 0  # a zero weight silences its token


def test_rollouts_are_packed_from_token_lists():
    ro = pack_rollout([[1, 2, 3], [4]], [[7, 8], [9, 10, 11]], [[-0.1, -0.2], [-0.3, -0.4, -0.5]], pad_id=0)
    assert ro.prompt_len == 3
    assert ro.input_ids.tolist() == [[1, 2, 3, 7, 8, 0], [0, 0, 4, 9, 10, 11]]
    assert ro.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert ro.response_ids(0) == [7, 8] and ro.response_ids(1) == [9, 10, 11]
    assert ro.behaviour_logprobs.flatten().tolist() == pytest.approx([-0.1, -0.2, 0.0, -0.3, -0.4, -0.5])
    on_meta = pack_rollout([[1]], [[2]], [[-0.1]], pad_id=0, device="meta")  # the policy's device, say a GPU
    assert {t.device.type for t in (on_meta.input_ids, on_meta.response_mask, on_meta.behaviour_logprobs)} == {"meta"}
    with pytest.raises(ValueError, match="response 1 has 3 tokens but 2 log-probs"):
        pack_rollout([[1], [2]], [[3], [4, 5, 6]], [[-1.0], [-1.0, -1.0]], pad_id=0)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A policy over the tiny model (its merged base saved with the tokenizer) and llama.cpp over that base."""
    pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    from selfdebug.generate.tiny import build_tiny_model
    from selfdebug.rl.engine import base_gguf, make_rollout_engine
    from selfdebug.rl.policy import build_policy

    root = tmp_path_factory.mktemp("rl_engine")
    model = build_tiny_model(root / "model", seed=0)
    policy = build_policy(model, None, lora_r=4, lora_alpha=8, merged_dir=root / "merged", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    tokenizer.save_pretrained(str(root / "merged"))
    gguf = base_gguf(root / "merged", root / "engine")
    engine = make_rollout_engine(gguf, root / "engine", n_parallel=3, n_ctx=64, pad_id=tokenizer.pad_token_id,
                                 probe=False)
    yield policy, tokenizer, engine
    engine.close()


def test_the_engine_serves_the_live_adapter(served):
    from selfdebug.rl.step import PPOSettings, score

    policy, tokenizer, engine = served
    settings = PPOSettings(temperature=0.8, max_new_tokens=12)
    prompts = [tokenizer(t)["input_ids"] for t in ("def add(a, b):", "Fix the bug in", "return x")]
    seeds = [11, 12, 13]
    engine.sync(policy)  # the fresh adapter: B = 0, the SFT model itself
    before = engine.rollout(prompts, settings, seeds)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # an update that moves the policy a lot
    assert engine.sync(policy) >= 0 and (engine.work_dir / "rl-adapter.1.gguf").is_file()
    ro = engine.rollout(prompts, settings, seeds)
    # same seeds, other weights: other samples or other log-probs (the swap took effect)
    assert ro.input_ids.tolist() != before.input_ids.tolist() or \
        not torch.allclose(ro.behaviour_logprobs, before.behaviour_logprobs)
    for row, p in enumerate(prompts):
        assert ro.input_ids[row, ro.prompt_len - len(p): ro.prompt_len].tolist() == p
    with torch.no_grad():
        trainer, _, reference = score(policy, ro, settings.temperature)
    mask = ro.response_mask.bool()
    gap_live = (trainer - ro.behaviour_logprobs).abs()[mask].max()
    gap_reference = (reference - ro.behaviour_logprobs).abs()[mask].max()
    assert gap_live < 0.05  # f16 weights against the trainer's f32: a small mismatch
    assert gap_reference > 10 * gap_live  # what runs is the adapted policy, not the reference
    _, stats = ppo.truncated_is_weights(trainer, ro.behaviour_logprobs, ro.response_mask, 2.0)
    assert abs(stats["engine_kl"]) < 0.01 and stats["is_clip_frac"] == 0.0


def test_a_q8_0_engine_serves_the_adapter_with_a_larger_but_small_mismatch(served, tmp_path):
    from selfdebug.rl.engine import base_gguf, make_rollout_engine
    from selfdebug.rl.step import PPOSettings, score

    policy, tokenizer, f16_engine = served
    work = f16_engine.work_dir
    q8 = base_gguf(work.parent / "merged", work, "q8_0")
    assert q8.name.endswith(".q8_0.gguf") and q8.stat().st_size < (work / "sft_merged.f16.gguf").stat().st_size
    engine = make_rollout_engine(q8, tmp_path, n_parallel=3, n_ctx=64, pad_id=tokenizer.pad_token_id, probe=False)
    try:
        engine.sync(policy)
        f16_engine.sync(policy)
        settings = PPOSettings(temperature=1.0, max_new_tokens=12)
        prompts = [tokenizer(t)["input_ids"] for t in ("def add(a, b):", "Fix the bug in", "return x")]
        gaps = {}
        for name, eng in (("q8_0", engine), ("f16", f16_engine)):
            ro = eng.rollout(prompts, settings, [1, 2, 3])
            with torch.no_grad():
                trainer, _, _ = score(policy, ro, settings.temperature)
            gaps[name] = float((trainer - ro.behaviour_logprobs).abs()[ro.response_mask.bool()].mean())
        assert gaps["f16"] < gaps["q8_0"] < 0.1
    finally:
        engine.close()


def test_without_llama_cpp_the_trainer_samples_with_transformers_and_says_why(monkeypatch, tmp_path, caplog):
    from selfdebug.generate import engine_select, probe
    from selfdebug.rl.engine import make_rollout_engine

    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (False, "llama_cpp does not import (test)"))
    with caplog.at_level(logging.WARNING):
        assert make_rollout_engine(tmp_path / "x.gguf", tmp_path, n_parallel=2, n_ctx=64, pad_id=0) is None
    assert "llama_cpp does not import (test)" in caplog.text and "transformers" in caplog.text
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))
    monkeypatch.setattr(probe, "choose_llamacpp_settings",
                        lambda s: (None, [{"settings": "configured", "how": "killed by SIGSEGV"}]))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert make_rollout_engine(tmp_path / "x.gguf", tmp_path, n_parallel=2, n_ctx=64, pad_id=0) is None
    assert "killed by SIGSEGV" in caplog.text


def test_a_failed_export_falls_back_to_transformers_and_says_why(tmp_path, monkeypatch, caplog):
    from test_rl_data import collection
    from test_rl_reward_fn import FakeEmbedder
    from test_rl_train import FakeSandbox, overrides, records

    from selfdebug.config import load_config
    from selfdebug.generate import engine_select
    from selfdebug.generate.tiny import build_tiny_model
    from selfdebug.rl import engine
    from selfdebug.rl.train import run_rl

    def broken(*a, **k):
        raise RuntimeError("llama.cpp could not re-encode the GGUF (code 1)")

    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))
    monkeypatch.setattr(engine, "base_gguf", broken)
    model = build_tiny_model(tmp_path / "model", seed=0)
    cfg = load_config("smoke", overrides(collection(tmp_path, records()), (model, "none"), "rl.steps=1",
                                         "rl.rollout_engine=llamacpp", "rl.rollout_gguf_type=q8_0"))
    with caplog.at_level(logging.WARNING):
        summary = run_rl(cfg, tmp_path / "rl", sandbox=FakeSandbox(), embedder=FakeEmbedder())
    assert summary["rollout_engine"] == "hf"
    assert "could not re-encode the GGUF" in caplog.text and "sampling with transformers" in caplog.text


def test_rl_on_llama_cpp_rollouts_logs_the_mismatch(tmp_path):
    pytest.importorskip("llama_cpp")
    from test_rl_data import collection
    from test_rl_reward_fn import FakeEmbedder
    from test_rl_train import FakeSandbox, overrides, records

    from selfdebug.config import load_config
    from selfdebug.generate.tiny import build_tiny_model
    from selfdebug.rl.train import run_rl

    model = build_tiny_model(tmp_path / "model", seed=0)
    root = collection(tmp_path, records())
    cfg = load_config("smoke", overrides(root, (model, "none"), "rl.steps=2", "rl.rollout_engine=llamacpp",
                                         "rl.limit=null"))
    summary = run_rl(cfg, tmp_path / "rl", sandbox=FakeSandbox(), embedder=FakeEmbedder())
    assert summary["rollout_engine"] == "llamacpp"
    rows = [json.loads(line) for line in (tmp_path / "rl" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert abs(r["engine_kl"]) < 0.05 and 0.0 <= r["is_clip_frac"] <= 1.0
        assert r["sync_seconds"] >= 0 and r["rollout_seconds"] > 0 and r["update_seconds"] > 0
        assert r["reward_seconds"] >= 0
    assert (tmp_path / "rl" / "engine" / "sft_merged.f16.gguf").is_file()
    rollouts = [json.loads(line) for line in (tmp_path / "rl" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * cfg.rl.batch_size


def test_ppo_weights_its_policy_term_by_the_engines_mismatch(tmp_path):
    """Behaviour log-probs equal to the trainer's give PPO's own update (weights 1); log-probs far above them
    (an engine that found the tokens much likelier) give weights near 0, so with no value loss nothing moves."""
    from selfdebug.generate.tiny import build_tiny_model
    from selfdebug.rl.policy import build_policy
    from selfdebug.rl.step import PPOSettings, Rollout, ppo_step, score

    model = build_tiny_model(tmp_path / "model", seed=0)
    settings = PPOSettings(ppo_epochs=1, mini_batch_size=2, vf_coef=0.0, kl_coef=0.0, temperature=1.0,
                           gradient_checkpointing=False, max_grad_norm=1e9)  # no norm clipping: updates stay linear
    ids = torch.randint(5, 200, (2, 10), generator=torch.Generator().manual_seed(0))
    plain = Rollout(ids, torch.ones_like(ids), 6, torch.ones(2, 4, dtype=torch.long))
    places = [[(3, 1.0)], [(3, -1.0)]]

    def update(behaviour_shift: float | None) -> torch.Tensor:
        policy = build_policy(model, None, lora_r=4, lora_alpha=8, seed=0)
        with torch.no_grad():
            for name, p in policy.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
        before = torch.cat([p.detach().flatten().clone() for p in policy.trainable_parameters()])
        ro = plain
        if behaviour_shift is not None:
            with torch.no_grad():
                trainer, _, _ = score(policy, plain)
            ro = Rollout(ids, plain.attention_mask, 6, plain.response_mask, trainer + behaviour_shift)
        torch.manual_seed(3)
        stats = ppo_step(policy, torch.optim.SGD(policy.trainable_parameters(), lr=1.0), ro, places, settings)
        if behaviour_shift == 0.0:
            assert stats["is_weight_mean"] == pytest.approx(1.0, abs=1e-5) and abs(stats["engine_kl"]) < 1e-5
        after = torch.cat([p.detach().flatten() for p in policy.trainable_parameters()])
        return after - before

    on_policy, same_engine, near_engine, far_engine = update(None), update(0.0), update(0.3), update(30.0)
    assert on_policy.abs().max() > 1e-4
    assert torch.allclose(same_engine, on_policy, atol=1e-6)
    # every token's weight is exp(-0.3), and PPO's own ratio (against the trainer's log-probs) is 1: the SGD step is
    # the on-policy one scaled by exp(-0.3). A ratio taken against the engine's log-probs would be 0.74, clipped at
    # 0.8 for the positive advantages, and would zero their gradient instead.
    assert torch.allclose(near_engine, math.exp(-0.3) * on_policy, rtol=1e-3, atol=1e-7)
    assert far_engine.abs().max() < 1e-6 * on_policy.abs().max() + 1e-9
