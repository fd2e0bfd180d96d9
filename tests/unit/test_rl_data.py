"""RL prompts from a hand-written collection (``selfdebug.rl.data``): one prompt per (wrong solution, format), the
hint-free training chat, references pooled per wrong solution across teachers, formats and hindsight, other
sources left out, a malformed row named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfdebug.collect.dataset import REFINEMENTS
from selfdebug.io import write_jsonl
from selfdebug.problems.base import Problem, TestCase
from selfdebug.prompts import refine_chat
from selfdebug.rl.data import PromptError, load_prompts

WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"
RIGHT2 = "def add(a, b):\n    return sum([a, b])\n"
EXPLANATION = "The function subtracts b instead of adding it."
FEEDBACK = "AssertionError: expect add(1, 2) == 3, but was -1"


def problem(task_id: str = "MBPP/601") -> Problem:
    return Problem(task_id=task_id, benchmark="mbpp", prompt="Write a function add(a, b) that adds two numbers.",
                   entry_point="add", style="full", reference=RIGHT,
                   tests=[TestCase("add(1, 2)", 3), TestCase("add(0, 0)", 0), TestCase("add(-1, 5)", 4)])


def record(mode: str = "explain_refine", *, solution: str = "MBPP/601/abc", teacher: str = "self",
           hindsight: bool = False, verified: list[dict] | None = None, source: str = "mbpp",
           task_id: str = "MBPP/601") -> dict:
    p = problem(task_id)
    chat = refine_chat(p, WRONG, FEEDBACK, mode)
    teacher_chat = chat if not hindsight else [*chat[:-1], {"role": "user", "content": "HINT " + RIGHT + chat[-1]["content"]}]
    if verified is None:
        verified = [{"explanation": EXPLANATION if mode == "explain_refine" else "", "refinement": RIGHT,
                     "pass_fraction": 1.0}]
    return {"record_id": f"{solution}/{teacher}/{mode}" + ("/hindsight" if hindsight else ""), "source": source,
            "problem_id": task_id, "problem": json.dumps(p.to_dict()), "solution_id": solution,
            "wrong_code": WRONG, "feedback": FEEDBACK, "mode": mode, "hindsight": hindsight, "chat": chat,
            "teacher_chat": teacher_chat, "verified": verified, "failed": []}


def collection(tmp_path: Path, records: list[dict]) -> Path:
    root = tmp_path / "collect"
    write_jsonl(root / REFINEMENTS, records)
    return root


def test_one_prompt_per_wrong_solution_and_format_with_pooled_references(tmp_path):
    records = [
        record("explain_refine"),
        # a hindsight "Refine" record of the same wrong solution, by another teacher: its chat is hint-free
        record("refine", teacher="teacher", hindsight=True,
               verified=[{"explanation": "", "refinement": RIGHT2}, {"explanation": "", "refinement": RIGHT}]),
        record("explain_refine", solution="MBPP/602/def", task_id="MBPP/602", verified=[]),  # nothing verified
        record("refine", solution="CC/1/x", source="codecontests", task_id="CC/1"),  # not an RL source
    ]
    prompts = load_prompts(collection(tmp_path, records), ["refine", "explain_refine"], ["mbpp", "apps"])
    assert [p.prompt_id for p in prompts] == ["MBPP/601/abc/refine", "MBPP/601/abc/explain_refine",
                                              "MBPP/602/def/refine", "MBPP/602/def/explain_refine"]
    refine, explain = prompts[0], prompts[1]
    assert refine.chat == records[1]["chat"] == refine_chat(problem(), WRONG, FEEDBACK, "refine")
    assert "HINT" not in json.dumps([p.chat for p in prompts])
    assert explain.chat == records[0]["chat"]
    assert refine.refinements == explain.refinements == [RIGHT, RIGHT2]  # pooled, each once
    assert refine.explanations == explain.explanations == [EXPLANATION]  # empty "Refine" explanations are none
    assert refine.problem.task_id == "MBPP/601" and len(refine.problem.tests) == 3
    assert refine.record_ids == [records[0]["record_id"], records[1]["record_id"]]
    # a solution with no verified pair: a prompt without references (the no-reference rule scores it)
    assert prompts[2].refinements == [] and prompts[3].explanations == []
    # the other format's chat is rebuilt from the record
    assert prompts[2].chat == refine_chat(problem("MBPP/602"), WRONG, FEEDBACK, "refine")
    assert [p.prompt_id for p in load_prompts(collection(tmp_path, records), ["refine"], None, limit=2)] == [
        "MBPP/601/abc/refine", "MBPP/602/def/refine"]


def test_a_malformed_row_is_named_by_file_and_line(tmp_path):
    bad = record()
    del bad["feedback"]
    root = collection(tmp_path, [record(), bad])
    with pytest.raises(PromptError, match=r"refinements\.jsonl, line 2 .*missing \['feedback'\]"):
        load_prompts(root)
    (root / REFINEMENTS).write_text(json.dumps(record()) + "\n\n{not json\n")
    with pytest.raises(PromptError, match=r"refinements\.jsonl, line 3: not valid JSON"):
        load_prompts(root)
    other = record(verified=[{"explanation": "x", "refinement": "  "}])
    with pytest.raises(PromptError, match="line 1 .*verified pair 0 has no refinement"):
        load_prompts(collection(tmp_path, [other]))
    with pytest.raises(FileNotFoundError, match="run the collection first"):
        load_prompts(tmp_path / "nowhere")
