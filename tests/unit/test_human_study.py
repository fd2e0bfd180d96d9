"""A study as the notebook opens it: the sample written for the judge, reused when already drawn, and a
summary a rater may read (no model name, no records folder), with the empty explanations listed."""

import gzip
import json

from selfdebug.human.store import RatingStore
from selfdebug.human.study import blind_summary, open_study, ratings_table


def _records(folder, tag):
    rows = []
    for t in range(3):
        chat = [{"role": "user", "content": f"Task {t}: write f."}]
        rows += [{"benchmark": "mbpp", "task_id": f"M/{t}", "sample": 0, "chain": "init", "round": 0,
                  "code": "def f(): pass", "feedback": "boom", "explanation": "", "passed": False, "chat": chat},
                 {"benchmark": "mbpp", "task_id": f"M/{t}", "sample": 0, "chain": "explain_refine", "round": 1,
                  "code": "def f(): return 1", "feedback": "", "passed": True, "chat": chat,
                  "explanation": "" if t == 2 else f"{tag} thinks {t}"}]
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "mbpp.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    return folder


def test_study_summary_is_blind_and_lists_empty_items(tmp_path):
    recs = {"zephyr-alpha": _records(tmp_path / "rec_zephyr", "Z"), "quokka-beta": _records(tmp_path / "rec_quokka", "Q")}
    study = open_study("smoke", records=recs, out_dir=tmp_path / "study", n_problems=3, seed=0, benchmarks=["mbpp"])
    assert (tmp_path / "study" / "items.jsonl").is_file() and (tmp_path / "study" / "sample.json").is_file()
    # no benchmark files for a made-up task: the problem is the chat's first user turn
    assert {it["problem"] for it in study.items} == {f"Task {t}: write f." for t in range(3)}
    text = blind_summary(study)
    assert "6 items" in text and "4 to rate" in text and "2 item(s) have an empty explanation" in text
    for it in study.sample.empty:
        assert f"item `{it['item_id']}`: mbpp {it['task_id']}" in text
    assert not any(s in text for s in ("zephyr", "quokka", "rec_"))
    RatingStore(study.ratings_dir, "Ada").record(study.sample.ratable[0]["item_id"], correctness=2, helpfulness=3)
    table = ratings_table(study)
    assert list(table.columns) == ["rater", "item_id", "correctness", "helpfulness", "skipped", "time"]
    assert table.iloc[0][["rater", "correctness", "helpfulness"]].tolist() == ["Ada", 2, 3]
    # raters open the study without records: the sample drawn by the organiser is used as it is
    again = open_study("smoke", out_dir=tmp_path / "study")
    assert again.items == study.items and "drawn earlier" in again.note
