"""Tables and figures from saved per-sample results; ``python -m selfdebug.report RESULTS_DIR OUT_DIR``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from selfdebug.evaluate.metrics import compute_all
from selfdebug.evaluate.protocol import SAMPLE_GROUPS
from selfdebug.io import atomic_write_json, atomic_write_text, read_jsonl
from selfdebug.prompts import PROMPT_LABELS
from selfdebug.report.figures import rounds_figure, selfdebug_bars
from selfdebug.report.tables import (
    AVERAGE_NOTE,
    benchmarks_note,
    per_problem_frame,
    sandbox_note,
    table2,
    table3,
    table4,
    table_deltas,
    write_table,
)

log = logging.getLogger(__name__)


def load_results(results_dir: str | Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The resolved config and the per-sample records (``samples/<benchmark>.jsonl.gz``) of one evaluation."""
    results_dir = Path(results_dir)
    config_path = results_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no resolved config; is {results_dir} an evaluation result folder?")
    config = yaml.safe_load(config_path.read_text())
    records = {p.name.split(".")[0]: list(read_jsonl(p)) for p in sorted((results_dir / "samples").glob("*.jsonl*"))}
    if not records:
        raise FileNotFoundError(f"{results_dir}/samples: no per-sample results")
    return config, records


def build_report(results_dir: str | Path, out_dir: str | Path, prefix: str = "") -> dict[str, Any]:
    """Recompute every metric from the per-sample records and write tables, figures and metrics.json."""
    config, records = load_results(results_dir)
    ev = config["evaluate"]
    metrics = compute_all(records, ev["ks"], n_boot=ev["bootstrap"], ci=ev["ci"], seed=config["seed"])
    metrics["profile"] = config["profile"]
    metrics["model"] = config["model"]["id"]
    out_dir = Path(out_dir)
    atomic_write_json(Path(results_dir) / "metrics.json", metrics)
    model = config["model"]["id"]
    note = (f"Profile `{config['profile']}`, model `{model}`, n={ev['n_samples']} samples per problem at "
            f"T={ev['temperature']}, {ev['limit'] or 'all'} problems per benchmark; refinement at "
            f"T={ev['refine_temperature']}. Values in %, with {int(100 * ev['ci'])}% bootstrap CIs over problems. "
            "Resample = the compute-matched baseline (a fresh sample without feedback per wrong sample).")
    missing = sorted({b for m in metrics["groups"].values() for b in m["missing"]})
    if missing:
        note += f" Not run in this profile: {', '.join(missing)}."
    note += " " + sandbox_note(metrics)
    note += (" " + benchmarks_note(metrics)) if benchmarks_note(metrics) else ""
    written = []
    written += write_table(table2(metrics), out_dir, f"{prefix}table2_passk", "Table 2: pass@k of initial and refined solutions", note)
    written += write_table(table3(metrics), out_dir, f"{prefix}table3_overall", "Table 3: overall pass@k by benchmark group", note)
    written += write_table(table4(metrics), out_dir, f"{prefix}table4_success_rate", "Table 4: success-refinement rate",
                           note + " " + AVERAGE_NOTE)
    written += write_table(table_deltas(metrics), out_dir, f"{prefix}table_deltas",
                           "Differences between approaches (percentage points)",
                           note + " Each difference has a paired bootstrap CI: both approaches are resampled "
                           "with the same problems.")
    written.append(atomic_write_text(out_dir / f"{prefix}per_problem_passk.csv",
                                     per_problem_frame(records, ev["ks"]).to_csv(index=False)))
    written.append(selfdebug_bars(metrics, out_dir / f"{prefix}selfdebug_passk.png", title=f"Self-debugging of {model} ({config['profile']} profile)"))
    for k in ev["ks"]:
        if metrics and any(r > 0 for m in metrics["benchmarks"].values() for r in [max(e["round"] for e in m["pass_at_k"])]):
            written.append(rounds_figure(metrics, out_dir / f"{prefix}fig4_rounds_pass{k}.png", k=k,
                                         title=f"pass@{k} per refinement round ({config['profile']} profile)"))
    written.append(atomic_write_text(out_dir / f"{prefix}table9_human.md", human_ratings_section(results_dir)))
    run_md = run_summary(results_dir)
    if run_md:
        written.append(atomic_write_text(out_dir / f"{prefix}run_summary.md", run_md))
    log.info("wrote %s", ", ".join(str(p) for p in written))
    return metrics


