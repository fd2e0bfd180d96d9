"""The rating widget driven as a rater would: name, scores, Next/Back/Skip clicks; what is saved, what is
shown (blinded), the per-rater order, and resumption in a new UI (a restarted kernel)."""

import json

import ipywidgets as w
import pytest

from selfdebug.human.store import RatingStore
from selfdebug.human.widgets import RatingUI, rater_order

MODELS = ("zephyr-alpha", "quokka-beta")
RECORDS = "/data/runs_zephyr_records"


def _items(n=6):
    return [{"item_id": f"id{i:03d}", "model": MODELS[i % 2], "records": RECORDS, "benchmark": "mbpp",
             "task_id": f"MBPP/{i}", "attempt_id": f"{RECORDS}/mbpp/MBPP/{i}/explain_refine/r1/s0",
             "problem": f"Problem text {i}", "wrong_code": f"def f{i}(): pass", "feedback": f"AssertionError {i}",
             "explanation": f"Explanation number {i}", "empty": False} for i in range(n)]


def _saved(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strings(widget):
    """Every text a rater can see or hover over, in the whole widget tree."""
    out = []
    for name in ("description", "value", "placeholder", "tooltip", "button_style", "icon"):
        v = getattr(widget, name, None)
        if isinstance(v, str):
            out.append(v)
    if hasattr(widget, "_options_labels"):
        out += list(widget._options_labels)
    for child in getattr(widget, "children", ()):
        out += _strings(child)
    return out


def test_name_first_then_items_and_every_click_saved(tmp_path):
    ui = RatingUI(_items(), tmp_path, rater="")
    assert ui.store is None and ui.rating_box not in ui.widget.children  # only the name box
    ui.start.click()  # no name: refused with a message, nothing written
    assert "name is required" in ui.message.value and not list(tmp_path.iterdir())
    ui.name.value = "Ada"
    ui.start.click()
    assert ui.rating_box in ui.widget.children
    first = ui.current
    assert first["problem"] in ui.item_view.value and "Item 1 of 6" in ui.item_view.value
    ui.scales["correctness"].value = 4
    ui.next.click()  # helpfulness missing: stays
    assert ui.current is first and "both scores" in ui.message.value
    ui.scales["helpfulness"].value = 2
    ui.scales["helpfulness"].value = 3  # a changed answer: one more record, the latest wins
    recs = _saved(ui.store.path)
    assert [(r["correctness"], r["helpfulness"]) for r in recs] == [(4, None), (4, 2), (4, 3)]
    assert all(r["item_id"] == first["item_id"] and r["rater"] == "Ada" for r in recs)
    ui.next.click()
    assert ui.current is ui.order[1] and "1 of 6" in ui.progress.value
    assert ui.scales["correctness"].value is None  # a new item starts blank
    ui.back.click()  # showing an item (with its saved answers) writes nothing: only clicks do
    assert ui.scales["helpfulness"].value == 3 and len(_saved(ui.store.path)) == 3


def test_skip_back_and_change_an_answer(tmp_path):
    ui = RatingUI(_items(3), tmp_path, rater="Bo")
    a, b, c = ui.order
    ui.skip.click()  # a skipped, unrated
    assert ui.current is b and ui.store.get(a["item_id"])["skipped"] is True
    ui.set_scores(correctness=5, helpfulness=5)
    ui.back.click()
    assert ui.current is a and ui.scales["correctness"].value is None
    ui.back.click()  # at the first item: stays
    assert ui.current is a
    ui.next.click()  # a is not rated: Next refuses
    assert ui.current is a
    ui.skip.click()  # the next unrated item after a is c (b is rated)
    assert ui.current is c
    ui.back.click()
    assert ui.current is b and ui.scales["correctness"].value == 5  # b's earlier answer is shown
    ui.scales["correctness"].value = 2
    assert ui.store.get(b["item_id"])["correctness"] == 2
    ui.next.click()
    assert ui.current is c
    ui.set_scores(correctness=1, helpfulness=1)
    ui.next.click()  # past the last item: round to the first unrated one, a
    assert ui.current is a and "not rated yet" in ui.message.value
    ui.set_scores(correctness=3, helpfulness=4)
    assert ui.store.get(a["item_id"])["skipped"] is False  # rated now
    ui.next.click()
    assert ui.current is None and "All 3 items are rated" in ui.item_view.value
    assert ui.skip.disabled and ui.next.disabled and not ui.back.disabled
    ui.back.click()
    assert ui.current is c and ui.scales["helpfulness"].value == 1
    latest = {k: (r["correctness"], r["helpfulness"]) for k, r in RatingStore(tmp_path, "Bo").latest().items()}
    assert latest == {a["item_id"]: (3, 4), b["item_id"]: (2, 5), c["item_id"]: (1, 1)}


def test_the_rater_never_sees_a_model_name_or_records_path(tmp_path):
    items = _items()
    ui = RatingUI(items, tmp_path / "ratings", rater="")
    seen = _strings(ui.widget)
    ui.name.value = "Cy"
    ui.start.click()
    for _ in range(len(items)):  # every item on screen, and the end screen
        seen += _strings(ui.widget) + _strings(ui.rating_box)
        ui.set_scores(correctness=3, helpfulness=3)
        ui.next.click()
    seen += _strings(ui.widget)
    text = "\n".join(seen)
    assert all(f"Problem text {i}" in text and f"Explanation number {i}" in text for i in range(len(items)))
    for secret in (*MODELS, RECORDS, "zephyr", "quokka", "records"):
        assert secret not in text, secret


def test_order_is_per_rater_and_stable():
    items = _items(12)
    ids = lambda order: [it["item_id"] for it in order]  # noqa: E731
    assert ids(rater_order(items, "Ada")) == ids(rater_order(list(reversed(items)), "Ada"))
    assert ids(rater_order(items, "Ada")) != ids(rater_order(items, "Bo"))
    assert sorted(ids(rater_order(items, "Bo"))) == sorted(ids(items))
    # the same in a fresh Python process (hash() would differ: it is salted per process)
    import subprocess
    import sys

    code = ("import json,sys; from selfdebug.human.widgets import rater_order; "
            "items=json.loads(sys.stdin.read()); print(json.dumps([i['item_id'] for i in rater_order(items, 'Ada')]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(items), capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ids(rater_order(items, "Ada"))


def test_a_new_ui_resumes_at_the_first_unrated_item_with_earlier_answers(tmp_path):
    items = _items(5)
    ui = RatingUI(items, tmp_path, rater="Di")
    ui.set_scores(correctness=2, helpfulness=4)
    ui.next.click()
    ui.skip.click()
    ui.set_scores(correctness=5)  # third item half rated, then the kernel dies
    del ui
    again = RatingUI(items, tmp_path, rater="Di")  # a restarted kernel: a new object over the same file
    assert again.pos == 2 and again.current is again.order[2]
    assert again.scales["correctness"].value == 5 and again.scales["helpfulness"].value is None
    assert "1 of 5" in again.progress.value and "1 skipped" in again.progress.value and "resumed" in again.message.value
    again.back.click()
    again.back.click()
    assert again.scales["correctness"].value == 2 and again.scales["helpfulness"].value == 4


def test_empty_explanations_are_not_shown_and_nothing_to_rate_is_said(tmp_path):
    items = _items(3)
    items[1]["empty"] = True
    ui = RatingUI(items, tmp_path, rater="Ed")
    assert [it["item_id"] for it in ui.order] == [it["item_id"] for it in rater_order([items[0], items[2]], "Ed")]
    none = RatingUI([dict(items[1])], tmp_path, rater="")
    assert "nothing to rate" in none.message.value and none.start.disabled


@pytest.mark.parametrize("name", ["   ", "x" * 81])
def test_bad_names_are_refused(tmp_path, name):
    ui = RatingUI(_items(2), tmp_path, rater=name)
    assert ui.store is None and "<b>" in ui.message.value
    assert isinstance(ui.widget, w.VBox)
