"""EvalPlus test semantics (HumanEval+ v0.1.10, MBPP+ v0.2.0) expressed as structured TestCases.

EvalPlus calls ``fn(*inp)`` for each input and compares with the output of the canonical solution, so every
case here has ``expected_from="reference"`` and ``call = "entry(arg0, arg1, ...)"`` rendered as Python source
(:mod:`selfdebug.problems.pyliteral`, which checks each argument round-trips).

Comparison: EvalPlus checks ``out == exp``, and if that fails and a tolerance applies, ``np.allclose(out,
exp, rtol=1e-7, atol=atol)``; a task with ``atol == 0`` still gets ``atol = 1e-6`` when the expected value is
a float or a sequence of floats. The type of the expected value is only known once the reference ran, so
every case gets ``comparison="eq"``, ``atol = task atol or 1e-6`` and ``rtol = 1e-7``: the TestCase contract
applies them to floats only (exact for ints, strings, ...). The rtol term decides floats of large magnitude
(a model's ``pi * r * r * h`` against the reference's ``pi * r**2 * h`` for MBPP+'s large cylinders).

Special oracles (EvalPlus ``_special_oracle.py`` and its evaluator), reproduced as call expressions:

- HumanEval/32 ``find_zero``: pass iff ``|poly(xs, find_zero(xs))| <= atol``; the polynomial is evaluated by
  an inline lambda (not the program's ``poly``, which a candidate could redefine): ``close`` to 0.
- MBPP set-equality tasks (``similar_elements`` ...): ``call = set(entry(...))``.
- MBPP not-None tasks (``check_str`` ...): a bool result compares as is, anything else as ``is not None``.
- MBPP ``are_equivalent`` (Mbpp/164): any answer that does not raise passes.
- Not reproduced (strict comparison with the reference instead, noted in the problem metadata): Mbpp/295
  ``sum_div`` (EvalPlus also accepts 0), Mbpp/558 ``digit_distance_nums`` and Mbpp/581 ``surface_Area``
  (EvalPlus also accepts an alternative formula).
"""

from __future__ import annotations

from typing import Any

from selfdebug.problems.base import TestCase
from selfdebug.problems.pyliteral import NotRenderable, call_source

DEFAULT_FLOAT_ATOL = 1e-6
EVALPLUS_RTOL = 1e-7
"""``np.allclose(out, exp, rtol=1e-07, atol=atol)`` in evalplus 0.3.1's ``unsafe_execute``."""

MBPP_SET_EQ = frozenset(
    ["similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
     "intersection_array", "find_dissimilar", "Diff"]
)
MBPP_NOT_NONE = frozenset(["check_str", "text_match_three", "text_starta_endb"])
MBPP_ALWAYS_PASS = frozenset(["are_equivalent"])
MBPP_NOT_REPRODUCED = {295: "sum_div also accepts 0", 558: "alternative oracle", 581: "alternative oracle"}

_POLY = "(lambda xs, x: abs(sum(c * x ** i for i, c in enumerate(xs))))"


def _source_text(call: str, limit: int = 2000) -> str:
    # Huge inputs (some plus inputs are ~100 KB) are shortened for display only; ``call`` stays complete.
    return call if len(call) <= limit else call[: limit - 30] + f" ... ({len(call)} chars)"


def humaneval_plus_case(task_id: str, entry: str, args: list[Any], atol: float) -> TestCase:
    """One HumanEval+ test for input ``args`` (a list of positional arguments)."""
    call = call_source(entry, args)
    if task_id == "HumanEval/32":
        xs = call[len(entry) + 1 : -1]  # the argument list text, evaluated twice: fresh lists each time
        oracle = f"{_POLY}({xs}, {call})"
        return TestCase(call=oracle, expected=0.0, comparison="close", atol=atol or 1e-4,
                        source=_source_text(f"assert abs(poly({xs}, {call})) <= {atol or 1e-4}"))
    return TestCase(call=call, comparison="eq", atol=atol or DEFAULT_FLOAT_ATOL, rtol=EVALPLUS_RTOL,
                    expected_from="reference",
                    source=_source_text(call))


