"""Generation throughput (and greedy pass@1) of each backend on the embedded model, side by side, one run.

Workload (fixed): the first ``--n-prompts`` HumanEval prompts, each wrapped in a chat asking to complete the
function, sampled at temperature 0.8, top-p 0.95, seed 0, ``--max-new-tokens`` (the cpu profile's 384), with
n=1 and n=4 samples per prompt. Each backend configuration runs in its own subprocess, so its peak RSS is its
own. Quality: greedy pass@1 on the first ``--quality-problems`` HumanEval problems per backend.

    python benchmarks/bench_generate.py            # full (tens of minutes on 2 cores)
    python benchmarks/bench_generate.py --quick    # a minute or two: tiny workload, to check it runs

Writes ``benchmarks/results/generate.md`` and ``generate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> how to build it. One-at-a-time baselines and batched variants of both engines.
# One-at-a-time baselines run only n=1 (unless --full-baselines): their per-sequence speed does not depend on
# the workload, and at ~8 tok/s the n=4 run alone would take the better part of an hour. Greedy pass@1 is
# measured once per engine (batching does not change greedy results beyond float noise).
CONFIGS: dict[str, dict] = {
    "hf-1": {"engine": "hf", "batch_size": 1, "baseline": True, "quality": False},
    "hf-8": {"engine": "hf", "batch_size": 8, "quality": False},
    "hf-16": {"engine": "hf", "batch_size": 16},
    "llamacpp-1": {"engine": "llamacpp", "n_parallel": 1, "baseline": True, "quality": False},
    "llamacpp-8": {"engine": "llamacpp", "n_parallel": 8, "quality": False},
    "llamacpp-16": {"engine": "llamacpp", "n_parallel": 16, "quality": False},
    "llamacpp-32": {"engine": "llamacpp", "n_parallel": 32},
}
DEFAULT_CONFIGS = ["hf-1", "hf-8", "hf-16", "llamacpp-1", "llamacpp-8", "llamacpp-16", "llamacpp-32"]
EXECUTOR_LABEL = "the project sandbox (selfdebug.sandbox), HumanEval's tests in structured form"


def humaneval(n: int) -> list:
    from selfdebug.problems import load_benchmark

    return load_benchmark("humaneval", limit=n)


def chat_for(problem) -> list[dict]:
    """The evaluation's own initial prompt, so the workload is what the cpu profile generates."""
    from selfdebug.prompts import initial_chat

    return initial_chat(problem)


def greedy_pass(problems: list, completions: list[str]) -> list[bool]:
    """Run each answer against its problem's tests in the sandbox (model code never runs in this process)."""
    from selfdebug.prompts import parse_reply
    from selfdebug.sandbox import Job, Sandbox, SandboxConfig

    jobs = [Job(program=p.program(parse_reply(text, p.entry_point).code), problem=p)
            for p, text in zip(problems, completions, strict=True)]
    with Sandbox(SandboxConfig(workers=2)) as sandbox:
        return [r.passed for r in sandbox.run(jobs)]


def make(spec: dict, threads: int):
    from selfdebug.generate.provision import embedded_gguf_path, provision_embedded

    if spec["engine"] == "hf":
        import torch

        from selfdebug.generate.hf import HFBackend

        torch.set_num_threads(threads)
        return HFBackend(provision_embedded(), batch_size=spec["batch_size"])
    from selfdebug.generate.llamacpp import LlamaCppBackend

    return LlamaCppBackend(embedded_gguf_path(), n_ctx=2048, n_threads=threads, n_parallel=spec["n_parallel"])


