"""Trained models beside their base (paper Tables 2-4 with "LeDex SFT" rows): each model's values, and each
trained model minus the base with a paired bootstrap CI over problems (``evaluate.compare``).

The runs must be comparable: same benchmarks, problems, number of samples, seed and sampling settings; only
the model may differ (``check_comparable`` names whatever else does). Everything is recomputed from the
per-sample records of each result folder (``samples/*.jsonl.gz`` and ``config.yaml``), so the tables rebuild
from committed results.

    python -m selfdebug.report.models figures/results/cpu "LeDex SFT=figures/results/cpu-sft" --out figures
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.evaluate.common import COMMON_DIR, compare_common, compare_common_pair
from selfdebug.evaluate.compare import compare_runs
from selfdebug.evaluate.metrics import compute_all
from selfdebug.io import atomic_write_json, read_jsonl
from selfdebug.prompts import PROMPT_LABELS
from selfdebug.report.tables import BENCH_LABELS, BENCH_ORDER, _delta, _lookup, _pct, group_label, write_table

log = logging.getLogger(__name__)
BASE_LABEL = "base"
COMPARED_SETTINGS = ("seed", "evaluate.benchmarks", "evaluate.limit", "evaluate.n_samples", "evaluate.temperature",
                     "evaluate.top_p", "evaluate.max_new_tokens", "evaluate.refine_temperature",
                     "evaluate.refine_max_new_tokens", "evaluate.prompts", "evaluate.rounds", "evaluate.ks")
"""What two evaluations must share for a paired difference to mean "this model minus that one"."""


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_comparable(base: dict[str, Any], trained: dict[str, Any], label: str) -> None:
    diff = [(k, _get(trained, k), _get(base, k)) for k in COMPARED_SETTINGS if _get(trained, k) != _get(base, k)]
    if diff:
        k, t, b = diff[0]
        raise ValueError(f"{label} and {BASE_LABEL} were evaluated differently ({len(diff)} settings, e.g. {k}: "
                         f"{t!r} vs {b!r}); a paired difference needs the same problems, samples and settings")


Pair = tuple[str, str]
"""``(a, b)``: the paired difference a minus b (each trained model minus the base; RL minus SFT)."""


def pair_label(a: str, b: str) -> str:
    return f"{a} − {b} (paired)"


def _delta_entry(diffs: list[dict[str, Any]], chain: str, round_: int, metric: str) -> dict[str, Any] | None:
    return next((d for d in diffs if (d["chain"], d["round"], d["metric"]) == (chain, round_, metric)), None)


def _chains(metrics: dict[str, Any]) -> list[str]:
    present = {e["chain"] for m in metrics["benchmarks"].values() for e in m["pass_at_k"]}
    return [c for c in ("init", "refine", "explain_refine", "resample") if c in present]


def models_table2(metrics: dict[str, dict[str, Any]], diffs: dict[Pair, dict[str, Any]], round_: int = 1) -> pd.DataFrame:
    """pass@k per benchmark: every model's rows, then each trained model minus the base (paired CI)."""
    base = metrics[BASE_LABEL]
    benches = [b for b in BENCH_ORDER if b in base["benchmarks"]]
    rows = []
    for label, m in metrics.items():
        for chain in _chains(m):
            r = 0 if chain == "init" else round_
            row = {"Model": label, "Approach": PROMPT_LABELS[chain]}
            for b in benches:
                for k in m["ks"]:
                    row[f"{BENCH_LABELS[b]} pass@{k}"] = _pct(_lookup(m["benchmarks"][b], chain, r, k))
            rows.append(row)
    for (minuend, subtrahend), d in diffs.items():
        for chain in _chains(metrics[minuend]):
            r = 0 if chain == "init" else round_
            row = {"Model": pair_label(minuend, subtrahend), "Approach": PROMPT_LABELS[chain]}
            for b in benches:
                for k in base["ks"]:
                    e = _delta_entry(d["benchmarks"].get(b, []), chain, r, f"pass@{k}")
                    row[f"{BENCH_LABELS[b]} pass@{k}"] = _delta(e) if e else "–"
            rows.append(row)
    return pd.DataFrame(rows)


def models_table3(metrics: dict[str, dict[str, Any]], diffs: dict[Pair, dict[str, Any]], round_: int = 1) -> pd.DataFrame:
    """Pooled pass@k per benchmark group, per model, with each trained model's paired difference."""
    rows = []
    base = metrics[BASE_LABEL]
    for group, gm in base["groups"].items():
        for k in base["ks"]:
            for chain in _chains(base):
                r = 0 if chain == "init" else round_
                row = {"Benchmarks": group_label(group, gm), "Metric": f"pass@{k}", "Approach": PROMPT_LABELS[chain]}
                for label, m in metrics.items():
                    row[label] = _pct(_lookup(m["groups"][group], chain, r, k)) if group in m["groups"] else "–"
                for (minuend, subtrahend), d in diffs.items():
                    e = _delta_entry(d["groups"].get(group, []), chain, r, f"pass@{k}")
                    row[pair_label(minuend, subtrahend)] = _delta(e) if e else "–"
                rows.append(row)
    return pd.DataFrame(rows)


