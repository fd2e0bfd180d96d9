"""``SFTTrainer`` with the loss on the completion positions only (``selfdebug.sft.loss``), measured faster on a CPU
(``benchmarks/results/sft.md``).

Besides the LM head, two costs of TRL's ``compute_loss`` are avoided: its per-token entropy over the whole
vocabulary (a metric only; ``mean_token_accuracy`` is kept, from the completion logits), and, under bf16/fp16
autocast, PEFT's cast of every LoRA layer's input to the adapter's fp32 (autocast casts it straight back to bf16
for the matmul, so the cast changes no number and costs two copies of every activation).
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from selfdebug.sft.loss import add_completion_head, supports_completion_head


class CompletionSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose training loss applies the LM head to the labelled positions only;
    ``completion_head=False`` keeps TRL's loss (the old path, for comparison)."""

    def __init__(self, *args: Any, completion_head: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from peft import PeftModel

        self.batch_tokens = {"padded": 0, "real": 0}
        """Training tokens this process computed, padding included or not (``sft.batching``'s effect)."""

        base = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        self._completion_head = completion_head and supports_completion_head(base)
        if self._completion_head:
            add_completion_head(base)  # wraps TRL's patched forward, which still serves return_outputs
            if self.args.bf16 or self.args.fp16:
                from peft.tuners.tuners_utils import BaseTunerLayer

                for m in self.model.modules():
                    if isinstance(m, BaseTunerLayer):
                        m.cast_input_dtype_enabled = False

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # transformers builds its length-grouping batch sampler with a fixed seed (42): give it the run's, so that
        # another ``seed`` draws other steps, as it does with random batches
        from transformers.trainer_pt_utils import BatchRebalanceSampler

        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, BatchRebalanceSampler):
            sampler.seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return sampler

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.model.training and "attention_mask" in inputs:
            self.batch_tokens["padded"] += int(inputs["attention_mask"].numel())
            self.batch_tokens["real"] += int(inputs["attention_mask"].sum())
        if return_outputs or not self._completion_head or self.compute_loss_func is not None \
                or self.label_smoother is not None or self.args.loss_type != "nll" or self.aux_loss_enabled:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        import torch

        mode = "train" if self.model.training else "eval"
        out = model(**inputs, completion_only=True, num_items_in_batch=num_items_in_batch)
        loss = out.loss
        # as TRL and ``Trainer.compute_loss``: ``num_items_in_batch`` counts every rank's tokens, DDP averages
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        with torch.no_grad():
            n = self.accelerator.gather_for_metrics(torch.tensor(out.targets.numel(), device=loss.device)).sum()
            correct = self.accelerator.gather_for_metrics((out.logits.argmax(-1) == out.targets).sum()).sum()
        self._metrics[mode]["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss
