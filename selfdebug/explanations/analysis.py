"""What the judges' scores say, from an explanations folder (``stage``'s files; the committed compact copy of
the cpu profile's is ``figures/results/cpu/explanations/``), recomputed in seconds:

- **Table 9, ours**: per model and judge, the mean score (the mean of correctness and helpfulness, as the
  human analysis combines them; the paper does not say how it combined its two scales) with a bootstrap
  interval over items, both scales' means, and how many replies gave no score.
- **Agreement** between every two judges, per scale: quadratic-weighted Cohen's kappa on the items both scored.
- **What a judge can tell**: the mean score of explanations whose refinement passed minus that of those whose
  refinement failed (a bootstrap interval, each group resampled), and the AUC of the score for telling them
  apart (0.5: it cannot). A judge that cannot rank an explanation that led to a fix above one that did not
  is not measuring quality.
- **The proxy**: the same two measures for the embedding similarity to verified explanations, its mean per
  model, how many items it covers, and its Spearman correlation with each judge's score.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfdebug.evaluate.bootstrap import auc, bootstrap_ci
from selfdebug.human.analysis import weighted_kappa
from selfdebug.human.rubric import SCALES
from selfdebug.io import atomic_write_json, atomic_write_text, read_jsonl


def _read(folder: Path, name: str) -> list[dict[str, Any]]:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return list(read_jsonl(path))
    return []


def load_frames(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(items, judgements, proxy) of an explanations folder; judgements and proxy carry each item's model and
    whether its refinement passed."""
    folder = Path(folder)
    items = pd.DataFrame(_read(folder, "items.jsonl"))
    if items.empty:
        raise FileNotFoundError(f"{folder}: no items.jsonl (run notebook 07 or python -m selfdebug.explanations)")
    keep = items[["item_id", "model", "benchmark", "task_id", "refined_passed"]]
    judged = pd.DataFrame(_read(folder, "judgements.jsonl"),
                          columns=["item_id", "judge", *SCALES, "reply", "error", "finish_reason"])
    judged = judged.merge(keep, on="item_id", how="left")
    judged["score"] = judged[list(SCALES)].astype(float).mean(axis=1, skipna=False)
    proxy = pd.DataFrame(_read(folder, "proxy.jsonl"), columns=["item_id", "n_references", "similarity"])
    proxy = proxy.merge(keep, on="item_id", how="left")
    return items, judged, proxy


def _ci(values: np.ndarray, n_boot: int, ci: float, seed: int) -> list[float]:
    if values.size == 0:
        return [float("nan")] * 3
    return list(bootstrap_ci(values, n_boot=n_boot, ci=ci, seed=seed))