HUMAN_STUDY = "human_eval"
"""The rating study of a results folder: ``items.jsonl`` (the sample), ``ratings/`` (one file per rater) and,
when an LLM judge has scored the same items, ``judge_scores.jsonl`` (see selfdebug.human)."""


def human_ratings_section(results_dir: str | Path) -> str:
    """Table 9's developers' row from the human ratings beside the results, with agreement; a plain
    statement when there is no study or no rating yet."""
    study = Path(results_dir) / HUMAN_STUDY
    head = "### Table 9: explanation quality rated by people (paper §4.4)\n\n"
    if not (study / "items.jsonl").is_file():
        return head + (f"No human rating study beside these results (no `{HUMAN_STUDY}/items.jsonl`), so the "
                       "developers' row of Table 9 cannot be computed. `python -m selfdebug.human sample` draws "
                       "one and `notebooks/09_human_eval.ipynb` collects the ratings.\n")
    from selfdebug.human.analysis import analyse
    from selfdebug.human.sample import read_items

    judge = study / "judge_scores.jsonl"
    report = analyse(read_items(study / "items.jsonl"), study / "ratings", judge if judge.is_file() else None)
    return head + report.markdown() + "\n"


def _engine_line(engine: dict | None) -> str:
    """What the engine's prefix cache saved, when it reports it (llama.cpp)."""
    if not engine or not engine.get("prompt_tokens"):
        return ""
    return (f" The engine evaluated {int(engine['prefill_tokens'])} of the {int(engine['prompt_tokens'])} prompt "
            f"tokens it was given; it took the KV of the other {int(engine['reused_tokens'])} from its prefix cache.")


REPEAT_TAIL, REPEAT_WINDOW, REPEAT_TIMES = 1500, 60, 3


def is_repeating(text: str) -> bool:
    """Whether a reply ends in a loop: some 60-character stretch (at a 10-character step) occurs three or more
    times in its last 1,500 characters. A small model that falls into one never stops by itself, so a larger
    token cap would not end such a reply; the caps are sized by the other cut replies."""
    tail = text[-REPEAT_TAIL:]
    seen: dict[str, int] = {}
    for i in range(0, len(tail) - REPEAT_WINDOW + 1, 10):
        window = tail[i:i + REPEAT_WINDOW]
        seen[window] = seen.get(window, 0) + 1
        if seen[window] >= REPEAT_TIMES:
            return True
    return False


def _cut_lines(records: dict[str, list[dict]]) -> list[str]:
    """The share of replies the token cap cut (``finish_reason == "length"``), per chain, each distinct reply
    once: a cut reply is scored as written, so the caps are sized to keep the share of cut replies that were not
    stuck in a loop (``is_repeating``) at 1% or less."""
    replies: dict[tuple, tuple[str, bool]] = {}
    for bench, rows in records.items():
        for r in rows:
            key = (SAMPLE_GROUPS.get(bench, bench), r["task_id"], r["sample"], r["chain"], r["round"],
                   r["completion"])
            reason = r.get("finish_reason", "stop")
            replies[key] = reason, reason == "length" and is_repeating(r["completion"] or "")
    chains = sorted({k[3] for k in replies}, key=lambda c: list(PROMPT_LABELS).index(c) if c in PROMPT_LABELS else 99)
    lines = ["Replies cut by the token cap (`max_new_tokens` for Init. and Resample, `refine_max_new_tokens` for "
             "the refinements). *Looping*: the reply's end repeats itself (a 60-character stretch three or more "
             "times in its last 1,500 characters), so no cap would have ended it; the target, at most 1%, is for "
             "the others:", "",
             "| chain | replies | cut | share | of which looping | cut, not looping |", "|---|---|---|---|---|---|"]
    for chain in chains:
        reasons = [v for k, v in replies.items() if k[3] == chain]
        cut = sum(v[0] == "length" for v in reasons)
        looping = sum(v[1] for v in reasons)
        lines.append(f"| {PROMPT_LABELS.get(chain, chain)} | {len(reasons)} | {cut} | {100 * cut / len(reasons):.1f}% "
                     f"| {looping} | {100 * (cut - looping) / len(reasons):.1f}% |")
    return lines


