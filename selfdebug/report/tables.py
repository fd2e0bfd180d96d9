"""Tables in the paper's layout (Tables 2, 3, 4) from computed metrics, as CSV and Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.io import atomic_write_text
from selfdebug.prompts import PROMPT_LABELS

BENCH_LABELS = {"mbpp": "MBPP", "humaneval": "HumanEval", "mbpp_plus": "MBPP+", "humaneval_plus": "HumanEval+",
                "mbpp_plus_heldout": "MBPP+ held-out (outside MBPP train ids)",
                "apps": "APPS", "codecontests": "CodeContests"}
BENCH_ORDER = ["mbpp", "humaneval", "mbpp_plus", "humaneval_plus", "mbpp_plus_heldout", "apps", "codecontests"]
HELDOUT_NOTE = ("MBPP+ is the whole benchmark, the number comparable with the paper; 108 of its 378 tasks come from "
                "MBPP's training split (ids 601–974), on which LeDex trains. MBPP+ held-out (outside MBPP train "
                "ids) scores the same samples on the other tasks only (270 of the 378).")
"""Said under a table that shows the held-out view, so that no one takes one number for the other."""


def benchmarks_note(all_metrics: dict[str, Any]) -> str:
    """What a table's benchmark columns mean, where a column could be mistaken for another (MBPP+ held-out)."""
    benches = all_metrics["benchmarks"]
    if "mbpp_plus_heldout" not in benches:
        return ""
    # metrics.success_rate_average drops a subset whose full benchmark is present
    return HELDOUT_NOTE + (" Table 4's average leaves it out: its tasks count there within MBPP+."
                           if "mbpp_plus" in benches else "")


def _pct(entry: dict[str, Any] | None, with_ci: bool = True) -> str:
    if entry is None:
        return "–"
    text = f"{100 * entry['value']:.2f}"
    if with_ci and entry.get("ci_low") == entry.get("ci_low"):  # not NaN
        text += f" [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"
    return text


def _lookup(metrics: dict[str, Any], chain: str, round_: int, k: int) -> dict[str, Any] | None:
    for e in metrics["pass_at_k"]:
        if e["chain"] == chain and e["round"] == round_ and e["k"] == k:
            return e
    return None


def _row_chains(metrics: dict[str, Any]) -> list[str]:
    present = {e["chain"] for e in metrics["pass_at_k"]}
    return [c for c in ("init", "refine", "explain_refine", "resample") if c in present]


def table2(all_metrics: dict[str, Any], round_: int = 1) -> pd.DataFrame:
    """Paper Table 2: pass@k of initial and refined solutions per benchmark (one refinement round)."""
    benches = [b for b in BENCH_ORDER if b in all_metrics["benchmarks"]]
    chains = []
    for b in benches:
        chains += [c for c in _row_chains(all_metrics["benchmarks"][b]) if c not in chains]
    rows = []
    for chain in chains:
        row = {"Approach": PROMPT_LABELS[chain]}
        for b in benches:
            m = all_metrics["benchmarks"][b]
            for k in all_metrics["ks"]:
                row[f"{BENCH_LABELS[b]} pass@{k}"] = _pct(_lookup(m, chain, 0 if chain == "init" else round_, k))
        rows.append(row)
    return pd.DataFrame(rows)


def table3(all_metrics: dict[str, Any], round_: int = 1) -> pd.DataFrame:
    """Paper Table 3: pooled pass@k per benchmark group, with the change against Init. and Resample."""
    rows = []
    for group, m in all_metrics["groups"].items():
        for k in all_metrics["ks"]:
            init = _lookup(m, "init", 0, k)
            resample = _lookup(m, "resample", round_, k)
            for chain in _row_chains(m):
                e = _lookup(m, chain, 0 if chain == "init" else round_, k)
                row = {"Benchmarks": group_label(group, m),
                       "Metric": f"pass@{k}", "Approach": PROMPT_LABELS[chain], "Value": _pct(e)}
                row["Δ vs Init."] = "" if chain == "init" else f"{100 * (e['value'] - init['value']):+.2f}"
                # with its paired CI (metrics' deltas) where there is one
                paired = next((d for d in m.get("deltas", []) if (d["a"], d["b"], d["round"], d["metric"])
                               == (chain, "resample", round_, f"pass@{k}")), None)
                row["Δ vs Resample"] = ("" if resample is None or chain not in ("refine", "explain_refine") else
                                        _delta(paired) if paired else f"{100 * (e['value'] - resample['value']):+.2f}")
                rows.append(row)
    return pd.DataFrame(rows)


def table4(all_metrics: dict[str, Any], round_: int = 1) -> pd.DataFrame:
    """Paper Table 4: success-refinement rate (share of wrong initial samples fixed), per benchmark."""
    rows = []
    benches = [b for b in BENCH_ORDER if b in all_metrics["benchmarks"]]
    for chain in ("refine", "explain_refine", "resample"):
        row: dict[str, Any] = {"Approach": PROMPT_LABELS[chain]}
        found = False
        for b in benches:
            entry = next((e for e in all_metrics["benchmarks"][b]["success_rate"]
                          if e["chain"] == chain and e["round"] == round_), None)
            row[BENCH_LABELS[b]] = _pct(entry) + (f" ({entry['fixed']}/{entry['wrong']})" if entry else "")
            found = found or entry is not None
        if not found:
            continue
        # metrics.success_rate_average: HumanEval and HumanEval+ score the same samples and count once
        average = next((e for e in all_metrics["success_rate_average"]
                        if e["chain"] == chain and e["round"] == round_), None)
        row[AVERAGE_COLUMN] = _pct(average)
        rows.append(row)
    return pd.DataFrame(rows)


