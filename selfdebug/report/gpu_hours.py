"""GPU-hours per stage of a GPU profile (``paper-*``, ``gpu-small``), estimated from the tokens our cpu run measured.

Nothing here ran on a GPU (the project's machines have none). The estimate multiplies three things, each shown:

1. **Tokens per unit of work, measured** by the committed cpu run (``figures/results/cpu``): per initial sample and
   per refinement request (prompt + completion, from the per-sample records), per evaluated (problem, sample) with
   every refinement, round and the Resample baseline, per SFT example (tokens the trainer saw), per PPO rollout.
   They are the 0.5B model's tokens with its tokenizer; another model writes longer or shorter code.
2. **Units of work of the profile**: its benchmarks' problems x ``evaluate.n_samples`` for each of the base, SFT and
   RL models; for the collection and SFT, the paper's Table 1 sizes of the profile's sources (``data/paper``)
   with the profile's ``n_samples``, ``n_refinements``, formats and epochs; ``rl.steps`` x ``rl.batch_size``.
3. **FLOPs and a GPU, assumed**: 2N FLOPs per token through a forward pass and 6N with the backward pass (N: the
   model's parameters); a PPO rollout is generated, scored by the policy, reference and value passes, and trained
   ``rl.ppo_epochs`` times. Divided by the GPU's dense bf16 peak times a utilisation: ``--gpu-tflops`` (A100's
   312 by default), ``--train-mfu`` (0.4, what large-model trainers commonly reach) and ``--generate-mfu`` (0.1:
   decoding is memory-bound even in vLLM's large batches). Change them for your hardware.

    python -m selfdebug.report.gpu_hours --profile paper-codellama-7b [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, Config, load_config
from selfdebug.io import read_jsonl, write_or_print

log = logging.getLogger(__name__)
PARAMS = {"bigcode/starcoder": 15.5e9, "codellama/CodeLlama-7b-hf": 6.74e9, "codellama/CodeLlama-13b-hf": 13.0e9,
          "Qwen/Qwen2.5-Coder-1.5B-Instruct": 1.54e9, "embedded": 0.49e9, "embedded-teacher": 1.54e9}
"""Parameters of the models the profiles name (their model cards); ``--params`` for any other."""
TRAIN_PROBLEMS = {"mbpp": 374, "apps": 5000, "codecontests": 6627}
"""Training problems per source, as the paper's Table 1 names them (LEDEX.md §1.5)."""
TABLE1_SOURCE = {"mbpp": "MBPP", "apps": "APPS", "codecontests": "CodeContest"}
PILOT = REPO_ROOT / "figures" / "results" / "cpu"


def measured_tokens(pilot: Path = PILOT) -> dict[str, float]:
    """Tokens per unit of work in the committed cpu run (see the module docstring)."""
    from selfdebug.evaluate.protocol import SAMPLE_GROUPS
    from selfdebug.report import load_results

    config, records = load_results(pilot)
    ev = config["evaluate"]
    init, refine, refine_prompt, per_group = [], [], [], {}
    for bench, rows in records.items():
        group = SAMPLE_GROUPS.get(bench, bench)
        if group in per_group:  # HumanEval+ scores HumanEval's samples: count them once
            continue
        per_group[group] = (sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows),
                            len({r["task_id"] for r in rows}) * ev["n_samples"])
        init += [r["prompt_tokens"] + r["completion_tokens"] for r in rows if r["chain"] == "init"]
        first = [r for r in rows if r["chain"] in ("refine", "explain_refine") and r["round"] == 1]
        refine += [r["prompt_tokens"] + r["completion_tokens"] for r in first]
        refine_prompt += [r["prompt_tokens"] for r in first]
    sft = json.loads((pilot / "sft" / "summary.json").read_text())
    sft_cfg = config_of(pilot / "sft")
    rl_log = [row for row in read_jsonl(pilot / "rl" / "log.jsonl") if "response_tokens" in row]
    empty = [name for name, rows in (("initial samples", init), ("refinement replies", refine),
                                     ("refinement prompts", refine_prompt), (f"{pilot}/rl/log.jsonl rows with "
                                                                             "response_tokens", rl_log)) if not rows]
    if empty:
        raise ValueError(f"gpu_hours: the pilot {pilot} has no {', no '.join(empty)} to measure tokens from")
    return {
        "sample": sum(init) / len(init),
        "refine": sum(refine) / len(refine),
        "evaluate": sum(t for t, _ in per_group.values()) / sum(n for _, n in per_group.values()),
        "sft_example": sft["tokens_seen"] / (sft["examples"]["total"] * float(sft_cfg["sft"]["epochs"])),
        # a rollout's prompt is a refinement request; its response as long as the RL run's mean response
        "rl_rollout": sum(refine_prompt) / len(refine_prompt) + sum(r["response_tokens"] for r in rl_log) / len(rl_log),
    }


