"""Every table and figure of a profile in one place (notebook 08 and ``make figures``):

- Tables 2-4, the rounds figure (Figure 4) and the run summary of the base model (``build_report``);
- Table 1 of the collection (``collect.table1``); the SFT and RL curves;
- Tables 2-4 by model, with paired differences (``report.models``), for the trained models that were evaluated;
- ``paper_comparison.{md,csv}``: our values beside the paper's (``report.paper``), labelled with model and scale;
- ``table9_explanations.md``: the paper's Table 9 and, where notebook 07 scored explanations, ours;
- ``budget.md``: wall time and peak memory of every stage of `make reproduce` (``selfdebug.report.budget``);
- ``rl_explanation_range.md``: the explanation reward's similarity range for the embedder (``selfdebug.rl.calibrate``);
- ``sizing.md``: the evaluation size a ±8-point CI of SFT − base needs, and its projected cost (``report.sizing``);
- ``report.md``: what was assembled from where, and what was not there.

Everything is recomputed from committed compact results (per-sample records, step logs, ``results.json``), so a
fresh clone rebuilds it in seconds: ``python -m selfdebug.report.assemble --profile cpu --out figures``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, Config, load_config, repo_path
from selfdebug.io import atomic_write_text, read_jsonl

log = logging.getLogger(__name__)
README_BUDGET = ("<!-- budget:start (make figures writes this block: figures/budget.md, figures/sizing.md) -->",
                 "<!-- budget:end -->")
EXPLANATIONS = "explanations"
"""Beside the base model's evaluation results: notebook 07's folder (every model's judged explanations)."""


def _demoted(markdown: str) -> str:
    """Headings one level down (the README's block sits under a ``##`` section)."""
    return "\n".join("#" + line if line.startswith("### ") else line for line in markdown.split("\n"))




def ours_label(config: dict[str, Any], collection: dict[str, Any] | None,
               sft: dict[str, Any] | None = None) -> str:
    """Our column's heading: model, profile, problems, samples and the training data's size: what the SFT run
    trained on (its ``summary.json``) where there is one, since Table 1 may show another collection (a later
    one, or the same one cut by the SFT settings)."""
    from selfdebug.generate.model_specs import MODELS

    mid = config["model"]["id"]
    name = MODELS[mid].upstream if mid in MODELS else mid
    ev = config["evaluate"]
    scale = (f"{ev['limit']} problems per benchmark" if ev.get("limit") else "all problems") + \
        f", n={ev['n_samples']} at T={ev['temperature']}"
    data = (collection or {}).get("counts", {}).get("explained_pairs")
    trained = (sft or {}).get("examples", {}).get("explain_refine")
    if trained is not None:
        scale += f"; SFT on {trained} explained pairs of its own collection"
        if data is not None and data != trained:
            scale += f" (Table 1's collection has {data})"
    elif data is not None:
        scale += f"; trained on its own collection ({data} explained pairs)"
    return f"ours: {name} ({config['profile']} profile; {scale})"


def lineage_note(sft: dict[str, Any] | None, rl: dict[str, Any] | None) -> str:
    """A sentence for the tables when the RL model beside the SFT model did not grow from it (its run's
    ``sft_weights_sha256`` against the SFT run's ``weights_sha256``), since their "RL − SFT" rows would then
    compare two lines of training, not one step of it; empty when it did, or when one of them is missing."""
    if not sft or not rl or not sft.get("weights_sha256"):
        return ""
    shown, started = sft["weights_sha256"], rl.get("sft_weights_sha256")
    if started is None:
        return (f"**LeDex RL's run does not record which SFT model it started from** (it predates that record), so "
                f"it may not have grown from the LeDex SFT model of these tables (weights {shown[:12]}); read its "
                "RL − SFT rows with that in mind, or rerun `make rl` and `make evaluate-rl`.")
    if started != shown:
        return (f"**LeDex RL was trained from another SFT model** (weights {started[:12]}) than the LeDex SFT model "
                f"of these tables ({shown[:12]}): its RL − SFT rows compare two lines of training; rerun `make rl` "
                "and `make evaluate-rl`.")
    return ""


def table9(paper: Any, scores: dict[str, dict[str, float]]) -> str:
    """The paper's Table 9 (mean 1-5 explanation score per model, by rater) and our scores where measured."""
    rows = paper[paper["table"] == "Table 9"]
    lines = ["### Table 9: explanation quality (mean score, 1-5)", "",
             "| rater | model | approach | score |", "|---|---|---|---|"]
    for r in rows.to_dict("records"):
        rater = r["metric"].removeprefix("explanation score (").rstrip(")")
        lines.append(f"| {rater} | paper: {r['model']} | {r['approach']} | {r['value']:.2f} |")
    if scores:
        for label, by_judge in scores.items():
            for judge, value in by_judge.items():
                lines.append(f"| {judge} | ours | {label} | {value:.2f} |")
    else:
        lines += ["", "Ours: not measured for this profile (no `explanations/` beside the evaluation results; "
                  "notebook 07 writes it)."]
    return "\n".join(lines) + "\n"


def assemble(config: Config, out_dir: str | Path = "figures") -> dict[str, Any]:
    """Write the profile's tables and figures to ``out_dir``; return what was written and what was missing."""
    import pandas as pd

    from selfdebug.report import build_report, load_results
    from selfdebug.report.models import compare_models
    from selfdebug.report.paper import comparison, ours_collection, ours_results, paper_results
    from selfdebug.report.tables import write_table

    rc, profile = config.report, config.profile
    out = repo_path(str(out_dir), "figures")
    out.mkdir(parents=True, exist_ok=True)
    results = repo_path(rc.results, f"runs/{profile}/evaluate")
    made: dict[str, list[str]] = {}
    missing: list[str] = []
    base_metrics = build_report(results, out)
    made["base model: Tables 2-4, Figure 4, run summary"] = [str(results)]
    collection_dir = repo_path(rc.collection, f"runs/{profile}/collect")
    collection = None
    if (collection_dir / "results.json").is_file():
        from selfdebug.collect.table1 import write_table1

        collection = json.loads((collection_dir / "results.json").read_text())
        write_table1(collection, out)
        made["Table 1 (collection)"] = [str(collection_dir)]
    else:
        missing.append(f"Table 1: no {collection_dir / 'results.json'}")
    for stage, value, default, figure in (("SFT", rc.sft_log, f"runs/{profile}/sft/log.jsonl", "sft_curves.png"),
                                          ("RL", rc.rl_log, f"runs/{profile}/rl/log.jsonl", "rl_curves.png")):
        log_path = repo_path(value, default)
        if not log_path.is_file():
            missing.append(f"{stage} curves: no {log_path}")
            continue
        if stage == "SFT":
            from selfdebug.sft.curves import curves_figure
        else:
            from selfdebug.rl.curves import curves_figure
        curves_figure(list(read_jsonl(log_path)), out / figure, stage)
        made[f"{stage} curves ({figure})"] = [str(log_path)]
    calibration = repo_path(rc.rl_log, f"runs/{profile}/rl/log.jsonl").parent / "calibration"
    if (calibration / "calibration.json").is_file():
        from selfdebug.rl.calibrate import report_from

        atomic_write_text(out / "rl_explanation_range.md", report_from(calibration))
        made["explanation reward's similarity range (rl_explanation_range.md)"] = [str(calibration)]
    else:
        missing.append(f"explanation reward's similarity range: no {calibration / 'calibration.json'} "
                       f"(python -m selfdebug.rl.calibrate)")
    models = {label: repo_path(folder, folder) for label, folder in rc.models.items()}
    present = {label: p for label, p in models.items() if (p / "config.yaml").is_file()}
    missing += [f"{label}: no evaluation results in {p}" for label, p in models.items() if label not in present]
    metrics = {"base": base_metrics}
    sft_summary = repo_path(rc.sft_log, f"runs/{profile}/sft/log.jsonl").parent / "summary.json"
    rl_summary = repo_path(rc.rl_log, f"runs/{profile}/rl/log.jsonl").parent / "summary.json"
    sft_run = json.loads(sft_summary.read_text()) if sft_summary.is_file() else None
    lineage = lineage_note(sft_run, json.loads(rl_summary.read_text()) if rl_summary.is_file() else None)
    if present:
        pairs = [(a, b) for a, b in rc.pairs if {a, b} <= {"base", *present}]
        missing += [f"{a} − {b}: not both evaluated" for a, b in rc.pairs if (a, b) not in pairs]
        compared = compare_models(results, {k: str(v) for k, v in present.items()}, out, pairs=pairs,
                                  extra_note=lineage)
        metrics.update(compared["metrics"])
        missing += list(compared["stale_common"].values())
        made["Tables 2-4 by model (models_*)"] = [str(p) for p in present.values()]
    base_config, _ = load_results(results)
    paper = paper_results()
    label = ours_label(base_config, collection, sft_run)
    ev = base_config["evaluate"]
    ours = ours_results(metrics)
    if collection is not None:
        ours = pd.concat([ours_collection(collection["table1"]), ours], ignore_index=True)
    write_table(comparison(paper, ours, label), out, "paper_comparison",
                "Our numbers beside the paper's (Tables 1, 2, 3, 4, 9, 11)",
                f"**Not the paper's setting.** Ours: {label.removeprefix('ours: ')}, with "
                f"{int(100 * ev['ci'])}% bootstrap CIs over problems. The paper: 7-15B models trained on GPT-3.5-Turbo "
                "data (tens of thousands of verified refinements), 100 samples per problem on the whole benchmarks. "
                "The paper's values are parsed from data/paper/LEDEX.md (its Tables 2, 3, 4, 9 and 11); the paper "
                "reports no interval. \"–\": not measured. Table 3's paper values are the overall pass@k with its "
                "deltas left out; Table 4's is the average over the four benchmarks (ours: " +
                "HumanEval and HumanEval+, which score the same samples, count once)." + (f" {lineage}" if lineage else ""))
    scores = {}
    judged = results / EXPLANATIONS
    if (judged / "judgements.jsonl").is_file():
        from selfdebug.explanations.analysis import markdown, summarise, table9_scores

        summary = summarise(judged, n_boot=ev["bootstrap"], ci=ev["ci"], seed=base_config["seed"])
        scores = table9_scores(summary)
        atomic_write_text(out / "explanations_quality.md", markdown(summary))
        made["Table 9 by LLM judge, agreement, proxy (explanations_quality.md)"] = [str(judged)]
    else:
        missing.append(f"Table 9 (ours): no {judged / 'judgements.jsonl'} (notebook 07, make explanations)")
    atomic_write_text(out / "table9_explanations.md", table9(paper, scores))
    from selfdebug.report.budget import budget_markdown

    budget_dir = repo_path(rc.budget, f"runs/{profile}")
    budget_parts = [budget_markdown(config, budget_dir / "budget.tsv", budget_dir / "machine.json",
                                    budget_dir / "time")]
    made["time budget per stage (budget.md)"] = [str(budget_dir)]
    for other, folder in rc.other_budgets.items():
        other_dir = repo_path(folder, folder)
        if (other_dir / "budget.tsv").is_file():
            budget_parts.append(budget_markdown(load_config(other), other_dir / "budget.tsv",
                                                other_dir / "machine.json", other_dir / "time"))
            made[f"time budget of {other} (budget.md)"] = [str(other_dir)]
        else:
            missing.append(f"budget of {other}: no {other_dir / 'budget.tsv'} (make reproduce PROFILE={other})")
    budget_text = "\n".join(budget_parts)
    atomic_write_text(out / "budget.md", budget_text)
    sizing_text = ""
    try:
        from selfdebug.report import sizing

        sizing_text = sizing.markdown(sizing.sizing(config))
        atomic_write_text(out / "sizing.md", sizing_text)
        made["evaluation size for a ±8-point CI (sizing.md)"] = [str(results)] + [str(p) for p in present.values()]
    except (FileNotFoundError, ValueError) as err:
        missing.append(f"sizing.md: {err}")
    if out == REPO_ROOT / "figures":  # the committed figures: the README's budget block shows the same tables
        from selfdebug.io import rewrite_marked_block

        rewrite_marked_block(REPO_ROOT / "README.md", README_BUDGET[0], README_BUDGET[1],
                             _demoted(budget_text) + "\n" + _demoted(sizing_text))
    summary = {"profile": profile, "made": made, "missing": missing}
    lines = [f"### What `{profile}`'s report was assembled from", ""]
    lines += [f"- {what}: " + ", ".join(f"`{_rel(s)}`" for s in src) for what, src in made.items()]
    lines += ["", "Not there (left out):" if missing else "Nothing was missing.", ""]
    lines += [f"- {_rel(m)}" for m in missing]
    atomic_write_text(out / "report.md", "\n".join(lines).rstrip() + "\n")
    log.info("report of %s: %d parts written to %s; %d missing", profile, len(made), out, len(missing))
    return summary


def _rel(text: str) -> str:
    return text.replace(str(REPO_ROOT) + "/", "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="a profile's tables and figures from its compact results")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = assemble(load_config(args.profile, args.override), args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
