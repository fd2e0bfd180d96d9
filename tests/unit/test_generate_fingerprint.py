"""Weight fingerprints (the generation cache's model identity): content-exact, cached, cheap when unchanged."""

from __future__ import annotations

import hashlib
import os

import pytest

from selfdebug.generate import fingerprint as fp


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "cache" / "fp.json"))
    monkeypatch.setattr(fp, "_memo", {})


def test_file_fingerprint_is_the_content_hash_and_sees_a_same_size_rewrite(tmp_path):
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"x" * 300_000)
    first = fp.file_fingerprint(w)
    assert first == hashlib.sha256(b"x" * 300_000).hexdigest()
    st = w.stat()
    # rewritten in place with the same size, and the timestamps put back: the quick hash still sees it
    w.write_bytes(b"x" * 150_000 + b"y" + b"x" * 149_999)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fp.file_fingerprint(w) != first


def test_unchanged_file_is_hashed_once_even_across_processes(tmp_path, monkeypatch):
    w = tmp_path / "w.gguf"
    w.write_bytes(os.urandom(200_000))
    calls = []
    full = fp._full_hash
    monkeypatch.setattr(fp, "_full_hash", lambda p: calls.append(p) or full(p))
    a = fp.file_fingerprint(w)
    fp._memo.clear()  # a new process: only the cache file remains
    assert fp.file_fingerprint(w) == a
    assert len(calls) == 1
    w.write_bytes(os.urandom(200_000))
    assert fp.file_fingerprint(w) != a and len(calls) == 2


def test_folder_fingerprint_covers_top_level_files_only(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"w1")
    (d / "tokenizer_config.json").write_text("{}")
    a = fp.weights_fingerprint(d)
    (d / "checkpoint-5").mkdir()
    (d / "checkpoint-5" / "model.safetensors").write_bytes(b"other")
    (d / ".lock").write_text("")
    assert fp.weights_fingerprint(d) == a  # subfolders and hidden files are not the model
    (d / "tokenizer_config.json").write_text('{"chat_template": "x"}')
    assert fp.weights_fingerprint(d) != a
    with pytest.raises(FileNotFoundError, match="no weights file or model folder"):
        fp.weights_fingerprint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        fp.weights_fingerprint(tmp_path / "empty")


def test_module_fingerprint_follows_in_place_changes():
    import torch

    m = torch.nn.Linear(3, 2).to(torch.bfloat16)
    a = fp.module_fingerprint(m)
    assert fp.module_fingerprint(m) == a
    with torch.no_grad():
        m.bias[0] += 1
    assert fp.module_fingerprint(m) != a


def test_unwritable_cache_still_fingerprints(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "file" / "fp.json"))
    (tmp_path / "file").write_text("not a folder")
    w = tmp_path / "w"
    w.write_bytes(b"abc")
    assert fp.file_fingerprint(w) == hashlib.sha256(b"abc").hexdigest()
