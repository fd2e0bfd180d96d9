"""Notebook 07's stage: the judge's reply is read strictly, every model is judged on the same items, a judge
that cannot follow the format fails the stage with its replies kept, a rerun asks nothing again, and the
tables measure what they say (separation of fixed from unfixed, agreement, the proxy)."""

import json

import numpy as np
import pytest

from selfdebug.config import load_config
from selfdebug.explanations.analysis import auc, markdown, summarise
from selfdebug.explanations.judge import judge_chat, parse_judgement
from selfdebug.explanations.stage import JudgeError, run_explanations
from selfdebug.generate.base import Completion
from selfdebug.generate.chat import PREFIX_KEY
from selfdebug.human.analysis import read_judge_scores
from selfdebug.human.sample import read_items
from selfdebug.io import write_jsonl

GOOD, BAD = "It is off by one: range stops before n.", "The code looks fine."


@pytest.mark.parametrize("reply, want", [
    ("Correctness: 4\nHelpfulness: 3", {"correctness": 4, "helpfulness": 3}),
    ("**Correctness**: 5/5\n**Helpfulness** = 2", {"correctness": 5, "helpfulness": 2}),
    ("correctness: 4 helpfulness: 4 (correctness: 4)", {"correctness": 4, "helpfulness": 4}),
    ("Correctness: 4.\nHelpfulness: 2.", {"correctness": 4, "helpfulness": 2}),
])
def test_a_reply_is_read_into_two_scores(reply, want):
    j = parse_judgement(reply)
    assert j.complete and j.scores == want


@pytest.mark.parametrize("reply, error", [
    ("Correctness: 4", "no 'Helpfulness: <1-5>'"),
    ("Correctness: 4.5\nHelpfulness: 3", "no 'Correctness: <1-5>'"),
    ("Correctness: 10\nHelpfulness: 3", "no 'Correctness: <1-5>'"),
    ("Correctness: <1-5>\nHelpfulness: <1-5>", "no 'Correctness: <1-5>'; no 'Helpfulness: <1-5>'"),
    ("Correctness (1-5): 4\nHelpfulness: 3", "no 'Correctness: <1-5>'"),
    ("Correctness: 1-5\nHelpfulness: 3", "no 'Correctness: <1-5>'"),
    ("Correctness: 2\nHelpfulness: 3\nCorrectness: 5", "correctness scored differently (2, 5)"),
    ("I think the explanation is good.", "no 'Correctness: <1-5>'; no 'Helpfulness: <1-5>'"),
])
def test_a_reply_without_a_clear_score_is_named_not_guessed(reply, error):
    j = parse_judgement(reply)
    assert not j.complete and j.error == error


def test_the_judge_sees_the_item_and_the_rubric_and_is_given_the_reply_start():
    item = {"problem": "Write f(n).", "wrong_code": "def f(n):\n    return 0", "feedback": "expected 1, got 0",
            "explanation": GOOD}
    chat = judge_chat(item, "Correctness:")
    text = chat[0]["content"]
    for part in ("Write f(n).", "return 0", "expected 1, got 0", GOOD, "Completely wrong or misleading",
                 "Correctness: <1-5>\nHelpfulness: <1-5>"):
        assert part in text
    assert chat[1]["role"] == "assistant" and chat[1]["content"] == "Correctness:" and chat[1][PREFIX_KEY]
    assert len(judge_chat(item)) == 1


def test_auc_counts_ties_half():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([2.0]), np.array([2.0])) == 0.5
    assert np.isnan(auc(np.array([]), np.array([1.0])))


def _records(folder, model_tag):
    """A records folder with, per problem, a wrong initial sample and its Explain + Refine attempt: problems
    0-3 are fixed (a good explanation), 4-7 are not (a bad one)."""
    rows = []
    for i in range(8):
        task = f"HumanEval/90{i}"
        chat = [{"role": "user", "content": f"Write f{i}(n)."}]
        rows.append({"benchmark": "humaneval", "task_id": task, "chain": "init", "round": 0, "sample": 0,
                     "code": f"def f{i}(n):\n    return 0\n", "passed": False, "feedback": "expected 1", "chat": chat})
        fixed = i < 4
        rows.append({"benchmark": "humaneval", "task_id": task, "chain": "explain_refine", "round": 1, "sample": 0,
                     "code": "def f(n):\n    return 1\n", "passed": fixed, "chat": chat,
                     "explanation": f"{GOOD} ({model_tag})" if fixed else f"{BAD} ({model_tag})"})
        # a later round fixes every problem: its explanation is a verified reference for the proxy
        rows.append({"benchmark": "humaneval", "task_id": task, "chain": "explain_refine", "round": 2, "sample": 0,
                     "code": "def f(n):\n    return 1\n", "passed": True, "chat": chat, "explanation": GOOD})
    write_jsonl(folder / "samples" / "humaneval.jsonl.gz", rows)
    write_jsonl(folder / "samples" / "mbpp.jsonl.gz", [])
    return folder