def _machine_lines(summary: dict) -> list[str]:
    """The machine the run's speed choices were made for (CPU model and the flags that decide kernels)."""
    machine = summary.get("machine")
    if not machine:
        return []
    from selfdebug.generate.cpu import describe_cpu

    line = f"Machine: {describe_cpu(machine)}."
    probe = summary.get("engine_probe") or []
    if probe:
        line += " llama.cpp probe: " + "; ".join(f"{a['settings']}: {a['how']}" for a in probe) + "."
    if summary.get("torch_dtype"):
        line += f" transformers ran in {summary['torch_dtype']}."
    return ["", line]


def run_summary(results_dir: str | Path) -> str:
    """What the run cost: wall time, tokens and throughput per benchmark (``summary.json``), and the stage's
    wall time and peak memory from GNU time (``time.txt``) when it was measured."""
    results_dir = Path(results_dir)
    path = results_dir / "summary.json"
    if not path.is_file():
        return ""
    summary = json.loads(path.read_text())
    gen = summary.get("generation", {})
    _, records = load_results(results_dir)
    # benchmarks that share samples (HumanEval and HumanEval+) hold the same replies: count each reply once
    unique = {(SAMPLE_GROUPS.get(b, b), r["task_id"], r["sample"], r["chain"], r["round"], r["completion"]):
              r["completion_tokens"] for b, rows in records.items() for r in rows}
    lines = ["### What the run cost", "",
             f"The per-sample records hold {len(unique)} distinct model replies with {sum(unique.values())} "
             f"completion tokens, generated with backend `{summary.get('backend')}`.", "",
             f"The last invocation of the stage asked for {int(gen.get('requests', 0))} requests, of which "
             f"{int(gen.get('resumed', 0))} were answered from the generation log (asked before by a benchmark "
             f"sharing its prompts, or made by an earlier, interrupted invocation); it generated {int(gen.get('completion_tokens', 0))} tokens in "
             f"{gen.get('seconds', 0):.0f} s of engine time "
             f"({gen.get('completion_tokens', 0) / max(gen.get('seconds', 0), 1e-9):.1f} tok/s) and took "
             f"{summary.get('seconds', 0):.0f} s in all." + _engine_line(gen.get("engine")), "",
             "| benchmark | problems | attempts recorded | seconds in the last invocation |", "|---|---|---|---|"]
    for bench, row in summary.get("benchmarks", {}).items():
        lines.append(f"| {bench} | {row['problems']} | {row['records']} | {row['seconds']:.0f} |")
    lines += ["", *_cut_lines(records), *_machine_lines(summary)]
    earlier = summary.get("previous_invocations", [])
    if earlier:
        lines += ["", "Earlier invocations of the same stage (each resumed from the log of the ones before):", "",
                  "| invocation | requests | answered from the log | tokens generated | engine s | tok/s | total s |",
                  "|---|---|---|---|---|---|---|"]
        for i, inv in enumerate(earlier, 1):
            g = inv.get("generation", {})
            tok, sec = g.get("completion_tokens", 0), g.get("seconds", 0)
            lines.append(f"| {i} | {int(g.get('requests', 0)) or '?'} | {int(g.get('resumed', 0)) if 'resumed' in g else '?'} "
                         f"| {int(tok)} | {sec:.0f} | {tok / max(sec, 1e-9):.1f} | {inv.get('seconds', 0):.0f} |")
    timing = results_dir / "time.txt"
    if timing.is_file():
        fields = dict(line.strip().split(": ", 1) for line in timing.read_text().splitlines() if ": " in line)
        wall = fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "?")
        rss_kb = fields.get("Maximum resident set size (kbytes)")
        rss = f"{int(rss_kb) / 1024 ** 2:.2f} GiB" if rss_kb and rss_kb.isdigit() else "?"
        lines += ["", f"The last invocation of the notebook stage (papermill, measured by GNU time): wall time {wall}, "
                  f"peak resident memory of its largest process {rss}."]
    return "\n".join(lines) + "\n"
