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


def test_log_with_blank_lines_keeps_every_good_record(tmp_path):
    """Blank lines in the middle and at the end carry no record and cost none: all records load, the file is
    not cut, and the next append lands on a line of its own."""
    path = tmp_path / "gen.jsonl"
    path.write_text('{"key": "a", "v": 1}\n\n{"key": "b", "v": 2}\n   \n{"key": "c", "v": 3}\n\n\n')
    log = JsonlLog(path)
    assert sorted(log.records) == ["a", "b", "c"]
    again = JsonlLog(path)  # the rewrite (if any) lost nothing either
    assert sorted(again.records) == ["a", "b", "c"]
    again.append("d", {"v": 4})
    assert sorted(JsonlLog(path).records) == ["a", "b", "c", "d"]


def test_torn_last_line_after_blank_lines_is_still_dropped(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text('{"key": "a"}\n\n{"key": "b"}\n\n{"key": "c", "v"')
    log = JsonlLog(path)
    assert sorted(log.records) == ["a", "b"]
    log.append("c", {"v": 3})
    assert sorted(JsonlLog(path).records) == ["a", "b", "c"]
    # a torn line followed by blank lines is the tail too; a bad line before a good one is corruption
    path.write_text('{"key": "a"}\n{"key": "b", \n\n')
    assert sorted(JsonlLog(path).records) == ["a"]
    path.write_text('{"key": "a"}\n{"key": "b", \n\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=":2: corrupt"):
        JsonlLog(path)


def test_complete_last_record_without_newline_is_kept_and_appended_after(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b"}')
    log = JsonlLog(path)
    log.append("c", {})
    assert sorted(JsonlLog(path).records) == ["a", "b", "c"]


def test_extend_writes_several_records_at_once(tmp_path):
    log = JsonlLog(tmp_path / "gen.jsonl")
    log.extend([("a", {"v": 1}), ("b", {"v": 2})])
    log.extend([])
    assert JsonlLog(tmp_path / "gen.jsonl").records == {"a": {"key": "a", "v": 1}, "b": {"key": "b", "v": 2}}


def test_a_record_without_a_key_is_a_clear_error(tmp_path):
    (tmp_path / "gen.jsonl").write_text('{"key": "a"}\n[1, 2]\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"gen.jsonl:2: a log record must be a JSON object with a 'key'"):
        JsonlLog(tmp_path / "gen.jsonl")


def test_fields_dropped_in_memory_stay_in_the_file(tmp_path):
    log = JsonlLog(tmp_path / "gen.jsonl", drop_in_memory=("ids",))
    log.append("a", {"text": "t", "ids": [1, 2, 3]})
    assert log.get("a") == {"key": "a", "text": "t"}
    assert list(read_jsonl(tmp_path / "gen.jsonl")) == [{"key": "a", "text": "t", "ids": [1, 2, 3]}]
    assert JsonlLog(tmp_path / "gen.jsonl", drop_in_memory=("ids",)).get("a") == {"key": "a", "text": "t"}
    assert JsonlLog(tmp_path / "gen.jsonl").get("a")["ids"] == [1, 2, 3]
