"""One human-evaluation study as the notebook and the command line set it up: which records, where the
sample and the ratings go, and what a rater may be shown about it (nothing naming a model or a records
folder: the study's summary is blind too).

Layout of a study folder (default ``runs/<profile>/human_eval/``): ``items.jsonl`` and ``sample.json``
(:mod:`.sample`), ``ratings/<rater>-<hash>.jsonl`` (:mod:`.store`), and ``export/`` (:mod:`.export`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.config import REPO_ROOT
from selfdebug.human.rubric import SCALES
from selfdebug.human.sample import (
    DEFAULT_BENCHMARKS,
    Sample,
    draw_sample,
    has_records,
    read_items,
    write_sample,
)
from selfdebug.human.store import load_ratings

COMMITTED_RECORDS = REPO_ROOT / "figures" / "results" / "cpu"
"""The committed compact results of the ``cpu`` profile: the base model's explanations, always present."""


@dataclass
class Study:
    sample: Sample
    out_dir: Path
    ratings_dir: Path
    note: str
    """A blind sentence on where the explanations come from (a fallback is said plainly)."""

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.sample.items


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def default_records(profile: str) -> tuple[dict[str, Path], str]:
    """This profile's own evaluation records, else the committed ``cpu`` results, and a note saying which."""
    own = REPO_ROOT / "runs" / profile / "evaluate"
    if has_records(own):
        return {"base": own}, f"Explanations from this profile's ({profile}) evaluation."
    if has_records(COMMITTED_RECORDS):
        return {"base": COMMITTED_RECORDS}, (f"This profile ({profile}) has no evaluation records in runs/ yet; "
                                             "rating the explanations of the committed cpu-profile run instead.")
    return {}, f"There is nothing to rate: the {profile} profile has no evaluation records and none are committed."


def open_study(profile: str, *, records: Mapping[str, str | Path] | None = None, out_dir: str | Path | None = None,
               ratings_dir: str | Path | None = None, n_problems: int = 50, seed: int = 0,
               benchmarks: Sequence[str] = DEFAULT_BENCHMARKS) -> Study:
    """Draw the sample (the same for the same records, n_problems and seed) and write it to ``out_dir``.

    Without ``records``, a sample already in ``out_dir`` (drawn by the organiser, e.g. with ``python -m
    selfdebug.human sample``) is used as it is: raters then open the notebook with only their name, and
    its parameters name no model or records folder. Failing that, :func:`default_records`."""
    out = _resolve(out_dir) if out_dir else REPO_ROOT / "runs" / profile / "human_eval"
    ratings = _resolve(ratings_dir) if ratings_dir else out / "ratings"
    if not records and (out / "items.jsonl").is_file():
        report = json.loads((out / "sample.json").read_text()) if (out / "sample.json").is_file() else {}
        return Study(Sample(read_items(out / "items.jsonl"), report), out, ratings,
                     "The sample drawn earlier for this study (its items.jsonl; delete it to draw anew).")
    if records:
        models, note = {m: _resolve(p) for m, p in records.items()}, f"Explanations of {len(records)} model(s)."
    else:
        models, note = default_records(profile)
    sample = draw_sample(models, n_problems, seed, benchmarks=benchmarks) if models else Sample([], {})
    if models:
        write_sample(sample, out)
    return Study(sample, out, ratings, note)


def blind_summary(study: Study) -> str:
    """Markdown a rater may see: counts, any shortfall, and the items with an empty explanation (by id and
    problem, without their model)."""
    s = study.sample
    if not s.items:
        return study.note
    n_models = len(s.report.get("models", {}))
    lines = [study.note, "",
             f"Sample: {len(s.report.get('problems', []))} problems x {n_models} model(s) = {len(s.items)} items "
             f"(seed {s.report.get('seed')}); {len(s.ratable)} to rate. Ratings are saved to `{study.ratings_dir}`."]
    if "shortfall" in s.report:
        lines.append(f"Note: {s.report['shortfall']}.")
    if s.empty:
        lines += ["", f"{len(s.empty)} item(s) have an empty explanation; they are not shown for rating "
                      "(and are listed in `sample.json`):", ""]
        lines += [f"- item `{it['item_id']}`: {it['benchmark']} {it['task_id']}" for it in s.empty]
    return "\n".join(lines)


def ratings_table(study: Study) -> pd.DataFrame:
    """Every rater's latest answer per item of this sample, without the model (what a rater may see)."""
    known = {it["item_id"] for it in study.items}
    cols = ["rater", "item_id", *SCALES, "skipped", "time"]
    rows = [{c: r.get(c) for c in cols} for r in load_ratings(study.ratings_dir) if r["item_id"] in known]
    return pd.DataFrame(rows, columns=cols).sort_values(["rater", "time"], ignore_index=True)
