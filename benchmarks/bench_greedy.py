"""Greedy pass@1 of the embedded model on all of HumanEval(+), MBPP(+), beside the maker's numbers, and where
the gap comes from.

The model card of Qwen2.5-Coder-0.5B-Instruct reports greedy pass@1 with bf16 weights and EvalPlus's harness
(which sanitizes each reply first). What we run differs in three ways, and this benchmark measures each:

* **the weights**: the embedded GGUF (Q4_K_M as shipped; Q8_0 re-encoding in the cpu profile) against the bf16
  safetensors conversion run by transformers (``--engines``), on the same prompts;
* **the harness**: every reply scored twice in the sandbox, as parsed (the whole code block runs, including a
  model's own top-level test calls) and after the AST sanitizer (selfdebug.sanitize);
* **the token cap**: replies are generated with a large cap (``--max-new-tokens``, 1024), and the share that
  a smaller cap would cut (384, 512, 768) is counted, which sizes the profiles' caps.

Model code runs only in the sandbox. Replies are cached in ``data/cache/bench-greedy/`` (a resumable log per
engine), so a rerun or a new scoring rule costs no generation.

    python benchmarks/bench_greedy.py                       # profile engine on all four, others on HumanEval
    python benchmarks/bench_greedy.py --render              # rewrite the .md from the saved .json

Writes ``benchmarks/results/greedy.json`` and ``greedy.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAKER = {"humaneval": 61.6, "humaneval_plus": 57.3, "mbpp": 52.4, "mbpp_plus": 43.7}
MAKER_SOURCE = ("Qwen2.5-Coder Technical Report (arXiv:2409.12186), instruct models' code-generation table: "
                "greedy pass@1, bf16, EvalPlus harness; its MBPP is EvalPlus's MBPP (378 tasks, base tests)")
BENCHMARKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
SHARES_SAMPLES = {"humaneval_plus": "humaneval"}
CAPS = (384, 512, 768)
ENGINES = {
    # the cpu profile's engine (model section of configs/cpu.yaml, as make_backend builds it)
    "profile": None,
    "llamacpp-shipped": {"id": "embedded", "backend": "llamacpp", "batch_size": 32, "gguf_type": "original",
                         "flash_attn": True, "prefix_cache": True},
    "hf-bf16": {"id": "embedded", "backend": "hf", "dtype": "bfloat16", "batch_size": 16},
}
DEFAULT_BENCHMARKS = {"profile": BENCHMARKS, "llamacpp-shipped": ("humaneval", "humaneval_plus"),
                      "hf-bf16": ("humaneval", "humaneval_plus")}


def engine_settings(name: str) -> dict:
    if ENGINES[name] is not None:
        return dict(ENGINES[name])
    from selfdebug.config import load_config
    from selfdebug.evaluate.stage import backend_settings

    return backend_settings(load_config("cpu"))


def generate(name: str, problems: dict, max_new_tokens: int, cache_dir: Path) -> dict[str, list[dict]]:
    """Greedy replies of engine ``name`` for every problem's initial chat, from the cache where present."""
    from selfdebug.generate import SamplingParams, make_backend
    from selfdebug.io import JsonlLog
    from selfdebug.prompts import initial_chat

    log = JsonlLog(cache_dir / f"{name}-{max_new_tokens}.jsonl")
    out: dict[str, list[dict]] = {}
    backend = None
    params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens)
    try:
        for bench, probs in problems.items():
            group = SHARES_SAMPLES.get(bench, bench)
            keys = [f"{group}/{p.task_id}" for p in probs]
            todo = [i for i, k in enumerate(keys) if k not in log]
            if todo:
                if backend is None:
                    backend = make_backend(engine_settings(name))
                print(f"[{name}] {bench}: generating {len(todo)} greedy replies", flush=True)
                t0 = time.perf_counter()
                # An engine that streams results gets every prompt at once and each reply is logged as it
                # finishes (no chunk boundary drains its batch); others get chunks, logged per chunk.
                size = len(todo) if getattr(backend, "streams_results", False) else 64
                for start in range(0, len(todo), size):
                    chunk = todo[start : start + size]

                    def keep(pos: int, comps: list, chunk: list[int] = chunk, keys: list[str] = keys) -> None:
                        if keys[chunk[pos]] not in log:
                            c = comps[0]
                            log.append(keys[chunk[pos]], {"text": c.text, "completion_tokens": c.completion_tokens,
                                                          "finish_reason": c.finish_reason})

                    chats = [initial_chat(probs[i]) for i in chunk]
                    if getattr(backend, "streams_results", False):
                        outs = backend.generate(chats, params, on_result=keep)
                    else:
                        outs = backend.generate(chats, params)
                    for pos, comps in enumerate(outs):
                        keep(pos, comps)
                ntok = sum(log.get(keys[i])["completion_tokens"] for i in todo)
                dt = time.perf_counter() - t0
                print(f"[{name}] {bench}: {ntok} tokens in {dt:.0f} s ({ntok / dt:.1f} tok/s)", flush=True)
            out[bench] = [log.get(k) for k in keys]
    finally:
        if backend is not None:
            backend.close()
    return out


