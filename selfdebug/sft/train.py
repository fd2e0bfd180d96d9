"""Stage 4 (notebook 04): supervised fine-tuning on a collection, with TRL's ``SFTTrainer`` and PEFT.

``run_sft(config)`` builds the examples (``examples.build_examples``), tokenises them with the loss mask of
``tokenize`` (loss on the final reply only), and trains ``config.model`` with LoRA (default) or fully, with
the profile's schedule (the paper: 2 epochs, batch 128, AdamW, lr 2e-5, 500 warm-up steps, cosine decay;
``batch_size`` examples per optimizer step as ``micro_batch_size`` x gradient accumulation). Precision is the
machine's (``dtype: auto``: bf16 on a GPU or a CPU with AVX512-BF16 / AMX, else fp32), recorded in the
summary.

Outputs in ``runs/<profile>/sft/``: ``config.yaml``, ``examples.jsonl`` (what was trained on, with ids),
``checkpoints/`` (every ``save_steps``; a killed run resumes from the newest), ``model/`` (the adapter or the
full model, with the tokenizer), ``log.jsonl`` (loss and learning rate per step), ``curves.png`` and
``summary.json``. A finished run with the same config and examples returns at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, SFT_BATCHINGS, Config
from selfdebug.generate.cpu import cpu_summary
from selfdebug.io import atomic_write_json, write_jsonl
from selfdebug.sft.examples import build_examples, example_counts
from selfdebug.sft.tokenize import tokenize_examples

log = logging.getLogger(__name__)
MODEL_DIR = "model"


def sft_dir(config: Config, run_dir: str | Path | None = None) -> Path:
    return Path(run_dir) if run_dir is not None else REPO_ROOT / "runs" / config.profile / "sft"


def collection_dir(config: Config) -> Path:
    c = config.sft.collection
    if c is None:
        return REPO_ROOT / "runs" / config.profile / "collect"
    p = Path(c)
    return p if p.is_absolute() else REPO_ROOT / p


def _digest(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` (the Trainer writes ``trainer_state.json`` last)."""
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _dtype(name: str, device: str) -> Any:
    from selfdebug.generate.hf import pick_dtype

    return pick_dtype(name, device)


def _rank() -> int:
    """This process's rank under ``accelerate launch`` / ``torchrun`` (0 when not distributed)."""
    import os

    return int(os.environ.get("RANK", "0"))


