"""Stage 5 (notebook 05): PPO with the paper's split rewards (LeDex §2.3, App. A.3) on top of the SFT model.

``run_rl(config)`` loads the RL prompts of the collection (``data.load_prompts``: one per wrong solution and
instruction format of ``rl.formats``, from ``rl.sources``), builds the policy (``policy.build_policy``: the SFT
adapter merged into the weights, a fresh RL LoRA adapter and a value head; the reference of the KL term is the
same model with the RL adapter off), and runs ``rl.steps`` PPO iterations: sample ``rl.batch_size`` responses
with the live policy (``step.rollout``, transformers ``generate``; or, with ``rl.rollout_engine: llamacpp``,
llama.cpp serving the current RL adapter, ``engine``), score them (``reward_fn.RewardFunction``:
the sandbox for S_ut, CodeBLEU, embedding similarity, rewards at their tokens), update (``step.ppo_step``).

Reproducible and resumable: iteration ``s`` draws its prompts from a permutation fixed by (seed, epoch) and
seeds torch with a number fixed by (seed, s) before it samples, so an iteration's randomness depends on the
seed and its number alone, not on what ran before it in the process. A checkpoint (``checkpoints/step-N``,
every ``rl.save_steps`` and at the end, written to a temporary folder then renamed) holds the RL adapter, the
value head, the optimizer's state and ``state.json`` (step, the run's trajectory key, the seed from which the
RNG of the next iteration is derived); a rerun after a kill continues from the newest one, and the log lines of
iterations after it are dropped. ``rl.steps`` and ``rl.save_steps`` do not change the trajectory (no learning
rate schedule), so a finished run can be extended by raising ``rl.steps``; any other change to what the run
depends on is refused (another ``run_dir``, or delete ``checkpoints/``).

Outputs in ``runs/<profile>/rl/``: ``config.yaml``, ``prompts.jsonl`` (the prompts, with their reference
counts), ``log.jsonl`` (one line per iteration: mean of each reward component, KL, value loss, clip fraction,
entropy, response length), ``rollouts.jsonl`` (every sampled response with its scores), ``executions.jsonl``
(sandbox verdicts, reused), ``checkpoints/``, ``sft_merged/`` (the SFT model, merged: the base of the RL
adapter), ``model/`` (the RL adapter + value head + tokenizer), ``curves.png``, ``summary.json``.

How the RL model is evaluated: ``model/`` is a PEFT LoRA adapter folder whose ``base_model_name_or_path`` is
the absolute path of ``sft_merged/`` (a full HF model folder). Set ``model.id`` to ``runs/<profile>/rl/model``:
transformers (``AutoModelForCausalLM.from_pretrained``) loads the merged SFT weights and applies the RL adapter
on the hf backend (``backend: auto`` picks hf: the base is not a GGUF). Moving the run folder breaks the link
(rewrite ``base_model_name_or_path``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, Config
from selfdebug.generate.base import sample_seed
from selfdebug.generate.cpu import cpu_summary
from selfdebug.io import atomic_write_json, atomic_write_text, write_jsonl
from selfdebug.rl.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
MODEL_DIR = "model"
MERGED_DIR = "sft_merged"
ENGINE_DIR = "engine"
CHECKPOINTS = "checkpoints"
UNTRAJECTORY = ("steps", "save_steps", "logit_chunk", "gradient_checkpointing")
"""``rl`` keys that do not change what an iteration does (a run may be extended past its checkpoints; memory
savings compute the same update, to float rounding)."""
ROLLOUT_KEYS = ("rollout_engine", "is_cap", "rollout_gguf_type")
"""``rl`` keys of llama.cpp rollouts: out of the run's key when transformers samples (runs made before they existed
keep their key)."""


def rl_dir(config: Config, run_dir: str | Path | None = None) -> Path:
    return Path(run_dir) if run_dir is not None else REPO_ROOT / "runs" / config.profile / "rl"


def _repo_path(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else REPO_ROOT / p


def collection_dir(config: Config) -> Path:
    c = config.rl.collection
    return REPO_ROOT / "runs" / config.profile / "collect" if c is None else _repo_path(c)


def sft_source(config: Config, model_path: str | Path) -> tuple[Path | str, Path | None, Path | str]:
    """(weights to load, SFT adapter to merge or None, tokenizer folder) of ``rl.sft_adapter``."""
    given = config.rl.sft_adapter
    if given is not None and str(given).lower() == "none":
        return model_path, None, model_path
    folder = REPO_ROOT / "runs" / config.profile / "sft" / "model" if given is None else _repo_path(given)
    if folder.is_dir() and not (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file() \
            and (folder / "model").is_dir():
        folder = folder / "model"  # an SFT run folder
    tokenizer = folder if (folder / "tokenizer_config.json").is_file() else model_path
    if (folder / "adapter_config.json").is_file():
        from selfdebug.generate.engine_select import lora_base

        base = lora_base(folder)
        if base is not None and Path(base).resolve() != Path(model_path).resolve() and base != str(model_path):
            log.warning("rl: the SFT adapter %s was trained over %s, but model is %s: merging it into the latter",
                        folder, base, model_path)
        return model_path, folder, tokenizer
    if (folder / "config.json").is_file():  # a fully fine-tuned SFT model
        return folder, None, folder
    raise FileNotFoundError(f"{folder}: no SFT model (adapter_config.json or config.json); run SFT first "
                            "(notebook 04, `python -m selfdebug.sft`), or set rl.sft_adapter (none: RL on model)")


def sft_weights_sha256(weights: Path | str, sft_adapter: Path | None) -> str | None:
    """The ``weights_sha256`` of the SFT run this RL run starts from (its ``summary.json`` beside the model
    folder), so that a report can tell whether an RL model grew from the SFT model shown beside it; None where
    the SFT model is not an SFT run's (a hub id, a hand-made folder, RL on the base)."""
    model = sft_adapter if sft_adapter is not None else Path(weights)
    summary = Path(model).parent / "summary.json"
    try:
        return json.loads(summary.read_text()).get("weights_sha256") if summary.is_file() else None
    except (OSError, ValueError):
        return None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _folder_digest(folder: Path | str | None) -> str | None:
    if folder is None or not Path(folder).is_dir():
        return None  # a hub id: named by itself
    from selfdebug.generate.fingerprint import weights_fingerprint

    return weights_fingerprint(folder)


