import json

import pytest

from selfdebug.io import JsonlLog, atomic_write_text, read_jsonl, write_jsonl


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    assert (tmp_path / "a" / "x.txt").read_text() == "hello"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.txt"]


def test_jsonl_gz_round_trip_is_deterministic(tmp_path):
    rows = [{"a": 1}, {"b": [1, 2]}]
    write_jsonl(tmp_path / "r.jsonl.gz", rows)
    first = (tmp_path / "r.jsonl.gz").read_bytes()
    write_jsonl(tmp_path / "r.jsonl.gz", rows)
    assert (tmp_path / "r.jsonl.gz").read_bytes() == first
    assert list(read_jsonl(tmp_path / "r.jsonl.gz")) == rows


def test_log_resumes_and_drops_a_torn_tail(tmp_path):
    log = JsonlLog(tmp_path / "gen.jsonl")
    log.append("k1", {"v": 1})
    log.append("k2", {"v": 2})
    with open(tmp_path / "gen.jsonl", "a") as fh:  # a kill in the middle of the third append
        fh.write('{"key": "k3", "v"')
    again = JsonlLog(tmp_path / "gen.jsonl")
    assert "k1" in again and "k2" in again and "k3" not in again
    again.append("k3", {"v": 3})
    assert [json.loads(x)["key"] for x in (tmp_path / "gen.jsonl").read_text().splitlines()] == ["k1", "k2", "k3"]


def test_log_refuses_corruption_in_the_middle(tmp_path):
    (tmp_path / "gen.jsonl").write_text('{"key": "a"}\nnot json\n{"key": "b"}\n{"key": "c"}\n')
    with pytest.raises(ValueError, match="corrupt"):
        JsonlLog(tmp_path / "gen.jsonl")
