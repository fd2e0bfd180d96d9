"""Figures (seaborn) from computed metrics: self-debugging bars per benchmark, pass@k per refinement round."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, also in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from selfdebug.prompts import PROMPT_LABELS  # noqa: E402
from selfdebug.report.tables import BENCH_LABELS, BENCH_ORDER, rounds_frame  # noqa: E402

PALETTE = {"Init.": "#9e9e9e", "Refine": "#1f77b4", "Expl.+Refine": "#d62728", "Resample": "#2ca02c"}


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata={"Software": None})
    tmp.replace(path)
    plt.close(fig)
    return path


def _themed(draw: Callable[..., Path]) -> Callable[..., Path]:
    """Draw under seaborn's theme without leaving it set: figures drawn later in the same process (the SFT and
    RL curves, Table 1's) look as when drawn alone, so a rebuild is byte-identical in any order."""

    @functools.wraps(draw)
    def themed(*args: Any, **kwargs: Any) -> Path:
        with plt.rc_context():
            sns.set_theme(style="whitegrid", context="paper")
            return draw(*args, **kwargs)

    return themed


@_themed
def selfdebug_bars(all_metrics: dict[str, Any], out: str | Path, title: str = "", round_: int = 1) -> Path:
    """pass@k of Init. / Refine / Expl.+Refine / Resample after one round, per benchmark, with 95% CIs."""
    rows = []
    for b in [b for b in BENCH_ORDER if b in all_metrics["benchmarks"]]:
        for e in all_metrics["benchmarks"][b]["pass_at_k"]:
            if e["round"] == (0 if e["chain"] == "init" else round_):
                rows.append({"benchmark": BENCH_LABELS[b], "approach": PROMPT_LABELS[e["chain"]], "k": e["k"],
                             "value": 100 * e["value"], "low": 100 * e["ci_low"], "high": 100 * e["ci_high"]})
    df = pd.DataFrame(rows)
    ks = sorted(df["k"].unique())
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.4), squeeze=False, sharey=True)
    hue_order = [a for a in PALETTE if a in set(df["approach"])]
    for ax, k in zip(axes[0], ks, strict=False):
        sub = df[df["k"] == k]
        sns.barplot(data=sub, x="benchmark", y="value", hue="approach", hue_order=hue_order, palette=PALETTE,
                    ax=ax, errorbar=None)
        # error bars from the bootstrap CIs (seaborn's own would bootstrap over rows, not problems)
        for container, approach in zip(ax.containers, hue_order, strict=False):
            part = sub[sub["approach"] == approach].set_index("benchmark")
            for bar, label in zip(container, [t.get_text() for t in ax.get_xticklabels()], strict=False):
                if label in part.index:
                    r = part.loc[label]
                    x = bar.get_x() + bar.get_width() / 2
                    ax.errorbar(x, r["value"], yerr=[[r["value"] - r["low"]], [r["high"] - r["value"]]],
                                fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_title(f"pass@{k}")
        ax.set_xlabel("")
        ax.set_ylabel("%" if k == ks[0] else "")
        ax.legend_.remove() if ax.legend_ else None
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.08), frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(out))


@_themed
def rounds_figure(all_metrics: dict[str, Any], out: str | Path, k: int = 1, title: str = "") -> Path:
    """Paper Fig. 4: pass@k after each refinement round (0 = initial samples), per benchmark or group.

    A group's panel is titled as in Table 3, naming the member benchmarks the profile did not run."""
    df = rounds_frame(all_metrics)
    df = df[df["k"] == k]
    scopes = list(dict.fromkeys(df["scope"]))
    fig, axes = plt.subplots(1, len(scopes), figsize=(3.6 * len(scopes), 3.2), squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=False):
        sub = df[df["scope"] == scope]
        for approach, part in sub.groupby("approach", sort=False):
            part = part.sort_values("round")
            ax.plot(part["round"], part["value"], marker="o", label=approach, color=PALETTE.get(approach))
            ax.fill_between(part["round"], part["ci_low"], part["ci_high"], alpha=0.12, color=PALETTE.get(approach))
        ax.set_title(scope)
        ax.set_xlabel("refinement round")
        ax.set_xticks(sorted(sub["round"].unique()))
        ax.set_ylabel(f"pass@{k} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.1), frameon=False)
    if title:
        fig.suptitle(title, y=1.04)  # above the panels' own titles
    return _save(fig, Path(out))