def config_of(folder: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((folder / "config.yaml").read_text())


def work_units(config: Config) -> dict[str, float]:
    """Units of work of the profile (see the module docstring)."""
    from selfdebug.evaluate.protocol import SAMPLE_GROUPS
    from selfdebug.evaluate.stage import load_problems
    from selfdebug.report.paper import paper_results

    problems = load_problems(config)
    groups = {SAMPLE_GROUPS.get(b, b): len(p) for b, p in problems.items()}
    table1 = paper_results()
    table1 = table1[table1["table"] == "Table 1"]

    def paper(source: str, metric: str) -> float:
        rows = table1[(table1["benchmark"] == TABLE1_SOURCE[source]) & (table1["metric"] == metric)]
        return float(rows["value"].iloc[0])

    co, sc, rc = config.collect, config.sft, config.rl
    sources = [s for s in co.sources if s in TRAIN_PROBLEMS]
    wrong = sum(paper(s, "#Wrong Solutions") for s in sources)
    examples = sum((paper(s, "#Correct Solutions") if sc.code_generation else 0)
                   + paper(s, "#Correct Refinement") * len(sc.formats) for s in sources)
    return {"evaluate": 3 * sum(groups.values()) * config.evaluate.n_samples,
            "sample": sum(TRAIN_PROBLEMS[s] for s in sources) * co.n_samples,
            "refine": wrong * co.n_refinements * max(1, len(co.modes)),
            "sft_example": examples * sc.epochs, "rl_rollout": rc.steps * rc.batch_size}


def estimate(config: Config, params: float | None = None, gpu_tflops: float = 312.0, train_mfu: float = 0.4,
             generate_mfu: float = 0.1) -> dict[str, Any]:
    n = params or PARAMS.get(config.model.id)
    if n is None:
        raise ValueError(f"gpu_hours: no parameter count known for {config.model.id!r}; give --params")
    tokens, units = measured_tokens(), work_units(config)
    rollout_flops = (2 + 3 * 2 + config.rl.ppo_epochs * 6) * n  # generate, score (policy/ref/value), train
    flops_per_token = {"sample": 2 * n, "refine": 2 * n, "evaluate": 2 * n, "sft_example": 6 * n,
                       "rl_rollout": rollout_flops}
    mfu = {"sample": generate_mfu, "refine": generate_mfu, "evaluate": generate_mfu, "sft_example": train_mfu,
           "rl_rollout": train_mfu}
    rows = {}
    for stage in tokens:
        total = tokens[stage] * units[stage]
        rows[stage] = {"units": units[stage], "tokens_per_unit": tokens[stage], "tokens": total,
                       "gpu_hours": total * flops_per_token[stage] / (gpu_tflops * 1e12 * mfu[stage]) / 3600}
    return {"profile": config.profile, "model": config.model.id, "params": n, "gpu_tflops": gpu_tflops,
            "train_mfu": train_mfu, "generate_mfu": generate_mfu, "stages": rows,
            "total": sum(r["gpu_hours"] for r in rows.values())}


STAGE_LABELS = {"sample": "collection: sampling (notebook 01)", "refine": "collection: teacher replies (02)",
                "sft_example": "SFT (04)", "rl_rollout": "RL, PPO (05)", "evaluate": "evaluation of base, SFT, RL (06)"}
UNIT_LABELS = {"sample": "sampled solutions", "refine": "teacher replies", "sft_example": "examples x epochs",
               "rl_rollout": "rollouts", "evaluate": "(problem, sample) x 3 models"}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"### Estimated GPU-hours of `{result['profile']}` ({result['model']}, "
             f"{result['params'] / 1e9:.1f}B parameters)", "",
             "| stage | units | tokens per unit (measured, cpu run) | tokens | GPU-hours |", "|---|---|---|---|---|"]
    for stage in ("sample", "refine", "sft_example", "rl_rollout", "evaluate"):
        r = result["stages"][stage]
        lines.append(f"| {STAGE_LABELS[stage]} | {r['units']:,.0f} {UNIT_LABELS[stage]} | {r['tokens_per_unit']:.0f} "
                     f"| {r['tokens'] / 1e6:,.1f}M | {r['gpu_hours']:.1f} |")
    lines += [f"| **total** | | | | **{result['total']:.1f}** |", "",
              f"Assumed, not measured: {result['gpu_tflops']:g} TFLOP/s dense bf16 per GPU, utilisation "
              f"{result['train_mfu']:g} in training and {result['generate_mfu']:g} in generation; 2N FLOPs per token "
              "forward, 6N with the backward pass. Tokens per unit are the 0.5B model's on the cpu run "
              "(`selfdebug.report.gpu_hours`); the sandbox's CPU time is not counted."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GPU-hours per stage of a GPU profile, from measured tokens.")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--params", type=float, help="model parameters (default: the known size of model.id)")
    parser.add_argument("--gpu-tflops", type=float, default=312.0)
    parser.add_argument("--train-mfu", type=float, default=0.4)
    parser.add_argument("--generate-mfu", type=float, default=0.1)
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    text = markdown(estimate(load_config(args.profile), args.params, args.gpu_tflops, args.train_mfu,
                             args.generate_mfu))
    write_or_print(text, args.out)


if __name__ == "__main__":
    main()
