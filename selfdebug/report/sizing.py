"""How large an evaluation must be for the paired SFT-minus-base difference in success-refinement rate to have a
95% CI no wider than a target (±8 points), and what it would cost, projected from a committed pilot run.

The pilot is the profile's base run and its SFT model's run on the base's wrong programs (``evaluate.common``:
both models refine the same programs with the same requests). For every evaluation size P (problems, pooled over
the benchmarks named, each problem with its wrong programs), the projection draws P problems with replacement from
the pilot's problems (the pilot stands in for the population of problems), computes the CI exactly as the report
does (a paired bootstrap over problems), and averages the half-width over draws. The cost of one model's
evaluation grows with the problems per benchmark; the projection scales the pilot's measured wall time (GNU time
of its evaluations) linearly, and adds the stages whose cost does not depend on the evaluation's size (collection,
SFT, RL) as the pilot measured them.

With a pilot of a dozen problems the projection is rough (it cannot see problems unlike the pilot's), and it is
only as good as the pilot's rates: a base model that fixes nothing narrows the CI. It answers the sizing question
with the numbers at hand, not with a guess:

    python -m selfdebug.report.sizing --profile cpu --out figures/sizing.md
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from selfdebug.config import Config, load_config, repo_path
from selfdebug.io import read_jsonl, write_or_print

log = logging.getLogger(__name__)
SIZES = (12, 24, 48, 96, 192, 384)
"""Evaluation sizes projected: problems pooled over the benchmarks (half HumanEval, half MBPP for the default)."""


def paired_problems(base_dir: Path, trained_dir: Path, benchmarks: list[str], chain: str) -> tuple[np.ndarray, np.ndarray]:
    """Per problem of the pooled benchmarks: (fixed, wrong programs) of the trained model and of the base, over the
    base's wrong programs that neither side lost to a sandbox failure (``evaluate.common``'s pairing); a problem
    without such a program is a row of zeros."""
    from selfdebug.evaluate.common import COMMON_DIR, _by_program, _paired_fixed, _refinements, wrong_programs
    from selfdebug.report import load_results

    _, base_records = load_results(base_dir)
    trained, base = [], []
    for bench in benchmarks:
        found = sorted((trained_dir / COMMON_DIR).glob(f"{bench}.jsonl*"))
        if not found or bench not in base_records:
            raise FileNotFoundError(f"sizing: {bench} needs {base_dir}/samples/{bench}.jsonl.gz and "
                                    f"{trained_dir}/{COMMON_DIR}/{bench}.jsonl.gz (make evaluate-sft)")
        wrong = {(r["task_id"], r["sample"]) for r in wrong_programs(base_records[bench])}
        ours = _refinements(list(read_jsonl(found[0])), chain, wrong)
        paired = _paired_fixed([ours, _by_program(base_records[bench], chain, 1)], wrong)
        # every problem of the run counts, those without a wrong program as (0 fixed, 0 wrong): an evaluation of
        # P problems holds such problems in the pilot's proportion, and its cost counts them
        n_problems = len({r["task_id"] for r in base_records[bench]})
        kept = [] if paired is None else paired[1]
        empty = np.zeros((n_problems - (len(kept[0]) if kept else 0), 2))
        trained.append(np.vstack([kept[0], empty]) if kept else empty)
        base.append(np.vstack([kept[1], empty]) if kept else empty)
    if not any(t[:, 1].sum() for t in trained):
        raise ValueError(f"sizing: no wrong program of {benchmarks} has both models' {chain} verdicts")
    return np.concatenate(trained), np.concatenate(base)


def projected_half_width(trained: np.ndarray, base: np.ndarray, n_problems: int, *, draws: int = 30,
                         n_boot: int = 500, ci: float = 0.95, seed: int = 0) -> float:
    """Mean half-width (points) of the paired bootstrap CI of trained minus base, over ``draws`` evaluations of
    ``n_problems`` problems drawn with replacement from the pilot's."""
    from selfdebug.evaluate.bootstrap import paired_bootstrap_diff

    rng = np.random.default_rng(seed)
    widths = []
    for d in range(draws):
        idx = rng.integers(0, trained.shape[0], size=n_problems)
        _, lo, hi = paired_bootstrap_diff(trained[idx], base[idx], n_boot=n_boot, ci=ci, seed=seed + d)
        widths.append((hi - lo) / 2)
    return float(100 * np.nanmean(widths))


