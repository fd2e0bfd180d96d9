"""The problem type every benchmark loads into.

A problem carries what a model sees (``prompt``), how its answer becomes a program (``style``), and its
tests in a *structured* form: each test is a call expression evaluated inside the sandbox, whose value is
serialised to plain data and compared with the expected value *in the harness process*. Expected values
never enter the sandbox, so a candidate cannot forge a pass without computing the right answer.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

ProgramStyle = Literal["completion", "full"]
"""``completion``: the model's code is appended to ``prompt`` (HumanEval). ``full``: the model writes the
whole program, and ``prompt`` is only the task text (MBPP, APPS)."""

Comparison = Literal["eq", "close", "truthy", "falsy", "stdout"]


@dataclass(frozen=True)
class TestCase:
    """One test: ``call`` is a Python expression such as ``"add(1, 2)"``, evaluated after the program.

    ``expected`` is plain data (int, float, str, bool, None, list, tuple, dict, set). When ``expected_from``
    is ``"reference"`` the expected value is not known from the benchmark file and is computed by running
    the reference solution in the sandbox (EvalPlus semantics); ``expected`` is then filled in by the
    harness before the candidate runs. ``comparison`` says how the harness compares: ``eq`` (exact, with
    float tolerance ``atol``/``rtol`` inside containers when either is set), ``close`` (numbers within ``atol``),
    ``truthy``/``falsy`` (the value's truth), ``stdout`` (``call`` is standard input text, ``expected`` the
    standard output, for APPS/CodeContests programs).
    """

    __test__ = False  # not a pytest test class

    call: str
    expected: Any = None
    comparison: Comparison = "eq"
    atol: float = 0.0
    rtol: float = 0.0
    """Relative float tolerance beside ``atol``: floats match when ``|a - e| <= atol + rtol * |e|`` (numpy's
    ``allclose`` rule, which EvalPlus applies with ``rtol=1e-7``)."""
    expected_from: Literal["literal", "reference"] = "literal"
    source: str = ""
    """The original assertion text or input, to show in feedback."""


@dataclass
class Problem:
    task_id: str
    benchmark: str
    prompt: str
    entry_point: str
    style: ProgramStyle
    reference: str
    """A complete, correct program (for ``completion`` style: prompt + canonical completion)."""
    tests: list[TestCase]
    plus_tests: list[TestCase] = field(default_factory=list)
    """EvalPlus extra tests (HumanEval+, MBPP+); empty for the original benchmarks."""
    setup_code: str = ""
    """Code run before the program (MBPP ``test_setup_code``); trusted benchmark text."""
    test_script: str = ""
    """The benchmark's original test code (assert script), kept for display and for problems whose tests
    cannot be put in structured form."""
    description: str = ""
    """Natural-language task text, for prompts that show it separately from code."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def program(self, code: str) -> str:
        """The program that runs for a model answer ``code``.

        ``completion`` style: an instruct model usually answers with the whole function, sometimes with
        only its body. A whole function is placed after the prompt (the prompt's stub, which has a
        docstring for a body, is valid Python and is redefined), so helpers and imports in the prompt
        stay available; a body is appended to the prompt as in the original HumanEval protocol.
        """
        if self.style == "completion":
            if re.search(rf"^(async\s+)?def\s+{re.escape(self.entry_point)}\s*\(", code, flags=re.M):
                return self.prompt + "\n\n" + code
            return self.prompt + code
        return code

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and lossless: expected values that JSON would change (tuples, sets, dicts with non-string
        keys, bytes, ...) are stored in the sandbox's tagged plain-data form, which ``from_dict`` reads back."""
        d = dataclasses.asdict(self)
        for key in ("tests", "plus_tests"):
            for t in d.get(key, []):
                t["expected"] = _encode_expected(t["expected"])
        return d

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Problem:
        row = dict(row)
        row["tests"] = [_test_from_dict(t) for t in row.get("tests", [])]
        row["plus_tests"] = [_test_from_dict(t) for t in row.get("plus_tests", [])]
        return cls(**row)


PLAIN_KEY = "__plain__"
"""Marks an expected value stored in the tagged form of ``selfdebug.plain`` in ``Problem.to_dict``."""


def _encode_expected(value: Any) -> Any:
    from selfdebug.plain import NotPlain, encode

    if value is None or type(value) in (bool, int, float, str):
        return value  # JSON keeps these exactly
    try:
        return {PLAIN_KEY: encode(value)}
    except NotPlain:
        return value


def _test_from_dict(t: dict[str, Any]) -> TestCase:
    t = dict(t)
    v = t.get("expected")
    if isinstance(v, dict) and len(v) == 1 and PLAIN_KEY in v:
        from selfdebug.plain import decode

        t["expected"] = decode(v[PLAIN_KEY])
    return TestCase(**t)


class ProblemFormatError(ValueError):
    """A benchmark row that cannot be turned into a Problem; the message names the file and the row."""
