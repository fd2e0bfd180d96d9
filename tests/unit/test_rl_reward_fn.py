"""The reward function (``selfdebug.rl.reward_fn``) on the tiny model's tokenizer, with a fake sandbox and a fake
embedder: hand-checkable rewards land on the last explanation token and the last code token of the sampled ids,
only the replies' code goes to the executor, and a reply without code gets -5 on its last token."""

from __future__ import annotations

import numpy as np
import pytest
from test_rl_data import EXPLANATION, RIGHT, WRONG, collection, record

from selfdebug.rl.data import load_prompts
from selfdebug.rl.reward_fn import RewardFunction


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    from selfdebug.generate.tiny import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("rl_reward") / "model", seed=0)
    return AutoTokenizer.from_pretrained(str(path))


class FakeExecutor:
    """3 tests; ``a + b`` passes all, anything else passes one (``add(0, 0) == 0``)."""

    def __init__(self):
        self.calls = []

    def __call__(self, pairs):
        self.calls += pairs
        return [{"status": "passed", "passed": True, "n_passed": 3, "n_total": 3} if "a + b" in prog
                else {"status": "wrong_answer", "passed": False, "n_passed": 1, "n_total": 3} for prog, _ in pairs]


class FakeEmbedder:
    """The reference explanation is (1, 0); any other text (0.6, 0.8): cosine 0.6 to it."""

    def encode(self, texts):
        return np.array([[1.0, 0.0] if "subtracts" in t else [0.6, 0.8] for t in texts])


def first_token_completing(tok, ids, text) -> int:
    """The first index k such that the decoded ids[: k + 1] contain ``text`` (computed independently)."""
    return next(k for k in range(len(ids)) if text in tok.decode(ids[: k + 1], skip_special_tokens=True))


def test_rewards_land_on_the_last_explanation_and_code_tokens(tmp_path, tok):
    prompts = {p.prompt_id: p for p in load_prompts(collection(tmp_path, [
        record("explain_refine"),
        record("explain_refine", solution="MBPP/602/def", task_id="MBPP/602", verified=[]),
    ]))}
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    replies = [
        ("MBPP/601/abc/explain_refine", f"{EXPLANATION}\n\n```python\n{RIGHT}```"),  # the reference itself
        ("MBPP/602/def/refine", f"I fixed it.\n\n```python\n{WRONG}```"),  # no references; prose, but "Refine"
        ("MBPP/601/abc/refine", ""),  # nothing but the end token
        ("MBPP/601/abc/explain_refine", f"It is wrong.\n```python\n{RIGHT}```\n"),
    ]
    batch = [prompts[pid] for pid, _ in replies]
    ids = [tok(text, add_special_tokens=False)["input_ids"] + [eos] for _, text in replies]
    executor = FakeExecutor()
    scored = RewardFunction(tok, executor, FakeEmbedder())(batch, ids)

    # only the three replies with code ran, each as the problem's program of its (parsed) code
    assert [prog for prog, _ in executor.calls] == [batch[i].problem.program(c) for i, c in
                                                    ((0, RIGHT), (1, WRONG), (3, RIGHT))]

    a, b, c, d = scored
    # 1. explanation identical to the reference (S_ex = 1): R(e) = (50 - 35) / 3 = 5; the reference code and all
    #    tests: R(r) = 5 (1 + 1) - 5 = 5
    assert (a.status, a.s_ut, a.s_ex) == ("passed", 1.0, pytest.approx(1.0))
    assert a.s_cb == pytest.approx(1.0)
    assert a.explanation_reward == pytest.approx(5.0) and a.refinement_reward == pytest.approx(5.0)
    e_at = first_token_completing(tok, ids[0], EXPLANATION)
    c_at = first_token_completing(tok, ids[0], "```python\n" + RIGHT.rstrip())
    assert (a.positions.explanation, a.code_index) == (e_at, c_at) and e_at < c_at < len(ids[0]) - 1
    expected = np.zeros(len(ids[0]))
    expected[e_at], expected[c_at] = 5.0, 5.0
    np.testing.assert_allclose(a.rewards.numpy(), expected, atol=1e-5)
    # 2. "Refine": no explanation reward whatever the prose; no verified refinement: S_cb := S_ut = 1/3,
    #    R(r) = 10 / 3 - 5
    assert (b.status, b.s_ut, b.s_cb, b.explanation_reward) == ("wrong_answer", pytest.approx(1 / 3), None, None)
    assert b.refinement_reward == pytest.approx(10 / 3 - 5)
    c_at = first_token_completing(tok, ids[1], "```python\n" + WRONG.rstrip())
    assert b.code_index == c_at and b.rewards.nonzero().flatten().tolist() == [c_at]
    assert b.rewards[c_at] == pytest.approx(10 / 3 - 5)
    # 3. no code: not run, S_ut = 0 and CodeBLEU 0 against the references: -5 on the last (only) token
    assert (c.status, c.s_ut, c.s_cb, c.refinement_reward, c.code_index) == ("no_code", 0.0, 0.0, -5.0, 0)
    assert c.rewards.tolist() == [-5.0]
    # 4. another explanation (cosine 0.6): R(e) = (30 - 35) / 3
    assert d.s_ex == pytest.approx(0.6) and d.explanation_reward == pytest.approx(-5 / 3)
    assert d.positions.explanation == first_token_completing(tok, ids[3], "It is wrong.")
    assert d.rewards[d.positions.explanation] == pytest.approx(-5 / 3)
    assert d.to_row()["explanation_index"] == d.positions.explanation


def test_the_configured_similarity_range_sets_the_explanation_reward(tmp_path, tok):
    """``rl.explanation_range`` [0.2, 0.6] puts the fake embedder's cosine 0.6 at the top (+5), where the paper's
    [0.4, 1.0] gives it -5/3; the refinement reward does not move."""
    prompt = next(p for p in load_prompts(collection(tmp_path, [record("explain_refine")]))
                  if p.fmt == "explain_refine")
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    ids = [tok(f"It is wrong.\n```python\n{RIGHT}```\n", add_special_tokens=False)["input_ids"] + [eos]]
    paper = RewardFunction(tok, FakeExecutor(), FakeEmbedder())([prompt], ids)[0]
    shifted = RewardFunction(tok, FakeExecutor(), FakeEmbedder(), explanation_range=(0.2, 0.6))([prompt], ids)[0]
    assert paper.explanation_reward == pytest.approx(-5 / 3) and shifted.explanation_reward == pytest.approx(5.0)
    assert shifted.refinement_reward == paper.refinement_reward
    assert shifted.rewards[shifted.positions.explanation] == pytest.approx(5.0)
