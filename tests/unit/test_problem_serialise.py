"""``Problem.to_dict`` / ``from_dict`` through JSON give the same problem back, whatever plain value a test
expects: the collection writes its problems to JSONL and verifies refinements against what it reads back, so
a tuple read back as a list (or a set as its text) would fail correct code. MBPP train has all of these."""

from __future__ import annotations

import json

from selfdebug.problems.base import PLAIN_KEY, Problem, TestCase

VALUES = [{(1, 2): {3, 4}, (0, 1): frozenset({"a", "b"})}, (1, [2, (3,)]), {1, 2}, frozenset(), b"\x00x",
          1.5, float("inf"), 2**80, "s", None, True, [1, "a", None], {"k": (1, 2)}, 3 + 4j]


def test_every_plain_expected_value_survives_json():
    p = Problem(task_id="MBPP/700", benchmark="mbpp", prompt="", entry_point="f", style="full", reference="",
                tests=[TestCase(f"f({i})", v) for i, v in enumerate(VALUES)],
                plus_tests=[TestCase("f()", (1,), comparison="eq", atol=1e-6)])
    back = Problem.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert [type(t.expected) for t in back.tests] == [type(v) for v in VALUES]


def test_json_scalars_stay_readable_and_old_rows_still_load():
    row = Problem(task_id="t", benchmark="mbpp", prompt="", entry_point="f", style="full", reference="",
                  tests=[TestCase("f()", 3), TestCase("g()", (1, 2))]).to_dict()
    assert row["tests"][0]["expected"] == 3 and PLAIN_KEY in row["tests"][1]["expected"]
    row["tests"][1]["expected"] = [1, 2]  # a row written before the tagged form: read as it is
    assert Problem.from_dict(row).tests[1].expected == [1, 2]
