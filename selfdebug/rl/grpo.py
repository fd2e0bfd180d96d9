"""GRPO (TRL's ``GRPOTrainer``) with the paper's rewards, summed per completion: the comparison the paper did not make.

GRPO has no critic and takes one scalar per completion, so the two rewards that PPO places at their own tokens
(``selfdebug.rl.positions``) are added here: ``R(r) + R(e)`` for an "Explain + Refine" reply, ``R(r)`` for a
"Refine" one, from the same ``RewardFunction`` (CodeBLEU and unit tests in the sandbox, sentence similarity) on
the same prompts (``selfdebug.rl.data``). Advantages are the rewards normalised within each prompt's group of
``rl.num_generations`` completions; the KL to the reference is TRL's ``beta`` (``rl.kl_coef``), on the policy
that starts from the SFT model, merged, with a fresh LoRA adapter (as PPO's).

    python -m selfdebug.rl --profile P --override rl.algorithm=grpo
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfdebug.config import Config
from selfdebug.io import atomic_write_json

log = logging.getLogger(__name__)


def summed_reward(reward: Any, prompts_by_id: dict[str, Any]) -> Callable[..., list[float]]:
    """A TRL reward function: for each completion, the sum of the paper's rewards that PPO would place on its
    tokens. TRL passes the dataset's columns as keyword lists (``prompt_id`` names the RL prompt) and the
    completions' token ids."""

    def ledex_reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]],
                     prompt_id: Sequence[str], **_: Any) -> list[float]:
        unknown = [p for p in prompt_id if p not in prompts_by_id]
        if unknown:
            raise KeyError(f"GRPO reward: prompt ids not among the RL prompts: {unknown[:3]}")
        scored = reward([prompts_by_id[p] for p in prompt_id], [list(ids) for ids in completion_ids])
        return [float(sum(r for _, r in s.placements)) for s in scored]

    return ledex_reward


def run_grpo(config: Config, out: Path, prompts: list[Any], *, weights: Any, sft_adapter: Path | None,
             tokenizer: Any, reward: Any, dtype: Any, device: str, merged: Path,
             key: str | None = None) -> dict[str, Any]:
    """Train with GRPO into ``out`` (``checkpoints/`` as TRL writes them, ``model/``: the adapter over
    ``merged``, the SFT model merged, written here once), ``grpo_log.json``, ``summary.json``); resumes from the
    newest checkpoint. ``reward``: the ``RewardFunction`` PPO uses; ``key``: the run's config key (a rerun with
    the same key does nothing)."""
    import datasets
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from selfdebug.generate.chat import render_chat
    from selfdebug.rl.policy import merged_sft_model
    from selfdebug.sft.train import latest_checkpoint

    rc = config.rl
    model = merged_sft_model(weights, sft_adapter, dtype, device, merged)  # the saved adapter's base, as PPO's
    tokenizer.save_pretrained(str(merged))
    # rendered prompts (the project's chat format, as PPO's rollouts see them), with the id the reward needs
    rows = [{"prompt": render_chat(p.chat, tokenizer, config.model.chat_format), "prompt_id": p.prompt_id}
            for p in prompts]
    args = GRPOConfig(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=rc.batch_size,
        num_generations=rc.num_generations, max_completion_length=rc.max_new_tokens, learning_rate=rc.learning_rate,
        max_steps=rc.steps, temperature=rc.temperature, top_p=1.0, beta=rc.kl_coef, num_iterations=rc.ppo_epochs,
        epsilon=rc.clip_range, max_grad_norm=rc.max_grad_norm, save_steps=rc.save_steps, logging_steps=1,
        report_to=[], seed=config.seed, bf16=str(dtype).endswith("bfloat16"), use_cpu=device == "cpu",
        activation_checkpointing=rc.gradient_checkpointing, disable_tqdm=False)
    lora = LoraConfig(r=rc.lora_r, lora_alpha=rc.lora_alpha, target_modules=rc.lora_targets, lora_dropout=0.0,
                      task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=[summed_reward(reward, {p.prompt_id: p for p in prompts})],
                          args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer,
                          peft_config=lora)
    resume = latest_checkpoint(out / "checkpoints")
    if resume is not None:
        log.info("rl (grpo): resuming from %s", resume)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    history = [h for h in trainer.state.log_history if "reward" in h]
    atomic_write_json(out / "grpo_log.json", history)
    final, tmp = out / "model", out / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    adapter_cfg = json.loads((tmp / "adapter_config.json").read_text())
    adapter_cfg["base_model_name_or_path"] = str(merged.resolve())
    atomic_write_json(tmp / "adapter_config.json", adapter_cfg)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    from selfdebug.rl.train import sft_weights_sha256  # train imports this module inside run_rl: no cycle

    summary = {"stage": "rl", "algorithm": "grpo", "key": key, "steps": trainer.state.global_step, "prompts": len(prompts),
               "num_generations": rc.num_generations, "seconds": round(seconds, 1),
               "resumed_from": resume.name if resume else None, "first": history[0] if history else None,
               "last": history[-1] if history else None, "model": str(final),
               "sft_weights_sha256": sft_weights_sha256(weights, sft_adapter)}
    atomic_write_json(out / "summary.json", summary)
    log.info("rl (grpo): %d steps in %.0f s; reward %s -> %s", summary["steps"], seconds,
             json.dumps((history[0] if history else {}).get("reward")),
             json.dumps((history[-1] if history else {}).get("reward")))
    return summary
