"""PPO rollouts on the embedded model: transformers ``generate`` on the policy (``rl.rollout_engine: hf``) against
llama.cpp serving the merged model as a GGUF (f16, and q8_0: ``rl.rollout_gguf_type``) with the RL adapter swapped
in (``llamacpp``, ``selfdebug.rl.engine``), on the same prompts, batch and lengths, in one run; with the rest of a PPO step
(scoring under policy, reference and critic; the update) timed on the same rollout, so the share of sampling shows.

What is measured per engine: seconds and response tokens per second of one rollout of ``--batch`` prompts; for
llama.cpp also its one-off costs (writing the base GGUF, loading it) and its per-update cost (writing the RL
adapter as a GGUF adapter and swapping it in), and the mismatch its samples have with the trainer (mean
``log pi_engine - log pi_trainer`` over the sampled tokens, the share of importance weights capped at
``rl.is_cap``), which the truncated importance-sampling correction absorbs.

The prompts are the profile's refinement chats ("Refine" and "Explain + Refine" in turn) for the first MBPP training
problems, each shown a wrong answer (the problem's own reference with its return value broken) and a feedback line:
realistic prompt lengths and replies, no collection needed. The RL adapter has small random B (an adapter a few
updates in), so llama.cpp applies a live adapter, not a zero one.

    python benchmarks/bench_rl_rollout.py [--profile cpu] [--batch 16] [--max-new-tokens 512]

Writes ``benchmarks/results/rl_rollout.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "rl_rollout"


def prompts_for(n: int) -> list:
    """Refinement chats of the first ``n`` MBPP training problems, the formats in turn."""
    from selfdebug.problems import load_benchmark
    from selfdebug.prompts import PROMPT_TYPES, refine_chat

    chats = []
    for i, p in enumerate(load_benchmark("mbpp", split="train", limit=n)):
        wrong = p.reference.replace("return ", "return None and ", 1)
        feedback = f"The code above is wrong: it fails the test\n{p.test_script.strip().splitlines()[0]}"
        chats.append(refine_chat(p, wrong, feedback, PROMPT_TYPES[i % len(PROMPT_TYPES)]))
    return chats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="rollouts (default: the profile's rl.batch_size)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the profile's rl.max_new_tokens")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the last run's .json")
    args = ap.parse_args()
    from selfdebug.io import atomic_write_json, atomic_write_text

    if args.render:
        atomic_write_text(OUT.with_suffix(".md"), render(json.loads(OUT.with_suffix(".json").read_text())))
        return
    import torch
    from transformers import AutoTokenizer

    from selfdebug.config import ROLLOUT_GGUF_TYPES, load_config
    from selfdebug.generate.chat import render_chat
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.generate.hf import pick_dtype
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings
    from selfdebug.rl import ppo
    from selfdebug.rl.engine import base_gguf, make_rollout_engine
    from selfdebug.rl.policy import build_policy, stop_at_end_of_turn
    from selfdebug.rl.step import PPOSettings, ppo_step, rollout, score

    config = load_config(args.profile)
    rc = config.rl
    batch = args.batch or rc.batch_size
    max_new = args.max_new_tokens or rc.max_new_tokens
    model_path = resolve_model(backend_settings(config.model)["id"])
    dtype = pick_dtype(rc.dtype, "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    prompt_ids = [tokenizer(render_chat(c, tokenizer, config.model.chat_format), add_special_tokens=False)["input_ids"]
                  for c in prompts_for(batch)]
    settings = PPOSettings(temperature=rc.temperature, max_new_tokens=max_new, ppo_epochs=rc.ppo_epochs,
                           mini_batch_size=rc.mini_batch_size, kl_coef=rc.kl_coef, is_cap=rc.is_cap)
    res: dict = {"cpu": describe_cpu(), "profile": args.profile, "batch": batch, "max_new_tokens": max_new,
                 "temperature": rc.temperature, "ppo_epochs": rc.ppo_epochs, "trainer_dtype": str(dtype).removeprefix("torch."),
                 "prompt_tokens_mean": round(sum(map(len, prompt_ids)) / len(prompt_ids), 1),
                 "command": "python benchmarks/bench_rl_rollout.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="bench_rl_rollout_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        policy = build_policy(model_path, None, lora_r=rc.lora_r, lora_alpha=rc.lora_alpha,
                              lora_targets=rc.lora_targets, dtype=dtype, merged_dir=work / "merged")
        tokenizer.save_pretrained(str(work / "merged"))
        res["policy_load_seconds"] = round(time.perf_counter() - t0, 1)
        stop_at_end_of_turn(policy, tokenizer)
        torch.manual_seed(0)
        with torch.no_grad():
            for name, p in policy.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 1e-3)

        torch.manual_seed(1)
        t0 = time.perf_counter()
        ro_hf = rollout(policy, tokenizer, prompt_ids, settings)
        hf_s = time.perf_counter() - t0
        hf_tokens = int(ro_hf.response_mask.sum())
        res["hf"] = {"seconds": round(hf_s, 1), "response_tokens": hf_tokens, "tokens_per_s": round(hf_tokens / hf_s, 1)}
        print(json.dumps({"hf": res["hf"]}), flush=True)

        n_ctx = max(map(len, prompt_ids)) + max_new + 1
        ro_lc = None
        for gguf_type in ROLLOUT_GGUF_TYPES:
            t0 = time.perf_counter()
            gguf = base_gguf(work / "merged", work / "engine", gguf_type)
            export_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            engine = make_rollout_engine(gguf, work / "engine", n_parallel=batch, n_ctx=n_ctx,
                                         pad_id=tokenizer.pad_token_id)
            if engine is None:
                res[gguf_type] = {"error": "llama.cpp cannot serve on this machine (see the log)"}
                continue
            load_s = time.perf_counter() - t0
            sync_s = engine.sync(policy)
            t0 = time.perf_counter()
            ro = engine.rollout(prompt_ids, settings, list(range(batch)))
            lc_s = time.perf_counter() - t0
            engine.close()
            tokens = int(ro.response_mask.sum())
            t0 = time.perf_counter()
            with torch.no_grad():
                trainer, _, _ = score(policy, ro, settings.temperature, settings.mini_batch_size, settings.logit_chunk)
            score_s = time.perf_counter() - t0
            _, mismatch = ppo.truncated_is_weights(trainer, ro.behaviour_logprobs, ro.response_mask, rc.is_cap)
            res[gguf_type] = {"seconds": round(lc_s, 1), "response_tokens": tokens,
                              "tokens_per_s": round(tokens / lc_s, 1), "gguf_seconds": round(export_s, 1),
                              "load_seconds": round(load_s, 1), "sync_seconds": round(sync_s, 2),
                              "score_seconds": round(score_s, 1), "speedup": round(tokens / lc_s / res["hf"]["tokens_per_s"], 2),
                              **{k: round(v, 5) for k, v in mismatch.items()}}
            print(json.dumps({gguf_type: res[gguf_type]}), flush=True)
            ro_lc = ro_lc or ro
        if ro_lc is not None:  # the rest of a PPO step on a llama.cpp rollout: scoring again inside, then the update
            optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=rc.learning_rate)
            places = [[(int(ro_lc.response_mask[r].sum()) - 1, 0.0)] for r in range(batch)]
            t0 = time.perf_counter()
            ppo_step(policy, optimizer, ro_lc, places, settings)
            res["ppo_step_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), render(res))
    print(render(res))


def render(res: dict) -> str:
    from selfdebug.config import ROLLOUT_GGUF_TYPES

    hf = res["hf"]
    rows = [f"| transformers generate (policy, {res['trainer_dtype']}) | {hf['seconds']} | {hf['response_tokens']} | "
            f"**{hf['tokens_per_s']}** | 1.00x | – | – | – |"]
    notes = []
    for t in ROLLOUT_GGUF_TYPES:
        r = res.get(t)
        if r is None:
            continue
        if "error" in r:
            rows.append(f"| llama.cpp, {t} GGUF + GGUF LoRA | {r['error']} | | | | | | |")
            continue
        rows.append(f"| llama.cpp, {t} GGUF + GGUF LoRA | {r['seconds']} | {r['response_tokens']} | "
                    f"**{r['tokens_per_s']}** | {r['speedup']:.2f}x | {r['engine_kl']} | {100 * r['is_clip_frac']:.2f}% | "
                    f"{r['is_weight_mean']} |")
        notes.append(f"{t}: the GGUF took {r['gguf_seconds']} s to write (once per run), loading {r['load_seconds']} s, "
                     f"each adapter swap {r['sync_seconds']} s")
    text = ("# PPO rollouts: transformers against llama.cpp\n\n"
            f"{res['cpu']}. {res['batch']} rollouts of the {res['profile']} profile's refinement prompts (mean "
            f"{res['prompt_tokens_mean']} prompt tokens), up to {res['max_new_tokens']} new tokens at temperature "
            f"{res['temperature']}, the same prompts for every engine; the trainer in {res['trainer_dtype']}. "
            "Mismatch: the mean of log pi_engine - log pi_trainer over the sampled tokens (an estimate of "
            "KL(engine || trainer), nats per token), the share of tokens whose importance weight is above the cap, "
            "and the mean weight.\n\n"
            "| engine | seconds | response tokens | tokens/s | speed-up | mismatch (nats/token) | capped | mean weight |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n")
    if notes:
        text += "; ".join(notes) + ".\n\n"
    if "ppo_step_seconds" in res:
        first = next(res[t] for t in ROLLOUT_GGUF_TYPES if "score_seconds" in res.get(t, {}))
        text += (f"The rest of a PPO step, the same for every engine: scoring the rollout under policy, reference and "
                 f"critic took {first['score_seconds']} s, and the whole `ppo_step` (scoring again, then "
                 f"{res.get('ppo_epochs', '-')} epoch(s) of updates) {res['ppo_step_seconds']} s.\n\n")
    return text + f"Rerun: `{res['command']}`.\n"


if __name__ == "__main__":
    main()
