"""SFT examples and their loss mask on the tiny model's tokenizer: the loss is on the final explanation and
code and its end-of-turn token, never on the task, the wrong code (an assistant turn) or the feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfdebug.collect.dataset import REFINEMENTS, SOLUTIONS
from selfdebug.io import write_jsonl
from selfdebug.problems.base import Problem, TestCase
from selfdebug.prompts import format_reply, initial_chat, parse_reply, refine_chat
from selfdebug.sft import ExampleError, build_examples, masked_text, tokenize_example, unmasked_text
from selfdebug.sft.tokenize import IGNORE

WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"
EXPLANATION = "The function subtracts b instead of adding it."
FEEDBACK = "AssertionError: expect add(1, 2) == 3, but was -1"


def problem() -> Problem:
    return Problem(task_id="MBPP/601", benchmark="mbpp", prompt="Write a function add(a, b) that adds two numbers.",
                   entry_point="add", style="full", reference=RIGHT, tests=[TestCase("add(1, 2)", 3)])


def record(mode: str = "explain_refine", hindsight: bool = False, explanation: str = EXPLANATION) -> dict:
    p = problem()
    chat = refine_chat(p, WRONG, FEEDBACK, mode)
    teacher_chat = chat if not hindsight else [*chat[:-1], {"role": "user", "content": "HINT " + RIGHT + chat[-1]["content"]}]
    return {"record_id": f"MBPP/601/abc/self/{mode}" + ("/hindsight" if hindsight else ""), "problem": json.dumps(p.to_dict()),
            "wrong_code": WRONG, "feedback": FEEDBACK, "mode": mode, "hindsight": hindsight, "chat": chat,
            "teacher_chat": teacher_chat,
            "verified": [{"explanation": explanation if mode == "explain_refine" else "", "refinement": RIGHT,
                          "pass_fraction": 1.0}], "failed": []}


def collection(tmp_path: Path, records: list[dict], solutions: bool = True) -> Path:
    root = tmp_path / "collect"
    write_jsonl(root / REFINEMENTS, records)
    sols = [{"solution_id": "MBPP/601/def", "chat": initial_chat(problem()), "code": RIGHT}] if solutions else []
    write_jsonl(root / SOLUTIONS, sols)
    return root


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from selfdebug.generate.tiny import build_tiny_model

    path = tmp_path_factory.mktemp("tiny")
    build_tiny_model(path)
    return AutoTokenizer.from_pretrained(path)


def test_refinement_example_trains_on_the_final_reply_and_end_of_turn_only(tmp_path, tokenizer):
    examples = build_examples(collection(tmp_path, [record()], solutions=False))
    ex = next(e for e in examples if e["kind"] == "explain_refine")
    row = tokenize_example(tokenizer, ex)
    unmasked, masked = unmasked_text(tokenizer, row), masked_text(tokenizer, row)
    print("MASKED (no loss):\n" + masked + "\nUNMASKED (loss):\n" + unmasked)
    assert unmasked == format_reply(EXPLANATION, RIGHT) + "<|im_end|>"
    assert WRONG.strip() in masked and FEEDBACK in masked  # the wrong code is an assistant turn, and masked
    assert masked.endswith("<|im_start|>assistant\n")
    # the loss positions are one block at the end: nothing of the prompt between them
    first = row["labels"].index(next(t for t in row["labels"] if t != IGNORE))
    assert all(t != IGNORE for t in row["labels"][first:]) and len(row["labels"]) == len(row["input_ids"])
    parsed = parse_reply(unmasked.removesuffix("<|im_end|>"), "add")
    assert (parsed.explanation, parsed.code.strip()) == (EXPLANATION, RIGHT.strip())


def test_each_verified_pair_gives_both_formats_and_code_generation_examples(tmp_path, tokenizer):
    examples = build_examples(collection(tmp_path, [record(), record("refine")]))
    kinds = sorted(e["kind"] for e in examples)
    # explain_refine record: both formats; refine record: "Refine" only (no explanation); one solution
    assert kinds == ["code", "explain_refine", "refine", "refine"]
    refine_from_er = next(e for e in examples if e["kind"] == "refine" and "explain_refine" in e["source_id"])
    assert refine_from_er["prompt"] == refine_chat(problem(), WRONG, FEEDBACK, "refine")
    assert refine_from_er["completion"][0]["content"] == format_reply("", RIGHT)
    code = next(e for e in examples if e["kind"] == "code")
    assert unmasked_text(tokenizer, tokenize_example(tokenizer, code)) == format_reply("", RIGHT) + "<|im_end|>"
    assert len({e["example_id"] for e in examples}) == 4
    assert [e["example_id"] for e in build_examples(collection(tmp_path, [record(), record("refine")]))] == \
        [e["example_id"] for e in examples]  # stable ids


def test_hindsight_example_is_trained_without_the_hint(tmp_path):
    ex = next(e for e in build_examples(collection(tmp_path, [record(hindsight=True)], solutions=False))
              if e["kind"] == "explain_refine")
    assert "HINT" not in json.dumps(ex["prompt"]) and ex["prompt"] == record()["chat"]


def test_bad_rows_and_long_examples_are_named(tmp_path, tokenizer):
    bad = record()
    bad["verified"][0]["refinement"] = ""
    with pytest.raises(ExampleError, match=r"refinements.jsonl, line 1 .*no refinement"):
        build_examples(collection(tmp_path, [bad]))
    with pytest.raises(ExampleError, match="more than max_length 8"):
        tokenize_example(tokenizer, build_examples(collection(tmp_path, [record()]))[0], max_length=8)
    with pytest.raises(FileNotFoundError, match="run the collection first"):
        build_examples(tmp_path / "nothing")
