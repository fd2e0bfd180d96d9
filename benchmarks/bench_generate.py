"""Generation throughput and quality of each backend on the embedded model, side by side, in one run.

Workloads, both fixed and taken from what the ``cpu`` profile really generates:

* ``sample``: the first ``--n-prompts`` HumanEval initial prompts (the evaluation's own chats), sampled at
  temperature 0.8, top-p 0.95, seed 0, with the profile's ``max_new_tokens``; n=1 and n = the profile's
  ``n_samples`` per prompt. Its completions are also run in the sandbox: sampled pass@1 per backend.
* ``refine`` (llama.cpp configs): the "Refine" and "Expl.+Refine" chats of the first ``--refine-pairs``
  wrong initial samples of the committed cpu run (figures/results/cpu/samples), n=1, with the profile's
  ``refine_max_new_tokens``: long prompts that share prefixes, where the prefix cache matters. It follows
  the committed run, so rerun the benchmark when that run is redone.

Quality: greedy pass@1 on the first ``--quality-problems`` HumanEval problems, per backend, in the sandbox.
Each backend configuration runs in its own subprocess, so its peak RSS is its own.

    python benchmarks/bench_generate.py            # full (about half an hour on 2 cores)
    python benchmarks/bench_generate.py --quick    # a few minutes: tiny workload, to check it runs
    python benchmarks/bench_generate.py --sft      # a trained (SFT) model served each way beside the base

Writes ``benchmarks/results/generate.md`` and ``generate.json`` (``--sft``: ``generate_sft.*``).
"""

from __future__ import annotations

import argparse
import gzip
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

# name -> how to build it. One-at-a-time baselines run only n=1 (unless --full-baselines): their per-sequence
# speed does not depend on the workload, and at ~8 tok/s a larger run would take the better part of an hour.
LLAMACPP_AS_SHIPPED = {"gguf_type": "original", "flash_attn": False, "prefix_cache": False}
CONFIGS: dict[str, dict] = {
    "hf-1": {"engine": "hf", "batch_size": 1, "baseline": True, "quality": False},
    "hf-16": {"engine": "hf", "batch_size": 16},
    "llamacpp-1": {"engine": "llamacpp", "n_parallel": 1, "baseline": True, "quality": False, **LLAMACPP_AS_SHIPPED},
    "llamacpp-32-shipped": {"engine": "llamacpp", "n_parallel": 32, **LLAMACPP_AS_SHIPPED},
    "llamacpp-32-q8_0": {"engine": "llamacpp", "n_parallel": 32, "gguf_type": "q8_0", "flash_attn": False,
                         "prefix_cache": False},
    "llamacpp-32-q8_0-fa-cache": {"engine": "llamacpp", "n_parallel": 32, "gguf_type": "q8_0", "flash_attn": True,
                                  "prefix_cache": True},
}
for _wide in ("f16", "bf16"):  # 16-bit copies: tinyBLAS's float kernels (bf16: AVX512-BF16 dot products)
    CONFIGS[f"llamacpp-32-{_wide}-fa-cache"] = {**CONFIGS["llamacpp-32-q8_0-fa-cache"], "gguf_type": _wide}
# more sequences a decode step: batched decoding is compute-bound, and a wider step is a wider matrix product
CONFIGS["llamacpp-64-q8_0-fa-cache"] = {**CONFIGS["llamacpp-32-q8_0-fa-cache"], "n_parallel": 64}
# A trained model as the evaluation serves it: an SFT adapter over the embedded model, merged into one re-encoded
# GGUF (the default, model key lora_serving: merged) or applied at run time (lora_serving: adapter), on the profile's
# engine settings; `hf-16-sft` is transformers with the PEFT adapter.
for _serving in ("merged", "adapter"):
    CONFIGS[f"llamacpp-32-sft-{_serving}"] = {**CONFIGS["llamacpp-32-q8_0-fa-cache"], "adapter": True,
                                              "lora_serving": _serving}