def separation(values: np.ndarray, passed: np.ndarray, *, n_boot: int, ci: float, seed: int) -> dict[str, Any]:
    """How well ``values`` tell items whose refinement passed from those whose refinement failed."""
    pos, neg = values[passed], values[~passed]
    row: dict[str, Any] = {"n_passed": int(pos.size), "n_failed": int(neg.size),
                           "mean_passed": float(pos.mean()) if pos.size else float("nan"),
                           "mean_failed": float(neg.mean()) if neg.size else float("nan"), "auc": auc(pos, neg)}
    diff = row["mean_passed"] - row["mean_failed"]
    if pos.size and neg.size:
        rng = np.random.default_rng(seed)
        reps = np.array([rng.choice(pos, pos.size).mean() - rng.choice(neg, neg.size).mean() for _ in range(n_boot)])
        low, high = np.quantile(reps, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    else:
        low = high = float("nan")
    row.update(difference=diff, low=float(low), high=float(high))
    return row


def summarise(folder: str | Path, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Every measure of the module docstring, as plain data (``summary.json``)."""
    items, judged, proxy = load_frames(folder)
    out: dict[str, Any] = {"n_items": len(items), "n_empty": int(items["empty"].sum()),
                           "models": sorted(items["model"].unique()), "judges": sorted(judged["judge"].dropna().unique()),
                           "ci": ci, "scores": [], "agreement": [], "separation": [], "proxy": {}}
    for (judge, model), g in judged.groupby(["judge", "model"], sort=True):
        ok = g[g["error"].isna()]
        mean, low, high = _ci(ok["score"].to_numpy(float), n_boot, ci, seed)
        out["scores"].append({"judge": judge, "model": model, "n_items": len(g), "n_scored": len(ok),
                              "n_unparsed": int(g["error"].notna().sum()), "score": mean, "low": low, "high": high,
                              **{s: float(ok[s].astype(float).mean()) if len(ok) else float("nan") for s in SCALES}})
    wide = {j: g[g["error"].isna()].set_index("item_id") for j, g in judged.groupby("judge", sort=True)}
    for a, b in combinations(sorted(wide), 2):
        both = wide[a].merge(wide[b], left_index=True, right_index=True, suffixes=("_a", "_b"))
        for s in SCALES:
            kappa = (weighted_kappa(both[f"{s}_a"].astype(int).tolist(), both[f"{s}_b"].astype(int).tolist())
                     if len(both) else float("nan"))
            out["agreement"].append({"judges": [a, b], "scale": s, "n_items": len(both), "weighted_kappa": kappa})
    for judge, g in wide.items():
        out["separation"].append({"judge": judge, **separation(g["score"].to_numpy(float),
                                                               g["refined_passed"].to_numpy(bool),
                                                               n_boot=n_boot, ci=ci, seed=seed)})
    if len(proxy):
        covered = proxy[proxy["similarity"].notna()]
        px: dict[str, Any] = {"n_items": len(proxy), "n_covered": len(covered), "by_model": [], "spearman": []}
        for model, g in covered.groupby("model", sort=True):
            mean, low, high = _ci(g["similarity"].to_numpy(float), n_boot, ci, seed)
            px["by_model"].append({"model": model, "n_covered": len(g), "similarity": mean, "low": low, "high": high})
        px["separation"] = separation(covered["similarity"].to_numpy(float), covered["refined_passed"].to_numpy(bool),
                                      n_boot=n_boot, ci=ci, seed=seed)
        for judge, g in wide.items():
            both = covered.set_index("item_id")[["similarity"]].join(g[["score"]], how="inner")
            rho = (float(both["similarity"].rank().corr(both["score"].rank())) if len(both) > 2 else float("nan"))
            px["spearman"].append({"judge": judge, "n_items": len(both), "rho": rho})
        out["proxy"] = px
    return out


def table9_scores(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Model -> judge -> mean score: our rows of Table 9 (``report.assemble``)."""
    out: dict[str, dict[str, float]] = {}
    for r in summary["scores"]:
        out.setdefault(r["model"], {})[f"{r['judge']} (LLM judge)"] = r["score"]
    return out


def _f(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as the tables notebook 07 and the report show."""
    pct = int(round(100 * summary["ci"]))
    lines = ["### Explanation quality by LLM judge (Table 9, ours)", "",
             f"{summary['n_items']} items ({len(summary['models'])} models on the same problems), "
             f"{summary['n_empty']} without an explanation (not scored). Score: the mean of correctness and "
             f"helpfulness (1-5), over the items the judge scored, with a {pct}% bootstrap interval over items.", "",
             "| judge | model | score | correctness | helpfulness | scored | no score |", "|---|---|---|---|---|---|---|"]
    for r in summary["scores"]:
        lines.append(f"| {r['judge']} | {r['model']} | {_f(r['score'])} [{_f(r['low'])}, {_f(r['high'])}] | "
                     f"{_f(r['correctness'])} | {_f(r['helpfulness'])} | {r['n_scored']} | {r['n_unparsed']} |")
    if summary["agreement"]:
        lines += ["", "### Agreement between judges (quadratic-weighted kappa)", "",
                  "| judges | scale | items | kappa |", "|---|---|---|---|"]
        lines += [f"| {' vs '.join(r['judges'])} | {r['scale']} | {r['n_items']} | {_f(r['weighted_kappa'])} |"
                  for r in summary["agreement"]]
    lines += ["", "### Can it tell explanations that led to a fix from those that did not?", "",
              "Mean over explanations whose refinement passed, and over those whose refinement failed; their "
              f"difference with a {pct}% bootstrap interval; AUC (0.5: no better than chance).", "",
              "| measure | passed (n) | failed (n) | difference | AUC |", "|---|---|---|---|---|"]
    rows = [(f"{r['judge']} score", r) for r in summary["separation"]]
    if summary["proxy"]:
        rows.append(("similarity to verified explanations (proxy)", summary["proxy"]["separation"]))
    for label, r in rows:
        lines.append(f"| {label} | {_f(r['mean_passed'])} ({r['n_passed']}) | {_f(r['mean_failed'])} ({r['n_failed']}) "
                     f"| {_f(r['difference'])} [{_f(r['low'])}, {_f(r['high'])}] | {_f(r['auc'])} |")
    px = summary["proxy"]
    if px:
        lines += ["", "### The automatic proxy: embedding similarity to verified explanations of the same problem", "",
                  f"{px['n_covered']} of {px['n_items']} explained items have a verified explanation of their problem "
                  "(by any model, the item's own attempt left out); the others have no proxy score.", "",
                  "| model | items | mean similarity |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['n_covered']} | {_f(r['similarity'], 3)} [{_f(r['low'], 3)}, {_f(r['high'], 3)}] |"
                  for r in px["by_model"]]
        lines += ["", "| judge | items | Spearman rho (proxy vs judge score) |", "|---|---|---|"]
        lines += [f"| {r['judge']} | {r['n_items']} | {_f(r['rho'])} |" for r in px["spearman"]]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict[str, Any], folder: str | Path) -> None:
    folder = Path(folder)
    atomic_write_json(folder / "summary.json", json.loads(json.dumps(summary, default=float)))
    atomic_write_text(folder / "explanations.md", markdown(summary))
