"""Each rater's ratings: one append-only JSONL file per rater (``<ratings_dir>/<rater>-<hash>.jsonl``).

Every click appends one record holding the item's whole state (both scores, skipped or not), flushed and
fsynced before the click returns (:class:`selfdebug.io.JsonlLog`), so a closed browser or a killed kernel
loses at most the click in flight; a torn last line is dropped on the next load. A changed answer appends
a newer record; the latest record of an item wins. Nothing is ever rewritten in place.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

from selfdebug.human.rubric import SCALES, check_score
from selfdebug.io import JsonlLog

MAX_NAME = 80


def check_rater(name: object) -> str:
    """A rater's name, stripped; a clear error when it is empty or not text."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a rater name is required (any non-empty text, e.g. your initials)")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise ValueError(f"a rater name has at most {MAX_NAME} characters, got {len(name)}")
    return name


def rater_file(ratings_dir: str | Path, rater: str) -> Path:
    """The rater's file: a readable slug of the name plus a hash of it, so different names never share one."""
    rater = check_rater(rater)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", rater).strip("_")[:40] or "rater"
    return Path(ratings_dir) / f"{slug}-{hashlib.sha256(rater.encode()).hexdigest()[:8]}.jsonl"


def is_complete(rec: dict[str, Any] | None) -> bool:
    """True when every scale has a score."""
    return rec is not None and all(rec.get(s) is not None for s in SCALES)


class RatingStore:
    """One rater's ratings; :meth:`latest` is the current state of every item they touched."""

    def __init__(self, ratings_dir: str | Path, rater: str):
        self.rater = check_rater(rater)
        self.path = rater_file(ratings_dir, self.rater)
        self._log = JsonlLog(self.path)
        for key, rec in self._log.records.items():
            if rec.get("rater") != self.rater:
                raise ValueError(f"{self.path}: item {key} was rated by {rec.get('rater')!r}, not {self.rater!r}")

    def latest(self) -> dict[str, dict[str, Any]]:
        """item id -> its latest record."""
        return dict(self._log.records)

    def get(self, item: str) -> dict[str, Any] | None:
        return self._log.get(item)

    def record(self, item: str, *, skipped: bool = False, source: str = "widget", **scores: int | None) -> dict[str, Any]:
        """Append the item's new state: its scores (None = not given yet) and whether it was skipped."""
        unknown = set(scores) - set(SCALES)
        if unknown:
            raise ValueError(f"item {item}: unknown scale(s) {', '.join(sorted(unknown))}; the scales are {', '.join(SCALES)}")
        values = {s: None if scores.get(s) is None else check_score(scores[s], s, f"item {item}") for s in SCALES}
        rec = {"item_id": item, "rater": self.rater, **values, "skipped": bool(skipped), "source": source,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._log.append(item, rec)
        return {"key": item, **rec}


def load_ratings(ratings_dir: str | Path) -> list[dict[str, Any]]:
    """The latest record of every (rater, item) in ``ratings_dir`` (every rater's file)."""
    out = []
    for path in sorted(Path(ratings_dir).glob("*.jsonl")):
        log = JsonlLog(path)
        raters = {r.get("rater") for r in log.records.values()}
        if len(raters) > 1:
            raise ValueError(f"{path}: one rater's file holds several raters: {sorted(map(str, raters))}")
        out += [dict(r, file=path.name) for r in log.records.values()]
    return out