def sizing(config: Config, target: float = 8.0, sizes: tuple[int, ...] = SIZES, hours_target: float = 3.0
           ) -> dict[str, Any]:
    """The projection for the profile's base and SFT runs (``report.results``, ``report.models``'s SFT entry)."""
    from selfdebug.report.budget import parse_gnu_time, stage_time_files

    rc = config.report
    base_dir = repo_path(rc.results, f"runs/{config.profile}/evaluate")
    sft = [folder for label, folder in rc.models.items() if "SFT" in label]
    if not sft:
        raise ValueError(f"sizing: profile {config.profile!r} names no SFT model in report.models")
    sft_dir = repo_path(sft[0], sft[0])
    ev = config.evaluate
    benchmarks = [b for b in ("humaneval", "mbpp") if b in ev.benchmarks]
    files = stage_time_files(config)
    times = {step: [t for t in (parse_gnu_time(p) for p in paths) if t is not None] for step, paths in files.items()}
    unmeasured = {step: [str(p) for p in files[step]] for step, found in times.items() if not found}
    if unmeasured:
        raise ValueError(f"sizing: no GNU time report of {sorted(unmeasured)} (looked for {unmeasured}): "
                         "the projection needs every stage's measured wall time")
    walls = {step: sum(t.wall_s for t in found) for step, found in times.items()}
    rows, per_benchmark = [], 0
    for chain in ("refine", "explain_refine"):
        trained, base = paired_problems(base_dir, sft_dir, benchmarks, chain)
        per_benchmark = trained.shape[0] // len(benchmarks)  # the pilot's own size, whatever evaluate.limit says
        widths = {p: projected_half_width(trained, base, p, ci=ev.ci, seed=config.seed) for p in sizes}
        rows.append({"chain": chain, "pilot_problems": int(trained.shape[0]),
                     "pilot_programs": int(trained[:, 1].sum()), "widths": widths})
    evaluations = [walls.get(s, 0.0) for s in ("evaluate", "evaluate-sft", "evaluate-rl")]
    fixed = sum(walls.get(s, 0.0) for s in ("collect", "sft", "rl"))
    hours = {p: (fixed + sum(evaluations) * (p / len(benchmarks)) / max(per_benchmark, 1)) / 3600 for p in sizes}
    return {"profile": config.profile, "ci": ev.ci, "target": target, "hours_target": hours_target, "benchmarks": benchmarks, "pilot_limit": per_benchmark,
            "rows": rows, "hours": hours, "fixed_hours": fixed / 3600, "evaluation_hours": sum(evaluations) / 3600}


def markdown(result: dict[str, Any]) -> str:
    from selfdebug.report.tables import PROMPT_LABELS

    sizes = list(result["hours"])
    benches = " and ".join(result["benchmarks"])
    lines = [f"### How large the `{result['profile']}` evaluation must be for a ±{result['target']:g}-point CI", "",
             f"Projected half-width (points) of the {result['ci']:.0%} CI of LeDex SFT − base in success-refinement rate on the "
             f"same wrong programs, pooled over {benches}, for P problems (P/{len(result['benchmarks'])} per "
             f"benchmark), from the pilot's problems drawn with replacement (`selfdebug.report.sizing`); and the "
             f"projected wall time of the whole pipeline (collection, SFT and RL as measured, plus the three "
             f"evaluations scaled from the pilot's {result['pilot_limit']} problems per benchmark).", "",
             "| approach | pilot problems | pilot wrong programs | " + " | ".join(f"P={p}" for p in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]
    for row in result["rows"]:
        lines.append(f"| {PROMPT_LABELS.get(row['chain'], row['chain'])} | {row['pilot_problems']} | "
                     f"{row['pilot_programs']} | " + " | ".join(f"±{row['widths'][p]:.1f}" for p in sizes) + " |")
    lines.append("| projected hours, whole pipeline | | | " + " | ".join(f"{result['hours'][p]:.1f}" for p in sizes)
                 + " |")
    ok = {row["chain"]: next((p for p in sizes if row["widths"][p] <= result["target"]), None) for row in result["rows"]}
    lines += [""]
    for chain, p in ok.items():
        label = PROMPT_LABELS.get(chain, chain)
        lines.append(f"- {label}: " + (f"±{result['target']:g} is reached at P={p}, projected "
                                       f"{result['hours'][p]:.1f} h in all" if p else
                                       f"±{result['target']:g} is not reached up to P={sizes[-1]}") + ".")
    budget = result["hours_target"]
    within = [p for p in sizes if result["hours"][p] <= budget]
    both = [p for p in within if all(row["widths"][p] <= result["target"] for row in result["rows"])]
    lines.append(f"- The whole pipeline within {budget:g} h: " + (
        f"up to P={within[-1]}" if within else
        f"at no projected size (the smallest, P={sizes[0]}, {result['hours'][sizes[0]]:.1f} h)") + "; both targets "
        f"(±{result['target']:g} points and {budget:g} h) together: " + (f"P={both[0]}" if both else "at no size")
        + ".")
    lines += ["", f"Fixed stages (collection, SFT, RL) as measured: {result['fixed_hours']:.1f} h; the pilot's three "
              f"evaluations: {result['evaluation_hours']:.1f} h. Each is its stage's last invocation (GNU time): a "
              "stage that resumed earlier work counts only the resume, so the hours are a lower bound where a stage "
              "was resumed."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluation size needed for a target CI width, from a pilot run.")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--target", type=float, default=8.0, help="half-width in points (default 8)")
    parser.add_argument("--hours", type=float, default=3.0, help="wall-time target of the whole pipeline (default 3)")
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    text = markdown(sizing(load_config(args.profile), args.target, hours_target=args.hours))
    write_or_print(text, args.out)


if __name__ == "__main__":
    main()
