"""Speed of SFT on the embedded model with random micro batches against micro batches grouped by length
(``sft.batching``), on the same examples.

Random micro batches pad every example to the longest of its batch; on the cpu collection (examples of 30 to 870
tokens) that is over a third of what the model computes. ``by_length`` draws each step's examples at random as
before and groups them into micro batches by length (transformers' ``batch_rebalance`` sampler), so a step learns
the same thing (the loss is normalised over the step's tokens) from less compute. Each setting trains one epoch of
the same random subset of the collection, in a child process of its own, from the same start; the table gives
the real (non-padding) tokens, the share of padding, the time and the real tokens per second, and what a whole
epoch of the collection would take at that rate.

    python benchmarks/bench_sft_batching.py [--profile cpu] [--collection runs/cpu/collect] [--records 48]

Writes ``benchmarks/results/sft_batching.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "sft_batching"
WORK = ROOT / "runs" / "bench-sft-batching"


def subset(source: Path, dest: Path, n: int, seed: int = 0) -> None:
    """A collection folder with ``n`` random refinement records of ``source`` and as many correct solutions."""
    from selfdebug.collect.dataset import REFINEMENTS, SOLUTIONS
    from selfdebug.io import read_jsonl, write_jsonl

    rng = random.Random(seed)
    records = [r for r in read_jsonl(source / REFINEMENTS) if r.get("verified")]
    solutions = list(read_jsonl(source / SOLUTIONS))
    if not records:
        raise SystemExit(f"{source / REFINEMENTS}: no record with a verified pair to train on")
    write_jsonl(dest / REFINEMENTS, rng.sample(records, min(n, len(records))))
    write_jsonl(dest / SOLUTIONS, rng.sample(solutions, min(n, len(solutions))))


def one(batching: str, profile: str, collection: Path, queue: multiprocessing.Queue) -> None:
    from selfdebug.config import load_config
    from selfdebug.logs import log_to_run_dir
    from selfdebug.sft.train import run_sft

    config = load_config(profile, [f"sft.batching={batching}", "sft.epochs=1", "sft.max_steps=null",
                                   "sft.save_steps=100000"])
    out = WORK / batching
    shutil.rmtree(out, ignore_errors=True)
    with log_to_run_dir(out, "sft"):
        s = run_sft(config, out, collection=collection)
    queue.put({"batching": batching, "dtype": s["dtype"], "examples": s["examples"]["total"], "steps": s["steps"],
               "tokens": s["tokens_seen"], "padding_share": s["padding_share"], "seconds": s["seconds"],
               "tokens_per_s": s["tokens_per_s"], "train_loss": s["train_loss"],
               "gradient_checkpointing": config.sft.gradient_checkpointing,
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--collection", default="runs/cpu/collect", help="a collection folder (notebook 03's output)")
    ap.add_argument("--records", type=int, default=48, help="refinement records (and correct solutions) to train on")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the last run's .json")
    args = ap.parse_args()
    from selfdebug.config import SFT_BATCHINGS
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.io import atomic_write_json, atomic_write_text
    from selfdebug.sft.examples import build_examples
    from selfdebug.sft.tokenize import tokenize_examples

    if args.render:
        atomic_write_text(OUT.with_suffix(".md"), render(json.loads(OUT.with_suffix(".json").read_text())))
        return
    source = Path(args.collection) if Path(args.collection).is_absolute() else ROOT / args.collection
    collection = WORK / "collection"
    subset(source, collection, args.records)
    ctx = multiprocessing.get_context("spawn")  # a fresh process per setting
    rows = []
    for batching in SFT_BATCHINGS:
        queue = ctx.Queue()
        proc = ctx.Process(target=one, args=(batching, args.profile, collection, queue))
        proc.start()
        proc.join()
        rows.append(queue.get() if proc.exitcode == 0 else {"batching": batching,
                                                            "error": f"child exited with {proc.exitcode}"})
        print(json.dumps(rows[-1]), flush=True)
    from transformers import AutoTokenizer

    from selfdebug.config import load_config
    from selfdebug.generate.provision import resolve_model
    from selfdebug.generate.runner import backend_settings

    config = load_config(args.profile)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(backend_settings(config.model)["id"]))
    whole, _ = tokenize_examples(tokenizer, build_examples(source, tuple(config.sft.formats),
                                                           config.sft.code_generation), config.sft.max_length)
    res = {"cpu": describe_cpu(), "profile": args.profile, "collection": args.collection, "records": args.records,
           "collection_tokens": sum(len(r["input_ids"]) for r in whole), "rows": rows,
           "command": "python benchmarks/bench_sft_batching.py " + " ".join(sys.argv[1:])}
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), render(res))


def render(res: dict) -> str:
    total = res["collection_tokens"]
    lines = []
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"| {r['batching']} | {r['error']} | | | | | | |")
            continue
        epoch = total / r["tokens_per_s"] / 60 if r.get("tokens_per_s") else None
        lines.append(f"| {r['batching']} | {r['examples']} | {r['tokens']} | {r['padding_share']:.1%} | "
                     f"{r['seconds']} | **{r['tokens_per_s']}** | {epoch:.0f} | {r['peak_rss_mb']} |")
    return ("# SFT speed: random micro batches or grouped by length (`sft.batching`)\n\n"
            f"{res['cpu']}. The {res['profile']} profile's SFT (dtype {res['rows'][0].get('dtype', '?')}), one epoch "
            f"of the same {res['records']} random refinement records and {res['records']} correct solutions of "
            f"`{res['collection']}`, each setting in its own process. Tokens are the real ones (no padding); the "
            f"epoch column is the whole collection ({total} tokens) at that rate.\n\n"
            "| batching | examples | tokens | padding | seconds | tokens/s | minutes per epoch | peak RSS, MB |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + f"\n\nRerun: `{res['command']}`.\n")


if __name__ == "__main__":
    main()
