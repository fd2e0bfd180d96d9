"""The RL policy (LeDex App. A.3): the SFT model with a fresh LoRA adapter to train and a linear value head on the
same body ("value = linear head on the policy model").

The SFT adapter is merged into the weights first, so the adapter PPO trains is the only one: ``with
policy.reference():`` (PEFT's ``disable_adapter``) runs exactly the SFT model, the reference of the KL penalty,
with no second copy of the weights in memory. A fresh LoRA adapter starts with ``B = 0``, so at step 0 the policy
*is* the reference (KL 0). The value head starts at zero: an untrained critic predicts 0 rather than noise, and the
first advantages are the rewards' own GAE sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` numbers them: the forward pass that scores a sampled
    response must see the tokens where generation saw them, or its log-probs are not those of the sample."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyWithValue(torch.nn.Module):
    """``model``: a PEFT model whose active adapter is the one trained; ``value_head``: hidden -> 1."""

    def __init__(self, model: Any, value_head: torch.nn.Linear):
        super().__init__()
        self.model = model
        self.value_head = value_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logits_to_keep: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, L, V]`` and values ``[B, L]`` (the value at position t is that of the state after token t,
        i.e. before the token at t + 1). ``logits_to_keep > 0``: the logits of the last that many positions
        only (``[B, logits_to_keep, V]``; the prompt's logits are never used, and at a 150k vocabulary they are
        most of the memory); the values stay full."""
        extra = {"logits_to_keep": logits_to_keep} if logits_to_keep else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids_of(attention_mask), output_hidden_states=True, use_cache=False,
                         **extra)
        hidden = out.hidden_states[-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return out.logits, values

    def hidden_and_values(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's hidden states ``[B, L, H]`` (what ``head`` turns into logits) and the values ``[B, L]``,
        with no logits computed (``ppo.token_stats`` makes them a chunk at a time)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids_of(attention_mask), output_hidden_states=True, use_cache=False,
                         logits_to_keep=1)
        hidden = out.hidden_states[-1]
        return hidden, self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)

    @property
    def head(self) -> torch.nn.Module:
        """The language-model head (hidden -> vocabulary logits), with its LoRA adapter where one targets it (PEFT's
        all-linear does not)."""
        return self.model.get_output_embeddings()

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The reference (SFT) policy: the trained adapter switched off."""
        with self.model.disable_adapter():
            yield

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def save(self, path: str | Path) -> Path:
        """The RL adapter (PEFT's format) and the value head (``value_head.safetensors``) in ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        self.model.save_pretrained(path)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(path / "value_head.safetensors"))
        return path


def stop_at_end_of_turn(policy: PolicyWithValue, tokenizer: Any) -> list[int]:
    """Make the policy's ``generate`` stop at any end-of-turn token of the chat format as well as at its EOS (a
    rollout is one assistant turn); returns the stop ids."""
    from selfdebug.sft.tokenize import end_of_turn_ids

    gen = policy.model.generation_config
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    gen.eos_token_id = sorted({e for e in eos if e is not None} | end_of_turn_ids(tokenizer))
    return gen.eos_token_id


def merged_sft_model(model_path: str | Path, sft_adapter: str | Path | None, dtype: torch.dtype = torch.float32,
                     device: str = "cpu", merged_dir: str | Path | None = None) -> Any:
    """The base model at ``model_path`` with the SFT adapter merged into its weights (None: the base itself), saved
    to ``merged_dir`` unless that folder exists (written whole or not at all): the reference of RL, and the base
    of the RL adapter it saves (PPO's and GRPO's)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device)
    if sft_adapter is not None:
        model = PeftModel.from_pretrained(model, str(sft_adapter)).merge_and_unload()
    if merged_dir is not None and not Path(merged_dir).is_dir():
        import shutil

        tmp = Path(f"{merged_dir}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tmp.rename(merged_dir)
    return model


def build_policy(model_path: str | Path, sft_adapter: str | Path | None = None, *, lora_r: int = 16,
                 lora_alpha: int = 32, lora_dropout: float = 0.0, lora_targets: list[str] | str = "all-linear",
                 dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0,
                 merged_dir: str | Path | None = None) -> PolicyWithValue:
    """The base model at ``model_path`` with the SFT adapter at ``sft_adapter`` merged in (None: the base is the
    reference), then a fresh LoRA adapter and a value head. ``lora_dropout`` defaults to 0: dropout would make the
    log-probs of the PPO update differ from those of the rollout for the same weights, so the ratio would not
    start at 1. ``merged_dir``: also save the merged (SFT) model there, before the RL adapter goes on, unless
    the folder exists (written whole or not at all): the base of the saved RL adapter."""
    from peft import LoraConfig, get_peft_model

    model = merged_sft_model(model_path, sft_adapter, dtype, device, merged_dir)
    torch.manual_seed(seed)
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=lora_targets,
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    hidden = model.config.get_text_config().hidden_size if hasattr(model.config, "get_text_config") \
        else model.config.hidden_size
    head = torch.nn.Linear(hidden, 1, dtype=torch.float32, device=device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return PolicyWithValue(model, head)