CONFIGS["hf-16-sft"] = {**CONFIGS["hf-16"], "adapter": True}
SFT_CONFIGS = ["llamacpp-32-q8_0-fa-cache", "llamacpp-32-sft-merged", "llamacpp-32-sft-adapter", "hf-16-sft"]
"""``--sft``: the base on the profile's settings beside the SFT model served each way, in one run."""
SFT_MODEL = ROOT / "runs" / "cpu" / "sft" / "model"
SHAPE_ADAPTER = ROOT / "data" / "cache" / "bench-generate" / "sft-shape-adapter"
PROFILE_CONFIG = "llamacpp-32-q8_0-fa-cache"
"""The configuration the cpu profile runs (``check_profile_config`` keeps it in step with configs/cpu.yaml)."""
LLAMACPP_KEYS = ("gguf_type", "flash_attn", "prefix_cache", "n_parallel")
DEFAULT_CONFIGS = ["hf-16", "llamacpp-32-shipped", PROFILE_CONFIG]
"""The batched transformers baseline, llama.cpp on the GGUF as shipped, and the profile's configuration.
The others (``--configs``): one-at-a-time baselines, and Q8_0 without flash attention and prefix cache."""
EXECUTOR_LABEL = "the project sandbox (selfdebug.sandbox), HumanEval's tests in structured form"


def profile_settings() -> dict:
    """The cpu profile's generation settings: the benchmark measures the work the profile does."""
    from selfdebug.config import load_config

    cfg = load_config("cpu")
    ev = cfg.evaluate
    return {"n_samples": ev.n_samples, "max_new_tokens": ev.max_new_tokens,
            "refine_max_new_tokens": ev.refine_max_new_tokens, "temperature": ev.temperature, "top_p": ev.top_p,
            "batch_size": cfg.model.batch_size, "extra": dict(cfg.model.extra)}


def humaneval(n: int) -> list:
    from selfdebug.problems import load_benchmark

    return load_benchmark("humaneval", limit=n)


def chat_for(problem) -> list[dict]:
    """The evaluation's own initial prompt, so the workload is what the cpu profile generates."""
    from selfdebug.prompts import initial_chat

    return initial_chat(problem)


