"""One PPO step of our trainer against the last TRL release that shipped a PPO trainer (TRL 1.12.0,
``trl.experimental.ppo``; removed in 1.13), on the same model, prompts, batch, lengths, PPO epochs and mini-batches.

Each side runs in a child process of its own (so its peak memory is its own) and reports the seconds of its
rollout (generation), of the rest of its step (scoring and the PPO epochs) and in all, per response token:

- **ours**: ``selfdebug.rl.step`` as ``run_rl`` calls it: transformers ``generate`` on the policy (``rollout``),
  then ``ppo_step`` (scoring under policy, reference and critic, GAE, the clipped updates), with the paper's
  rewards placed at their own tokens (here a +1/-1 reward at each response's last token: what the reward is does
  not change the cost; the sandbox, CodeBLEU and embedder are not part of the comparison);
- **TRL 1.12.0**: ``PPOTrainer.train()`` for one batch, with the same LoRA on the policy (``peft_config``: the
  reference is the policy with its adapter off, as ours), and what it requires besides: a value model and a reward
  model, each a sequence-classification head on the same base model (TRL's PPO trains a full separate critic; its
  reward model is one forward pass per rollout, counted in its step, which ours does not have). Its rollout time is
  the time spent in its ``batch_generation``.

TRL 1.12.0 is installed by this bench into ``runs/bench-envs/trl-1.12.0`` (``pip install --no-deps --target``) and
put first on the child's ``PYTHONPATH``, over the project's own environment: torch, transformers, PEFT and
accelerate are the same on both sides, only the trainer differs.

    python benchmarks/bench_rl_trl.py [--profile cpu] [--batch 8] [--mini-batch 4] [--epochs 1] [--max-new-tokens 128]

Writes ``benchmarks/results/rl_trl.{json,md}``. The defaults are smaller than the cpu profile's RL (16 rollouts of up
to 512 tokens, 2 epochs), so that both sides finish in minutes on 2 cores; tokens per second is what is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "rl_trl"
TRL_VERSION = "1.12.0"
ENV = ROOT / "runs" / "bench-envs" / f"trl-{TRL_VERSION}"


def ensure_trl_env() -> Path:
    """TRL 1.12.0 alone in a folder of its own (written beside, then renamed: a killed install leaves nothing)."""
    if (ENV / "trl" / "experimental" / "ppo" / "ppo_trainer.py").is_file():
        return ENV
    tmp = ENV.with_name(ENV.name + ".tmp")
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp),
                    f"trl=={TRL_VERSION}"], check=True)
    tmp.rename(ENV)
    return ENV


def _setup(args: argparse.Namespace):
    import torch
    from bench_rl_rollout import prompts_for
    from transformers import AutoTokenizer

    from selfdebug.config import load_config
    from selfdebug.generate.chat import render_chat
    from selfdebug.generate.hf import pick_dtype
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings

    config = load_config(args.profile)
    model_path = resolve_model(backend_settings(config.model)["id"])
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    prompt_ids = [tokenizer(render_chat(c, tokenizer, config.model.chat_format), add_special_tokens=False)["input_ids"]
                  for c in prompts_for(args.batch)]
    torch.manual_seed(0)
    return config, model_path, tokenizer, prompt_ids, pick_dtype(config.rl.dtype, "cpu")


def child_ours(args: argparse.Namespace) -> dict:
    import torch

    from selfdebug.rl import step as step_module
    from selfdebug.rl.policy import build_policy, stop_at_end_of_turn
    from selfdebug.rl.step import PPOSettings, ppo_step, rollout

    config, model_path, tokenizer, prompt_ids, dtype = _setup(args)
    rc = config.rl
    policy = build_policy(model_path, None, lora_r=rc.lora_r, lora_alpha=rc.lora_alpha, lora_targets=rc.lora_targets,
                          dtype=dtype)
    stop_at_end_of_turn(policy, tokenizer)
    settings = PPOSettings(temperature=rc.temperature, max_new_tokens=args.max_new_tokens, ppo_epochs=args.epochs,
                           mini_batch_size=args.mini_batch, kl_coef=rc.kl_coef, vf_coef=rc.vf_coef,
                           logit_chunk=rc.logit_chunk, gradient_checkpointing=rc.gradient_checkpointing)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=rc.learning_rate)
    t0 = time.perf_counter()
    ro = rollout(policy, tokenizer, prompt_ids, settings)
    rollout_s = time.perf_counter() - t0
    lengths = ro.response_mask.sum(1).tolist()
    placements = [[(n - 1, 1.0 if i % 2 else -1.0)] for i, n in enumerate(lengths)]
    scored = {"s": 0.0}
    real_score = step_module.score

    def timed_score(*a, **k):
        t = time.perf_counter()
        out = real_score(*a, **k)
        scored["s"] += time.perf_counter() - t
        return out

    step_module.score = timed_score
    t0 = time.perf_counter()
    ppo_step(policy, optimizer, ro, placements, settings)
    update_s = time.perf_counter() - t0
    return {"side": "ours", "rollout_seconds": rollout_s, "scoring_seconds": scored["s"],
            "optimisation_seconds": update_s - scored["s"], "step_seconds": rollout_s + update_s,
            "response_tokens": int(sum(lengths)), "dtype": str(dtype).removeprefix("torch.")}


def child_trl(args: argparse.Namespace) -> dict:
    import tempfile

    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if trl.__version__ != TRL_VERSION:
        raise RuntimeError(f"expected TRL {TRL_VERSION} first on the path, imported {trl.__version__} from {trl.__file__}")
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    config, model_path, tokenizer, prompt_ids, dtype = _setup(args)
    rc = config.rl
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    value = AutoModelForSequenceClassification.from_pretrained(str(model_path), num_labels=1, dtype=dtype)
    reward = AutoModelForSequenceClassification.from_pretrained(str(model_path), num_labels=1, dtype=dtype)
    for m in (value, reward):
        m.config.pad_token_id = tokenizer.pad_token_id
    generated = {"s": 0.0, "tokens": 0}
    real_generation = trl_ppo.batch_generation

    def timed_generation(model, queries, *a, **k):
        t = time.perf_counter()
        query_responses, logits = real_generation(model, queries, *a, **k)
        generated["s"] += time.perf_counter() - t
        responses = query_responses[:, queries.shape[1]:]
        is_eos = responses == tokenizer.eos_token_id
        first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full_like(is_eos[:, 0], responses.shape[1],
                                                                                         dtype=torch.long))
        generated["tokens"] += int(first.sum())
        return query_responses, logits

    trl_ppo.batch_generation = timed_generation
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PPOConfig(output_dir=tmp, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                        num_mini_batches=args.batch // args.mini_batch, num_ppo_epochs=args.epochs,
                        response_length=args.max_new_tokens, temperature=rc.temperature, total_episodes=args.batch,
                        local_rollout_forward_batch_size=args.batch, learning_rate=rc.learning_rate,
                        kl_coef=rc.kl_coef, vf_coef=rc.vf_coef, stop_token="eos", report_to="none",
                        num_sample_generations=0, save_strategy="no", bf16=dtype == torch.bfloat16, use_cpu=True,
                        logging_steps=1, seed=0, dataloader_num_workers=0)
        trainer = PPOTrainer(args=cfg, processing_class=tokenizer, model=policy, ref_model=None, reward_model=reward,
                             train_dataset=Dataset.from_dict({"input_ids": prompt_ids}), value_model=value,
                             peft_config=LoraConfig(r=rc.lora_r, lora_alpha=rc.lora_alpha, lora_dropout=0.0,
                                                    target_modules=rc.lora_targets, task_type="CAUSAL_LM"))
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    return {"side": f"TRL {TRL_VERSION}", "rollout_seconds": generated["s"], "scoring_seconds": None,
            "optimisation_seconds": total - generated["s"], "step_seconds": total,
            "response_tokens": generated["tokens"], "dtype": str(dtype).removeprefix("torch.")}


def run_child(side: str, argv: list[str]) -> dict:
    env = dict(os.environ)
    if side == "trl":
        env["PYTHONPATH"] = os.pathsep.join([str(ensure_trl_env()), str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, __file__, "--child", side, *argv], env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"side": side, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--mini-batch", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the last run's .json")
    args = ap.parse_args()
    if args.child:
        row = (child_ours if args.child == "ours" else child_trl)(args)
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(row), flush=True)
        return
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.io import atomic_write_json, atomic_write_text

    if args.render:
        atomic_write_text(OUT.with_suffix(".md"), render(json.loads(OUT.with_suffix(".json").read_text())))
        return
    argv = ["--profile", args.profile, "--batch", str(args.batch), "--mini-batch", str(args.mini_batch),
            "--epochs", str(args.epochs), "--max-new-tokens", str(args.max_new_tokens)]
    rows = []
    for side in ("ours", "trl"):
        rows.append(run_child(side, argv))
        print(json.dumps(rows[-1]), flush=True)
    res = {"cpu": describe_cpu(), "profile": args.profile, "batch": args.batch, "mini_batch": args.mini_batch,
           "epochs": args.epochs, "max_new_tokens": args.max_new_tokens, "trl_version": TRL_VERSION, "rows": rows,
           "command": "python benchmarks/bench_rl_trl.py " + " ".join(sys.argv[1:])}
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), render(res))
    print(render(res))


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def render(res: dict) -> str:
    lines = []
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"| {r['side']} | {r['error']} | | | | | | |")
            continue
        per_tok = r["step_seconds"] / max(r["response_tokens"], 1)
        lines.append(f"| {r['side']} | {_fmt(r['rollout_seconds'])} | {_fmt(r['scoring_seconds'])} | "
                     f"{_fmt(r['optimisation_seconds'])} | {_fmt(r['step_seconds'])} | {r['response_tokens']} | "
                     f"**{r['response_tokens'] / r['step_seconds']:.2f}** ({1000 * per_tok:.0f} ms) | "
                     f"{r['peak_rss_mb']} |")
    return ("# One PPO step: ours against TRL's last PPO trainer\n\n"
            f"{res['cpu']}. The {res['profile']} profile's model and RL LoRA; {res['batch']} rollouts of refinement "
            f"prompts, up to {res['max_new_tokens']} new tokens, {res['epochs']} PPO epoch(s) of mini-batches of "
            f"{res['mini_batch']}; each side in its own process. TRL {res['trl_version']}'s scoring is inside its "
            "update column (its step is one loop); its step also runs a reward model, which ours replaces by the "
            "paper's rewards placed at their tokens.\n\n"
            "| trainer | rollout s | scoring s | optimisation s | step s | response tokens | tokens/s (per token) | "
            "peak RSS, MB |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + f"\n\nRerun: `{res['command']}`.\n")


if __name__ == "__main__":
    main()