def worker(args: argparse.Namespace) -> dict:
    """Run one configuration in this (fresh) process and return its measurements."""
    from selfdebug.generate.base import SamplingParams

    spec = CONFIGS[args.worker]
    t0 = time.perf_counter()
    backend = make(spec, args.threads)
    res: dict = {"config": args.worker, **spec, "load_s": round(time.perf_counter() - t0, 2), "runs": []}
    problems = humaneval(max(args.n_prompts, args.quality_problems))
    chats = [chat_for(p) for p in problems[: args.n_prompts]]
    samples = args.samples[:1] if spec.get("baseline") and not args.full_baselines else args.samples
    for n in samples:
        params = SamplingParams(n=n, temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)
        t = time.perf_counter()
        outs = backend.generate(chats, params)
        wall = time.perf_counter() - t
        toks = sum(c.completion_tokens for row in outs for c in row)
        res["runs"].append({"n": n, "prompts": len(chats), "completions": sum(len(r) for r in outs),
                            "completion_tokens": toks, "wall_s": round(wall, 2),
                            "tok_s": round(toks / wall, 2),
                            "length_capped": sum(c.finish_reason == "length" for row in outs for c in row)})
        print(f"[{args.worker}] n={n}: {toks} tokens in {wall:.1f} s = {toks / wall:.1f} tok/s", flush=True)
    if args.quality_problems and spec.get("quality", True):
        qp = problems[: args.quality_problems]
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
        t = time.perf_counter()
        outs = backend.generate([chat_for(p) for p in qp], params)
        wall = time.perf_counter() - t
        passed = greedy_pass(qp, [o[0].text for o in outs])
        res["quality"] = {"problems": len(qp), "passed": sum(passed), "pass@1": round(sum(passed) / len(qp), 4),
                          "greedy_wall_s": round(wall, 2), "executor": EXECUTOR_LABEL,
                          "per_problem": [int(x) for x in passed]}
        print(f"[{args.worker}] greedy pass@1 {sum(passed)}/{len(qp)}", flush=True)
    backend.close()
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"# Generation benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs visible, {args.threads} threads; "
        f"Python {platform.python_version()}. Workload: first {args.n_prompts} HumanEval prompts as chats, "
        f"temperature 0.8, top-p 0.95, seed 0, max_new_tokens {args.max_new_tokens}.",
        "Throughput = completion tokens (EOS included) / wall time of `generate` (model load excluded).",
        "",
        "| backend | n | completions | tokens | wall s | tok/s | capped at max | load s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | - | - | - | - | failed: {r['error'][:60]} | - | - | - |")
            continue
        for run in r["runs"]:
            lines.append(f"| {r['config']} | {run['n']} | {run['completions']} | {run['completion_tokens']} | "
                         f"{run['wall_s']} | **{run['tok_s']}** | {run['length_capped']} | {r['load_s']} | "
                         f"{r['peak_rss_mb']} |")
    q = [r for r in results if r.get("quality")]
    if q:
        lines += ["", f"Greedy pass@1 ({EXECUTOR_LABEL}):", "", "| backend | problems | passed | pass@1 |",
                  "|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['quality']['problems']} | {r['quality']['passed']} | "
                  f"{r['quality']['pass@1']} |" for r in q]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS))
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--max-new-tokens", type=int, default=384, help="the cpu profile's max_new_tokens")
    ap.add_argument("--quality-problems", type=int, default=20, help="greedy pass@1 problems (0: skip)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--full-baselines", action="store_true", help="one-at-a-time configs run every n too")
    ap.add_argument("--quick", action="store_true", help="tiny workload: 4 prompts, n=1,2, 64 tokens")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generate.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_prompts, args.samples, args.max_new_tokens = 4, [1, 2], 64
        args.quality_problems = min(args.quality_problems, 4)
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(args)))
        return 0

    configs = args.configs or DEFAULT_CONFIGS
    if "llamacpp-1" in configs or any(c.startswith("llamacpp") for c in configs):
        from selfdebug.generate.engine_select import llama_cpp_available

        ok, why = llama_cpp_available()
        if not ok:
            print(f"skipping llama.cpp configs: {why}")
            configs = [c for c in configs if not c.startswith("llamacpp")]
    results = []
    for name in configs:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = Path(f.name)
        cmd = [sys.executable, __file__, "--worker", name, "--worker-out", str(out),
               "--n-prompts", str(args.n_prompts), "--samples", *map(str, args.samples),
               "--max-new-tokens", str(args.max_new_tokens), "--quality-problems", str(args.quality_problems),
               "--threads", str(args.threads)] + (["--full-baselines"] if args.full_baselines else [])
        print(f"== {name}", flush=True)
        rc = subprocess.run(cmd).returncode
        results.append(json.loads(out.read_text()) if rc == 0 else {"config": name, "error": f"exit {rc}"})
        out.unlink(missing_ok=True)
    md = table(results, args)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                         "results": results}, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
