"""Fingerprints of model weights, for the generation log's cache key: a retrained checkpoint written into
the same folder, or another encoding of the weights, must never be answered with the old replies.

A file's fingerprint is the SHA-256 of its whole content. Hashing gigabytes on every run would cost
seconds, so the hash is cached by the file's identity (path, size, mtime_ns, ctime_ns, inode) together with
a quick hash of sixteen 64 KiB pieces spread over the file: a cached hash is used only when both still
match (the quick hash guards against a rewrite within one coarse timestamp tick). The cache lives in
memory and in ``data/cache/fingerprints.json`` (override: env ``SELFDEBUG_FINGERPRINT_CACHE``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from selfdebug.io import atomic_write_json

log = logging.getLogger(__name__)

_PIECES, _PIECE = 16, 64 << 10
_memo: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def _cache_path() -> Path:
    env = os.environ.get("SELFDEBUG_FINGERPRINT_CACHE")
    if env:
        return Path(env)
    from selfdebug.config import REPO_ROOT

    return REPO_ROOT / "data" / "cache" / "fingerprints.json"


def _load_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _quick_hash(path: Path, size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        for k in range(_PIECES):
            fh.seek(max(0, size - _PIECE) * k // (_PIECES - 1))
            h.update(fh.read(_PIECE))
    return h.hexdigest()


def _full_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 (hex) of a file's content, cached (see the module doc)."""
    path = Path(path).resolve()  # hub caches hold symlinks to blobs: identify the blob
    try:
        st = path.stat()
    except OSError as exc:
        raise FileNotFoundError(f"fingerprint: cannot read weights file {path}: {exc}") from exc
    ident = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    quick = _quick_hash(path, st.st_size)
    key = str(path)
    cache_file = _cache_path()
    with _lock:
        entry = _memo.get(key) or _load_cache(cache_file).get(key)
        if entry and entry.get("ident") == ident and entry.get("quick") == quick and entry.get("sha256"):
            _memo[key] = entry
            return entry["sha256"]
    if st.st_size > 256 << 20:
        log.info("fingerprinting %s (%.1f GB, once per version of the file)", path, st.st_size / 1e9)
    entry = {"ident": ident, "quick": quick, "sha256": _full_hash(path)}
    with _lock:
        _memo[key] = entry
        disk = {k: v for k, v in _load_cache(cache_file).items() if Path(k).exists()}  # forget deleted files
        disk[key] = entry
        try:
            atomic_write_json(cache_file, disk)
        except OSError as exc:  # a read-only checkout still works, it just hashes again next process
            log.warning("fingerprint cache %s not written: %s", cache_file, exc)
    return entry["sha256"]


def weights_fingerprint(path: str | Path) -> str:
    """A short fingerprint of a weights file, or of a model folder: every regular file at its top level
    (weights, adapter, config, tokenizer, chat template: all decide the replies), by name and content.
    Subfolders (e.g. ``checkpoint-500/``) are not part of the model that loads from the folder."""
    path = Path(path)
    if path.is_file():
        return file_fingerprint(path)[:16]
    if not path.is_dir():
        raise FileNotFoundError(f"fingerprint: no weights file or model folder at {path}")
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"fingerprint: model folder {path} holds no files")
    for p in files:
        h.update(f"{p.name}\0{file_fingerprint(p)}\n".encode())
    return h.hexdigest()[:16]


def module_fingerprint(model: Any) -> str:
    """A fingerprint of an in-memory torch module's parameters and buffers (names, dtypes, shapes, bytes):
    for a model handed to a backend ready-made (e.g. a policy being trained), which has no files. Reads
    every tensor once (copied to CPU), so it is computed when asked, not cached: weights change in place."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        flat = t.contiguous().view(-1)
        step = max(1, (64 << 20) // max(1, flat.element_size()))
        for s in range(0, flat.numel(), step):
            h.update(flat[s : s + step].cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def text_fingerprint(text: str | None) -> str:
    """Short hash of a string (a chat template), ``none`` for None."""
    return "none" if text is None else hashlib.sha256(text.encode()).hexdigest()[:8]


def local_model_dir(model_id: str | Path) -> Path | None:
    """The folder a model id loads from: a local path as is, a hub id's snapshot already in the local
    hub cache (never downloads), else None."""
    p = Path(model_id).expanduser()
    if p.exists():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model_id), local_files_only=True))
    except Exception:  # not cached locally (or no huggingface_hub): the caller falls back
        return None
