"""The statistics of a human evaluation: per-model means, agreement, and the developers' row of Table 9.

- A rating counts when both scales have a score (skipped or half-rated items do not). An item's score on a
  scale is the mean over its raters (the paper: "their ratings are averaged"); a model's mean is the mean
  over its items, with a percentile bootstrap interval over items (:func:`selfdebug.evaluate.bootstrap`).
  ``score`` is the mean of correctness and helpfulness: the paper reports one number per model and does
  not say how its two scales were combined, so both scales are reported too.
- Agreement between raters, per scale: quadratic-weighted Cohen's kappa for two raters, Krippendorff's
  alpha (ordinal by default; ``interval`` on request) for two or more (items one rater did not score are
  missing values). Between raters and the LLM judge: each rater's weighted kappa with the judge.
- Judge scores file (JSONL, one object per line): ``{"item_id": "...", "correctness": 1-5,
  "helpfulness": 1-5}`` with an optional ``"judge"`` name; one line per item, item ids from ``items.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from selfdebug.evaluate.bootstrap import bootstrap_ci
from selfdebug.human.rubric import SCALES, SCORES, check_score
from selfdebug.human.store import is_complete, load_ratings
from selfdebug.io import read_jsonl

MEASURES = (*SCALES, "score")


def weighted_kappa(a: Sequence[int], b: Sequence[int], *, categories: Sequence[int] = SCORES,
                   weights: Literal["quadratic", "linear"] = "quadratic") -> float:
    """Cohen's kappa of two raters' scores of the same items, with disagreement weights (NaN when the
    scores agree by construction: both raters gave one and the same score throughout)."""
    if weights not in ("quadratic", "linear"):
        raise ValueError(f"weights must be 'quadratic' or 'linear', got {weights!r}")
    if len(a) != len(b) or not len(a):
        raise ValueError(f"weighted_kappa needs two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    index = {c: i for i, c in enumerate(categories)}
    bad = sorted({x for x in (*a, *b) if x not in index}, key=str)
    if bad:
        raise ValueError(f"weighted_kappa: scores {bad} are not among the categories {list(categories)}")
    k = len(categories)
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[index[x], index[y]] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    dist = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    w = dist**2 if weights == "quadratic" else dist
    denom = (w * expected).sum()
    return float("nan") if denom == 0 else float(1 - (w * observed).sum() / denom)


def krippendorff_alpha(data: Any, level: Literal["nominal", "ordinal", "interval"] = "ordinal") -> float:
    """Krippendorff's alpha of a units x coders matrix (NaN = not coded), after Krippendorff (2011),
    "Computing Krippendorff's Alpha-Reliability": coincidences within units that have at least two values,
    divided by (values in the unit - 1); alpha = 1 - (n - 1) * sum(o * d) / sum(n_c n_k d)."""
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"krippendorff_alpha needs a units x coders matrix, got shape {x.shape}")
    values = np.unique(x[~np.isnan(x)])
    if values.size == 0:
        return float("nan")
    idx = {v: i for i, v in enumerate(values)}
    o = np.zeros((values.size, values.size))
    for unit in x:
        counts = np.zeros(values.size)
        for v in unit[~np.isnan(unit)]:
            counts[idx[v]] += 1
        m = counts.sum()
        if m >= 2:  # a value alone in its unit pairs with nothing: it does not count
            o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(1)
    n = n_c.sum()
    if n == 0:
        return float("nan")
    if level == "nominal":
        d = 1.0 - np.eye(values.size)
    elif level == "interval":
        d = np.subtract.outer(values, values) ** 2
    elif level == "ordinal":
        cum = np.cumsum(n_c)
        lo, hi = np.minimum.outer(np.arange(values.size), np.arange(values.size)), np.maximum.outer(
            np.arange(values.size), np.arange(values.size))
        # sum of n_g for g from c to k, minus half of n_c and of n_k
        between = cum[hi] - cum[lo] + n_c[lo]
        d = (between - (n_c[lo] + n_c[hi]) / 2) ** 2
    else:
        raise ValueError(f"level must be 'nominal', 'ordinal' or 'interval', got {level!r}")
    expected = (np.outer(n_c, n_c) * d).sum()
    return float("nan") if expected == 0 else float(1 - (n - 1) * (o * d).sum() / expected)


def ratings_frame(items: Sequence[dict[str, Any]], ratings_dir: str | Path) -> pd.DataFrame:
    """Every rater's latest complete rating of a sampled item, with the item's model; ``score`` as above."""
    by_id = {it["item_id"]: it for it in items}
    rows = [{"item_id": r["item_id"], "rater": r["rater"], **{s: r[s] for s in SCALES}, "time": r.get("time"),
             "source": r.get("source"), "model": by_id[r["item_id"]]["model"],
             "benchmark": by_id[r["item_id"]].get("benchmark"), "task_id": by_id[r["item_id"]].get("task_id")}
            for r in load_ratings(ratings_dir) if is_complete(r) and r["item_id"] in by_id]
    cols = ["item_id", "rater", *SCALES, "score", "model", "benchmark", "task_id", "time", "source"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    df["score"] = df[list(SCALES)].mean(axis=1)
    return df[cols].sort_values(["rater", "item_id"], ignore_index=True)


def model_means(frame: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model and measure: items, raters, mean over items (of the mean over raters) and its interval."""
    out = []
    for model, group in frame.groupby("model", sort=True):
        per_item = group.groupby("item_id")[list(MEASURES)].mean()
        for m in MEASURES:
            mean, low, high = bootstrap_ci(per_item[m].to_numpy(), n_boot=n_boot, ci=ci, seed=seed)
            out.append({"model": model, "measure": m, "n_items": len(per_item),
                        "n_raters": group["rater"].nunique(), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(out, columns=["model", "measure", "n_items", "n_raters", "mean", "low", "high"])


def rater_agreement(frame: pd.DataFrame, level: Literal["ordinal", "interval"] = "ordinal") -> pd.DataFrame:
    """Agreement between raters per scale: weighted kappa (two raters), Krippendorff's alpha (two or more)."""
    raters = sorted(frame["rater"].unique())
    out = []
    if len(raters) < 2:
        return pd.DataFrame(out, columns=["scale", "statistic", "value", "n_items", "raters"])
    for s in SCALES:
        wide = frame.pivot_table(index="item_id", columns="rater", values=s, aggfunc="last")
        if len(raters) == 2:
            both = wide.dropna()
            if len(both):
                out.append({"scale": s, "statistic": "weighted kappa (quadratic)", "n_items": len(both),
                            "value": weighted_kappa(both[raters[0]].astype(int).tolist(), both[raters[1]].astype(int).tolist()),
                            "raters": ", ".join(raters)})
        multi = wide[wide.notna().sum(axis=1) >= 2]
        out.append({"scale": s, "statistic": f"Krippendorff alpha ({level})", "n_items": len(multi),
                    "value": krippendorff_alpha(wide.to_numpy(dtype=float), level), "raters": ", ".join(raters)})
    return pd.DataFrame(out, columns=["scale", "statistic", "value", "n_items", "raters"])


def read_judge_scores(path: str | Path, items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The LLM judge's scores (format in the module docstring), checked against the sampled items."""
    known = {it["item_id"]: it for it in items}
    rows, seen = [], set()
    for i, rec in enumerate(read_jsonl(path), 1):
        where = f"{path}:{i}"
        item = rec.get("item_id")
        if item not in known:
            raise ValueError(f"{where}: unknown item id {item!r} (not in the sample)")
        if item in seen:
            raise ValueError(f"{where}: item {item} is scored twice")
        seen.add(item)
        scores = {s: check_score(rec.get(s), s, where) for s in SCALES}
        rows.append({"item_id": item, **scores, "judge": rec.get("judge", "LLM judge"), "model": known[item]["model"]})
    df = pd.DataFrame(rows, columns=["item_id", *SCALES, "judge", "model"])
    df["score"] = df[list(SCALES)].mean(axis=1) if len(df) else pd.Series(dtype=float)
    return df


def judge_agreement(frame: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """Each rater's quadratic-weighted kappa with the judge, per scale, on the items both scored."""
    out = []
    for rater, group in frame.groupby("rater", sort=True):
        both = group.merge(judge, on="item_id", suffixes=("", "_judge"))
        for s in SCALES:
            if len(both):
                out.append({"rater": rater, "scale": s, "n_items": len(both),
                            "weighted kappa (quadratic)": weighted_kappa(both[s].tolist(), both[f"{s}_judge"].tolist())})
    return pd.DataFrame(out, columns=["rater", "scale", "n_items", "weighted kappa (quadratic)"])


@dataclass
class HumanEvalReport:
    statement: str
    """One plain sentence: how many ratings there are, or that there are none."""
    ratings: pd.DataFrame
    means: pd.DataFrame
    table9: pd.DataFrame
    """Rows Developers (and LLM judge, given its scores), one column per model: mean score [interval]."""
    agreement: pd.DataFrame
    judge_agreement: pd.DataFrame = field(default_factory=pd.DataFrame)

    def markdown(self) -> str:
        parts = [self.statement]
        for title, df in (("Table 9 (score = mean of correctness and helpfulness)", self.table9),
                          ("Means per model", self.means), ("Agreement between raters", self.agreement),
                          ("Agreement with the LLM judge", self.judge_agreement)):
            if len(df):
                parts.append(f"**{title}**\n\n" + df.to_markdown(index=title.startswith("Table"), floatfmt=".2f"))
        return "\n\n".join(parts)


def _row(means: pd.DataFrame) -> dict[str, str]:
    sel = means[means.measure == "score"]
    return {r.model: f"{r.mean:.2f} [{r.low:.2f}, {r.high:.2f}]" for r in sel.itertuples()}


def analyse(items: Sequence[dict[str, Any]], ratings_dir: str | Path, judge_scores: str | Path | None = None, *,
            n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> HumanEvalReport:
    """Everything above for one sample and its ratings folder (and the judge's scores, when given)."""
    frame = ratings_frame(items, ratings_dir)
    judge = read_judge_scores(judge_scores, items) if judge_scores else None
    rows: dict[str, dict[str, str]] = {}
    if len(frame):
        means = model_means(frame, n_boot=n_boot, ci=ci, seed=seed)
        rows["Developers"] = _row(means)
        statement = (f"{len(frame)} ratings of {frame.item_id.nunique()} items by {frame.rater.nunique()} "
                     f"rater(s), over {frame.model.nunique()} model(s); {int(100 * ci)}% bootstrap intervals over items.")
    else:
        means = model_means(frame)
        statement = (f"No ratings yet: nobody has rated an item of this sample on both scales (ratings folder "
                     f"{ratings_dir}), so the developers' row of Table 9 cannot be computed.")
    if judge is not None and len(judge):
        rows["LLM judge"] = _row(model_means(judge.assign(rater="judge"), n_boot=n_boot, ci=ci, seed=seed))
    table9 = pd.DataFrame.from_dict(rows, orient="index")
    jagree = judge_agreement(frame, judge) if judge is not None and len(frame) else pd.DataFrame()
    return HumanEvalReport(statement, frame, means, table9, rater_agreement(frame), jagree)
