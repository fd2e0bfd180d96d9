"""Plain-data codec: candidate values become tagged JSON inside the sandbox, and builtins again outside.

Only exact builtin types pass (``type(x) is int``, never a subclass), so an object with a forged ``__eq__``
cannot leave the sandbox. Decoding runs in the harness on untrusted bytes: it is iterative-safe (bounded
depth), size-bounded by the caller, and produces nothing but builtins.
"""

from __future__ import annotations

import base64
import collections
import math
import sys
from array import array
from typing import Any

_DICT_LIKE = (collections.Counter, collections.OrderedDict, collections.defaultdict)
"""Exact stdlib ``dict`` subclasses accepted as dicts (MBPP references return ``Counter``). Their items are
read with the builtin ``dict.items``, so a patched method cannot change what leaves the sandbox."""

MAX_DEPTH = 100
_EXACT = 1 << 53
PACKED_MIN = 64
"""Containers of at least this many numbers, floats among them, travel as packed IEEE doubles (tag
``<tag>d``: base64, then the positions of the ints): writing a float as text costs a ``repr`` each
(HumanEval/130's reference returns millions of them), packing is a copy.
Both ends are the same interpreter on the same machine, so native byte order is the format's; the flag below
keeps a foreign payload from being read wrongly."""
_NATIVE_LITTLE = sys.byteorder == "little"


class NotPlain(TypeError):
    """A value that is not plain data (its message names the offending type)."""


class TooLarge(ValueError):
    """A value whose strings, bytes and items exceed the output budget."""


def encode(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """Tagged JSON-able form of a plain value; raises ``NotPlain`` on anything else (or cycles/depth) and
    ``TooLarge`` once ``budget[0]`` (bytes, roughly) is spent."""
    if budget is not None:
        budget[0] -= 16 + (len(value) if type(value) in (str, bytes) else 0)
        if budget[0] < 0:
            raise TooLarge("returned value is larger than the output limit")
    if depth > MAX_DEPTH:
        raise NotPlain("value nested too deeply (or cyclic)")
    t = type(value)
    # compact forms for the common scalars: JSON null/true/false, strings, floats (repr round-trips exactly;
    # Python's JSON writes inf/nan as Infinity/NaN and reads them back), and ints that JSON keeps exact
    if value is None or t is bool or t is str or t is float:
        return value
    if t is int:
        return value if -_EXACT < value < _EXACT else ["i", hex(value)]  # hex: no int->str digit limit
    if t is complex:
        return ["c", value.real.hex(), value.imag.hex()]
    if t is bytes:
        return ["b", value.hex()]
    if t is list or t is tuple or t is set or t is frozenset:
        tag = {list: "l", tuple: "t", set: "s", frozenset: "f"}[t]
        packed = _packed(value, depth, budget) if len(value) >= PACKED_MIN else None
        if packed is not None:
            return [tag + "d", *packed]
        flat = _flat(value, depth, budget)
        return [tag, flat if flat is not None else [encode(v, depth + 1, budget) for v in value]]
    if t is dict or t in _DICT_LIKE:
        return ["d", [[encode(k, depth + 1, budget), encode(v, depth + 1, budget)] for k, v in dict.items(value)]]
    raise NotPlain(f"returned non-plain type {t.__module__}.{t.__qualname__}")


_SCALARS = frozenset((type(None), bool, str, float))


def _packed(value: Any, depth: int, budget: list[int] | None) -> tuple[str, list[int]] | None:
    """A container of floats, or of floats and ints that a double holds exactly (HumanEval/130 returns ten
    million of them, a few ints among the floats), as packed doubles (base64) and the positions of its ints;
    charged to the budget as ``encode`` would. None for anything else. Only C-level passes over the items, and
    a Python step per int."""
    if not _NATIVE_LITTLE or depth + 1 > MAX_DEPTH:
        return None
    items = value if type(value) in (list, tuple) else list(value)
    kinds = list(map(type, items))
    n_float = kinds.count(float)
    n_int = len(kinds) - n_float
    if n_int > n_float or kinds.count(int) != n_int:  # mostly ints: JSON writes ints fast, and exactly
        return None
    ints: list[int] = []
    at = -1
    for _ in range(n_int):
        at = kinds.index(int, at + 1)
        ints.append(at)
    if ints and not all(-_EXACT < items[i] < _EXACT for i in ints):
        return None
    if budget is not None:
        budget[0] -= 16 * len(items)
        if budget[0] < 0:
            raise TooLarge("returned value is larger than the output limit")
    return base64.b64encode(array("d", items).tobytes()).decode("ascii"), ints


def _flat(value: Any, depth: int, budget: list[int] | None) -> list[Any] | None:
    """The items of a container of scalars that encode as themselves (HumanEval+ returns lists of a million
    floats: one C pass instead of a call per item), charged to the budget as ``encode`` would; None when an
    item needs ``encode`` (or the depth limit applies to the items)."""
    if depth + 1 > MAX_DEPTH:
        return None
    kinds = set(map(type, value))
    if not kinds <= _SCALARS:
        if not kinds <= _SCALARS | {int}:
            return None
        ints = value if kinds == {int} else [v for v in value if type(v) is int]
        if not -_EXACT < min(ints) or not max(ints) < _EXACT:  # JSON keeps these exact; others are tagged
            return None
    if budget is not None:
        strs = 0 if str not in kinds else sum(map(len, value)) if kinds == {str} else \
            sum(len(v) for v in value if type(v) is str)
        budget[0] -= 16 * len(value) + strs
        if budget[0] < 0:
            raise TooLarge("returned value is larger than the output limit")
    return list(value)


_DECODED = frozenset((type(None), bool, str, int, float))
_BUILD = {"l": list, "t": tuple, "s": set, "f": frozenset}
_PACKED = {tag + "d": tag for tag in _BUILD}


def decode(node: Any, depth: int = 0) -> Any:
    """Inverse of ``encode`` for untrusted input; raises ``ValueError`` on anything malformed."""
    t = type(node)
    if node is None or t is bool or t is str or t is int or t is float:
        return node
    if depth > MAX_DEPTH + 1 or t is not list or not node or type(node[0]) is not str:
        raise ValueError("malformed value")
    tag = node[0]
    try:
        if tag == "N":
            return None
        if tag == "B" and type(node[1]) is bool:
            return node[1]
        if tag == "i":
            return int(node[1], 16)
        if tag == "F":
            return float.fromhex(node[1])
        if tag == "c":
            return complex(float.fromhex(node[1]), float.fromhex(node[2]))
        if tag == "S" and type(node[1]) is str:
            return node[1]
        if tag == "b":
            return bytes.fromhex(node[1])
        if tag in _PACKED and len(node) == 3 and type(node[1]) is str and type(node[2]) is list:
            raw = base64.b64decode(node[1], validate=True)
            if len(raw) % 8 or not _NATIVE_LITTLE:
                raise ValueError("packed floats of a bad length (or a foreign byte order)")
            packed = array("d")
            packed.frombytes(raw)
            items = packed.tolist()
            for i in node[2]:  # the ints among them, exact in a double
                if type(i) is not int or not 0 <= i < len(items) or not items[i].is_integer():
                    raise ValueError("bad int position in packed floats")
                items[i] = int(items[i])
            return _BUILD[_PACKED[tag]](items)
        if tag in ("l", "t", "s", "f") and type(node[1]) is list:
            # scalars decode as themselves: a flat list needs no call per item
            flat = set(map(type, node[1])) <= _DECODED
            items = node[1] if flat else [decode(v, depth + 1) for v in node[1]]
            return _BUILD[tag](items)
        if tag == "d" and type(node[1]) is list:
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in node[1]}
    except (TypeError, ValueError, IndexError, OverflowError) as e:  # binascii.Error is a ValueError
        raise ValueError(f"malformed value: {e}") from None
    raise ValueError(f"malformed value tag {tag!r}")