def models_table4(metrics: dict[str, dict[str, Any]], diffs: dict[Pair, dict[str, Any]], round_: int = 1) -> pd.DataFrame:
    """Success-refinement rate per benchmark, per model, then each trained model minus the base (paired)."""
    base = metrics[BASE_LABEL]
    benches = [b for b in BENCH_ORDER if b in base["benchmarks"]]
    rows = []
    for chain in ("refine", "explain_refine", "resample"):
        for label, m in metrics.items():
            row = {"Model": label, "Approach": PROMPT_LABELS[chain]}
            for b in benches:
                e = next((e for e in m["benchmarks"][b]["success_rate"] if (e["chain"], e["round"]) == (chain, round_)),
                         None)
                row[BENCH_LABELS[b]] = _pct(e) + (f" ({e['fixed']}/{e['wrong']})" if e else "")
            rows.append(row)
        for (minuend, subtrahend), d in diffs.items():
            row = {"Model": pair_label(minuend, subtrahend), "Approach": PROMPT_LABELS[chain]}
            for b in benches:
                e = _delta_entry(d["benchmarks"].get(b, []), chain, round_, "success_rate")
                row[BENCH_LABELS[b]] = _delta(e) if e else "–"
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(stat: tuple[float, float, float], delta: bool = False) -> str:
    return _delta(dict(zip(("value", "ci_low", "ci_high"), stat, strict=True))) if delta else \
        _pct(dict(zip(("value", "ci_low", "ci_high"), stat, strict=True)))


def common_table(common: dict[str, dict[str, list[dict[str, Any]]]], labels: list[str],
                 pairs: dict[Pair, dict[str, list[dict[str, Any]]]] | None = None) -> pd.DataFrame:
    """The common set of wrong programs (``evaluate.common``): per benchmark and prompt type, the share of the
    base model's wrong programs each model fixes, each trained model minus the base, and each pair of trained
    models (``pairs``: ``(a, b)`` -> a minus b per benchmark), all paired by program."""
    rows = []
    for bench in [b for b in BENCH_ORDER if any(b in c for c in common.values())]:
        for chain in ("refine", "explain_refine"):
            row: dict[str, Any] = {"Benchmark": BENCH_LABELS[bench], "Approach": PROMPT_LABELS[chain]}
            for label in labels:
                e = next((r for r in common.get(label, {}).get(bench, []) if r["chain"] == chain), None)
                if e is None:
                    continue
                row["wrong programs"] = e["programs"]
                row[BASE_LABEL] = f"{_fmt(e['base'])} ({e['fixed_base']})"
                row[label] = f"{_fmt(e['trained'])} ({e['fixed_trained']})"
                row[pair_label(label, BASE_LABEL)] = _fmt(e["diff"], delta=True)
            for (a, b), by_bench in (pairs or {}).items():
                e = next((r for r in by_bench.get(bench, []) if r["chain"] == chain), None)
                if e is not None:
                    row[pair_label(a, b)] = f"{_fmt(e['diff'], delta=True)} ({e['fixed_a']} vs {e['fixed_b']})"
            if len(row) > 2:
                rows.append(row)
    return pd.DataFrame(rows)


