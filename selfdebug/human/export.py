"""Rating outside Jupyter: a static HTML page of the items and a CSV sheet to fill in, and its importer.

``export_items`` writes ``items.html`` (the rubric, then every ratable item, numbered, in a shuffled order,
each as the notebook shows it, blinded the same way) and ``ratings.csv`` with one row per item: ``number``,
``item_id``, ``rater``, and a blank column per scale. A rater fills in their name and the scores (integers
1-5; leave both blank for an item not rated) and sends the CSV back; ``import_ratings_csv`` checks every
row (a rater name, a known item id, integer scores 1-5, no item twice for one rater), reports every bad row
by its line number, and only when all rows are good appends them to the raters' files in ``ratings_dir``.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfdebug.human.render import item_html, rubric_html, static_page
from selfdebug.human.rubric import SCALES, SCORES
from selfdebug.human.sample import int_seed
from selfdebug.human.store import RatingStore, check_rater
from selfdebug.io import atomic_write_text

COLUMNS = ("number", "item_id", "rater", *SCALES)


class RatingsCsvError(ValueError):
    """A filled-in ratings CSV with bad rows; the message lists each one by line number."""


def export_items(items: Sequence[dict[str, Any]], out_dir: str | Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write ``items.html`` and ``ratings.csv`` for the ratable items; returns their paths."""
    ratable = sorted((it for it in items if not it.get("empty")), key=lambda it: it["item_id"])
    if not ratable:
        raise ValueError("export_items: no item has an explanation; there is nothing to rate")
    random.Random(int_seed("export", seed)).shuffle(ratable)  # no model's items bunched together
    n = len(ratable)
    intro = ("<p>Rate each explanation on both scales, from 1 to 5, using the rubric. Write your name and "
             "the scores into <code>ratings.csv</code> (the row with the same number and item id); leave "
             "both scores blank for an item you do not rate.</p>")
    sections = []
    for i, it in enumerate(ratable, 1):
        heading = f"Item {i} of {n} (id {it['item_id']})"
        sections.append(f'<section id="item-{it["item_id"]}">{item_html(it, heading)}</section>')
    body = intro + rubric_html() + "".join(sections)
    out_dir = Path(out_dir)
    html_path = atomic_write_text(out_dir / "items.html", static_page("Rating explanations of wrong code", body))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([i, it["item_id"], "", *[""] * len(SCALES)] for i, it in enumerate(ratable, 1))
    return html_path, atomic_write_text(out_dir / "ratings.csv", buf.getvalue())


def _score(raw: str, scale: str) -> int:
    text = raw.strip()
    if text not in {str(s) for s in SCORES}:
        raise ValueError(f"{scale} must be an integer from 1 to 5, got {raw!r}")
    return int(text)


def read_ratings_csv(path: str | Path, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The filled-in rows of a ratings CSV, checked; raises :class:`RatingsCsvError` naming every bad row."""
    path = Path(path)
    known = {it["item_id"]: it for it in items}
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet may add a byte-order mark
        reader = csv.DictReader(fh)
        missing = [c for c in ("item_id", "rater", *SCALES) if c not in (reader.fieldnames or [])]
        if missing:
            raise RatingsCsvError(f"{path}: the header lacks the column(s) {', '.join(missing)}; "
                                  f"expected {', '.join(COLUMNS)}")
        rows, errors, seen = [], [], {}
        for row in reader:
            line = reader.line_num
            item = (row.get("item_id") or "").strip()
            where = f"{path.name} line {line} (item {item or '?'})"
            values = {s: (row.get(s) or "") for s in SCALES}
            if not any(v.strip() for v in values.values()):
                continue  # not rated: nothing to import
            problems = []
            if item not in known:
                problems.append(f"unknown item id {item!r}" if item else "no item id")
            elif known[item].get("empty"):
                problems.append("this item has no explanation and is not rated")
            try:
                rater = check_rater(row.get("rater") or "")
            except ValueError as e:
                problems.append(str(e))
                rater = None
            scores = {}
            for s, raw in values.items():
                try:
                    scores[s] = _score(raw, s)
                except ValueError as e:
                    problems.append(str(e))
            if rater and item in known and (rater, item) in seen:
                problems.append(f"{rater!r} rated this item already on line {seen[(rater, item)]}")
            if problems:
                errors.append(f"{where}: " + "; ".join(problems))
                continue
            seen[(rater, item)] = line
            rows.append({"item_id": item, "rater": rater, **scores, "line": line})
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise RatingsCsvError(f"{path}: {len(errors)} bad row(s), nothing imported:\n" + "\n".join(shown))
    return rows


def import_ratings_csv(path: str | Path, items: Sequence[dict[str, Any]], ratings_dir: str | Path) -> dict[str, int]:
    """Append the CSV's ratings to each rater's file (``source`` names the CSV); returns rows per rater."""
    rows = read_ratings_csv(path, items)
    counts: dict[str, int] = {}
    stores: dict[str, RatingStore] = {}
    for row in rows:
        store = stores.setdefault(row["rater"], RatingStore(ratings_dir, row["rater"]))
        store.record(row["item_id"], source=f"csv:{Path(path).name}:{row['line']}", **{s: row[s] for s in SCALES})
        counts[row["rater"]] = counts.get(row["rater"], 0) + 1
    return counts
