"""Paper Table 1 (per source, for each teacher and mode) and a figure of where the data comes from.

Refinement rate = wrong solutions with at least one verified refinement / wrong solutions (the paper's
definition: 2,203 / 4,794 = 45.95% for MBPP with GPT-3.5). Both are written from the compact results
(``results.json``'s ``table1`` rows), so a report rebuilds them without the per-sample records:
``write_table1(results, out_dir)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.prompts import PROMPT_LABELS, PROMPT_TYPES

ANY_MODE = "any"
"""The row that counts a wrong solution refined when either instruction format fixed it (SFT uses both)."""
COLUMNS = {"source": "Dataset", "problems": "Problems", "teacher": "Teacher", "mode": "Mode",
           "unique": "#Unique Solutions", "correct": "#Correct Solutions", "wrong": "#Wrong Solutions",
           "asked": "#Asked", "wrong_refined": "#Correct Refinement", "refinement_rate": "Refinement Rate"}
"""``#Asked`` (not in the paper): the wrong solutions the teacher was asked about. The rate keeps the paper's
denominator, every wrong solution, so hindsight (only wrong solutions with a correct sibling) and
``collect.max_wrong_per_problem`` lower it; the asked count says by how much."""


def mode_label(mode: str, hindsight: bool = False) -> str:
    return ("either format" if mode == ANY_MODE else PROMPT_LABELS.get(mode, mode)) + (" + hindsight" if hindsight else "")


def table1_rows(solutions: list[dict[str, Any]], records: list[dict[str, Any]],
                problems: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per (source, teacher, mode, hindsight), and per (source, teacher) an ``any`` row over the
    formats without hindsight. ``wrong`` leaves sandbox failures out (no model verdict)."""
    per_source: dict[str, dict[str, int]] = {}
    for s in solutions:
        c = per_source.setdefault(s["source"], {"unique": 0, "correct": 0, "wrong": 0})
        c["unique"] += 1
        c["correct"] += bool(s["passed"])
        c["wrong"] += not s["passed"] and s["status"] != "sandbox_error"
    refined: dict[tuple[str, str, str, bool], set[str]] = {}
    asked: dict[tuple[str, str, str, bool], set[str]] = {}
    for r in records:
        keys = [(r["source"], r["teacher"], r["mode"], bool(r["hindsight"]))]
        if not r["hindsight"]:
            keys.append((r["source"], r["teacher"], ANY_MODE, False))
        for k in keys:
            hit = refined.setdefault(k, set())
            asked.setdefault(k, set()).add(r["solution_id"])
            if r["verified"]:
                hit.add(r["solution_id"])
    rows = []
    order = {m: i for i, m in enumerate((*PROMPT_TYPES, ANY_MODE))}  # the paper's order, then "either"
    for (source, teacher, mode, hind), hit in sorted(refined.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][3], order.get(kv[0][2], len(order)), kv[0][2])):
        c = per_source.get(source, {"unique": 0, "correct": 0, "wrong": 0})
        rows.append({"source": source, "problems": (problems or {}).get(source), "teacher": teacher, "mode": mode,
                     "hindsight": hind, **c, "asked": len(asked[(source, teacher, mode, hind)]), "wrong_refined": len(hit),
                     "refinement_rate": len(hit) / c["wrong"] if c["wrong"] else None})
    for source, c in sorted(per_source.items()):  # a source with no wrong solution still gets its counts
        if not any(r["source"] == source for r in rows):
            rows.append({"source": source, "problems": (problems or {}).get(source), "teacher": "", "mode": "",
                         "hindsight": False, **c, "asked": 0, "wrong_refined": 0, "refinement_rate": None})
    return rows


def table1_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as the paper prints them (rate in percent, the mode named as in the paper)."""
    out = []
    for r in rows:
        name = f"{r['source'].upper() if r['source'] == 'mbpp' else r['source']}"
        out.append({COLUMNS["source"]: name + (f" ({r['problems']})" if r.get("problems") else ""),
                    COLUMNS["teacher"]: r["teacher"], COLUMNS["mode"]: mode_label(r["mode"], r["hindsight"])
                    if r["mode"] else "", COLUMNS["unique"]: r["unique"], COLUMNS["correct"]: r["correct"],
                    COLUMNS["wrong"]: r["wrong"], COLUMNS["asked"]: r.get("asked", ""),  # older results: not counted
                    COLUMNS["wrong_refined"]: r["wrong_refined"],
                    COLUMNS["refinement_rate"]: "" if r["refinement_rate"] is None
                    else f"{100 * r['refinement_rate']:.2f}%"})
    return pd.DataFrame(out)


def _load(results: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(results, dict):
        return results
    path = Path(results)
    return json.loads((path / "results.json" if path.is_dir() else path).read_text())


def write_table1(results: dict[str, Any] | str | Path, out_dir: str | Path, prefix: str = "table1") -> list[Path]:
    """``<prefix>_collection.csv`` / ``.md``, ``<prefix>_sources.png`` and, when the results carry it, the
    train/evaluation overlap report ``<prefix>_overlap.md``, from compact results (a dict, ``results.json``,
    or the folder holding it)."""
    from selfdebug.io import atomic_write_text

    res = _load(results)
    out = Path(out_dir)
    frame = table1_frame(res["table1"])
    csv = atomic_write_text(out / f"{prefix}_collection.csv", pd.DataFrame(res["table1"]).to_csv(index=False))
    note = res.get("note", "")
    md = atomic_write_text(out / f"{prefix}_collection.md", "Table 1: training data collected (refinement rate = "
                           "#Correct Refinement / #Wrong Solutions)\n\n" + frame.to_markdown(index=False) + "\n"
                           + (f"\n{note}\n" if note else ""))
    written = [csv, md, sources_figure(res["table1"], out / f"{prefix}_sources.png")]
    if res.get("overlap_md"):
        written.append(atomic_write_text(out / f"{prefix}_overlap.md", res["overlap_md"]))
    return written


def sources_figure(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Left: unique solutions per source, correct vs wrong. Right: wrong solutions with a verified
    refinement, per source, teacher and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from selfdebug.io import atomic_write_bytes

    per_source = {r["source"]: r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    names = list(per_source)
    correct = [per_source[n]["correct"] for n in names]
    wrong = [per_source[n]["wrong"] for n in names]
    left.bar(names, correct, label="correct", color="#4c9f70")
    left.bar(names, wrong, bottom=correct, label="wrong", color="#d1495b")
    left.set_title("unique sampled solutions")
    left.legend(frameon=False)
    refined = pd.DataFrame([{"source": r["source"], "teacher / mode": f"{r['teacher']} / "
                             f"{mode_label(r['mode'], r['hindsight'])}", "wrong solutions": r["wrong_refined"]}
                            for r in rows if r["mode"]])
    if len(refined):
        sns.barplot(data=refined, x="source", y="wrong solutions", hue="teacher / mode", ax=right)
        right.legend(frameon=False, fontsize=8)
    right.set_title("wrong solutions with a verified refinement")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Table 1 and the sources figure from a collection's results.json.")
    parser.add_argument("results", help="results.json, or the folder holding it (runs/<profile>/collect)")
    parser.add_argument("out_dir", help="where table1_collection.{csv,md} and table1_sources.png go")
    args = parser.parse_args()
    for path in write_table1(args.results, args.out_dir):
        print(path)


if __name__ == "__main__":
    main()
