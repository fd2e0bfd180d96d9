"""The RL policy (``selfdebug.rl.policy``) on the tiny model: the SFT adapter merged, a fresh RL adapter on top;
the reference (adapter off) is exactly the SFT model, before and after the RL adapter moves."""

from __future__ import annotations

import pytest
import torch

from selfdebug.rl.policy import build_policy, position_ids_of
from selfdebug.rl.ppo import logprobs_of


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selfdebug.generate.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("rl_policy")
    path = build_tiny_model(root / "model", seed=0)
    base = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    torch.manual_seed(3)
    # init_lora_weights=False: random A and B, so the "SFT" adapter changes the model
    sft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                          task_type="CAUSAL_LM"))
    sft.save_pretrained(root / "sft")
    return path, root / "sft"


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 300, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding, as rollouts have
    return ids, mask


def sequence_logprobs(model, ids, mask) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_of(mask)).logits
    return logprobs_of(logits[:, :-1], ids[:, 1:])


def test_reference_is_the_sft_model(tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path, sft_dir = tiny
    ids, mask = batch()
    base = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    base_lp = sequence_logprobs(base, ids, mask)
    sft_lp = sequence_logprobs(PeftModel.from_pretrained(base, str(sft_dir)), ids, mask)
    assert (sft_lp - base_lp).abs().max() > 1e-2  # the SFT adapter matters, so the check below means something

    policy = build_policy(path, sft_dir, lora_r=4, lora_alpha=8)
    with torch.no_grad(), policy.reference():
        ref_logits, _ = policy(ids, mask)
    ref_lp = logprobs_of(ref_logits[:, :-1], ids[:, 1:])
    torch.testing.assert_close(ref_lp, sft_lp, atol=1e-5, rtol=1e-5)

    with torch.no_grad():
        pol_logits, values = policy(ids, mask)
    torch.testing.assert_close(logprobs_of(pol_logits[:, :-1], ids[:, 1:]), sft_lp, atol=1e-5, rtol=1e-5)
    assert values.shape == ids.shape and values.abs().max() == 0  # a zero-initialised critic

    # move the RL adapter: the policy changes, the reference does not
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
        moved_logits, _ = policy(ids, mask)
        with policy.reference():
            ref_again, _ = policy(ids, mask)
    assert (logprobs_of(moved_logits[:, :-1], ids[:, 1:]) - sft_lp).abs().max() > 1e-2
    torch.testing.assert_close(logprobs_of(ref_again[:, :-1], ids[:, 1:]), sft_lp, atol=1e-5, rtol=1e-5)


def test_only_the_rl_adapter_and_value_head_train(tiny):
    path, sft_dir = tiny
    policy = build_policy(path, sft_dir, lora_r=4, lora_alpha=8)
    names = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("value_head.") for n in names), names
    assert any(n.startswith("value_head.") for n in names)
