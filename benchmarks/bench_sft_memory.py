"""Peak memory and speed of SFT on the embedded model, activations kept against checkpointed
(``sft.gradient_checkpointing``), on the same longest examples of a collection.

The peak of an SFT run is set by its longest micro-batch: the body's activations for every position, kept for the
backward pass, grow with the micro-batch's length (the LM head sees only completion positions,
``selfdebug.sft.loss``). So each setting trains ``--steps`` optimizer steps of one micro-batch (the profile's
``micro_batch_size``) on the collection's longest verified refinement chats, from the same start, each in a child
process of its own so that its peak resident memory (``ru_maxrss``) is its own. Both settings compute the same
loss (checkpointing recomputes, it does not approximate): the table shows both losses.

    python benchmarks/bench_sft_memory.py [--profile cpu] [--collection runs/calib-100/collect] [--steps 3]

Writes ``benchmarks/results/sft_memory.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "sft_memory"
SETTINGS = {"activations kept": False, "gradient checkpointing": True}


def longest_collection(source: Path, dest: Path, n: int) -> int:
    """A collection folder holding the ``n`` refinement records of ``source`` with the longest chats and verified
    pairs (and no correct solutions: only refinement examples, the long ones); returns their characters."""
    from selfdebug.collect.dataset import REFINEMENTS, SOLUTIONS
    from selfdebug.io import read_jsonl, write_jsonl

    rows = [r for r in read_jsonl(source / REFINEMENTS) if r.get("verified")]
    if not rows:
        raise SystemExit(f"{source / REFINEMENTS}: no record with a verified pair to train on")
    size = {id(r): len(json.dumps(r["chat"])) + max(len(json.dumps(p)) for p in r["verified"]) for r in rows}
    rows.sort(key=lambda r: size[id(r)], reverse=True)
    write_jsonl(dest / REFINEMENTS, rows[:n])
    write_jsonl(dest / SOLUTIONS, [])
    return sum(size[id(r)] for r in rows[:n])


def one(name: str, args: argparse.Namespace, collection: Path, queue: multiprocessing.Queue) -> None:
    from selfdebug.config import load_config
    from selfdebug.logs import log_to_run_dir
    from selfdebug.sft.train import run_sft

    micro = load_config(args.profile).sft.micro_batch_size
    config = load_config(args.profile, [
        f"sft.gradient_checkpointing={str(SETTINGS[name]).lower()}", f"sft.max_steps={args.steps}",
        f"sft.batch_size={micro}", f"sft.micro_batch_size={micro}", "sft.warmup_steps=0", "sft.code_generation=false",
        f"sft.save_steps={args.steps + 1}"])
    out = ROOT / "runs" / "bench-sft-memory" / name.replace(" ", "-")
    shutil.rmtree(out, ignore_errors=True)
    with log_to_run_dir(out, "sft"):
        s = run_sft(config, out, collection=collection)
    queue.put({"setting": name, "gradient_checkpointing": SETTINGS[name], "dtype": s.get("dtype"),
               "micro_batch": micro, "steps": s["steps"], "tokens": s["tokens_seen"], "seconds": s["seconds"],
               "tokens_per_s": s["tokens_per_s"], "first_loss": s["first_loss"], "last_loss": s["last_loss"],
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--collection", default="runs/cpu/collect", help="a collection folder (notebook 03's output)")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps of one micro-batch each")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the last run's .json")
    args = ap.parse_args()
    from selfdebug.config import load_config
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.io import atomic_write_json, atomic_write_text

    if args.render:
        atomic_write_text(OUT.with_suffix(".md"), render(json.loads(OUT.with_suffix(".json").read_text())))
        return
    source = Path(args.collection) if Path(args.collection).is_absolute() else ROOT / args.collection
    collection = ROOT / "runs" / "bench-sft-memory" / "collection"
    micro = load_config(args.profile).sft.micro_batch_size
    chars = longest_collection(source, collection, args.steps * micro)
    ctx = multiprocessing.get_context("spawn")  # a fresh process per setting: its peak is its own
    rows = []
    for name in SETTINGS:
        queue = ctx.Queue()
        proc = ctx.Process(target=one, args=(name, args, collection, queue))
        proc.start()
        proc.join()
        rows.append(queue.get() if proc.exitcode == 0 else
                    {"setting": name, "gradient_checkpointing": SETTINGS[name],
                     "error": f"child exited with {proc.exitcode}"})
        print(json.dumps(rows[-1]), flush=True)
    res = {"cpu": describe_cpu(), "profile": args.profile, "collection": args.collection, "chars": chars,
           "steps": args.steps, "rows": rows,
           "command": "python benchmarks/bench_sft_memory.py " + " ".join(sys.argv[1:])}
    atomic_write_json(OUT.with_suffix(".json"), res)
    atomic_write_text(OUT.with_suffix(".md"), render(res))


def render(res: dict) -> str:
    lines = [f"| {r['setting']} | {r.get('dtype', '-')} | {r.get('tokens', '-')} | {r.get('seconds', '-')} | "
             f"{r.get('tokens_per_s', '-')} | **{r.get('peak_rss_mb', r.get('error'))}** | {r.get('first_loss', '-')} "
             f"| {r.get('last_loss', '-')} |" for r in res["rows"]]
    micro = res["rows"][0].get("micro_batch", "?") if res["rows"] else "?"
    return ("# Memory of SFT on the embedded model: activations kept or checkpointed\n\n"
            f"{res['cpu']}. The {res['profile']} profile's LoRA; {res['steps']} optimizer steps of one micro-batch "
            f"of {micro} examples, the longest verified refinement chats of `{res['collection']}`, each setting in "
            "its own process from the same start. The losses must agree (checkpointing recomputes, it does not "
            "approximate). A child that exited with -9 was killed by SIGKILL (the OOM killer).\n\n"
            "| setting | dtype | tokens | seconds | tokens/s | peak RSS, MB | first loss | last loss |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + f"\n\nRerun: `{res['command']}`.\n")


if __name__ == "__main__":
    main()