def compare_models(base_dir: str | Path, trained_dirs: dict[str, str | Path], out_dir: str | Path,
                   prefix: str = "models_", pairs: list[Pair] = (), extra_note: str = "") -> dict[str, Any]:
    """Write ``<prefix>table2_passk``, ``table3_overall``, ``table4_success_rate`` (CSV and Markdown) and
    ``<prefix>compare.json`` (every paired difference) to ``out_dir``; return the comparison. Each trained
    model is paired with the base; ``pairs`` adds differences between trained models (``("LeDex RL",
    "LeDex SFT")``: RL minus SFT, the paper's Table 3 delta for RL)."""
    from selfdebug.report import load_results

    if BASE_LABEL in trained_dirs:
        raise ValueError(f"{BASE_LABEL!r} names the base run; give the trained models other labels")
    base_cfg, base_records = load_results(base_dir)
    ev = base_cfg["evaluate"]
    boot = {"n_boot": ev["bootstrap"], "ci": ev["ci"], "seed": base_cfg["seed"]}
    metrics = {BASE_LABEL: compute_all(base_records, ev["ks"], **boot)}
    records_of = {BASE_LABEL: base_records}
    diffs: dict[Pair, dict[str, Any]] = {}
    models = {BASE_LABEL: base_cfg["model"]["id"]}
    common: dict[str, dict[str, list[dict[str, Any]]]] = {}
    common_records: dict[str, dict[str, list[dict[str, Any]]]] = {}
    common_pairs: dict[Pair, dict[str, list[dict[str, Any]]]] = {}
    stale: dict[str, str] = {}
    for label, folder in trained_dirs.items():
        cfg, records = load_results(folder)
        check_comparable(base_cfg, cfg, label)
        metrics[label] = compute_all(records, ev["ks"], **boot)
        diffs[(label, BASE_LABEL)] = compare_runs(records, base_records, ev["ks"], **boot)
        records_of[label] = records
        models[label] = cfg["model"]["id"]
        folder_common = Path(folder) / COMMON_DIR
        if folder_common.is_dir():
            recs_by_bench = {p.name.split(".")[0]: list(read_jsonl(p)) for p in sorted(folder_common.glob("*.jsonl*"))}
            try:
                common[label] = {bench: compare_common(recs, base_records[bench], **boot)
                                 for bench, recs in recs_by_bench.items()}
                common_records[label] = recs_by_bench
            except (ValueError, KeyError) as e:
                # refined from another base run (the base was re-evaluated, e.g. on another CPU, whose engine
                # samples other programs): a comparison on programs the base never wrote would be false
                stale[label] = (f"{label}: its common set ({folder_common}) holds another base run's wrong programs "
                                f"({e}); rerun its evaluation against this base (make evaluate-sft / evaluate-rl)")
                log.warning("report: %s", stale[label])
    for a, b in pairs:
        unknown = [x for x in (a, b) if x not in records_of]
        if unknown or a == b:
            raise ValueError(f"pair {a!r} - {b!r}: " + (f"no model labelled {unknown[0]!r} (labels: "
                             f"{sorted(records_of)})" if unknown else "a model paired with itself"))
        diffs[(a, b)] = compare_runs(records_of[a], records_of[b], ev["ks"], **boot)
        if a in common and b in common:
            common_pairs[(a, b)] = {bench: compare_common_pair(common_records[a][bench], common_records[b][bench],
                                                               base_records[bench], **boot)
                                    for bench in common_records[a] if bench in common_records[b]}
    out_dir = Path(out_dir)
    note = (f"Profile `{base_cfg['profile']}`: n={ev['n_samples']} samples per problem at T={ev['temperature']}, "
            f"{ev['limit'] or 'all'} problems per benchmark, the same problems and seeds for every model. Models: "
            + ", ".join(f"{k} = `{v}`" for k, v in models.items()) + ". Values in %, with "
            f"{int(100 * ev['ci'])}% bootstrap CIs over problems; an \"a − b (paired)\" row is model a minus model b "
            "in points, both resampled with the same problems (paired bootstrap)." + (f" {extra_note}" if extra_note else ""))
    write_table(models_table2(metrics, diffs), out_dir, f"{prefix}table2_passk",
                "Table 2 by model: pass@k of initial and refined solutions", note)
    write_table(models_table3(metrics, diffs), out_dir, f"{prefix}table3_overall",
                "Table 3 by model: overall pass@k by benchmark group", note)
    write_table(models_table4(metrics, diffs), out_dir, f"{prefix}table4_success_rate",
                "Table 4 by model: success-refinement rate", note)
    if not common:  # no table rather than a stale one from an earlier base run
        for suffix in (".md", ".csv"):
            (out_dir / f"{prefix}common_wrong_programs{suffix}").unlink(missing_ok=True)
    if common:
        write_table(common_table(common, list(common), common_pairs), out_dir, f"{prefix}common_wrong_programs",
                    "The same wrong programs refined by every model (beyond the paper)",
                    "Each model refines the base model's wrong initial samples with the very requests the base got "
                    "in round 1 (same chat, same seed), so the models are compared on identical inputs: the share "
                    "of those programs each fixes (count in brackets), each trained model minus the base, and "
                    "each pair of trained models (programs fixed by each in brackets), paired by program "
                    "(problems resampled with their programs). Sandbox failures are left out. "
                    + note)
    result = {"models": models, "diffs": {f"{a} - {b}": d for (a, b), d in diffs.items()}, "common": common,
              "common_pairs": {f"{a} - {b}": d for (a, b), d in common_pairs.items()}, "stale_common": stale,
              "ks": ev["ks"], "ci": ev["ci"], "n_boot": ev["bootstrap"]}
    atomic_write_json(out_dir / f"{prefix}compare.json", result)
    return {**result, "metrics": metrics}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Trained models beside their base: tables with paired differences")
    ap.add_argument("base", help="the base model's evaluation results folder")
    ap.add_argument("trained", nargs="+", help="LABEL=FOLDER of each trained model's evaluation results")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="also the paired difference A minus B of two labelled models, e.g. 'LeDex RL' 'LeDex SFT'")
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    pairs = [(a, b) for a, b in args.pair]
    trained = {}
    for item in args.trained:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            ap.error(f"trained runs are LABEL=FOLDER, got {item!r}")
        trained[label] = folder
    compare_models(args.base, trained, args.out, pairs=pairs)


if __name__ == "__main__":
    main()
