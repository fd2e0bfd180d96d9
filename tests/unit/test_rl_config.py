"""The ``rl`` section of the profiles (``selfdebug.config.RlConfig``): the paper's numbers by default, typed and
validated at load time."""

from __future__ import annotations

import pytest

from selfdebug.config import ConfigError, load_config


def test_base_has_the_papers_rl_numbers():
    rl = load_config("base").rl
    assert (rl.learning_rate, rl.batch_size, rl.gamma) == (2e-6, 64, 0.99)
    assert rl.sources == ["mbpp", "apps"] and rl.embedder == "minilm"
    assert load_config("smoke").rl.batch_size == 2


@pytest.mark.parametrize("override", [
    "rl.mini_batch_size=7",         # 64 is not a multiple of 7
    "rl.formats=[]",
    "rl.sources=[humaneval]",
    "rl.gamma=1.5",
    "rl.codebleu_weights=[1, 1]",
    "rl.kl_coef=-0.1",
    "rl.reward_clip=0",
    "rl.steps=0",
    "rl.logit_chunk=0",
    "rl.unknown_key=1",
    "rl.explanation_range=[0.7, 0.4]",
    "rl.explanation_range=[0.4]",
    "rl.explanation_range=[0.4, 1.5]",
    "rl.rollout_engine=vllm",
    "rl.rollout_gguf_type=q4_k",
    "rl.is_cap=0.5",
])
def test_bad_rl_values_are_rejected(override):
    with pytest.raises(ConfigError, match="rl"):
        load_config("base", [override])


def test_llama_cpp_rollouts_are_for_ppo_only():
    load_config("base", ["rl.rollout_engine=llamacpp"])  # PPO: fine
    with pytest.raises(ConfigError, match="rl.rollout_engine llamacpp serves our PPO trainer only"):
        load_config("base", ["rl.rollout_engine=llamacpp", "rl.algorithm=grpo"])
