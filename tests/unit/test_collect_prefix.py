"""The reply prefix of small teachers (``collect.explanation_prefix``): each "Explain + Refine" reply is an
explanation continued from the prefix up to the first code fence, then the code continued from an opened
block; and the filter keeps no explanation that echoes our prompt or talks about the hint."""

from __future__ import annotations

import json

import pytest
from test_collect_helpers import TASKS, config, task_of

from selfdebug.collect.filter import explanation_problem, run_filter
from selfdebug.collect.refine import CLOSING_STOP, CODE_OPENING, split_reply
from selfdebug.generate.base import Completion
from selfdebug.generate.chat import has_prefix
from selfdebug.io import read_jsonl
from selfdebug.prompts import FENCE

PREFIX = "The code above is wrong because"


def _cut(text: str, stop: tuple[str, ...]) -> str:
    """What an engine returns: the text up to the first stop string."""
    hits = [text.index(s) for s in stop if s in text]
    return text[: min(hits)] if hits else text


class PrefixModel:
    """Initial samples: correct, wrong. A prefixed reply continues its prefix as an engine does (stop strings
    honoured): after the explanation prefix, problem 601 explains and goes on into a code block, 602 echoes
    the feedback turn, 603 explains and opens no block; after the code opening, the correct code (603: the wrong
    one) and prose after the block."""

    name = "prefixed"

    def __init__(self) -> None:
        self.chats: list[list[dict]] = []

    def generate(self, prompts, params, seeds=None):
        self.chats += prompts
        out = []
        for chat in prompts:
            num = task_of(chat[0]["content"])
            _, _, good, bad, _ = TASKS[num]
            if len(chat) == 1:
                texts = [f"```python\n{[good, bad][j % 2]}```" for j in range(params.n)]
            elif not has_prefix(chat):
                raise AssertionError("with a prefix configured, every Explain + Refine request is prefixed")
            elif chat[-1]["content"].endswith(CODE_OPENING):
                texts = [f"{bad if num == 603 else good}```\n\nThis passes the tests."]
            elif num == 602:
                texts = [" Running it against the tests gave:\n\nAssertionError\n\n```python\n" + good + "```"] * params.n
            elif num == 603:  # explains and stops without a block: its code always takes a second request
                texts = [f" it subtracts where it should add (sample {j})." for j in range(params.n)]
            else:
                texts = [f" it subtracts where it should add (sample {j}).\n\n```python\n{good}```" for j in range(params.n)]
            out.append([Completion(text=_cut(t, params.stop), prompt_tokens=3, completion_tokens=5) for t in texts])
        return out

    def close(self) -> None:
        pass


@pytest.mark.parametrize("one_pass", [True, False])
def test_prefixed_replies_are_explanation_then_code_and_echoes_lose_their_explanation(tmp_path, sandbox, one_pass):
    cfg = config(tmp_path, "collect.hindsight=true", "collect.modes=[explain_refine]", "collect.n_samples=2",
                 "collect.n_refinements=2", f"collect.explanation_prefix='{PREFIX}'",
                 f"collect.prefix_one_pass={str(one_pass).lower()}")
    model = PrefixModel()
    run_filter(cfg, tmp_path / "run", backend=model, sandbox=sandbox)
    attempts = list(read_jsonl(tmp_path / "run" / "refine" / "attempts.jsonl"))
    assert len(attempts) == 6  # 3 wrong solutions x (paper format, hindsight)
    for a in attempts:
        assert a["explanation_prefix"] == PREFIX and len(a["replies"]) == 2
        num = int(a["problem_id"].split("/")[1])
        for j, r in enumerate(a["replies"]):
            if num == 601:
                code = TASKS[601][2].rstrip("\n")
                assert r["completion"] == (f"{PREFIX} it subtracts where it should add (sample {j}).{CODE_OPENING}"
                                           f"{code}\n{FENCE}")
            assert r["completion"].startswith(PREFIX) and r["code_generation_key"]
    # the second request continues the first one's explanation, in an opened block: for every reply in two
    # passes; in one pass only for the replies that opened no block of their own (603's 2 records x 2 replies)
    code_asks = [c[-1]["content"] for c in model.chats if c[-1]["content"].endswith(CODE_OPENING)]
    assert len(code_asks) == (4 if one_pass else 12)
    assert all(c.startswith(PREFIX) and FENCE not in c[: -len(CODE_OPENING)] for c in code_asks)
    if one_pass:
        assert all(PREFIX + " it subtracts" in c for c in code_asks)
        own = [r for a in attempts if a["problem_id"] == "MBPP/601" for r in a["replies"]]
        assert all(r["code_generation_key"] == r["generation_key"] for r in own)
    records = {(r["problem_id"], r["hindsight"]): r for r in read_jsonl(tmp_path / "run" / "data" / "refinements.jsonl")}
    good = records[("MBPP/601", True)]["verified"]
    assert [p["explanation"] for p in good] == [f"{PREFIX} it subtracts where it should add (sample {j})."
                                                for j in range(2)]
    echo = records[("MBPP/602", False)]
    assert echo["n_verified"] == 1  # the two replies' code is the same: one pair, verified, no explanation
    assert echo["verified"][0]["explanation"] == "" and echo["verified"][0]["explanation_rejected"] == "copies_prompt"
    assert records[("MBPP/603", False)]["n_verified"] == 0
    counts = json.loads((tmp_path / "run" / "results.json").read_text())["counts"]
    assert counts["explained_pairs"] == 4 and counts["explanations_rejected_copies_prompt"] == 2
    # a rerun asks nothing
    again = PrefixModel()
    run_filter(cfg, tmp_path / "run", backend=again, sandbox=sandbox)
    assert again.chats == []


@pytest.mark.parametrize("text, hindsight, why", [
    ("The code above is not correct. Running it against the tests gave:\n\nAssertionError: x", False, "copies_prompt"),
    ("It is wrong. First explain briefly what is wrong with the code and why it fails this test.", False,
     "copies_prompt"),
    (PREFIX + " it", False, "empty"),
    (PREFIX + " it does not match the reference solution, which sorts first.", True, "mentions_hint"),
    (PREFIX + " it does not match the reference solution, which sorts first.", False, None),
    (PREFIX + " it sorts in descending order; the task asks for ascending.", True, None),
])
def test_explanations_that_are_not_explanations_are_named(text, hindsight, why):
    assert explanation_problem(text, PREFIX, hindsight) == why


@pytest.mark.parametrize("text, finish, want", [
    (" it adds.\n\n```python\ndef f():\n    return 1", "stop", (" it adds.", "def f():\n    return 1", False)),
    (" it adds.\n```py\ndef f():\n    return 1\n```", "stop", (" it adds.", "def f():\n    return 1\n", False)),
    (" it adds.\n\n```python\ndef f():\n    ret", "length", (" it adds.", "def f():\n    ret", True)),
    (" it adds.\n\n```python\ndef f():\n    return 1\n```", "length", (" it adds.", "def f():\n    return 1\n", False)),
    (" it adds and never writes the code.", "stop", None),
    (" it adds. Here it is in a single ```python code block:\n\n```python\ndef f():\n    return 1", "stop", None),
    (" it uses `x` where it needs ``y``.", "length", None),
])
def test_a_one_pass_reply_is_split_at_its_own_block(text, finish, want):
    """What the reply says before its first block is the explanation, the block is the code; the code is cut
    only when the token limit ended it inside an open block; no block, no code (a second request asks)."""
    assert split_reply(text, finish) == want
    assert CLOSING_STOP not in text  # an engine stops there and leaves the stop string out