def refine_chats(pairs: int) -> list[list[dict]]:
    """Both refinement chats of the first ``pairs`` wrong initial samples of the committed cpu run."""
    from selfdebug.problems import load_benchmark
    from selfdebug.prompts import PROMPT_TYPES, refine_chat

    chats: list[list[dict]] = []
    for bench in ("humaneval", "mbpp"):
        path = ROOT / "figures" / "results" / "cpu" / "samples" / f"{bench}.jsonl.gz"
        rows = [json.loads(line) for line in gzip.open(path, "rt")]
        wrong = [r for r in rows if r["chain"] == "init" and not r["passed"]]
        by_id = {p.task_id: p for p in load_benchmark(bench, limit=50)}
        for r in wrong[: pairs // 2]:
            chats += [refine_chat(by_id[r["task_id"]], r["code"], r["feedback"], t) for t in PROMPT_TYPES]
    return chats


def sandbox_pass(problems: list, completions: list[str]) -> list[bool]:
    """Run each answer against its problem's tests in the sandbox (model code never runs in this process)."""
    from selfdebug.prompts import parse_reply
    from selfdebug.sandbox import Job, Sandbox, SandboxConfig
    from selfdebug.sanitize import sanitize_for

    # the evaluation's own path: parse the reply, sanitize the code, assemble the program
    jobs = [Job(program=p.program(sanitize_for(p, parse_reply(text, p.entry_point).code)), problem=p)
            for p, text in zip(problems, completions, strict=True)]
    with Sandbox(SandboxConfig(workers=2)) as sandbox:
        return [r.passed for r in sandbox.run(jobs)]


def sft_adapter() -> Path:
    """The cpu profile's SFT model (``make sft``) when it is there; else a fresh LoRA adapter of its shape (the
    profile's rank, alpha and targets, B = 0, so it answers as the base does) over the embedded model: what serving
    an adapter costs depends on its shape, not its values."""
    if (SFT_MODEL / "adapter_config.json").is_file():
        return SFT_MODEL
    if not (SHAPE_ADAPTER / "adapter_config.json").is_file():
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from selfdebug.config import load_config
        from selfdebug.generate.provision import resolve_model

        sc = load_config("cpu").sft
        model = AutoModelForCausalLM.from_pretrained(str(resolve_model("embedded")))
        peft = get_peft_model(model, LoraConfig(r=sc.lora_r, lora_alpha=sc.lora_alpha, target_modules=sc.lora_targets,
                                                task_type="CAUSAL_LM"))
        tmp = SHAPE_ADAPTER.with_suffix(".tmp")
        peft.save_pretrained(str(tmp))
        tmp.rename(SHAPE_ADAPTER)
    return SHAPE_ADAPTER


def model_config(spec: dict, threads: int) -> dict:
    """The ``model`` section a profile would hold for this configuration (built by ``make_backend``, so the
    benchmark runs exactly the code path the profiles run)."""
    model_id = str(sft_adapter()) if spec.get("adapter") else "embedded"
    if spec["engine"] == "hf":
        return {"id": model_id, "backend": "hf", "batch_size": spec["batch_size"]}
    # n_ctx 2048 per sequence holds every prompt and reply of these workloads; the profile keeps the
    # engine's default (4096) as headroom for longer refinement prompts: it only sizes the KV cache.
    return {"id": model_id, "backend": "llamacpp", "batch_size": spec["n_parallel"], "n_ctx": 2048,
            "n_threads": threads, **{k: spec[k] for k in ("gguf_type", "flash_attn", "prefix_cache")},
            **({"lora_serving": spec["lora_serving"]} if "lora_serving" in spec else {})}


def make(spec: dict, threads: int):
    from selfdebug.generate import make_backend

    if spec["engine"] == "hf":
        import torch

        torch.set_num_threads(threads)
    return make_backend(model_config(spec, threads))


def check_profile_config(prof: dict) -> None:
    """The configuration labelled as the cpu profile's must have the profile's engine settings."""
    spec = CONFIGS[PROFILE_CONFIG]
    wanted = {**prof["extra"], "n_parallel": prof["batch_size"]}
    differ = {k: (spec.get(k), v) for k, v in wanted.items() if k in LLAMACPP_KEYS and spec.get(k) != v}
    if differ:
        raise SystemExit(f"bench config {PROFILE_CONFIG} no longer matches configs/cpu.yaml (bench, profile): "
                         f"{differ}; update CONFIGS")


def _timed(backend, chats, params) -> tuple[list, dict]:
    """One timed ``generate``, started cold: nothing cached from an earlier workload."""
    if hasattr(backend, "clear_prefix_cache"):
        backend.clear_prefix_cache()
    stats0 = dict(getattr(backend, "stats", {}))
    t = time.perf_counter()
    outs = backend.generate(chats, params)
    wall = time.perf_counter() - t
    toks = sum(c.completion_tokens for row in outs for c in row)
    run = {"n": params.n, "prompts": len(chats), "completions": sum(len(r) for r in outs),
           "completion_tokens": toks, "prompt_tokens": sum(row[0].prompt_tokens for row in outs),
           "wall_s": round(wall, 2), "tok_s": round(toks / wall, 2),
           "length_capped": sum(c.finish_reason == "length" for row in outs for c in row)}
    if stats0:
        run["prompt_tokens_reused"] = backend.stats["reused_tokens"] - stats0["reused_tokens"]
        run["prompt_tokens_evaluated"] = backend.stats["prefill_tokens"] - stats0["prefill_tokens"]
    return outs, run


def worker(args: argparse.Namespace) -> dict:
    """Run one configuration in this (fresh) process and return its measurements."""
    from selfdebug.generate.base import SamplingParams

    spec = CONFIGS[args.worker]
    prof = profile_settings()
    t0 = time.perf_counter()
    backend = make(spec, args.threads)
    res: dict = {"config": args.worker, **spec, "model_id": model_config(spec, args.threads)["id"],
                 "load_s": round(time.perf_counter() - t0, 2), "runs": []}
    problems = humaneval(max(args.n_prompts, args.quality_problems))
    wp = problems[: args.n_prompts]
    chats = [chat_for(p) for p in wp]
    samples = args.samples[:1] if spec.get("baseline") and not args.full_baselines else args.samples
    for n in samples:
        params = SamplingParams(n=n, temperature=prof["temperature"], top_p=prof["top_p"],
                                max_new_tokens=args.max_new_tokens, seed=0)
        outs, run = _timed(backend, chats, params)
        run["workload"] = "sample"
        if n == max(args.samples) and not spec.get("baseline"):
            passed = sandbox_pass([p for p, row in zip(wp, outs, strict=True) for _ in row],
                                  [c.text for row in outs for c in row])
            run["sampled_pass@1"] = round(sum(passed) / len(passed), 4)
            run["sampled_passed"] = sum(passed)
        res["runs"].append(run)
        print(f"[{args.worker}] sample n={n}: {run['completion_tokens']} tokens in {run['wall_s']} s = "
              f"{run['tok_s']} tok/s", flush=True)
    if spec["engine"] == "llamacpp" and not spec.get("baseline") and args.refine_pairs:
        params = SamplingParams(n=1, temperature=prof["temperature"], top_p=prof["top_p"],
                                max_new_tokens=args.refine_max_new_tokens, seed=0)
        _, run = _timed(backend, refine_chats(args.refine_pairs), params)
        run["workload"] = "refine"
        res["runs"].append(run)
        print(f"[{args.worker}] refine: {run['completion_tokens']} tokens in {run['wall_s']} s = "
              f"{run['tok_s']} tok/s", flush=True)
    if args.quality_problems and spec.get("quality", True):
        qp = problems[: args.quality_problems]
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
        t = time.perf_counter()
        outs = backend.generate([chat_for(p) for p in qp], params)
        wall = time.perf_counter() - t
        passed = sandbox_pass(qp, [o[0].text for o in outs])
        res["quality"] = {"problems": len(qp), "passed": sum(passed), "pass@1": round(sum(passed) / len(qp), 4),
                          "greedy_wall_s": round(wall, 2), "executor": EXECUTOR_LABEL,
                          "per_problem": [int(x) for x in passed]}
        print(f"[{args.worker}] greedy pass@1 {sum(passed)}/{len(qp)}", flush=True)
    backend.close()
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


def _cpu_line() -> str:
    """The CPU and the flags that decide llama.cpp's kernels and torch's precision (benchmarks differ by CPU)."""
    import llama_cpp  # the kernels this build compiled in

    from selfdebug.generate.cpu import describe_cpu

    kernels = llama_cpp.llama_print_system_info().decode().strip()
    return f"{describe_cpu()}; llama.cpp `{kernels}`"


def table(results: list[dict], args: argparse.Namespace, when: float | None = None) -> str:
    lines = [
        f"# Generation benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(when))})",
        "",
        f"Machine: {getattr(args, 'machine', None) or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"{args.threads} threads; "
        f"Python {platform.python_version()}. Settings of the `cpu` profile: temperature 0.8, top-p 0.95, seed 0.",
        f"Workload `sample`: the first {args.n_prompts} HumanEval initial prompts, max_new_tokens "
        f"{args.max_new_tokens}, n = {' and '.join(map(str, args.samples))} samples per prompt. Workload `refine`: "
        f"the Refine and Expl.+Refine chats of {args.refine_pairs // 2 * 2} wrong samples of the committed cpu run "
        f"(HumanEval and MBPP), n=1, max_new_tokens {args.refine_max_new_tokens}.",
        "Throughput = completion tokens (EOS included) / wall time of `generate` (model load excluded; prompt "
        "evaluation included). Sampled pass@1: the `sample` completions at the larger n, in the sandbox.",
        "",
        "Prompt tokens: one per prompt as asked; in brackets what the engine evaluated, or (older runs) the KV "
        "tokens it took from its prefix cache over all admissions of a prompt.",
        "",
        "| backend | workload | n | completions | prompt tokens | tokens | wall s | tok/s | "
        "sampled pass@1 | capped | load s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error'][:60]} |" + " - |" * 10)
            continue
        for run in r["runs"]:
            if "prompt_tokens_evaluated" in run:
                reused = f" (evaluated {run['prompt_tokens_evaluated']})"
            else:
                reused = f" (cache {run['prompt_tokens_reused']})" if run.get("prompt_tokens_reused") else ""
            sp = (f"{run['sampled_pass@1']} ({run['sampled_passed']}/{run['completions']})"
                  if "sampled_pass@1" in run else "-")
            lines.append(f"| {r['config']} | {run['workload']} | {run['n']} | {run['completions']} | "
                         f"{run['prompt_tokens']}{reused} | {run['completion_tokens']} | {run['wall_s']} | "
                         f"**{run['tok_s']}** | {sp} | {run['length_capped']} | {r['load_s']} | {r['peak_rss_mb']} |")
    adapters = sorted({r["model_id"] for r in results if r.get("adapter") and "model_id" in r})
    for a in adapters:
        what = ("the cpu profile's SFT model" if Path(a) == SFT_MODEL else
                "a fresh LoRA adapter of the cpu SFT shape (B = 0: it answers as the base; serving cost depends on "
                "the adapter's shape, not its values)")
        lines += ["", f"`*-sft*` rows serve `{Path(a).relative_to(ROOT) if Path(a).is_relative_to(ROOT) else a}`: "
                  f"{what}. Load time of `llamacpp-32-sft-merged` includes merging and re-encoding once."]
    big = max(args.samples)
    tok_s = {r["config"]: run["tok_s"] for r in results if "runs" in r for run in r["runs"]
             if run["workload"] == "sample" and run["n"] == big}
    base = next((c for c in tok_s if c.startswith("hf-") and c != "hf-1"), None)
    if base:
        lines += ["", f"Workload `sample` at n={big}, relative to batched transformers ({base}): "
                  + ", ".join(f"{c} **{v / tok_s[base]:.2f}x**" for c, v in tok_s.items() if c != base) + "."]
    q = [r for r in results if r.get("quality")]
    if q:
        ref_row = next((r for r in q if r["config"] == "llamacpp-32-shipped"), q[0])
        lines += ["", f"Greedy pass@1 ({EXECUTOR_LABEL}):", "",
                  f"| backend | problems | passed | pass@1 | problems whose verdict differs from {ref_row['config']} |",
                  "|---|---|---|---|---|"]
        ref = ref_row["quality"]["per_problem"]
        for r in q:
            pp = r["quality"]["per_problem"]
            diff = sum(a != b for a, b in zip(pp, ref, strict=False))
            lines.append(f"| {r['config']} | {r['quality']['problems']} | {r['quality']['passed']} | "
                         f"{r['quality']['pass@1']} | {diff} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    prof = profile_settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS))
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--samples", type=int, nargs="+", default=[1, prof["n_samples"]],
                    help="samples per prompt (default: 1 and the cpu profile's n_samples)")
    ap.add_argument("--max-new-tokens", type=int, default=prof["max_new_tokens"])
    ap.add_argument("--refine-pairs", type=int, default=24, help="refine workload: wrong samples x 2 prompts")
    ap.add_argument("--refine-max-new-tokens", type=int, default=prof["refine_max_new_tokens"])
    ap.add_argument("--quality-problems", type=int, default=40, help="greedy pass@1 problems (0: skip)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--full-baselines", action="store_true", help="one-at-a-time configs run every n too")
    ap.add_argument("--quick", action="store_true", help="tiny workload: 4 prompts, n=1,2, 64 tokens")
    ap.add_argument("--sft", action="store_true",
                    help="the SFT model served each way beside the base (SFT_CONFIGS), to generate_sft.md")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generate.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args = ap.parse_args(argv)
    if args.render:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        for k in ("n_prompts", "refine_pairs", "max_new_tokens", "refine_max_new_tokens", "threads"):
            setattr(args, k, int(saved["args"][k]))
        args.samples = json.loads(saved["args"]["samples"])
        args.machine = saved.get("machine")  # the machine it ran on, not the one rendering it
        args.out.write_text(table(saved["results"], args, when=args.out.with_suffix(".json").stat().st_mtime))
        return 0
    if args.quick:
        args.n_prompts, args.samples, args.max_new_tokens = 4, [1, 2], 64
        args.refine_pairs, args.refine_max_new_tokens = 4, 64
        args.quality_problems = min(args.quality_problems, 4)
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(args)))
        return 0

    check_profile_config(prof)
    configs = args.configs or (SFT_CONFIGS if args.sft else DEFAULT_CONFIGS)
    if args.sft and args.out == ap.get_default("out"):
        args.out = args.out.with_name("generate_sft.md")
    if any(c.startswith("llamacpp") for c in configs):
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
               "--refine-pairs", str(args.refine_pairs), "--refine-max-new-tokens", str(args.refine_max_new_tokens),
               "--threads", str(args.threads)] + (["--full-baselines"] if args.full_baselines else [])
        print(f"== {name}", flush=True)
        rc = subprocess.run(cmd).returncode
        results.append(json.loads(out.read_text()) if rc == 0 else {"config": name, "error": f"exit {rc}"})
        out.unlink(missing_ok=True)
    args.machine = _cpu_line()
    md = table(results, args)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: json.dumps(v) if isinstance(v, list) else str(v)
                                                                  for k, v in vars(args).items()},
                                                         "machine": args.machine, "results": results}, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
