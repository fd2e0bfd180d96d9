"""The explanation reward's similarity range for an embedder, from what the embedder gives on collected data.

The paper maps ``S_ex`` in [0.4, 1.0], the cosine similarities it observed with all-roberta-large-v1, linearly
onto [-5, 5], so that 0.7, the middle, is the border between a good and a bad explanation (reward 0).
all-MiniLM-L6-v2, the offline embedder, spreads similarities otherwise, and the paper's constants would then
reward or punish for the embedder, not for the explanation. This module measures ``S_ex`` as RL computes it
(``selfdebug.rl.scores.explanation_similarity``) on a collection: every explanation the teacher wrote, those whose
refinement passed every test (``verified``) and those whose refinement did not (``failed``), against the verified
explanations of the same wrong solution with its own left out (RL's references); where the solution has no other
verified explanation, against those of the problem's other wrong solutions (a stand-in, labelled ``problem``).
RL rollouts (``rollouts.jsonl``, their ``s_ex`` as trained) are added when given.

The proposed ``rl.explanation_range`` is the observed central 90% (5th to 95th percentile), the paper's own rule
(its range is what it observed), so that its middle stays the good/bad border in that sense; the report says where
explanations that led to a fix and those that did not fall against it, which is what the border is for.

    python -m selfdebug.rl.calibrate --profile cpu --out runs/cpu/rl/calibration
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfdebug.config import REPO_ROOT, Config, load_config
from selfdebug.io import atomic_write_json, read_jsonl, write_jsonl, write_or_print
from selfdebug.rl.rewards import PAPER_EXPLANATION_RANGE, explanation_constants, explanation_reward
from selfdebug.rl.scores import Embedder, SentenceEmbedder, _unit_rows

log = logging.getLogger(__name__)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SIMILARITIES = "similarities.jsonl"
"""Per explanation: its kind, reference level and ``s_ex`` (the compact record `make figures` reads)."""


def similarity_rows(records: Iterable[dict[str, Any]], embedder: Embedder) -> list[dict[str, Any]]:
    """One row per explanation of the collection's records (``data/refinements.jsonl``): its kind (``verified``
    or ``failed``), the references it was compared with (``solution`` or ``problem``) and ``s_ex``. An
    explanation with no reference at either level has no row."""
    explanations = []  # (record_id, solution_id, problem_id, kind, text)
    for n, row in enumerate(records, start=1):
        for key in ("solution_id", "problem_id", "verified", "failed"):
            if key not in row:
                raise ValueError(f"refinement record {n} ({row.get('record_id', '?')}): no {key!r}")
        for kind in ("verified", "failed"):
            for pair in row[kind]:
                text = (pair.get("explanation") or "").strip()
                if text:
                    explanations.append((row.get("record_id", f"record {n}"), row["solution_id"],
                                         row["problem_id"], kind, text))
    if not explanations:
        return []
    texts = list(dict.fromkeys(e[4] for e in explanations))
    index = {t: i for i, t in enumerate(texts)}
    vectors = _unit_rows(embedder.encode(texts))
    by_solution: dict[str, list[int]] = defaultdict(list)
    by_problem: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for e_id, (_, sid, pid, kind, _text) in enumerate(explanations):
        if kind == "verified":
            by_solution[sid].append(e_id)
            by_problem[pid].append((sid, e_id))
    rows = []
    for e_id, (record_id, sid, pid, kind, text) in enumerate(explanations):
        level, refs = "solution", [r for r in by_solution[sid] if r != e_id]
        if not refs:  # the solution's own verified explanations, or the problem's other solutions' (a stand-in)
            level, refs = "problem", [r for s, r in by_problem[pid] if s != sid]
        refs = [index[explanations[r][4]] for r in refs]
        if not refs:
            continue
        s_ex = float(np.mean(vectors[refs] @ vectors[index[text]]))
        rows.append({"record_id": record_id, "solution_id": sid, "problem_id": pid, "kind": kind, "level": level,
                     "n_references": len(refs), "s_ex": s_ex})
    return rows


def rollout_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """RL rollouts with an explanation score: ``verified`` when the refinement passed every test."""
    out = []
    for row in rows:
        if row.get("s_ex") is not None:
            out.append({"record_id": row.get("prompt_id"), "kind": "verified" if row.get("s_ut") == 1.0 else "failed",
                        "level": "rollout", "s_ex": float(row["s_ex"]), "step": row.get("step")})
    return out


def summarise(rows: Sequence[dict[str, Any]], embedder: str) -> dict[str, Any]:
    """Quantiles of ``s_ex`` per kind, how well it separates the kinds (AUC), the proposed range and what the
    paper's range and the proposed one make of each kind."""
    from selfdebug.evaluate.bootstrap import auc

    if not rows:
        raise ValueError("no explanation with a reference to compare with: the collection has no two verified "
                         "explanations of one problem (collect more, or with more refinements per wrong solution)")
    values = np.array([r["s_ex"] for r in rows])
    low, high = (float(np.round(q, 3)) for q in np.quantile(values, [0.05, 0.95]))
    if high <= low:  # all alike: a range of nothing cannot place a border
        raise ValueError(f"the {len(rows)} similarities span no range ({low:.3f}); nothing to calibrate")
    kinds = {}
    for kind in ("verified", "failed"):
        v = np.array([r["s_ex"] for r in rows if r["kind"] == kind])
        kinds[kind] = {"n": int(v.size), "quantiles": dict(zip(map(str, QUANTILES), np.quantile(v, QUANTILES).tolist(),
                                                                  strict=True)) if v.size else {},
                       "mean_reward_paper": _mean_reward(v, PAPER_EXPLANATION_RANGE),
                       "mean_reward_proposed": _mean_reward(v, (low, high)),
                       "share_above_paper_border": float(np.mean(v > sum(PAPER_EXPLANATION_RANGE) / 2)) if v.size
                       else None,
                       "share_above_proposed_border": float(np.mean(v > (low + high) / 2)) if v.size else None}
    pos, neg = (np.array([r["s_ex"] for r in rows if r["kind"] == k]) for k in ("verified", "failed"))
    levels = {lv: sum(r["level"] == lv for r in rows) for lv in ("solution", "problem", "rollout")}
    return {"embedder": embedder, "n": len(rows), "levels": levels, "range": [low, high],
            "border": (low + high) / 2, "paper_range": list(PAPER_EXPLANATION_RANGE),
            "share_in_paper_range": float(np.mean((values >= 0.4) & (values <= 1.0))),
            "auc": auc(pos, neg) if pos.size and neg.size else None, "kinds": kinds}


