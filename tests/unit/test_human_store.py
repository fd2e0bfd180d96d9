"""Each rater's ratings file: append-only, the latest record of an item wins, and a process killed while
appending leaves a file that reloads with every completed record."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfdebug.human.store import RatingStore, load_ratings, rater_file


def test_latest_wins_and_nothing_is_rewritten(tmp_path):
    store = RatingStore(tmp_path, "Ada Lovelace")
    store.record("i1", correctness=2)
    store.record("i1", correctness=2, helpfulness=5)
    store.record("i2", skipped=True)
    store.record("i1", correctness=4, helpfulness=5)
    lines = store.path.read_text().splitlines()
    assert len(lines) == 4  # every click is a line of its own
    again = RatingStore(tmp_path, "Ada Lovelace")
    assert (again.get("i1")["correctness"], again.get("i1")["helpfulness"]) == (4, 5)
    assert again.get("i2")["skipped"] is True and again.get("i2")["correctness"] is None
    assert sorted((r["rater"], r["item_id"]) for r in load_ratings(tmp_path)) == [("Ada Lovelace", "i1"), ("Ada Lovelace", "i2")]


def test_bad_scores_and_names_are_refused_with_the_item_named(tmp_path):
    store = RatingStore(tmp_path, "Bo")
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises(ValueError, match=r"item i9: correctness must be an integer from 1 to 5"):
            store.record("i9", correctness=bad)
    with pytest.raises(ValueError, match="unknown scale"):
        store.record("i9", clarity=3)
    with pytest.raises(ValueError, match="rater name is required"):
        RatingStore(tmp_path, " ")
    assert not store.path.exists() or store.path.read_text() == ""


def test_raters_get_separate_files_even_when_their_slugs_collide(tmp_path):
    assert rater_file(tmp_path, "a b") != rater_file(tmp_path, "a_b")
    assert rater_file(tmp_path, "  a   b ") == rater_file(tmp_path, "a b")  # the same name, spaced differently


WRITER = """
import sys
from selfdebug.human.store import RatingStore
store = RatingStore(sys.argv[1], "Killed Rater")
i = 0
while True:
    store.record(f"item{i}", correctness=1 + i % 5, helpfulness=1 + (i * 3) % 5)
    print(i, flush=True)  # record i is on disk (fsynced) before this line is printed
    i += 1
"""


def test_a_killed_writer_loses_no_completed_record(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    done = -1
    deadline = time.monotonic() + 60
    while done < 200 and time.monotonic() < deadline:
        done = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # mid-way: it is appending record done+1 or later
    proc.wait()
    proc.stdout.close()
    assert done >= 200, "the writer did not get going"
    path = rater_file(tmp_path, "Killed Rater")
    # a kill can also land inside a write: simulate the torn tail such a kill leaves
    with open(path, "a") as fh:
        fh.write('{"key": "torn", "item_id": "torn", "rater": "Killed Rat')
    latest = RatingStore(tmp_path, "Killed Rater").latest()
    for i in range(done + 1):
        rec = latest[f"item{i}"]
        assert (rec["correctness"], rec["helpfulness"]) == (1 + i % 5, 1 + (i * 3) % 5)
    assert "torn" not in latest
    # the file was repaired: appending after the reload gives a file that loads cleanly
    RatingStore(tmp_path, "Killed Rater").record("after", correctness=3, helpfulness=3)
    assert json.loads(path.read_text().splitlines()[-1])["item_id"] == "after"
    assert "after" in RatingStore(tmp_path, "Killed Rater").latest()
