"""GRPO (``selfdebug.rl.grpo``) with the paper's rewards summed per completion: the reward function TRL calls adds
up exactly the placements PPO would put on the tokens, and a short run on the tiny model trains, logs the reward
and saves an adapter over the merged SFT model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from test_rl_data import collection
from test_rl_reward_fn import FakeEmbedder
from test_rl_train import FakeSandbox, overrides, records, tiny  # noqa: F401 - tiny is a fixture

from selfdebug.config import ConfigError, load_config
from selfdebug.rl.grpo import summed_reward


def test_the_grpo_reward_is_the_sum_of_the_placed_rewards():
    calls = []

    def reward(prompts, responses):
        calls.append((prompts, responses))
        return [SimpleNamespace(placements=[(3, -1.5), (7, 2.0)]), SimpleNamespace(placements=[(None, 0.0), (2, -5.0)])]

    fn = summed_reward(reward, {"a": "prompt A", "b": "prompt B"})
    out = fn(prompts=["p", "q"], completions=["x", "y"], completion_ids=[(1, 2), (3,)], prompt_id=["b", "a"],
             trainer_state=None)
    assert out == [0.5, -5.0]
    assert calls == [(["prompt B", "prompt A"], [[1, 2], [3]])]  # each completion scored against its own prompt
    with pytest.raises(KeyError, match="not among the RL prompts"):
        fn(prompts=["p"], completions=["x"], completion_ids=[(1,)], prompt_id=["zzz"])


@pytest.mark.parametrize("override", ["rl.algorithm=reinforce", "rl.num_generations=3"])
def test_bad_grpo_settings_are_refused(override):
    with pytest.raises(ConfigError, match="rl"):
        load_config("base", ["rl.algorithm=grpo", override] if "num_generations" in override else [override])


def test_grpo_trains_the_tiny_model_with_the_papers_rewards(tmp_path, tiny):  # noqa: F811
    from selfdebug.rl.train import run_rl

    root = collection(tmp_path, records())
    cfg = load_config("smoke", overrides(root, tiny, "rl.algorithm=grpo", "rl.batch_size=4", "rl.num_generations=2",
                                         "rl.steps=2", "rl.save_steps=1", "rl.limit=null"))
    sandbox = FakeSandbox()
    out = tmp_path / "grpo"
    summary = run_rl(cfg, out, sandbox=sandbox, embedder=FakeEmbedder())
    assert summary["algorithm"] == "grpo" and summary["steps"] == 2
    history = json.loads((out / "grpo_log.json").read_text())
    assert len(history) == 2 and all(isinstance(h["reward"], float) for h in history)
    assert sandbox.jobs  # the refinements ran in the (fake) sandbox, scored as PPO's are
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((out / "sft_merged").resolve())
    assert (out / "model" / "adapter_model.safetensors").is_file()
