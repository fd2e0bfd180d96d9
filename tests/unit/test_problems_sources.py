"""Benchmark file resolution: mirror, checksum errors, pinned-hash policy, download through a local server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from selfdebug.problems import sources
from selfdebug.problems.sources import ChecksumError, SourceError, resolve

MBPP_SHA = sources.SOURCES["mbpp"].sha256
DATA = b'{"task_id": 1}\n'
DATA_SHA = hashlib.sha256(DATA).hexdigest()


def make_mirror(root: Path, content: bytes = DATA) -> Path:
    (root / "mbpp").mkdir(parents=True)
    (root / "mbpp" / "mbpp.jsonl").write_bytes(content)
    return root


def test_mirror_file_is_found_and_verified(tmp_path):
    mirror = make_mirror(tmp_path / "m")
    path = resolve("mbpp", mirror, sha256=DATA_SHA, allow_download=False)
    assert path == mirror / "mbpp" / "mbpp.jsonl"


def test_env_variable_names_the_mirror(tmp_path, monkeypatch):
    mirror = make_mirror(tmp_path / "m")
    monkeypatch.setenv(sources.ENV_MIRROR, str(mirror))
    assert resolve("mbpp", sha256=DATA_SHA, allow_download=False) == mirror / "mbpp" / "mbpp.jsonl"


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    mirror = make_mirror(tmp_path / "m", b"tampered\n")
    with pytest.raises(ChecksumError) as e:
        resolve("mbpp", mirror, allow_download=False)
    msg = str(e.value)
    assert "mbpp.jsonl" in msg and MBPP_SHA in msg and hashlib.sha256(b"tampered\n").hexdigest() in msg


def test_shared_mirror_passes_pinned_hashes():
    mirror = sources.default_mirror()
    if mirror is None or not (mirror / "mbpp" / "mbpp.jsonl").is_file():
        pytest.skip("offline mirror not present")
    for name in ("mbpp", "mbpp_sanitized", "humaneval_plus", "mbpp_plus"):
        assert resolve(name, mirror, allow_download=False).is_file()


def test_mbpp_plus_is_pinned_and_a_different_file_says_what_the_pin_is(tmp_path):
    src = sources.SOURCES["mbpp_plus"]
    assert src.sha256 == "a8a478355be1a94a561e8f75a630e9bae51d24061ee80292b3ad6dc07566b8b2"
    assert src.url.startswith("https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/")
    (tmp_path / "evalplus").mkdir()
    (tmp_path / "evalplus" / "MbppPlus-v0.2.0.jsonl.gz").write_bytes(b"another file\n")
    with pytest.raises(ChecksumError, match=r"SHA-256 mismatch.*note: the pinned SHA-256 is of the mirror's "
                                            r"reconstruction.*sha256=<its hash>"):
        resolve("mbpp_plus", tmp_path, allow_download=False)
    # after checking that file by hand, the caller may accept it
    assert resolve("mbpp_plus", tmp_path, sha256=hashlib.sha256(b"another file\n").hexdigest(),
                   allow_download=False).is_file()


def test_unpinned_hash_is_an_explicit_error(tmp_path, monkeypatch):
    unpinned = sources.Source("unpinned", "x/file.jsonl", "https://example.invalid/file.jsonl", None,
                              note="hash not verified")
    monkeypatch.setitem(sources.SOURCES, "unpinned", unpinned)
    with pytest.raises(SourceError, match=r"unpinned: no pinned SHA-256.*sha256="):
        resolve("unpinned", tmp_path)
    with pytest.raises(SourceError, match="unknown benchmark file 'nope'; known:"):
        resolve("nope", tmp_path)


def test_missing_file_without_download_is_clear(tmp_path):
    with pytest.raises(SourceError, match="not found in mirror"):
        resolve("mbpp", tmp_path / "empty", cache_dir=tmp_path / "cache", allow_download=False)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "mbpp.jsonl").write_bytes(DATA)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_to_cache_then_reuse(tmp_path, server):
    cache = tmp_path / "cache"
    path = resolve("mbpp", tmp_path / "no-mirror", sha256=DATA_SHA, cache_dir=cache, url=f"{server}/mbpp.jsonl")
    assert path == cache / "mbpp" / "mbpp.jsonl" and path.read_bytes() == DATA
    # Second time: served from the cache (the URL is now wrong on purpose).
    again = resolve("mbpp", tmp_path / "no-mirror", sha256=DATA_SHA, cache_dir=cache, url=f"{server}/gone")
    assert again == path


def test_download_with_wrong_hash_leaves_nothing(tmp_path, server):
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=f"expected {MBPP_SHA}, actual {DATA_SHA}"):
        resolve("mbpp", tmp_path / "no-mirror", cache_dir=cache, url=f"{server}/mbpp.jsonl")
    assert list((cache / "mbpp").iterdir()) == []  # no partial or unverified file left behind


def test_download_failure_is_a_source_error(tmp_path, server):
    with pytest.raises(SourceError, match="download from .*/missing failed"):
        resolve("mbpp", tmp_path / "no-mirror", cache_dir=tmp_path / "cache", url=f"{server}/missing")


def test_no_mirror_at_all_says_how_to_name_one(tmp_path, monkeypatch):
    """A clone with no ../shared/data beside it (say, under /tmp) and no $SELFDEBUG_DATA_DIR: the error names the
    default folder it looked for and both ways to point at the files, not "mirror None"."""
    monkeypatch.delenv(sources.ENV_MIRROR, raising=False)
    monkeypatch.setattr(sources, "default_mirror", lambda: None)
    with pytest.raises(SourceError) as err:
        resolve("mbpp", cache_dir=tmp_path / "cache", allow_download=False)
    msg = str(err.value)
    assert "None" not in msg and "data_mirror" in msg and sources.ENV_MIRROR in msg
    assert str(sources.REPO_ROOT.parent / "shared" / "data") in msg


def test_a_clone_of_a_local_checkout_finds_the_files_beside_its_origin(tmp_path):
    """``git clone /work/selfdebug /tmp/scratch`` offline: no ../shared/data beside the scratch clone, so the files
    beside the checkout it was cloned from are used; a clone of a URL, or a checkout with no origin, finds none."""
    import subprocess

    def git(*args, cwd=tmp_path):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    origin = tmp_path / "work" / "selfdebug"
    origin.mkdir(parents=True)
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    git("init", "-q", str(origin))
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x", cwd=origin)
    git("clone", "-q", str(origin), str(tmp_path / "scratch" / "clone"))
    assert sources.origin_mirror(tmp_path / "scratch" / "clone") == tmp_path / "work" / "shared" / "data"
    assert sources.origin_mirror(origin) is None  # no origin of its own
    git("remote", "set-url", "origin", "https://github.com/example/selfdebug.git", cwd=tmp_path / "scratch" / "clone")
    sources.origin_mirror.cache_clear()
    assert sources.origin_mirror(tmp_path / "scratch" / "clone") is None