def programs(problem, text: str) -> dict[str, str]:
    """The program the sandbox runs for one reply, as parsed and after the sanitizer."""
    from selfdebug.prompts import parse_reply
    from selfdebug.sanitize import sanitize_for

    code = parse_reply(text, problem.entry_point).code
    return {"parsed": problem.program(code), "sanitized": problem.program(sanitize_for(problem, code))}


def score(problems: dict, replies: dict[str, list[dict]]) -> dict[str, dict]:
    from selfdebug.sandbox import Job, Sandbox, SandboxConfig

    out = {}
    with Sandbox(SandboxConfig(workers=2)) as sandbox:
        for bench, probs in problems.items():
            rows = replies[bench]
            progs = [programs(p, r["text"]) for p, r in zip(probs, rows, strict=True)]
            suite = "all" if bench.endswith("_plus") else "base"
            res = {}
            for how in ("parsed", "sanitized"):
                results = sandbox.run([Job(program=g[how], problem=p, suite=suite) for g, p in zip(progs, probs,
                                                                                              strict=True)])
                res[how] = [r.passed for r in results]
            tokens = [r["completion_tokens"] for r in rows]
            n = len(rows)
            cut = [bool(r["finish_reason"] == "length") for r in rows]
            out[bench] = {
                "problems": n,
                "pass_parsed": sum(res["parsed"]), "pass_sanitized": sum(res["sanitized"]),
                "pass1_parsed": round(100 * sum(res["parsed"]) / n, 1),
                "pass1_sanitized": round(100 * sum(res["sanitized"]) / n, 1),
                "changed_by_sanitizer": sum(g["parsed"] != g["sanitized"] for g in progs),
                "cut_at_generation_cap": sum(cut),
                "share_over_cap": {str(c): round(sum(t >= c for t in tokens) / n, 4) for c in CAPS},
                "tokens_median": sorted(tokens)[n // 2], "tokens_p99": sorted(tokens)[min(n - 1, int(n * 0.99))],
                "verdicts_sanitized": res["sanitized"],
            }
    return out


def render(data: dict) -> str:
    from selfdebug.generate.cpu import describe_cpu

    lines = [
        "# Greedy pass@1 of the embedded model beside the maker's numbers",
        "",
        f"Machine: {describe_cpu(data['cpu'])}. Run {data['when']} UTC; `python benchmarks/bench_greedy.py`. Generation cap "
        f"{data['max_new_tokens']} tokens, temperature 0. Maker: {MAKER_SOURCE}.",
        "",
        "| engine | benchmark | problems | pass@1 as parsed | pass@1 sanitized | maker | replies the sanitizer "
        "changed | share ≥384 / ≥512 / ≥768 tokens | cut at the cap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for engine, benches in data["engines"].items():
        for bench, m in benches.items():
            shares = " / ".join(f"{100 * m['share_over_cap'][str(c)]:.1f}%" for c in CAPS)
            lines.append(f"| {engine} | {bench} | {m['problems']} | {m['pass1_parsed']} | {m['pass1_sanitized']} "
                         f"| {MAKER.get(bench, '–')} | {m['changed_by_sanitizer']} | {shares} "
                         f"| {m['cut_at_generation_cap']} |")
    agree = data.get("agreement", {})
    if agree:
        lines += ["", "Greedy verdicts (sanitized) that differ from the profile engine's, same problems:", ""]
        lines += [f"- {k}: {v}" for k, v in agree.items()]
    lines += ["", "How to read it: the gap between *as parsed* and *sanitized* is the harness (top-level test "
              "code in replies); between engines on the same problems, the weights (quantization); what remains "
              "against the maker is prompt and chat format (theirs: EvalPlus's own prompts), and, for MBPP, "
              "a different problem set (the original 500-task test split here, EvalPlus's 378 there).", ""]
    return "\n".join(lines)


README_START, README_END = "<!-- greedy-pass1:start (benchmarks/bench_greedy.py writes this block) -->", \
    "<!-- greedy-pass1:end -->"


def readme_block(data: dict) -> str:
    """The README's table: the profile engine's greedy pass@1 on each benchmark beside the maker's."""
    cpu = data["cpu"]
    lines = [f"Greedy pass@1 (%) of the embedded model, every problem, `python benchmarks/bench_greedy.py` "
             f"on {cpu['model']} ({data['when']} UTC); details and the other engines in "
             "[benchmarks/results/greedy.md](benchmarks/results/greedy.md):", "",
             "| benchmark | problems | ours, as parsed | ours, sanitized | maker (bf16, EvalPlus harness) |",
             "|---|---|---|---|---|"]
    for bench, m in data["engines"].get("profile", {}).items():
        lines.append(f"| {bench} | {m['problems']} | {m['pass1_parsed']} | {m['pass1_sanitized']} "
                     f"| {MAKER.get(bench, '–')} |")
    return "\n".join(lines)


def update_readme(data: dict, readme: Path = ROOT / "README.md") -> bool:
    """Rewrite the marked block of the README from the saved results (False when the README has no block)."""
    from selfdebug.io import rewrite_marked_block

    if "profile" not in data["engines"]:
        return False
    return rewrite_marked_block(readme, README_START, README_END, readme_block(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS),
                    help="only these (each engine runs those of its default set that are named)")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=None, help="first N problems of each benchmark (a quick look)")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "cache" / "bench-greedy")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "greedy.md")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args = ap.parse_args(argv)
    from selfdebug.io import atomic_write_json, atomic_write_text

    json_path = args.out.with_suffix(".json")
    if args.render:
        data = json.loads(json_path.read_text())
        atomic_write_text(args.out, render(data))
        update_readme(data)
        return 0
    from selfdebug.generate.cpu import cpu_summary
    from selfdebug.problems import load_benchmark

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    chosen = {e: [b for b in DEFAULT_BENCHMARKS[e] if b in args.benchmarks] for e in args.engines}
    needed = sorted({b for e in args.engines for b in chosen[e]}, key=BENCHMARKS.index)
    problems = {b: load_benchmark(b, limit=args.limit) for b in needed}
    data = {"when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpu": cpu_summary(),
            "platform": platform.platform(), "max_new_tokens": args.max_new_tokens, "limit": args.limit,
            "maker": MAKER, "maker_source": MAKER_SOURCE, "engines": {}}
    for engine in args.engines:
        mine = {b: problems[b] for b in chosen[engine]}
        if not mine:
            continue
        replies = generate(engine, mine, args.max_new_tokens, args.cache_dir)
        data["engines"][engine] = score(mine, replies)
    base = data["engines"].get("profile", {})
    for engine, benches in data["engines"].items():
        if engine == "profile":
            continue
        for bench, m in benches.items():
            if bench in base:
                diff = sum(a != b for a, b in zip(m["verdicts_sanitized"], base[bench]["verdicts_sanitized"],
                                                  strict=True))
                data.setdefault("agreement", {})[f"{engine} vs profile, {bench}"] = f"{diff} of {m['problems']}"
    atomic_write_json(json_path, data)
    atomic_write_text(args.out, render(data))
    if args.limit is None:  # only a full run speaks for the model in the README
        update_readme(data)
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
