"""Atomic artifact writes and resumable JSONL logs: a crash or kill never leaves a half-written artifact."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 8 MiB blocks (benchmark files, model parts, stage inputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared and read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_or_print(text: str, out: str | Path | None) -> None:
    """A command line's Markdown: written atomically to ``out`` when given, else printed."""
    if out:
        atomic_write_text(Path(out), text)
    else:
        print(text, end="")


def rewrite_marked_block(path: str | Path, start: str, end: str, block: str) -> bool:
    """Replace the text from the line ``start`` to the line ``end`` (both kept) of a file, such as a generated
    table in the README, atomically; False (nothing written) when the file lacks either marker."""
    path = Path(path)
    text = path.read_text()
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        return False
    new = text[:i] + start + "\n\n" + block.strip("\n") + "\n\n" + text[j:]
    if new != text:
        atomic_write_text(path, new)
    return True


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows atomically; ``.gz`` paths are gzip-compressed (deterministically: no mtime)."""
    body = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows).encode()
    if str(path).endswith(".gz"):
        body = gzip.compress(body, mtime=0)
    return atomic_write_bytes(path, body)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {exc}") from exc


class JsonlLog:
    """An append-only log of finished work units, keyed by ``key``, for resuming a stage.

    Each record is one line, flushed and fsynced after each append. On load a torn last line (a kill in
    the middle of a write) is dropped with a warning, so a rerun redoes only that unit.

    ``drop_in_memory`` names fields written to the file but not kept in ``records`` (bulky ones, e.g. token
    ids: a paper-scale generation log holds hundreds of thousands of replies; readers needing them read the
    file with ``read_jsonl``).
    """

    def __init__(self, path: str | Path, drop_in_memory: Iterable[str] = ()):
        self.path = Path(path)
        self.drop_in_memory = frozenset(drop_in_memory)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)  # the last non-blank line
        end = 0  # byte offset just after the last good record's line
        offset = 0
        for i, line in enumerate(lines):
            start, offset = offset, offset + len(line) + 1
            if not line.strip():  # blank lines (hand edits, an editor's trailing newline) carry no record
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i == last:  # the torn tail of an interrupted append
                    log.warning("%s: dropping a torn last record (interrupted write)", self.path)
                    break
                raise ValueError(f"{self.path}:{i + 1}: corrupt record in the middle of the log") from None
            if not isinstance(rec, dict) or "key" not in rec:
                raise ValueError(f"{self.path}:{i + 1}: a log record must be a JSON object with a 'key'")
            self.records[rec["key"]] = self._light(rec)
            end = start + len(line)
        # Rewrite without a torn tail, and so that the file ends with exactly one newline after the last good
        # record: the next append must start on a line of its own.
        clean = raw[:end] + b"\n" if end else b""
        if clean != raw:
            atomic_write_bytes(self.path, clean)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, key: str, value: dict[str, Any]) -> None:
        self.extend([(key, value)])

    def extend(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Append several records with one write and one fsync (a torn write loses at most its last line)."""
        recs = [{"key": key, **value} for key, value in items]
        if not recs:
            return
        with open(self.path, "a") as fh:
            fh.write("".join(json.dumps(rec, sort_keys=True, default=str) + "\n" for rec in recs))
            fh.flush()
            os.fsync(fh.fileno())
        for rec in recs:
            self.records[rec["key"]] = self._light(rec)

    def _light(self, rec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rec.items() if k not in self.drop_in_memory} if self.drop_in_memory else rec
