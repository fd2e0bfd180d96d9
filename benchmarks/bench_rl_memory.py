"""Peak memory and time of one PPO update on the embedded model: the logits of every response position at once and
every activation kept (what a plain PPO trainer does), against the logits a chunk at a time and checkpointed
activations (``rl.logit_chunk``, ``rl.gradient_checkpointing``: the profile's defaults), on the same rollout.

Each setting runs in a child process of its own, so its peak resident memory (``ru_maxrss``) is its own: the model,
the scoring of the rollout under the policy, the reference and the critic, then ``--epochs`` PPO epochs of
mini-batches, exactly ``selfdebug.rl.step.ppo_step``. The rollout is synthetic (random prompt and response tokens
of the given lengths): memory and time depend on the shapes, not the text. Sizes default to the cpu profile's RL
section (mini-batch 4, responses up to ``max_new_tokens`` 512) with a 600-token prompt (a refinement chat).

    python benchmarks/bench_rl_memory.py [--batch 4] [--prompt 600] [--response 512] [--epochs 1]

Writes ``benchmarks/results/rl_memory.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "rl_memory"

SETTINGS = {
    "plain": {"logit_chunk": None, "gradient_checkpointing": False},
    "chunked logits": {"logit_chunk": 128, "gradient_checkpointing": False},
    "chunked + checkpointed (default)": {"logit_chunk": 128, "gradient_checkpointing": True},
}


def one(name: str, args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    import torch

    from selfdebug.config import load_config
    from selfdebug.generate.hf import pick_dtype
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings
    from selfdebug.rl.policy import build_policy
    from selfdebug.rl.step import PPOSettings, Rollout, ppo_step

    config = load_config(args.profile)
    rc = config.rl
    dtype = pick_dtype(rc.dtype, "cpu")
    torch.manual_seed(0)
    policy = build_policy(resolve_model(backend_settings(config.model)["id"]), None, lora_r=rc.lora_r,
                          lora_alpha=rc.lora_alpha, lora_targets=rc.lora_targets, dtype=dtype)
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    vocab = policy.head.weight.shape[0]
    g = torch.Generator().manual_seed(1)
    b, p, n = args.batch, args.prompt, args.response
    ids = torch.randint(0, min(vocab, 150000), (b, p + n), generator=g)
    ro = Rollout(ids, torch.ones_like(ids), p, torch.ones(b, n, dtype=torch.long))
    settings = PPOSettings(ppo_epochs=args.epochs, mini_batch_size=b, temperature=rc.temperature,
                           kl_coef=rc.kl_coef, **SETTINGS[name])
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=rc.learning_rate)
    places = [[(n // 2, 1.0), (n - 1, -1.0)] for _ in range(b)]
    t0 = time.perf_counter()
    stats = ppo_step(policy, optimizer, ro, places, settings)
    seconds = time.perf_counter() - t0
    queue.put({"setting": name, **SETTINGS[name], "dtype": str(dtype).removeprefix("torch."),
               "seconds": round(seconds, 1), "model_loaded_mb": round(loaded_mb),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "loss": round(stats["loss"], 6), "entropy": round(stats["entropy"], 4)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--batch", type=int, default=4, help="rollouts = one mini-batch")
    ap.add_argument("--prompt", type=int, default=600)
    ap.add_argument("--response", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the last run's .json")
    args = ap.parse_args()
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.io import atomic_write_json, atomic_write_text

    if args.render:
        atomic_write_text(OUT.with_suffix(".md"), render(json.loads(OUT.with_suffix(".json").read_text())))
        return

    ctx = multiprocessing.get_context("spawn")  # a fresh process per setting: its peak is its own
    rows = []
    for name in args.settings:
        queue = ctx.Queue()
        proc = ctx.Process(target=one, args=(name, args, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            rows.append({"setting": name, **SETTINGS[name], "error": f"child exited with {proc.exitcode}"})
        else:
            rows.append(queue.get())
        print(json.dumps(rows[-1]), flush=True)
    res = {"cpu": describe_cpu(), "profile": args.profile, "batch": args.batch, "prompt_tokens": args.prompt,
           "response_tokens": args.response, "ppo_epochs": args.epochs, "rows": rows,
           "command": "python benchmarks/bench_rl_memory.py " + " ".join(sys.argv[1:])}
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), render(res))


def render(res: dict) -> str:
    rows = res["rows"]
    lines = [f"| {r['setting']} | {r.get('dtype', '-')} | {r.get('seconds', '-')} | {r.get('model_loaded_mb', '-')} | "
             f"**{r.get('peak_rss_mb', r.get('error'))}** | {r.get('loss', '-')} |" for r in rows]
    return ("# Memory of one PPO update on the embedded model\n\n"
            f"{res['cpu']}. One mini-batch of {res['batch']} rollouts, {res['prompt_tokens']} prompt + "
            f"{res['response_tokens']} response tokens, {res['ppo_epochs']} PPO epoch(s), the {res['profile']} "
            "profile's RL LoRA; scoring (policy, reference, critic) and the update, each setting in its own process. "
            "The loss must agree across settings (the same update). A child that exited with -9 was killed by "
            "SIGKILL: on Linux, the kernel's OOM killer when the machine's memory ran out.\n\n"
            "| setting | dtype | seconds | RSS after model load, MB | peak RSS, MB | loss |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines) + f"\n\nRerun: `{res['command']}`.\n")


if __name__ == "__main__":
    main()
