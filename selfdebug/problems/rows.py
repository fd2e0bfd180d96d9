"""Reading benchmark rows (JSON lines, optionally gzipped, or one JSON array) with errors that name the row."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from selfdebug.problems.base import ProblemFormatError

T = TypeVar("T")


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each record; a line that is not a JSON object is a ProblemFormatError."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        if path.suffix == ".json":
            data = json.load(f)
            if not isinstance(data, list):
                raise ProblemFormatError(f"{path}: expected a JSON array of records")
            for i, row in enumerate(data):
                if not isinstance(row, dict):
                    raise ProblemFormatError(f"{path}: record {i}: not a JSON object")
                yield i, row
            return
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProblemFormatError(f"{path}: line {lineno}: invalid JSON: {e.msg}") from e
            if not isinstance(row, dict):
                raise ProblemFormatError(f"{path}: line {lineno}: not a JSON object")
            yield lineno, row


def require(row: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``row[key]`` checked for presence and type, else a ProblemFormatError naming ``where`` and the key."""
    if key not in row:
        raise ProblemFormatError(f"{where}: missing field {key!r}")
    value = row[key]
    if not isinstance(value, kind):
        raise ProblemFormatError(f"{where}: field {key!r} is {type(value).__name__}, expected {kind}")
    return value


def convert_rows(path: str | Path, convert: Callable[[dict[str, Any]], T], id_key: str = "task_id") -> list[T]:
    """``convert`` applied to every row; any error becomes a ProblemFormatError naming file, line and id."""
    out = []
    for lineno, row in read_rows(path):
        try:
            out.append(convert(row))
        except Exception as e:
            tid = row.get(id_key, "?")
            raise ProblemFormatError(f"{path}: line {lineno} ({id_key}={tid!r}): {e}") from e
    return out