def _mean_reward(values: np.ndarray, span: Sequence[float]) -> float | None:
    constants = explanation_constants(*span)
    return float(np.mean([explanation_reward(float(v), *constants) for v in values])) if values.size else None


def markdown(summary: dict[str, Any], source: str) -> str:
    low, high = summary["range"]
    lv = summary["levels"]
    lines = [f"### The explanation reward's similarity range for `{summary['embedder']}`", "",
             f"S_ex of {summary['n']} explanations from {source} ({lv['solution']} against verified explanations "
             f"of the same wrong solution, {lv['problem']} against those of the problem's other wrong solutions, "
             f"{lv['rollout']} RL rollouts): `verified` explanations led to a refinement that passed every test, "
             f"`failed` ones did not (`python -m selfdebug.rl.calibrate`).", "",
             "| explanations | n | 5% | 25% | median | 75% | 95% | share above the border (paper / proposed) "
             "| mean R(e) (paper / proposed) |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, k in summary["kinds"].items():
        if not k["n"]:
            lines.append(f"| {kind} | 0 | | | | | | | |")
            continue
        q = " | ".join(f"{v:.3f}" for v in k["quantiles"].values())
        lines.append(f"| {kind} | {k['n']} | {q} | {k['share_above_paper_border']:.2f} / "
                     f"{k['share_above_proposed_border']:.2f} | {k['mean_reward_paper']:.2f} / "
                     f"{k['mean_reward_proposed']:.2f} |")
    auc = summary["auc"]
    lines += ["", f"- Proposed `rl.explanation_range`: [{low:.3f}, {high:.3f}] (the observed 5th to 95th "
              f"percentile; border {summary['border']:.3f}), against the paper's [0.4, 1.0] (border 0.7), which "
              f"holds {summary['share_in_paper_range']:.0%} of these similarities.",
              "- S_ex separates verified from failed explanations with AUC " +
              (f"{auc:.2f} (0.5: not at all)." if auc is not None else "– (one kind is missing).")]
    return "\n".join(lines) + "\n"


def calibrate(config: Config, collection: Path, rollouts: Path | None, out: Path,
              embedder: Embedder | None = None) -> dict[str, Any]:
    """Measure, summarise and write ``similarities.jsonl``, ``calibration.json`` and ``calibration.md`` to
    ``out``."""
    path = collection / "data" / "refinements.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"calibrate: no {path} (run the collection first: make collect)")
    log.info("calibrate: embedding the explanations of %s with %s", path, config.rl.embedder)
    rows = similarity_rows(read_jsonl(path), embedder or SentenceEmbedder(config.rl.embedder))
    if rollouts is not None:
        if not rollouts.is_file():
            raise FileNotFoundError(f"calibrate: no {rollouts} (an RL run's rollouts.jsonl)")
        rows += rollout_rows(read_jsonl(rollouts))
    summary = summarise(rows, config.rl.embedder)
    summary["source"] = _rel(collection) + (f" and {_rel(rollouts)}" if rollouts else "")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / SIMILARITIES, rows)
    atomic_write_json(out / "calibration.json", summary)
    write_or_print(report_from(out), out / "calibration.md")
    log.info("calibrate: %d similarities; proposed rl.explanation_range %s (%s)", len(rows), summary["range"],
             out / "calibration.md")
    return summary


def report_from(folder: Path) -> str:
    """The Markdown of a calibration folder, from its per-explanation records (``similarities.jsonl``) and what
    it was measured on (``calibration.json``): what `make figures` rebuilds from committed results."""
    meta = json.loads((folder / "calibration.json").read_text())
    return markdown(summarise(list(read_jsonl(folder / SIMILARITIES)), meta["embedder"]), meta["source"])


def _rel(path: Path) -> str:
    try:
        return f"`{path.resolve().relative_to(REPO_ROOT)}`"
    except ValueError:
        return f"`{path}`"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The explanation reward's similarity range, from collected data.")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--collection", help="a collection folder (default: rl.collection, else runs/<profile>/collect)")
    parser.add_argument("--rollouts", help="also an RL run's rollouts.jsonl")
    parser.add_argument("--out", required=True, help="folder for similarities.jsonl, calibration.json/.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.profile)
    collection = Path(args.collection or config.rl.collection or f"runs/{config.profile}/collect")
    collection = collection if collection.is_absolute() else REPO_ROOT / collection
    summary = calibrate(config, collection, Path(args.rollouts) if args.rollouts else None, Path(args.out))
    print(json.dumps({"range": summary["range"], "auc": summary["auc"], "n": summary["n"]}))


if __name__ == "__main__":
    main()
