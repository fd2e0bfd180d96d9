"""Rating outside Jupyter: the static HTML/CSV export (blinded) and the importer of the filled-in CSV."""

import csv

import pytest

from selfdebug.human.export import RatingsCsvError, export_items, import_ratings_csv
from selfdebug.human.rubric import LEVELS
from selfdebug.human.store import RatingStore

MODELS = ("zephyr-alpha", "quokka-beta")


def _items(n=5):
    items = [{"item_id": f"id{i:03d}", "model": MODELS[i % 2], "attempt_id": f"/rec/zephyr/{i}",
              "problem": f"Problem <{i}>", "wrong_code": f"def f{i}(): pass", "feedback": f"fail {i}",
              "explanation": f"Because {i} & so on", "empty": False} for i in range(n)]
    items[-1].update(explanation="", empty=True)
    return items


def _fill(csv_path, rows):
    with open(csv_path, newline="") as fh:
        table = list(csv.DictReader(fh))
    for row in table:
        row.update(rows.get(row["item_id"], {}))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def test_export_shows_every_ratable_item_with_the_rubric_and_no_model(tmp_path):
    html_path, csv_path = export_items(_items(), tmp_path)
    page = html_path.read_text()
    for i in range(4):
        assert f"Problem &lt;{i}&gt;" in page and f"Because {i} &amp; so on" in page and f"id{i:03d}" in page
    assert "id004" not in page  # the empty explanation is not rated
    assert LEVELS["helpfulness"][5] in page and LEVELS["correctness"][1] in page
    assert not any(s in page for s in (*MODELS, "zephyr", "/rec/"))
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["number"] for r in rows] == ["1", "2", "3", "4"]
    assert sorted(r["item_id"] for r in rows) == ["id000", "id001", "id002", "id003"]
    assert all(r["rater"] == r["correctness"] == r["helpfulness"] == "" for r in rows)
    # the page numbers the items as the sheet does
    assert page.index(f"Item 1 of 4 (id {rows[0]['item_id']})") < page.index(f"Item 2 of 4 (id {rows[1]['item_id']})")


def test_round_trip_into_the_raters_files(tmp_path):
    items = _items()
    _, csv_path = export_items(items, tmp_path / "export")
    _fill(csv_path, {"id000": {"rater": "Ada", "correctness": "4", "helpfulness": " 2 "},
                     "id002": {"rater": "Ada", "correctness": "1", "helpfulness": "5"}})
    assert import_ratings_csv(csv_path, items, tmp_path / "ratings") == {"Ada": 2}
    latest = RatingStore(tmp_path / "ratings", "Ada").latest()
    assert {k: (r["correctness"], r["helpfulness"]) for k, r in latest.items()} == {"id000": (4, 2), "id002": (1, 5)}
    assert latest["id000"]["source"].startswith("csv:ratings.csv:")


def test_bad_rows_are_each_named_and_nothing_is_imported(tmp_path):
    items = _items()
    _, csv_path = export_items(items, tmp_path / "export")
    with open(csv_path, "a", newline="") as fh:
        csv.writer(fh).writerows([[9, "nope", "Ada", "3", "3"], [10, "id004", "Ada", "3", "3"],
                                  [11, "id003", "Bo", "5", "5"]])
    _fill(csv_path, {"id000": {"rater": "Ada", "correctness": "6", "helpfulness": "3"},
                     "id001": {"rater": "", "correctness": "3", "helpfulness": "3"},
                     "id002": {"rater": "Bo", "correctness": "2.5", "helpfulness": ""},
                     "id003": {"rater": "Bo", "correctness": "3", "helpfulness": "4"}})
    with pytest.raises(RatingsCsvError) as err:
        import_ratings_csv(csv_path, items, tmp_path / "ratings")
    msg = str(err.value)
    lines = {line.split(":")[0].split(" line ")[1].split(" ")[0]: line for line in msg.splitlines()[1:]}
    with open(csv_path, newline="") as fh:
        where = {row[1]: n for n, row in enumerate(csv.reader(fh), 1) if row[0] != "number" and int(row[0]) <= 4}
    assert "correctness must be an integer from 1 to 5, got '6'" in lines[str(where["id000"])]
    assert "rater name is required" in lines[str(where["id001"])]
    assert "got '2.5'" in lines[str(where["id002"])] and "helpfulness must be" in lines[str(where["id002"])]
    assert str(where["id003"]) not in lines  # a good row
    assert "unknown item id 'nope'" in lines["6"] and "no explanation" in lines["7"]
    assert f"'Bo' rated this item already on line {where['id003']}" in lines["8"]
    assert "6 bad row(s), nothing imported" in msg and len(lines) == 6
    assert not (tmp_path / "ratings").exists() or not list((tmp_path / "ratings").iterdir())


def test_a_sheet_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,score\nid000,3\n")
    with pytest.raises(RatingsCsvError, match="lacks the column"):
        import_ratings_csv(path, _items(), tmp_path / "ratings")