def weights_digest(model: Any) -> str:
    """SHA-256 of the trainable parameters (names and values): equal on every rank after a correct
    distributed run."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def run_sft(config: Config, run_dir: str | Path | None = None, collection: str | Path | None = None,
            completion_head: bool = True) -> dict[str, Any]:
    """Train; resumable (a rerun after a kill continues from the newest checkpoint). Under ``torchrun`` or
    ``accelerate launch`` every rank trains its share of each batch and rank 0 alone writes the artifacts; the run fails
    if the ranks' weights differ at the end. ``completion_head=False`` trains with TRL's own loss (the slower path,
    kept for ``benchmarks/bench_sft.py``)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig

    from selfdebug.generate.hf import pick_device
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings
    from selfdebug.sft.trainer import CompletionSFTTrainer

    sc = config.sft
    out = sft_dir(config, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(collection) if collection is not None else collection_dir(config)
    examples = build_examples(source, tuple(sc.formats), sc.code_generation, sc.refinement)
    if sc.limit is not None:
        examples = examples[: sc.limit]
    if not examples:
        raise ValueError(f"{source}: no SFT examples (no correct solutions and no verified pairs)")
    model_path = resolve_model(backend_settings(config.model)["id"])
    # gradient checkpointing recomputes activations, it does not change the update (equal losses in
    # benchmarks/results/sft_memory.md): a run is the same run with it on or off, so it stays out of the key
    sft_keys = {**config.to_dict()["sft"], "gradient_checkpointing": False}
    key = _digest({"sft": sft_keys, "model": str(model_path), "seed": config.seed,
                   "examples": [e["example_id"] for e in examples]})
    summary_path = out / "summary.json"
    if summary_path.is_file() and (out / MODEL_DIR).is_dir():
        done = json.loads(summary_path.read_text())
        if done.get("key") == key:
            log.info("sft: already trained with this config and data (%s); nothing to do", out)
            return {**done, "skipped": True}
    main = _rank() == 0
    if main:
        config.save(out / "config.yaml")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, dropped = tokenize_examples(tokenizer, examples, sc.max_length)
    if dropped:
        log.warning("sft: %d of %d examples are longer than max_length %d and are left out", len(dropped),
                    len(examples), sc.max_length)
    if main:
        kept = [e for e in examples if e["example_id"] not in set(dropped)]
        write_jsonl(out / "examples.jsonl", [{**e, "n_tokens": len(r["input_ids"]), "n_completion": r["n_completion"]}
                                             for e, r in zip(kept, rows, strict=True)])
    device = pick_device(config.model.device)
    dtype = _dtype(sc.dtype, device)
    log.info("sft: %d examples (%s), %s on %s in %s", len(rows), example_counts(examples), sc.method, device, dtype)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    peft_config = None
    if sc.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=sc.lora_r, lora_alpha=sc.lora_alpha, lora_dropout=sc.lora_dropout,
                                 target_modules=sc.lora_targets, task_type="CAUSAL_LM")
    train = datasets.Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "attention_mask")} for r in rows])
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if sc.batch_size % (sc.micro_batch_size * world):
        raise ValueError(f"sft.batch_size {sc.batch_size} is not a multiple of micro_batch_size x processes "
                         f"({sc.micro_batch_size} x {world}): the examples per step would not be batch_size")
    accumulation = sc.batch_size // (sc.micro_batch_size * world)  # examples per step stay batch_size
    checkpoints = out / "checkpoints"
    args = TrlSFTConfig(
        output_dir=str(checkpoints), num_train_epochs=sc.epochs, per_device_train_batch_size=sc.micro_batch_size,
        gradient_accumulation_steps=accumulation, learning_rate=sc.learning_rate, warmup_steps=sc.warmup_steps,
        lr_scheduler_type=sc.scheduler, weight_decay=sc.weight_decay, optim="adamw_torch", logging_steps=1,
        save_steps=sc.save_steps, save_total_limit=2, seed=config.seed, data_seed=config.seed,
        bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16, use_cpu=device == "cpu", report_to=[],
        dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False, max_length=sc.max_length,
        train_sampling_strategy=SFT_BATCHINGS[sc.batching],
        disable_tqdm=False, dataloader_num_workers=0, include_num_input_tokens_seen="non_padding",
        activation_checkpointing=sc.gradient_checkpointing,  # transformers 5: the old name warns of removal
        **({"max_steps": sc.max_steps} if sc.max_steps else {}),
    )
    trainer = CompletionSFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                                   peft_config=peft_config, completion_head=completion_head)
    resume = latest_checkpoint(checkpoints)
    if resume is not None:
        log.info("sft: resuming from %s", resume)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    digests = _gather(weights_digest(trainer.model))
    if len(set(digests)) > 1:
        raise RuntimeError(f"sft: the ranks ended with different weights ({digests}): the distributed run is broken")
    final = out / MODEL_DIR
    tmp = out / (MODEL_DIR + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # the Trainer writes on the main process only
    if not main:
        return {"stage": "sft", "rank": _rank(), "weights_sha256": digests[_rank()]}
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # the model folder appears whole or not at all
    history = [h for h in trainer.state.log_history if "loss" in h]
    write_jsonl(out / "log.jsonl", trainer.state.log_history)
    trained_tokens = sum(r["n_completion"] for r in rows)  # per epoch
    summary = {"stage": "sft", "key": key, "examples": example_counts(examples), "dropped_too_long": len(dropped),
               "method": sc.method, "completion_head": completion_head,
               "dtype": str(dtype).removeprefix("torch."), "device": device, "machine": cpu_summary(),
               "steps": trainer.state.global_step, "resumed_from": resume.name if resume else None,
               "train_loss": result.training_loss, "first_loss": history[0]["loss"] if history else None,
               "last_loss": history[-1]["loss"] if history else None, "seconds": round(seconds, 1),
               "tokens_seen": int(trainer.state.num_input_tokens_seen),
               # a resumed run timed only its own part: no rate for it
               "tokens_per_s": round(trainer.state.num_input_tokens_seen / seconds, 1) if seconds and not resume
               else None, "completion_tokens_per_epoch": trained_tokens, "batching": sc.batching,
               # of the tokens this process computed, the share that was padding (random micro batches pad
               # each example to the longest of its batch; ``sft.batching: by_length`` groups them)
               "padding_share": round(1 - trainer.batch_tokens["real"] / trainer.batch_tokens["padded"], 4)
               if trainer.batch_tokens["padded"] else None,
               "model": str(final), "base_model": str(model_path), "world_size": len(digests),
               "weights_sha256": digests[0]}
    from selfdebug.sft.curves import curves_figure

    curves_figure(trainer.state.log_history, out / "curves.png")
    atomic_write_json(summary_path, summary)
    return summary