def humaneval_plus_cases(task_id: str, entry: str, inputs: list[Any], atol: float) -> list[TestCase]:
    out = []
    for i, args in enumerate(inputs):
        if not isinstance(args, list):
            raise ValueError(f"input {i} is {type(args).__name__}, expected a list of arguments")
        try:
            out.append(humaneval_plus_case(task_id, entry, args, atol))
        except NotRenderable as e:
            raise ValueError(f"input {i}: {e}") from e
    return out


# --- MBPP+ -------------------------------------------------------------------------------------------
# MBPP+ stores inputs as JSON, which has no tuples, sets or complex numbers; EvalPlus restores the original
# types per task before calling (``mbpp_deserialize_inputs``). The same table, as data:
_TUPLE_EACH_ARG = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630,
                   726, 740, 744, 809}
_TUPLE_INNER_OF_EACH_ARG = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_TUPLE_INNER_OF_FIRST = {75, 413, 444, 753}
_TUPLE_SECOND = {106, 750}
_TUPLE_FIRST = {250, 405, 446, 617, 720, 763, 808}
_TUPLE_INNER_THEN_EACH = {259, 401, 445}
_TUPLE_DEEP = {580, 615, 791}


def _deep_tuple(x: Any) -> Any:
    return tuple(_deep_tuple(v) for v in x) if isinstance(x, list) else x


def mbpp_plus_args(task_num: int, inp: list[Any]) -> list[Any]:
    """The positional arguments EvalPlus passes for MBPP+ task ``task_num`` and stored input ``inp``."""
    if task_num in _TUPLE_EACH_ARG:
        return [tuple(a) for a in inp]
    if task_num in _TUPLE_INNER_OF_EACH_ARG:
        return [[tuple(x) for x in a] for a in inp]
    if task_num in _TUPLE_INNER_OF_FIRST:
        return [[tuple(x) for x in inp[0]], inp[1]]
    if task_num in _TUPLE_SECOND:
        return [inp[0], tuple(inp[1])]
    if task_num == 115:  # lists of sets; EvalPlus turns an empty list into {} (a dict), kept as is
        return [[set(x) if isinstance(x, list) and x else {} for x in inp[0]]]
    if task_num == 124:
        return [float(inp[0]), complex(inp[1])]
    if task_num in _TUPLE_FIRST:
        return [tuple(inp[0]), *inp[1:2]]
    if task_num in _TUPLE_INNER_THEN_EACH:
        return [tuple(tuple(x) for x in a) for a in inp]
    if task_num == 278:
        return [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])]
    if task_num == 307:
        return [tuple(inp[0]), inp[1], inp[2]]
    if task_num == 722:
        return [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]]
    if task_num == 252:
        return [complex(inp[0])]
    if task_num in _TUPLE_DEEP:
        return list(_deep_tuple(inp))
    return list(inp)


def mbpp_plus_case(task_num: int, entry: str, inp: list[Any], atol: float) -> TestCase:
    call = call_source(entry, mbpp_plus_args(task_num, inp))
    tol = atol or DEFAULT_FLOAT_ATOL
    if entry in MBPP_SET_EQ:
        return TestCase(call=f"set({call})", atol=tol, rtol=EVALPLUS_RTOL, expected_from="reference",
                        source=_source_text(call))
    if entry in MBPP_NOT_NONE:
        wrapped = f"(lambda r: r if isinstance(r, bool) else r is not None)({call})"
        return TestCase(call=wrapped, expected_from="reference", source=_source_text(call))
    if entry in MBPP_ALWAYS_PASS:
        return TestCase(call=f"({call}, True)[1]", comparison="truthy", source=_source_text(call))
    return TestCase(call=call, atol=tol, rtol=EVALPLUS_RTOL, expected_from="reference", source=_source_text(call))


def mbpp_plus_cases(task_num: int, entry: str, inputs: list[Any], atol: float) -> list[TestCase]:
    out = []
    for i, inp in enumerate(inputs):
        if not isinstance(inp, list):
            raise ValueError(f"input {i} is {type(inp).__name__}, expected a list of arguments")
        try:
            out.append(mbpp_plus_case(task_num, entry, inp, atol))
        except (NotRenderable, TypeError, IndexError, AttributeError) as e:
            raise ValueError(f"input {i}: {e}") from e
    return out
