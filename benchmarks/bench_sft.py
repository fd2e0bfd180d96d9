"""Training speed of SFT on the embedded model, bf16 against fp32, on this machine (the cpu profile's LoRA).

The examples are a collection's (``runs/<profile>/collect``: ``make bench-collect`` makes the cpu-teachers
one, ``make collect`` the cpu one), the first steps x batch of them; each precision trains ``--steps`` optimizer steps of ``--batch`` examples from the same start, in
its own run folder, and the rate is the non-padding tokens the trainer saw per second of training (model
load excluded). bf16 is native only on CPUs with AVX512-BF16 or AMX (``selfdebug.generate.cpu``); elsewhere
torch emulates it and fp32 wins: the profile's ``sft.dtype: auto`` follows what this measures.

The loss path is ``selfdebug.sft.loss`` (LM head on the completion positions only) unless ``--paths`` also
asks for ``trl`` (TRL's own loss, the path before it), measured in the same run for the comparison.

    python benchmarks/bench_sft.py [--profile cpu-teachers] [--steps 4] [--batch 4] [--paths completion trl]

Writes ``benchmarks/results/sft.{json,md}``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-teachers", help="whose collection and sft section")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--paths", nargs="+", choices=["completion", "trl"], default=["completion", "trl"])
    args = ap.parse_args()
    from selfdebug.config import load_config
    from selfdebug.generate.cpu import auto_cpu_dtype, describe_cpu
    from selfdebug.io import atomic_write_json, atomic_write_text
    from selfdebug.logs import log_to_run_dir
    from selfdebug.sft.train import run_sft

    rows = []
    for dtype, path in [(d, p) for p in args.paths for d in args.dtypes]:
        out = ROOT / "runs" / "bench-sft" / f"{dtype}-{path}"
        shutil.rmtree(out, ignore_errors=True)
        config = load_config(args.profile, [f"sft.dtype={dtype}", f"sft.max_steps={args.steps}",
                                            f"sft.batch_size={args.batch}", f"sft.micro_batch_size={args.batch}",
                                            f"sft.limit={args.steps * args.batch}", "sft.warmup_steps=0"])
        with log_to_run_dir(out, "sft"):
            s = run_sft(config, out, completion_head=path == "completion")
        rows.append({"dtype": dtype, "loss_path": path, "steps": s["steps"], "tokens": s["tokens_seen"],
                     "seconds": s["seconds"], "tokens_per_s": s["tokens_per_s"], "lora_r": config.sft.lora_r,
                     "first_loss": s["first_loss"], "last_loss": s["last_loss"]})
        print(rows[-1], flush=True)
    res = {"cpu": describe_cpu(), "auto_dtype": auto_cpu_dtype(), "profile": args.profile, "rows": rows}
    out = ROOT / "benchmarks" / "results" / "sft"
    atomic_write_json(out.with_suffix(".json"), res)
    lines = [f"| {r['dtype']} | {r['loss_path']} | {r['steps']} | {r['tokens']} | {r['seconds']} | "
             f"**{r['tokens_per_s']}** |" for r in rows]
    atomic_write_text(out.with_suffix(".md"), (
        "# SFT training speed: bf16 vs fp32\n\n"
        f"CPU: {res['cpu']}. `sft.dtype: auto` picks **{res['auto_dtype']}** here. Profile `{args.profile}` (LoRA "
        f"r={rows[0]['lora_r'] if rows else '?'} on all linear layers), {args.steps} optimizer steps of "
        f"{args.batch} examples of its collection each precision; tokens = non-padding tokens the trainer saw.\n\n"
        "Loss path `completion`: the LM head on the completion positions only (`selfdebug.sft.loss`); `trl`: "
        "TRL's `SFTTrainer` loss (every position through the head, entropy metric), the path before.\n\n"
        "| dtype | loss path | steps | tokens | seconds | tokens/s |\n|---|---|---|---|---|---|\n" + "\n".join(lines) +
        "\n\nRerun: `python benchmarks/bench_sft.py` (part of `make bench`).\n"))


if __name__ == "__main__":
    main()
