"""CodeBLEU and explanation similarity (``selfdebug.rl.scores``): means over the references, None without any,
the data-flow fix, a fake embedder with known vectors, and the packaged MiniLM (a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from selfdebug.rl.scores import codebleu_pair, codebleu_score, explanation_similarity, load_embedder

REF_A = "def inc(a):\n    b = a + 1\n    return b\n"
REF_B = "def inc(x):\n    return x + 1\n"
WRONG = "def inc(a):\n    b = a - 1\n    return b\n"


def test_codebleu_identical_is_one_and_mean_over_references():
    assert codebleu_pair(REF_A, REF_A) == pytest.approx(1.0)
    pair_a, pair_b = codebleu_pair(WRONG, REF_A), codebleu_pair(WRONG, REF_B)
    assert 0 < pair_b < pair_a < 1
    assert codebleu_score(WRONG, [REF_A, REF_B]) == pytest.approx((pair_a + pair_b) / 2)


def test_codebleu_without_references_is_none_and_empty_code_is_zero():
    assert codebleu_score(REF_A, []) is None
    assert codebleu_pair("", REF_A) == 0.0


def test_no_dataflow_match_gets_no_dataflow_credit():
    # the codebleu package would add the full 0.25 for a candidate that matches none of the data flows
    from codebleu import calc_codebleu

    unrelated = "print('hello')\n"
    package = calc_codebleu([REF_A], [unrelated], "python")
    assert package["dataflow_match_score"] == 0
    assert codebleu_pair(unrelated, REF_A) == pytest.approx(package["codebleu"] - 0.25)


class FakeEmbedder:
    """Known vectors: similarities are hand-computable."""

    vectors = {"off by one": [1.0, 0.0], "loop bound wrong": [0.6, 0.8], "unrelated": [0.0, 3.0]}

    def encode(self, texts):
        return np.array([self.vectors[t] for t in texts])


def test_explanation_similarity_is_the_mean_cosine():
    emb = FakeEmbedder()
    # cos(off by one, loop bound wrong) = 0.6, cos(off by one, unrelated) = 0
    assert explanation_similarity("off by one", ["loop bound wrong", "unrelated"], emb) == pytest.approx(0.3)
    assert explanation_similarity("unrelated", ["loop bound wrong"], emb) == pytest.approx(0.8)
    assert explanation_similarity("off by one", ["off by one"], emb) == pytest.approx(1.0)


def test_explanation_similarity_none_without_references_or_explanation():
    emb = FakeEmbedder()
    assert explanation_similarity("off by one", [], emb) is None
    assert explanation_similarity("off by one", ["", "  "], emb) is None  # "Refine" pairs have no explanation
    assert explanation_similarity("  ", ["off by one"], emb) is None


def test_packaged_minilm_loads_offline_and_ranks_paraphrases_higher():
    emb = load_embedder("minilm")
    close = explanation_similarity("The loop stops one element too early.",
                                   ["The range is off by one, so the last element is never checked."], emb)
    far = explanation_similarity("The loop stops one element too early.", ["Bananas are yellow fruit."], emb)
    assert close is not None and far is not None
    assert close > far + 0.2, (close, far)
