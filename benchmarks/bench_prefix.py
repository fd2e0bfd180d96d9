"""What the reply prefix (``collect.explanation_prefix``) buys a small teacher: the same hindsight requests
asked without and with it, each reply verified in the sandbox and its explanation checked by the filter's
``explanation_problem`` (empty, echoing our prompt, talking about the hint).

It reads a finished sampling stage (``runs/<profile>/collect/sample``), draws ``--n`` wrong solutions that
have a correct sibling (seeded), asks the profile's model for one hindsight "Explain + Refine" reply each,
as the paper's single reply and with the prefix in two passes and in one (``VARIANTS``), and writes
``benchmarks/results/collect_prefix.{json,md}``. Generation is cached per variant under ``runs/bench-prefix/``;
delete it to measure the time again.

    python benchmarks/bench_prefix.py [--profile cpu] [--n 48] [--sample-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REASONS = ("empty", "copies_prompt", "mentions_hint")


VARIANTS = (("single reply", False, True), ("reply prefix, two passes", True, False),
            ("reply prefix, one pass", True, True))
"""(name, with the prefix, ``collect.prefix_one_pass``)."""


def measure(profile: str, n: int, prefix: str | None, sample_dir: Path | None = None) -> dict[str, Any]:
    from selfdebug.collect.common import CachedExecutor, LazySandbox, open_backend
    from selfdebug.collect.filter import explanation_problem, parse_refinement
    from selfdebug.collect.refine import _ask, load_sample_outputs, plan_attempts
    from selfdebug.config import load_config
    from selfdebug.generate.cpu import describe_cpu
    from selfdebug.generate.runner import GenerationRunner, model_tag
    from selfdebug.io import JsonlLog

    base = load_config(profile, ["collect.modes=[]", "collect.hindsight=true", "collect.n_refinements=1"])
    prefix = base.collect.explanation_prefix if prefix is None else prefix
    if not prefix:
        raise SystemExit(f"profile {profile!r} has no collect.explanation_prefix; give --prefix")
    sample_dir = sample_dir or ROOT / "runs" / profile / "collect" / "sample"
    if not (sample_dir / "done.json").is_file():
        raise SystemExit(f"{sample_dir}: no finished sampling stage; run `make collect PROFILE={profile}` first")
    problems, solutions = load_sample_outputs(sample_dir)
    attempts = plan_attempts(base, problems, solutions)
    picked = random.Random(0).sample(attempts, min(n, len(attempts)))
    engine, _ = open_backend(base.model)
    out_dir = ROOT / "runs" / "bench-prefix"
    rows = []
    try:
        for name, with_prefix, one_pass in VARIANTS:
            value = prefix if with_prefix else ""
            cfg = load_config(profile, ["collect.modes=[]", "collect.hindsight=true", "collect.n_refinements=1",
                                        f"collect.explanation_prefix={json.dumps(value)}",
                                        f"collect.prefix_one_pass={str(one_pass).lower()}"])
            asked = [copy.deepcopy(a) for a in picked]
            # each variant its own cache: the one-pass variant's first requests differ (their stop string)
            cache = out_dir / f"generations-{'single' if not value else 'one-pass' if one_pass else 'prefix'}.jsonl"
            runner = GenerationRunner(backend=engine, cache=JsonlLog(cache), seed=cfg.seed, chunk_size=32,
                                      model_tag=model_tag(cfg.model.id, cfg.model.chat_format, engine))
            errors: dict[str, str] = {}
            t0 = time.perf_counter()
            _ask(cfg, name, asked, runner, errors)
            seconds = time.perf_counter() - t0
            if errors:
                raise SystemExit(f"{name}: {len(errors)} requests failed, e.g. {next(iter(errors.values()))}")
            execute = CachedExecutor(out_dir / "executions.jsonl", LazySandbox(cfg))
            jobs, why = [], []
            for a in asked:
                p = problems[a["problem_id"]]
                explanation, code = parse_refinement(a["replies"][0]["completion"], p, "explain_refine")
                jobs.append((p.program(code), p))
                why.append(explanation_problem(explanation, value, True) if explanation.strip() else "empty")
            results = execute(jobs)
            execute.sandbox.close()
            verified = [r["passed"] for r in results]
            rows.append({
                "variant": name, "prefix": value, "one_pass": one_pass, "requests": len(asked),
                "code_continuations": sum(bool(r.get("code_generation_key")) and r.get("code_generation_key")
                                          != r.get("generation_key") for a in asked for r in a["replies"]),
                "completion_tokens": sum(a["replies"][0]["completion_tokens"] or 0 for a in asked),
                "generation_s": round(seconds, 1), "resumed": runner.stats.get("samples_resumed", 0),
                "verified": sum(verified),
                "verified_with_explanation": sum(v and w is None for v, w in zip(verified, why, strict=True)),
                **{f"rejected_{r}": sum(w == r for w in why) for r in REASONS},
            })
    finally:
        if hasattr(engine, "close"):
            engine.close()
    for r in rows:
        minutes = r["generation_s"] / 60
        r["explained_pairs_per_min"] = round(r["verified_with_explanation"] / minutes, 2) if minutes else None
    return {"profile": profile, "cpu": describe_cpu(), "n": len(picked), "sample_dir": str(sample_dir),
            "rows": rows}


def render(res: dict[str, Any]) -> str:
    head = ("| variant | requests | second generations | verified | verified with an explanation | explanation "
            "empty | echoes the prompt | mentions the hint | tokens | generation s | explained pairs per minute |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['variant']} | {r['requests']} | {r.get('code_continuations', '')} | {r['verified']} | "
             f"**{r['verified_with_explanation']}** | "
             f"{r['rejected_empty']} | {r['rejected_copies_prompt']} | {r['rejected_mentions_hint']} | "
             f"{r['completion_tokens']} | {r['generation_s']} | **{r['explained_pairs_per_min']}** |"
             for r in res["rows"]]
    prefix = next(r["prefix"] for r in res["rows"] if r["prefix"])
    resumed = any(r["resumed"] for r in res["rows"])
    return ("# The reply prefix of a small teacher: hindsight replies with and without it\n\n"
            f"CPU: {res['cpu']}. Profile `{res['profile']}`, its model as the teacher, {res['n']} wrong solutions "
            "with a correct sibling drawn from its sampling stage (seed 0), one hindsight \"Explain + Refine\" "
            f"reply each (sampling stage `{res.get('sample_dir', '')}`). Single reply = the paper's shape; reply "
            f"prefix = the reply starts with \"{prefix}\"; the explanation is what comes before its first code "
            "fence. Two passes: every reply is cut at that fence and its code is asked for by a second prefix "
            "that opens the block (the prompt is evaluated again). One pass (`collect.prefix_one_pass`, the "
            "default): the reply goes on into its own block and stops at the block's closing fence; only a reply "
            "that opened no block gets the second generation. Verified = the code passes every test; an "
            "explanation is dropped when it is "
            "empty, echoes our feedback turn or ask, or talks about the hint (`collect.filter."
            "explanation_problem`, as the filter stage does). "
            + ("Some replies came from the cache, so the times are not all measured in this run. " if resumed else "")
            + "\n\n" + head + "\n".join(lines) + "\n\nRerun: `python benchmarks/bench_prefix.py` (delete "
            "`runs/bench-prefix/` to regenerate).\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--prefix", default=None, help="default: the profile's collect.explanation_prefix")
    ap.add_argument("--sample-dir", type=Path, default=None,
                    help="a finished sampling stage (default: runs/<profile>/collect/sample)")
    ap.add_argument("--fresh", action="store_true", help="delete runs/bench-prefix first (times measured anew)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "collect_prefix"))
    args = ap.parse_args()
    from selfdebug.io import atomic_write_json, atomic_write_text

    if args.fresh:
        shutil.rmtree(ROOT / "runs" / "bench-prefix", ignore_errors=True)
    res = measure(args.profile, args.n, args.prefix, args.sample_dir)
    atomic_write_json(args.out + ".json", res)
    atomic_write_text(args.out + ".md", render(res))
    print(render(res))


if __name__ == "__main__":
    main()