class Judge:
    """Scores a good explanation 4/5 and anything else 1/2; ``garble``: answers in prose."""

    name = "fake-judge"

    def __init__(self, garble=False):
        self.garble, self.calls = garble, 0

    def generate(self, chats, params, seeds=None):
        self.calls += len(chats)
        out = []
        for chat in chats:
            good = "off by one" in chat[0]["content"]
            text = "It is fine." if self.garble else (" 4\nHelpfulness: 5" if good else " 1\nHelpfulness: 2")
            out.append([Completion(text, 10, 5)])
        return out


class Words:
    """A bag-of-words embedder: explanations with the same words point the same way."""

    def encode(self, texts):
        vocab = sorted({w for t in texts for w in t.lower().split()})
        return np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)


def _config(tmp_path, *extra):
    base, sft = _records(tmp_path / "base", "b"), _records(tmp_path / "sft", "s")
    return load_config("smoke", [f'explanations.models={{"base": "{base}", "SFT": "{sft}"}}',
                                 "explanations.n_problems=6", "explanations.embedder=none",
                                 'explanations.judges=[{"id": "fake-judge"}]', *extra])


def test_every_model_is_judged_on_the_same_problems_and_a_rerun_asks_nothing(tmp_path):
    config = _config(tmp_path)
    out = tmp_path / "ex"
    judge = Judge()
    summary = run_explanations(config, out, backends={"fake-judge": judge}, embedder=Words())
    items = read_items(out / "items.jsonl")
    assert len(items) == 12 and judge.calls == 12
    by_model = {m: sorted(it["task_id"] for it in items if it["model"] == m) for m in ("base", "SFT")}
    assert by_model["base"] == by_model["SFT"] and len(by_model["base"]) == 6
    # the scores file is what the human study's analysis reads
    scores = read_judge_scores(out / "scores" / "fake-judge.jsonl", items)
    assert len(scores) == 12 and set(scores["correctness"]) <= {1, 4}
    sep = summary["separation"][0]
    assert sep["auc"] == 1.0 and sep["difference"] == pytest.approx(3.0)  # 4.5 for fixed, 1.5 for unfixed
    assert sep["n_passed"] + sep["n_failed"] == 12
    # the proxy: every problem's later verified explanation is a reference; fixed items resemble it
    px = summary["proxy"]
    assert px["n_covered"] == len(items) and px["separation"]["auc"] == 1.0
    # a rerun is answered from the generation log: the judge is not asked again, the tables are the same
    again = Judge()
    assert run_explanations(config, out, backends={"fake-judge": again}, embedder=Words()) == summary
    assert again.calls == 0
    assert json.loads((out / "summary.json").read_text())["scores"][0]["n_scored"] == 6
    assert "| fake-judge | SFT |" in markdown(summary)


def test_a_judge_that_does_not_answer_in_form_fails_the_stage_with_its_replies_kept(tmp_path):
    config = _config(tmp_path, "explanations.max_unparsed_share=0.25")  # smoke's tiny model is let through
    out = tmp_path / "ex"
    with pytest.raises(JudgeError, match=r"judge fake-judge: 12 of 12 replies gave no score .*It is fine"):
        run_explanations(config, out, backends={"fake-judge": Judge(garble=True)})
    rows = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["error"] and r["correctness"] is None for r in rows)
    assert summarise(out)["scores"][0]["n_unparsed"] == 6


def test_a_missing_records_folder_is_named(tmp_path):
    config = load_config("smoke", [f'explanations.models={{"base": "{tmp_path / "nowhere"}"}}'])
    with pytest.raises(FileNotFoundError, match="explanations.models: no evaluation records .*base"):
        run_explanations(config, tmp_path / "ex", backends={"fake-judge": Judge()})


def test_models_without_a_common_problem_are_named(tmp_path):
    config = _config(tmp_path, "explanations.round=3")  # no model has a third round
    with pytest.raises(ValueError, match="no problem of humaneval, mbpp has an Explain [+] Refine attempt at round 3 "
                                         "for every model [(]base, SFT[)]"):
        run_explanations(config, tmp_path / "ex", backends={"fake-judge": Judge()})


def test_two_judges_give_their_agreement(tmp_path):
    config = _config(tmp_path)
    from selfdebug.config import ModelConfig

    config.explanations.judges = [ModelConfig(id="judge-a"), ModelConfig(id="judge-b")]

    class Named(Judge):
        def __init__(self, name):
            super().__init__()
            self.name = name

    summary = run_explanations(config, tmp_path / "ex", backends={"judge-a": Named("judge-a"), "judge-b": Named("judge-b")})
    kappas = {r["scale"]: r["weighted_kappa"] for r in summary["agreement"]}
    assert summary["agreement"][0]["judges"] == ["judge-a", "judge-b"] and kappas == {"correctness": 1.0, "helpfulness": 1.0}


def test_the_report_puts_our_judged_scores_under_the_papers_table9(tmp_path):
    from selfdebug.explanations.analysis import table9_scores
    from selfdebug.report.assemble import table9
    from selfdebug.report.paper import paper_results

    summary = run_explanations(_config(tmp_path), tmp_path / "ex", backends={"fake-judge": Judge()})
    text = table9(paper_results(), table9_scores(summary))
    ours = {r["model"]: r["score"] for r in summary["scores"]}
    assert "| paper: " in text
    for model, score in ours.items():
        assert f"| fake-judge (LLM judge) | ours | {model} | {score:.2f} |" in text
    assert "not measured" in table9(paper_results(), {})