AVERAGE_COLUMN = "Average over sample groups"
AVERAGE_NOTE = ("Average over sample groups: the mean over distinct sets of samples, HumanEval and HumanEval+ "
                "(which score the same samples) counting once, as the mean of their two rates.")

def table_deltas(all_metrics: dict[str, Any], rounds: tuple[int, ...] | None = None) -> pd.DataFrame:
    """The differences people compare (Expl.+Refine - Refine, self-repair - Resample), in points, with paired
    bootstrap CIs over problems, per benchmark and group; after round 1 and after the last round."""
    scopes = [(BENCH_LABELS[b], all_metrics["benchmarks"][b]) for b in BENCH_ORDER if b in all_metrics["benchmarks"]]
    scopes += [(group_label(g, m), m) for g, m in all_metrics["groups"].items()]
    last = max((e["round"] for _, m in scopes for e in m["deltas"]), default=1)
    keep = rounds or tuple(sorted({1, last}))
    rows = []
    for scope, m in scopes:
        for e in m["deltas"]:
            if e["round"] in keep:
                rows.append({"Benchmarks": scope, "Comparison": f"{PROMPT_LABELS[e['a']]} − {PROMPT_LABELS[e['b']]}",
                             "Metric": "success rate" if e["metric"] == "success_rate" else e["metric"],
                             "Round": e["round"], "Δ (points)": _delta(e)})
    return pd.DataFrame(rows, columns=["Benchmarks", "Comparison", "Metric", "Round", "Δ (points)"])


def _delta(e: dict[str, Any]) -> str:
    text = f"{100 * e['value']:+.2f}"
    if e["ci_low"] == e["ci_low"]:  # not NaN
        text += f" [{100 * e['ci_low']:+.1f}, {100 * e['ci_high']:+.1f}]"
    return text


def group_label(group: str, m: dict[str, Any]) -> str:
    """A pooled group's name, saying which of its benchmarks this profile did not run (tables and figures)."""
    missing = [BENCH_LABELS.get(b, b) for b in m.get("missing", [])]
    return group + (f" (without {', '.join(missing)})" if missing else "")


def sandbox_note(all_metrics: dict[str, Any]) -> str:
    """Per benchmark, the attempts the sandbox itself failed on (left out of every number above)."""
    parts = []
    for b in [b for b in BENCH_ORDER if b in all_metrics["benchmarks"]]:
        se = all_metrics["benchmarks"][b].get("sandbox_errors", {})
        if se.get("attempts"):
            text = (f"{BENCH_LABELS[b]} {se['attempts']} of {se['total_attempts']} attempts "
                    f"({100 * se['share']:.1f}%; {se['initial']} initial samples dropped")
            if se.get("problems_without_samples"):
                text += f"; no sample left for {', '.join(se['problems_without_samples'])}"
            parts.append(text + ")")
    if not parts:
        return "Sandbox failures (harness or reference errors): none."
    return ("Sandbox failures (the harness or a reference solution failed; such attempts are left out of pass@k "
            "and success rates, and never refined): " + "; ".join(parts) + ".")


def rounds_frame(all_metrics: dict[str, Any]) -> pd.DataFrame:
    """Long-form pass@k per round (Fig. 4's data): round 0 is Init. for every chain."""
    rows = []
    scopes = {BENCH_LABELS[b]: m for b, m in all_metrics["benchmarks"].items()}
    scopes.update({group_label(g, m): m for g, m in all_metrics["groups"].items()})
    for scope, m in scopes.items():
        init = {e["k"]: e for e in m["pass_at_k"] if e["chain"] == "init"}
        for e in m["pass_at_k"]:
            if e["chain"] == "init":
                continue
            if e["round"] == 1:
                for k0, e0 in init.items():
                    if k0 == e["k"]:
                        rows.append({"scope": scope, "approach": PROMPT_LABELS[e["chain"]], "round": 0, "k": k0,
                                     "value": 100 * e0["value"], "ci_low": 100 * e0["ci_low"],
                                     "ci_high": 100 * e0["ci_high"]})
            rows.append({"scope": scope, "approach": PROMPT_LABELS[e["chain"]], "round": e["round"], "k": e["k"],
                         "value": 100 * e["value"], "ci_low": 100 * e["ci_low"], "ci_high": 100 * e["ci_high"]})
    return pd.DataFrame(rows)


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str, title: str, note: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    md = f"### {title}\n\n" + df.to_markdown(index=False, disable_numparse=True) + "\n" + (f"\n{note}\n" if note else "")
    return [atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False)),
            atomic_write_text(out_dir / f"{name}.md", md)]


def per_problem_frame(records_by_bench: dict[str, list[dict[str, Any]]], ks: list[int]) -> pd.DataFrame:
    """pass@k of every problem, for every approach after every round: the table behind each mean."""
    from selfdebug.evaluate.metrics import chains_and_rounds, per_problem_counts
    from selfdebug.evaluate.passk import pass_at_k

    rows = []
    for bench, records in records_by_bench.items():
        chains, rounds = chains_and_rounds(records)
        for chain in chains:
            for round_ in ([0] if chain == "init" else range(1, rounds + 1)):
                ids, n, c = per_problem_counts(records, chain, round_)
                for tid, ni, ci in zip(ids, n, c, strict=True):
                    row = {"benchmark": bench, "task_id": tid, "approach": PROMPT_LABELS[chain], "round": round_,
                           "samples": int(ni), "correct": int(ci)}
                    # fewer than k samples (sandbox failures dropped): pass@k is undefined, left empty
                    row.update({f"pass@{k}": round(pass_at_k(int(ni), int(ci), k), 4) if ni >= k else None
                                for k in ks})
                    rows.append(row)
    return pd.DataFrame(rows)
