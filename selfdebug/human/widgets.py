"""The rating UI of ``notebooks/09_human_eval.ipynb`` (ipywidgets).

A rater enters a name, then sees one item at a time (:func:`selfdebug.human.render.item_html`) with the
rubric beside the two 1-5 scales. The order is shuffled per rater, seeded by the name (the same order in
every session). Every click on a score, and every Skip, appends the item's state to the rater's file
(:class:`selfdebug.human.store.RatingStore`) before anything else happens. Back and Next move through the
order; Next needs both scores (or use Skip); after the last item the UI returns to the first item not yet
rated, until every item is rated. A new UI over the same ratings file (a restarted kernel) starts at the
first item neither rated nor skipped and shows the earlier answers of any item it displays.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from selfdebug.human.render import item_html, rubric_html
from selfdebug.human.rubric import SCALES, SCORES
from selfdebug.human.sample import int_seed
from selfdebug.human.store import RatingStore, check_rater, is_complete


def rater_order(items: Sequence[dict[str, Any]], rater: str) -> list[dict[str, Any]]:
    """The items in this rater's order: sorted by id, then shuffled with a seed from the name (sha256, so the
    order is the same in every Python process; ``hash()`` is salted per process)."""
    seed = int_seed(check_rater(rater))
    order = sorted(items, key=lambda it: it["item_id"])
    random.Random(seed).shuffle(order)
    return order


class RatingUI:
    """The widget tree is :attr:`widget`; display it in a notebook. ``rater`` empty: a name box comes first."""

    def __init__(self, items: Sequence[dict[str, Any]], ratings_dir: str | Path, rater: str = ""):
        self.items = [it for it in items if not it.get("empty")]  # empty explanations are listed, not rated
        self.ratings_dir = Path(ratings_dir)
        self.store: RatingStore | None = None
        self.order: list[dict[str, Any]] = []
        self.pos = 0
        self._showing = False  # True while a displayed item's saved answers are put into the scales

        self.name = w.Text(description="Your name", placeholder="e.g. your initials",
                           style={"description_width": "initial"})
        self.start = w.Button(description="Start rating", button_style="primary")
        self.message = w.HTML()
        self.start.on_click(lambda _: self.begin(self.name.value))

        self.progress_bar = w.IntProgress(min=0, max=max(len(self.items), 1), value=0)
        self.progress = w.HTML()
        self.item_view = w.HTML(layout=w.Layout(width="58%"))
        self.scales = {s: w.ToggleButtons(options=[(str(v), v) for v in SCORES], value=None,
                                          description=s.capitalize(), style={"button_width": "36px"})
                       for s in SCALES}
        for s, toggle in self.scales.items():
            toggle.observe(lambda change, s=s: self._on_score(s, change["new"]), names="value")
        self.back = w.Button(description="Back", icon="arrow-left")
        self.skip = w.Button(description="Skip")
        self.next = w.Button(description="Next", icon="arrow-right", button_style="success")
        self.back.on_click(lambda _: self.go_back())
        self.skip.on_click(lambda _: self.skip_item())
        self.next.on_click(lambda _: self.go_next())
        side = w.VBox([*self.scales.values(), w.HBox([self.back, self.skip, self.next]), w.HTML(rubric_html())],
                      layout=w.Layout(width="40%", padding="0 0 0 12px"))
        self.rating_box = w.VBox([w.HBox([self.progress_bar, self.progress]), w.HBox([self.item_view, side])])
        self.widget = w.VBox([w.HBox([self.name, self.start]), self.message])
        if not self.items:
            self._say("There is nothing to rate: the sample has no item with an explanation.")
            self.start.disabled = True
        elif rater:
            self.begin(rater)

    # --- state -------------------------------------------------------------------------------------------
    @property
    def current(self) -> dict[str, Any] | None:
        return self.order[self.pos] if self.pos < len(self.order) else None

    def _latest(self) -> dict[str, dict[str, Any]]:
        return self.store.latest() if self.store else {}

    def counts(self) -> tuple[int, int]:
        """(items rated on both scales, items skipped and not rated)."""
        latest = self._latest()
        recs = [latest.get(it["item_id"]) for it in self.order]
        done = sum(is_complete(r) for r in recs)
        return done, sum(bool(r and r.get("skipped")) and not is_complete(r) for r in recs)

    def _first(self, *, include_skipped: bool) -> int:
        latest = self._latest()
        for i, it in enumerate(self.order):
            rec = latest.get(it["item_id"])
            if not is_complete(rec) and (include_skipped or not (rec and rec.get("skipped"))):
                return i
        return len(self.order)

    def _say(self, text: str) -> None:
        self.message.value = f"<span>{text}</span>"

    # --- actions -----------------------------------------------------------------------------------------
    def begin(self, rater: str) -> None:
        """Start (or resume) rating as ``rater``."""
        try:
            self.store = RatingStore(self.ratings_dir, rater)
        except ValueError as e:
            self._say(f"<b>{e}</b>")
            return
        self.name.value, self.name.disabled, self.start.disabled = self.store.rater, True, True
        self.order = rater_order(self.items, self.store.rater)
        first = self._first(include_skipped=False)
        self.pos = first if first < len(self.order) else self._first(include_skipped=True)
        done, _ = self.counts()
        self._say(f"Rating as <b>{self.store.rater}</b>; every click is saved at once"
                  + (f" (resumed: {done} rated before)." if done else "."))
        self.widget.children = [w.HBox([self.name, self.start]), self.message, self.rating_box]
        self._show()

    def _show(self) -> None:
        done, skipped = self.counts()
        total = len(self.order)
        self.progress_bar.value = done
        self.progress.value = (f"&nbsp;<b>{done} of {total}</b> items rated"
                               + (f", {skipped} skipped" if skipped else ""))
        item = self.current
        self._showing = True
        try:
            rec = self.store.get(item["item_id"]) if item and self.store else None
            for s, toggle in self.scales.items():
                toggle.value = rec.get(s) if rec else None
                toggle.disabled = item is None
        finally:
            self._showing = False
        self.skip.disabled = self.next.disabled = item is None
        self.back.disabled = self.pos == 0
        if item is None:
            self.item_view.value = (f"<h3>All {total} items are rated. Thank you!</h3>"
                                    "<p>Use Back to look at or change an answer; it is saved at once.</p>")
        else:
            self.item_view.value = item_html(item, f"Item {self.pos + 1} of {total}")

    def _on_score(self, scale: str, value: int | None) -> None:
        item = self.current
        if self._showing or item is None or self.store is None:
            return
        prev = self.store.get(item["item_id"]) or {}
        scores = {s: t.value for s, t in self.scales.items()}
        self.store.record(item["item_id"], skipped=bool(prev.get("skipped")) and None in scores.values(), **scores)
        self._show()

    def set_scores(self, **scores: int) -> None:
        """Click the given scores (what a rater does; for scripts and tests)."""
        for s, v in scores.items():
            self.scales[s].value = v

    def go_next(self) -> None:
        item = self.current
        if item is None:
            return
        if not is_complete(self.store.get(item["item_id"])):
            self._say("Give both scores before Next, or Skip this item.")
            return
        self._advance()

    def skip_item(self) -> None:
        item = self.current
        if item is None:
            return
        rec = self.store.get(item["item_id"])
        if not is_complete(rec):  # a rated item keeps its rating; skipping it only moves on
            self.store.record(item["item_id"], skipped=True, **{s: t.value for s, t in self.scales.items()})
        self._advance()

    def _advance(self) -> None:
        """To the next item not yet rated after this one, wrapping around (so skipped items come back);
        the end screen when every item is rated."""
        latest, n = self._latest(), len(self.order)
        for step in range(1, n + 1):
            i = (self.pos + step) % n
            if not is_complete(latest.get(self.order[i]["item_id"])):
                if i <= self.pos:
                    self._say("That was the last item; here is the first one you have not rated yet.")
                self.pos = i
                break
        else:
            self.pos = n
        self._show()

    def go_back(self) -> None:
        if self.pos > 0:
            self.pos = min(self.pos, len(self.order)) - 1
            self._show()
