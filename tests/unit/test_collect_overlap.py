"""The train/eval overlap check: on the real files (MBPP train against the four evaluation benchmarks, from
the offline mirror) the known overlap, MBPP+'s 108 tasks from MBPP's training ids, is found with nothing
missing or extra; on hand-made problems each kind (task, text, code) is found and told apart. No code runs."""

from __future__ import annotations

import pytest

from selfdebug.collect.overlap import (
    COLUMNS,
    check_overlap,
    find_overlaps,
    normalise_text,
    overlap_markdown,
    overlap_summary,
)
from selfdebug.problems import EVALUATION_BENCHMARKS, load_benchmark
from selfdebug.problems.base import Problem, TestCase


@pytest.fixture(scope="module")
def real():
    from selfdebug.config import load_config

    overlaps, markdown = check_overlap(load_config("cpu"))  # collect.sources: [mbpp] -> MBPP train, 601-974
    return overlaps, markdown


def test_real_mbpp_plus_keeps_108_tasks_of_mbpp_train(real):
    overlaps, _ = real
    plus = load_benchmark("mbpp_plus")
    expected = {p.task_id for p in plus if 601 <= int(p.metadata["mbpp_task_id"].split("/")[1]) <= 974}
    assert len(expected) == 108
    derived = overlaps[(overlaps["benchmark"] == "mbpp_plus") & overlaps["derived"]]
    assert set(derived["task_id"]) == expected and len(derived) == 108
    # each is paired with the MBPP training task it was drawn from ("Mbpp/602" ~ "MBPP/602")
    assert all(r.training_task_id == r.task_id.replace("Mbpp/", "MBPP/") for r in derived.itertuples())
    assert set(derived["training_source"]) == {"mbpp"}
    assert not overlaps[overlaps["benchmark"] != "mbpp_plus"]["derived"].any()  # no other benchmark shares ids


def test_real_check_names_every_benchmark_and_what_else_it_found(real):
    overlaps, markdown = real
    assert list(overlaps.columns) == COLUMNS
    for bench in EVALUATION_BENCHMARKS:
        assert f"| {bench} " in markdown
    assert "374 training problems" in markdown
    # found on these files (MBPP has a few duplicated tasks across its splits): same text under another id
    pairs = {(r.benchmark, r.task_id, r.training_task_id, r.how) for r in overlaps.itertuples() if not r.derived}
    assert ("mbpp", "MBPP/217", "MBPP/602", "text") in pairs and ("mbpp_plus", "Mbpp/427", "MBPP/928", "text") in pairs
    assert "remain in `mbpp_plus_heldout`: Mbpp/427" in markdown
    assert "- **humaneval**: no task overlaps the training problems." in markdown
    assert "both in full (comparable with the paper)" in markdown


def problem(tid, bench, text, code, **meta):
    return Problem(task_id=tid, benchmark=bench, prompt=text, entry_point="f", style="full", reference=code,
                   tests=[TestCase(call="f()", expected=1)], description=text, metadata=meta)


TRAIN = [
    problem("MBPP/601", "mbpp", "Write a function to add two numbers.", "def f(a, b):\n    return a + b\n"),
    problem("MBPP/602", "mbpp", "Write a function to reverse a list.", "def f(xs):\n    return xs[::-1]\n"),
    problem("APPS/7", "apps", "Print the sum of the input.", "print(sum(map(int, input().split())))\n"),
    problem("MBPP/603", "mbpp", "", ""),  # no text, no reference: matches nothing
]


def test_hand_made_problems_each_kind_and_no_false_match():
    bench = {
        "mbpp_plus": [
            # drawn from MBPP/602 (reworded, other code): found by its MBPP id only
            problem("Mbpp/602", "mbpp_plus", "Reverse the given list.", "def f(x):\n    return list(reversed(x))\n",
                    mbpp_task_id="MBPP/602"),
            # the same text up to case, spacing and punctuation; another solution
            problem("Mbpp/9", "mbpp_plus", "write a function  to ADD two numbers", "def f(a, b):\n    return sum([a, b])",
                    mbpp_task_id="MBPP/9"),
            problem("Mbpp/10", "mbpp_plus", "", "", mbpp_task_id="MBPP/10"),  # empty matches nothing
        ],
        "humaneval": [
            # another text; the same code once comments, blank lines, spacing and quotes are gone
            problem("HumanEval/1", "humaneval", "Sum of two values.",
                    "\n\ndef f(a,b):  # adds\n\n    return (a+b)\n"),
            problem("HumanEval/2", "humaneval", "Print the sum of the input!",
                    "print(sum(map(int, input().split( ))))"),  # text and code, against an APPS problem
            problem("HumanEval/3", "humaneval", "Write a function to add two numbers and one.",
                    "def f(a, b):\n    return a + b + 1\n"),  # near, not the same: not an overlap
        ],
    }
    df = find_overlaps(TRAIN, bench)
    got = {(r.benchmark, r.task_id, r.training_task_id): r.how for r in df.itertuples()}
    assert got == {
        ("mbpp_plus", "Mbpp/602", "MBPP/602"): "derived",
        ("mbpp_plus", "Mbpp/9", "MBPP/601"): "text",
        ("humaneval", "HumanEval/1", "MBPP/601"): "code",
        ("humaneval", "HumanEval/2", "APPS/7"): "text+code",
    }
    assert df.set_index("task_id").loc["HumanEval/2", "training_source"] == "apps"
    summary = overlap_summary(df, bench).set_index("benchmark")
    assert summary.loc["mbpp_plus"].to_dict() == {"tasks": 3, "overlapping": 2, "derived": 1, "text": 1, "code": 0,
                                                  "outside": 1}
    assert summary.loc["humaneval"].to_dict() == {"tasks": 3, "overlapping": 2, "derived": 0, "text": 1, "code": 2,
                                                  "outside": 1}
    md = overlap_markdown(df, bench, len(TRAIN))
    assert "- **mbpp_plus**, derived (1 tasks): Mbpp/602 ~ MBPP/602" in md
    assert "- **humaneval**, text+code (1 tasks): HumanEval/2 ~ APPS/7" in md
    assert "remain in `mbpp_plus_heldout`: Mbpp/9." in md


def test_one_task_overlapping_several_training_problems_counts_once():
    twins = [TRAIN[0], problem("MBPP/700", "mbpp", "Write a function to add two numbers!", "def g(): pass\n")]
    bench = {"mbpp": [problem("MBPP/11", "mbpp", "Write a function to add two numbers.", "x = 1\n")]}
    df = find_overlaps(twins, bench)
    assert sorted(df["training_task_id"]) == ["MBPP/601", "MBPP/700"] and set(df["how"]) == {"text"}
    assert overlap_summary(df, bench).iloc[0]["overlapping"] == 1
    assert "no task overlaps" in overlap_markdown(find_overlaps([], bench), bench, 0)


def test_normalise_text():
    assert normalise_text("  Write a\tfunction, to ADD — two numbers!\n") == "write a function to add two numbers"
    assert normalise_text("ｆｕｌｌ width") == "full width"  # NFKC
    assert normalise_text("snake_case") == "snake case"