def equal(actual: Any, expected: Any, atol: float = 0.0, rtol: float = 0.0) -> bool:
    """Python ``==`` on trusted builtins, with float tolerance inside containers (EvalPlus style): two numbers,
    floats among them, match when ``|a - e| <= atol + rtol * |e|`` (numpy's ``allclose`` rule)."""
    tolerant = atol > 0 or rtol > 0
    try:
        if actual == expected:  # also what the tolerant comparison below says then: skip its call per item
            return True
        if not tolerant:
            return False
    except RecursionError:
        if not tolerant:
            return False
    if type(actual) in (int, float) and type(expected) in (int, float):
        if type(actual) is int and type(expected) is int:
            return actual == expected  # tolerance is for floats; huge ints do not fit in one
        try:
            if math.isnan(expected) and type(actual) is float:
                return math.isnan(actual)
            return actual == expected or abs(actual - expected) <= atol + rtol * abs(expected)
        except OverflowError:
            return False
    if type(actual) in (list, tuple) and type(expected) in (list, tuple):
        return type(actual) is type(expected) and len(actual) == len(expected) and all(
            equal(a, e, atol, rtol) for a, e in zip(actual, expected, strict=True))
    if type(actual) is dict and type(expected) is dict:
        return actual.keys() == expected.keys() and all(equal(actual[k], expected[k], atol, rtol) for k in actual)
    return bool(actual == expected)


def close(actual: Any, expected: Any, atol: float) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        return False
    return math.isclose(actual, expected, abs_tol=max(atol, 1e-9))
