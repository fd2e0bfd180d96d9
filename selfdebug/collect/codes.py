"""Keys that say when two programs are the same, and which correct program is closest to a wrong one.

``code_key`` is the paper's deduplication of "#Unique Solutions": the code parsed and unparsed, so comments,
blank lines, spacing and quoting style are gone. Code that does not parse (a syntax error is a wrong
solution too) falls back to its lines without comments and trailing blanks.
"""

from __future__ import annotations

import ast
import hashlib
import re
import warnings


def code_key(code: str) -> str:
    """The normalised form of ``code``: ``ast.unparse(ast.parse(code))``, else its stripped lines."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in regexes are the model's, not ours to report
            return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        lines = (re.sub(r"\s+#.*$|^\s*#.*$", "", line).rstrip() for line in code.split("\n"))
        return "\n".join(line for line in lines if line.strip())


def digest(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (characters), O(len(a) * len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def closest(code: str, candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The ``(id, code)`` candidate with the smallest edit distance to ``code`` (the first on a tie);
    distances between normalised forms, so formatting does not count as a difference."""
    if not candidates:
        return None
    target = code_key(code)
    return min(candidates, key=lambda c: edit_distance(target, code_key(c[1])))
