"""Render plain data as Python source that evaluates back to an equal value (EvalPlus inputs -> calls).

``repr`` is almost right, except for non-finite floats (``inf``/``nan`` are not literals), the empty set
(``{}`` is a dict) and values nested inside those. :func:`to_source` handles them; :func:`check_round_trip`
proves a rendering by evaluating it with no builtins except ``float``, ``set``, ``frozenset`` and
``complex``; the text is our own rendering of data, never model code.
"""

from __future__ import annotations

import math
from typing import Any

_EVAL_NAMES = {"float": float, "set": set, "frozenset": frozenset, "complex": complex}


class NotRenderable(ValueError):
    """A value with no faithful Python source form (an object, a function, ...)."""


def to_source(value: Any) -> str:
    """Python source for ``value``; raises :class:`NotRenderable` for types outside plain data."""
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "-float('inf')"
        return repr(value)
    if isinstance(value, complex):
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            return f"complex({to_source(value.real)}, {to_source(value.imag)})"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_source(v) for v in value) + "]"
    if isinstance(value, tuple):
        if len(value) == 1:
            return "(" + to_source(value[0]) + ",)"
        return "(" + ", ".join(to_source(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_source(k)}: {to_source(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        items = sorted(to_source(v) for v in value)  # sorted: a stable text for equal sets
        name = "set" if isinstance(value, set) else "frozenset"
        return f"{name}([" + ", ".join(items) + "])" if items or name == "frozenset" else "set()"
    raise NotRenderable(f"cannot render a {type(value).__name__} as Python source")


def _same(a: Any, b: Any) -> bool:
    """Equality that treats nan as equal to nan and distinguishes list/tuple/set/bool/int/float types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, complex):
        return _same(a.real, b.real) and _same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def check_round_trip(value: Any, source: str) -> bool:
    """Whether ``source`` evaluates to a value of the same types and equal to ``value`` (nan == nan)."""
    try:
        back = eval(source, {"__builtins__": {}}, dict(_EVAL_NAMES))  # noqa: S307 - our own rendering of data
    except Exception:
        return False
    return _same(value, back)


def call_source(entry_point: str, args: list[Any] | tuple[Any, ...]) -> str:
    """``entry_point(arg0, arg1, ...)`` as source; raises NotRenderable if an argument does not round-trip."""
    parts = []
    for i, a in enumerate(args):
        text = to_source(a)
        if not check_round_trip(a, text):
            raise NotRenderable(f"argument {i} does not round-trip through its source form")
        parts.append(text)
    return f"{entry_point}(" + ", ".join(parts) + ")"