def step_seed(seed: int, step: int) -> int:
    """The torch seed of iteration ``step`` (0-based)."""
    return int(hashlib.sha256(f"rl/{seed}/{step}".encode()).hexdigest()[:15], 16)


def batch_indices(n_prompts: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The prompts of iteration ``step``: the run walks through a fresh permutation of the prompts per epoch
    (fixed by seed and epoch), ``batch_size`` at a time, across epoch boundaries."""
    import torch

    out, cache = [], {}
    for g in range(step * batch_size, (step + 1) * batch_size):
        epoch, i = divmod(g, n_prompts)
        if epoch not in cache:
            gen = torch.Generator().manual_seed(step_seed(seed, -1 - epoch))
            cache[epoch] = torch.randperm(n_prompts, generator=gen).tolist()
        out.append(cache[epoch][i])
    return out


def _read_rows(path: Path, upto: int) -> list[dict[str, Any]]:
    """The rows of a step log with ``step <= upto`` (a torn last line, from a kill mid-write, is dropped)."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= upto:
                rows.append(row)
    return rows


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    import os

    with open(path, "a") as fh:
        for r in rows:
            fh.write(json.dumps(r, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def step_row(step: int, scored: list[Any], stats: dict[str, float], seconds: float) -> dict[str, Any]:
    """One line of ``log.jsonl``: means over the batch of each reward component (explanation ones over the
    replies that have an explanation), PPO's statistics, the mean response length."""
    return {"step": step, "refinement_reward": _mean([s.refinement_reward for s in scored]),
            "explanation_reward": _mean([s.explanation_reward for s in scored]),
            "s_ut": _mean([s.s_ut for s in scored]), "s_cb": _mean([s.s_cb for s in scored]),
            "s_ex": _mean([s.s_ex for s in scored]), "pass_rate": _mean([float(s.passed) for s in scored]),
            "no_code": _mean([float(s.status == "no_code") for s in scored]),
            "with_explanation": _mean([float(s.explanation_reward is not None) for s in scored]),
            "response_tokens": _mean([float(s.n_tokens) for s in scored]), **stats, "seconds": round(seconds, 2)}


def _rollout_engine(rc: Any, out: Path, prompt_ids: list[list[int]], pad_id: int, main: bool, n_ranks: int,
                    rank: int) -> Any:
    """The llama.cpp rollout engine of ``rl.rollout_engine: llamacpp`` (None: transformers samples): rank 0 writes
    the merged SFT model's GGUF once, every rank serves its own share of the rollouts from it with its share of the
    cores. Any failure to get there (llama.cpp missing, an export or re-encoding that fails, a probe that dies on
    some rank) falls back to transformers on every rank, with a warning naming why: the ranks always agree."""
    if rc.rollout_engine != "llamacpp":
        return None
    import os

    from selfdebug.generate.engine_select import llama_cpp_available
    from selfdebug.rl import distributed
    from selfdebug.rl.engine import base_gguf, base_gguf_path, make_rollout_engine

    work = out / ENGINE_DIR
    ok, why = llama_cpp_available()  # checked first: no GGUF is written for an engine that cannot run
    if main and ok:
        try:
            base_gguf(out / MERGED_DIR, work, rc.rollout_gguf_type)
        except Exception as e:  # noqa: BLE001 - any failure means sampling with transformers, said once
            ok, why = False, f"{type(e).__name__}: {e}"
    ok, why = distributed.gather((ok, why))[0]  # rank 0's verdict, reached past the barrier by every rank
    engine = None
    if not ok:
        log.warning("rl: llama.cpp rollouts unavailable (%s): sampling with transformers", why)
    else:
        engine = make_rollout_engine(base_gguf_path(work, rc.rollout_gguf_type),
                                     work / f"rank{rank}" if n_ranks > 1 else work,
                                     n_parallel=rc.batch_size // n_ranks,
                                     n_ctx=max(len(p) for p in prompt_ids) + rc.max_new_tokens + 1, pad_id=pad_id,
                                     n_threads=max(1, len(os.sched_getaffinity(0)) // n_ranks))
    if not all(distributed.gather(engine is not None)):  # one rank's probe failed: all sample alike
        if engine is not None:
            log.warning("rl: llama.cpp cannot serve on every rank: sampling with transformers on all of them")
            engine.close()
        return None
    return engine


def run_rl(config: Config, run_dir: str | Path | None = None, collection: str | Path | None = None, *,
           sandbox: Any = None, embedder: Any = None) -> dict[str, Any]:
    """Train (see the module docstring); resumable. ``sandbox`` / ``embedder``: ready-made ones (tests inject
    doubles), else the configured sandbox and ``rl.embedder``."""
    import torch
    from transformers import AutoTokenizer

    from selfdebug.collect.common import CachedExecutor, LazySandbox
    from selfdebug.generate.chat import render_chat
    from selfdebug.generate.hf import pick_device, pick_dtype
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings
    from selfdebug.rl import distributed
    from selfdebug.rl.curves import curves_figure
    from selfdebug.rl.data import load_prompts
    from selfdebug.rl.policy import build_policy, stop_at_end_of_turn
    from selfdebug.rl.reward_fn import RewardFunction
    from selfdebug.rl.scores import SentenceEmbedder
    from selfdebug.rl.step import PPOSettings, ppo_step, rollout

    rc = config.rl
    out = rl_dir(config, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, n_ranks = distributed.world()
    main = rank == 0
    if rc.batch_size % n_ranks or rc.mini_batch_size % n_ranks:
        raise ValueError(f"rl.batch_size ({rc.batch_size}) and rl.mini_batch_size ({rc.mini_batch_size}) must be "
                         f"multiples of the number of processes ({n_ranks}): each rank trains an equal share")
    source = Path(collection) if collection is not None else collection_dir(config)
    prompts = load_prompts(source, rc.formats, rc.sources, rc.limit)
    if not prompts:
        raise ValueError(f"{source}: no RL prompts (no refinement records from {rc.sources})")
    model_path = resolve_model(backend_settings(config.model)["id"])
    weights, sft_adapter, tokenizer_dir = sft_source(config, model_path)
    rl_keys = {k: v for k, v in config.to_dict()["rl"].items() if k not in UNTRAJECTORY}
    if rc.rollout_engine == "hf":  # the llama.cpp settings do not touch a transformers-sampled run (nor its key)
        rl_keys = {k: v for k, v in rl_keys.items() if k not in ROLLOUT_KEYS}
    trajectory = _digest({"rl": rl_keys, "model": str(weights), "model_digest": _folder_digest(weights),
                          "sft": str(sft_adapter), "sft_digest": _folder_digest(sft_adapter), "seed": config.seed,
                          "chat_format": config.model.chat_format, "sandbox": config.sandbox,
                          "prompts": [p.prompt_id for p in prompts]})
    key = _digest({"trajectory": trajectory, "steps": rc.steps})
    summary_path = out / "summary.json"
    if summary_path.is_file() and (out / MODEL_DIR).is_dir():
        done = json.loads(summary_path.read_text())
        if done.get("key") == key:
            log.info("rl: already trained with this config and data (%s); nothing to do", out)
            return {**done, "skipped": True}
    checkpoints = out / CHECKPOINTS
    resume = latest_checkpoint(checkpoints)
    resumed_engine = None
    if resume is not None:
        state = json.loads((resume / "state.json").read_text())
        resumed_engine = state.get("rollout_engine")
        if state.get("trajectory") != trajectory:
            raise ValueError(f"{resume}: a checkpoint of another run (its config, model, SFT adapter or prompts "
                             "differ); use another run_dir or delete its checkpoints/")
        if state["step"] > rc.steps:
            raise ValueError(f"{resume}: checkpoint at step {state['step']}, past rl.steps={rc.steps}")
    if main:
        if resume is None:  # a fresh start writes the merged SFT model (and its GGUF) anew: the SFT model may differ
            shutil.rmtree(out / MERGED_DIR, ignore_errors=True)
            shutil.rmtree(out / ENGINE_DIR, ignore_errors=True)
        config.save(out / "config.yaml")
        write_jsonl(out / "prompts.jsonl", [p.summary() for p in prompts])
    distributed.barrier()

    device = pick_device(config.model.device)
    dtype = pick_dtype(rc.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if rc.algorithm == "grpo":  # TRL's GRPO on the same prompts and rewards, summed per completion
        from selfdebug.rl.grpo import run_grpo

        execute = CachedExecutor(out / "executions.jsonl", LazySandbox(config, sandbox))
        try:
            reward = RewardFunction(tokenizer, execute, embedder or SentenceEmbedder(rc.embedder, device=device),
                                    rc.codebleu_weights, rc.reward_clip, rc.explanation_range)
            return run_grpo(config, out, prompts, weights=weights, sft_adapter=sft_adapter,
                            tokenizer=tokenizer, reward=reward, dtype=dtype, device=device,
                            merged=out / MERGED_DIR, key=key)
        finally:
            execute.sandbox.close()
    policy = build_policy(weights, sft_adapter, lora_r=rc.lora_r, lora_alpha=rc.lora_alpha,
                          lora_targets=rc.lora_targets, dtype=dtype, device=device, seed=config.seed,
                          merged_dir=out / MERGED_DIR if main else None)
    if main:
        tokenizer.save_pretrained(str(out / MERGED_DIR))
    stop_at_end_of_turn(policy, tokenizer)
    settings = PPOSettings(gamma=rc.gamma, lam=rc.lam, clip_range=rc.clip_range, clip_range_value=rc.clip_range_value,
                           vf_coef=rc.vf_coef, entropy_coef=rc.entropy_coef, kl_coef=rc.kl_coef,
                           ppo_epochs=rc.ppo_epochs, mini_batch_size=rc.mini_batch_size // n_ranks,
                           whiten_advantages=rc.whiten_advantages, max_grad_norm=rc.max_grad_norm,
                           max_new_tokens=rc.max_new_tokens, temperature=rc.temperature,
                           logit_chunk=rc.logit_chunk, gradient_checkpointing=rc.gradient_checkpointing,
                           is_cap=rc.is_cap)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=rc.learning_rate)
    start = 0
    if resume is not None:
        start = load_checkpoint(resume, policy, optimizer)["step"]
        log.info("rl: resuming from %s (step %d of %d)", resume, start, rc.steps)
    for name in ("log.jsonl", "rollouts.jsonl") if main else ():  # a killed run's log past its checkpoint goes
        atomic_write_text(out / name, "".join(json.dumps(r, default=str) + "\n"
                                              for r in _read_rows(out / name, start)))
    prompt_ids = [tokenizer(render_chat(p.chat, tokenizer, config.model.chat_format),
                            add_special_tokens=False)["input_ids"] for p in prompts]
    engine = _rollout_engine(rc, out, prompt_ids, tokenizer.pad_token_id, main, n_ranks, rank)
    if engine is not None:
        engine.sync(policy)  # the resumed adapter (a fresh one is zero: the SFT model)
    execute = CachedExecutor(out / ("executions.jsonl" if main else f"executions.rank{rank}.jsonl"),
                             LazySandbox(config, sandbox))
    if embedder is None:
        embedder = SentenceEmbedder(rc.embedder, device=device)
    reward = RewardFunction(tokenizer, execute, embedder, rc.codebleu_weights, rc.reward_clip, rc.explanation_range)
    engine_name = "llamacpp" if engine is not None else "hf"
    if resumed_engine is not None and resumed_engine != engine_name:
        log.warning("rl: the checkpoint %s was sampled with %s, this resumed run samples with %s (llama.cpp was "
                    "unavailable at one of the two starts): the run mixes rollout engines", resume, resumed_engine,
                    engine_name)
    state = {"trajectory": trajectory, "key": key, "seed": config.seed, "rollout_engine": engine_name,
             "rng": "iteration s seeds torch with step_seed(seed, s): no RNG state to carry"}
    log.info("rl: %d prompts, %d iterations of %d rollouts, %s on %s in %s%s", len(prompts), rc.steps,
             rc.batch_size, "resumed" if resume else "fresh", device, dtype,
             f", rank {rank} of {n_ranks}" if n_ranks > 1 else "")
    t_start = time.perf_counter()
    try:
        for step in range(start, rc.steps):
            t0 = time.perf_counter()
            # rank 0's seed is the one-process run's; the other ranks sample independently
            torch.manual_seed(step_seed(config.seed, step) + rank)
            idx = distributed.shard(batch_indices(len(prompts), rc.batch_size, step, config.seed), rank, n_ranks)
            batch = [prompts[i] for i in idx]
            t_roll = time.perf_counter()
            if engine is not None:  # one seed per rollout, fixed by (seed, iteration, rank, row)
                ro = engine.rollout([prompt_ids[i] for i in idx], settings,
                                    [sample_seed(config.seed, "rl", step, rank, r) for r in range(len(idx))],
                                    device=policy.value_head.weight.device)
            else:
                ro = rollout(policy, tokenizer, [prompt_ids[i] for i in idx], settings)
            t_roll, t_reward = time.perf_counter() - t_roll, time.perf_counter()
            scored = reward(batch, [ro.response_ids(r) for r in range(len(batch))])
            t_reward, t_update = time.perf_counter() - t_reward, time.perf_counter()
            stats = ppo_step(policy, optimizer, ro, [s.placements for s in scored], settings,
                             distributed.average_gradients if n_ranks > 1 else None)
            stats.update(rollout_seconds=round(t_roll, 2), reward_seconds=round(t_reward, 2),
                         update_seconds=round(time.perf_counter() - t_update, 2))
            if engine is not None:
                stats["sync_seconds"] = round(engine.sync(policy), 2)
            if n_ranks > 1:  # the iteration's log covers every rank's rollouts
                scored = [s for part in distributed.gather(scored) for s in part]
                all_stats = distributed.gather(stats)
                stats = {k: sum(st[k] for st in all_stats) / n_ranks for k in stats}
            row = step_row(step + 1, scored, stats, time.perf_counter() - t0)
            if main:
                _append(out / "rollouts.jsonl", [{"step": step + 1, **s.to_row()} for s in scored])
                _append(out / "log.jsonl", [row])
            log.info("rl: step %d/%d: R(r) %.2f, R(e) %s, pass %.2f, KL %.4f, %.1f s", step + 1, rc.steps,
                     row["refinement_reward"], "-" if row["explanation_reward"] is None
                     else f"{row['explanation_reward']:.2f}", row["pass_rate"], row["kl_ref"], row["seconds"])
            if main and ((step + 1) % rc.save_steps == 0 or step + 1 == rc.steps):
                save_checkpoint(checkpoints, step + 1, policy, optimizer, state)
            distributed.barrier()  # no rank runs ahead of a checkpoint it could be resumed from
    finally:
        execute.sandbox.close()
        if engine is not None:
            engine.close()
    seconds = time.perf_counter() - t_start
    from selfdebug.sft.train import weights_digest

    digests = distributed.gather(weights_digest(policy))
    if len(set(digests)) > 1:
        raise RuntimeError(f"rl: the ranks' weights differ after training ({digests}): gradients were not averaged")
    if not main:
        distributed.barrier()  # rank 0 writes the model and the summary
        return json.loads(summary_path.read_text())
    final, tmp = out / MODEL_DIR, out / (MODEL_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save(tmp)
    cfg_path = tmp / "adapter_config.json"
    adapter_cfg = json.loads(cfg_path.read_text())
    adapter_cfg["base_model_name_or_path"] = str((out / MERGED_DIR).resolve())
    atomic_write_json(cfg_path, adapter_cfg)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # the model folder appears whole or not at all
    rows = _read_rows(out / "log.jsonl", rc.steps)
    curves_figure(rows, out / "curves.png")

    summary = {"stage": "rl", "key": key, "trajectory": trajectory, "steps": rc.steps,
               "resumed_from": resume.name if resume else None, "prompts": len(prompts),
               "prompts_by_format": {f: sum(p.fmt == f for p in prompts) for f in rc.formats},
               "prompts_by_source": {s: sum(p.source == s for p in prompts) for s in sorted({p.source for p in prompts})},
               "prompts_without_reference": sum(not p.refinements for p in prompts),
               "first": rows[0] if rows else None, "last": rows[-1] if rows else None,
               "seconds": round(seconds, 1), "device": device, "dtype": str(dtype).removeprefix("torch."),
               "machine": cpu_summary(), "execution": dict(execute.stats), "model": str(final), "base_model": str(out / MERGED_DIR),
               "rollout_engine": engine_name,
               "sft_adapter": str(sft_adapter) if sft_adapter else None, "weights": str(weights),
               "sft_weights_sha256": sft_weights_sha256(weights, sft_adapter),
               "weights_sha256": digests[0], "world_size": n_ranks}
    atomic_write_json(summary_path, summary)
    distributed.barrier()
    return summary
