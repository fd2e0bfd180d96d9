"""The completion-only loss (``selfdebug.sft.loss``) equals the standard shifted causal LM loss, in value and in
gradients, on a tiny model built here: with padding, prompts of different lengths, ``num_items_in_batch`` and
through a PEFT LoRA wrapper."""

from __future__ import annotations

import pytest
import torch

from selfdebug.sft.loss import IGNORE, add_completion_head, supports_completion_head


def tiny_lm(vocab: int = 97) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    return Qwen2ForCausalLM(config).float()


def batch(vocab: int = 97) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding
    mask[2, 7:] = 0
    labels = ids.clone()
    labels[0, :5] = IGNORE  # prompts of different lengths
    labels[1, :3] = IGNORE
    labels[2, :6] = IGNORE
    labels[mask == 0] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


def check(model: torch.nn.Module, inputs: dict[str, torch.Tensor], num_items: int | None = None) -> None:
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    ref = model(**inputs, **extra).loss
    ref.backward()
    ref_grads = grads(model)
    out = model(**inputs, **extra, completion_only=True)
    out.loss.backward()
    new_grads = grads(model)
    n = int((inputs["labels"][:, 1:] != IGNORE).sum())
    assert out.targets.numel() == n and out.logits.shape == (n, 97)
    torch.testing.assert_close(out.loss, ref, rtol=1e-6, atol=1e-6)
    assert ref_grads.keys() == new_grads.keys() and ref_grads
    for k, g in ref_grads.items():
        torch.testing.assert_close(new_grads[k], g, rtol=1e-5, atol=1e-7, msg=k)


@pytest.mark.parametrize("num_items", [None, 40])
def test_completion_loss_and_gradients_equal_the_standard_loss(num_items):
    model = tiny_lm()
    add_completion_head(model)
    check(model, batch(), num_items)


def test_completion_loss_through_a_lora_wrapper():
    from peft import LoraConfig, get_peft_model

    model = tiny_lm()
    add_completion_head(model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  lora_dropout=0.0, init_lora_weights=False))
    check(peft_model, batch())


def test_without_the_flag_the_forward_is_unchanged():
    model = tiny_lm()
    inputs = batch()
    ref = model(**inputs).logits
    add_completion_head(model)
    torch.testing.assert_close(model(**inputs).logits, ref)
    assert supports_completion_head(model)
