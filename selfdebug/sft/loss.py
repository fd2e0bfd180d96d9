"""The causal LM loss computed on the completion positions only.

A causal LM's own forward applies the LM head (here about a quarter of the weights: vocabulary 151,936) to every
position, prompt and padding included, though only the positions whose next-token label is not -100 enter the loss.
TRL's fused head avoids the full logits, but on a CPU it scores every position too (only its Triton kernel
compacts) and runs its backward in fp32. ``add_completion_head`` lets ``model(..., labels=..., completion_only=True)``
run the body, gather the hidden states of the labelled positions and apply the head to those alone: the same loss
and gradients as the standard shifted loss (``tests/unit/test_sft_loss.py``), for a fraction of the head's cost.
Called through the top-level (PEFT, DDP) wrapper, so the distributed gradient hooks still see the forward.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Any

import torch

IGNORE = -100

# Config fields of models whose logits are not plain ``lm_head(h)`` (soft-capping, scales): those keep the
# trainer's own loss (``supports_completion_head``).
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


@dataclass
class CompletionOutput:
    """``loss``: summed NLL of the labelled tokens over ``num_items_in_batch`` (their count when not given);
    ``logits`` (``[n, vocab]``) and ``targets`` (``[n]``) of those n tokens, for metrics."""

    loss: torch.Tensor
    logits: torch.Tensor
    targets: torch.Tensor


def completion_loss(hidden: torch.Tensor, lm_head: torch.nn.Module, labels: torch.Tensor,
                    num_items_in_batch: torch.Tensor | int | None = None) -> CompletionOutput:
    """The shifted causal LM loss from the body's ``hidden`` states (``[batch, seq, d]``): the state at position t
    predicts label t+1, so only states ``t`` with ``labels[:, t + 1] != -100`` go through ``lm_head``."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logits = lm_head(hidden[:, :-1][mask])
    # fp32 log-softmax, like transformers' ``ForCausalLMLoss``; sum then divide, so gradient accumulation and
    # several ranks weigh every token alike (the Trainer passes the tokens of the whole step)
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[mask], reduction="sum")
    denom = mask.sum() if num_items_in_batch is None else num_items_in_batch
    return CompletionOutput(loss / torch.as_tensor(denom, device=loss.device).clamp(min=1), logits, targets[mask])


def supports_completion_head(model: Any) -> bool:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return model.get_output_embeddings() is not None and all(
        getattr(config, k, None) is None for k in _LOGIT_TRANSFORMS)


def add_completion_head(model: Any) -> None:
    """Patch ``model`` (the causal LM, before or inside its PEFT wrapper) so that ``completion_only=True`` returns
    a ``CompletionOutput``; without it the forward is the previous one."""
    previous = model.forward

    @functools.wraps(type(model).forward)  # keeps the signature that ``generate`` checks its kwargs against
    def forward(self: Any, *args: Any, completion_only: bool = False, **kwargs: Any) -> Any:
        if not completion_only:
            return previous(*args, **kwargs)
        labels = kwargs.pop("labels")
        num_items = kwargs.pop("num_items_in_batch", None)
        kwargs["use_cache"] = False
        # looked up on each call: PEFT and FSDP replace modules after patching
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        return completion_loss(hidden, self.get_output_embeddings(), labels, num_items)

    model.forward = types.MethodType(forward, model)
