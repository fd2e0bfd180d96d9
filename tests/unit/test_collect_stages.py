"""The three collection stages end to end with a scripted model and the real sandbox: dedup, feedback,
verified and failed pairs, the dataset (loads with `datasets`, rebuilds its training chats), Table 1,
malformed rows, rerun without work, hindsight."""

from __future__ import annotations

import json

import pytest
from test_collect_helpers import TASKS, ScriptedModel, config

from selfdebug.collect.codes import code_key
from selfdebug.collect.dataset import solution_chat, training_chat
from selfdebug.collect.filter import run_filter
from selfdebug.collect.sample import run_sample
from selfdebug.io import read_jsonl
from selfdebug.problems.base import Problem
from selfdebug.prompts import format_reply, initial_chat, normalise_code, parse_reply, refine_chat
from selfdebug.sandbox import Job


@pytest.fixture(scope="module")
def collected(tmp_path_factory, sandbox):
    tmp = tmp_path_factory.mktemp("collect")
    cfg = config(tmp)
    model = ScriptedModel()
    summary = run_filter(cfg, tmp / "run", backend=model, sandbox=sandbox)
    return cfg, tmp / "run", summary, model


def test_solutions_are_deduplicated_by_normalised_code_and_keep_the_evaluation_feedback(collected, sandbox):
    _, run, _, _ = collected
    sols = list(read_jsonl(run / "sample" / "solutions.jsonl"))
    # 3 samples per problem: correct, wrong, wrong with a comment and other indentation -> 2 unique each
    assert sorted((s["problem_id"], s["passed"], len(s["occurrences"])) for s in sols) == sorted(
        [(f"MBPP/{n}", True, 1) for n in TASKS] + [(f"MBPP/{n}", False, 2) for n in TASKS])
    problems = {r["task_id"]: r for r in read_jsonl(run / "sample" / "problems.jsonl")}
    assert sorted(problems) == [f"MBPP/{n}" for n in TASKS]  # the test-split row is not a training problem
    wrong = next(s for s in sols if s["problem_id"] == "MBPP/601" and not s["passed"])
    row = dict(problems["MBPP/601"])
    row.pop("source")
    p = Problem.from_dict(row)
    direct = sandbox.run([Job(program=p.program(wrong["code"]), problem=p, suite="base")])[0]
    assert wrong["feedback"] == direct.feedback and "add(1, 2)" in wrong["feedback"]
    assert (wrong["n_passed"], wrong["n_total"]) == (1, 3)  # add(0, 0) == 0 holds for a - b


def test_records_hold_verified_and_failed_pairs_and_rebuild_their_training_chats(collected):
    cfg, run, summary, _ = collected
    records = list(read_jsonl(run / "data" / "refinements.jsonl"))
    assert len(records) == 3 * 2  # 3 wrong solutions x 2 formats, teacher "self"
    by = {(r["problem_id"], r["mode"]): r for r in records}
    er, rf = by[("MBPP/601", "explain_refine")], by[("MBPP/601", "refine")]
    assert [p["explanation"] for p in er["verified"]] == ["The function uses the wrong operator."]
    assert [(p["explanation"], p["pass_fraction"]) for p in er["failed"]] == [("It is fine.", pytest.approx(1 / 3))]
    assert er["n_duplicates"] == 1 and rf["n_duplicates"] == 1 and rf["reply_errors"] == 1
    assert [p["explanation"] for p in rf["verified"]] == [""] and not rf["failed"]
    assert by[("MBPP/603", "explain_refine")]["verified"] == []
    assert summary["verified_pairs"] == 4 and summary["reply_errors"] == 3 and summary["malformed_rows"] == 1
    for r in records:
        problem = Problem.from_dict(json.loads(r["problem"]))
        assert r["chat"] == refine_chat(problem, r["wrong_code"], r["feedback"], r["mode"]) == r["teacher_chat"]
        assert r["chat"][1]["role"] == "assistant" and r["wrong_code"].strip() in r["chat"][1]["content"]
        for pair in r["verified"]:
            chat = training_chat(r, pair)
            assert chat[:-1] == r["chat"] and chat[-1]["role"] == "assistant"
            back = parse_reply(chat[-1]["content"], problem.entry_point)
            assert (back.explanation, back.code) == (pair["explanation"], normalise_code(pair["refinement"]))
    sols = list(read_jsonl(run / "data" / "solutions.jsonl"))
    assert len(sols) == 3
    for s in sols:
        assert solution_chat(s)[-1]["content"] == format_reply("", s["code"])
        assert s["chat"] == initial_chat(Problem.from_dict(json.loads(by[(s["problem_id"], "refine")]["problem"])))


def test_the_dataset_loads_with_datasets_as_written_and_through_its_card(collected):
    datasets = pytest.importorskip("datasets")
    _, run, _, _ = collected
    direct = datasets.load_dataset("json", data_files=str(run / "data" / "refinements.jsonl"), split="train")
    assert len(direct) == 6 and set(direct[0]) >= {"problem_id", "wrong_code", "feedback", "chat", "verified",
                                                    "failed", "teacher", "mode"}
    via_card = datasets.load_dataset(str(run), "solutions", split="train")
    assert len(via_card) == 3
    card = (run / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: refinements" in card and "num_examples: 6" in card
    assert "cc-by-4.0" in card and "n_refinements: 3" in card


def test_table1_and_figure_from_the_compact_results(collected):
    _, run, _, _ = collected
    rows = json.loads((run / "results.json").read_text())["table1"]
    got = {(r["mode"], r["unique"], r["correct"], r["wrong"], r["wrong_refined"]) for r in rows}
    # 601 and 602 are fixed by both formats, 603 by neither
    assert got == {("refine", 6, 3, 3, 2), ("explain_refine", 6, 3, 3, 2), ("any", 6, 3, 3, 2)}
    assert all(r["refinement_rate"] == pytest.approx(2 / 3) for r in rows)
    assert "66.67%" in (run / "table1_collection.md").read_text()
    assert (run / "table1_sources.png").stat().st_size > 1000


def test_a_finished_collection_reruns_without_generating_or_executing(collected):
    cfg, run, _, _ = collected

    class Refuses:
        name = "scripted"

        def generate(self, *a, **k):
            raise AssertionError("a finished stage asked the model again")

    class NoSandbox:
        def run(self, *a, **k):
            raise AssertionError("a finished stage ran the sandbox again")

    before = (run / "data" / "refinements.jsonl").read_bytes()
    assert run_filter(cfg, run, backend=Refuses(), sandbox=NoSandbox())["skipped"]
    assert run_sample(cfg, run, backend=Refuses(), sandbox=NoSandbox())["skipped"]
    assert (run / "data" / "refinements.jsonl").read_bytes() == before


def test_more_refinements_ask_only_for_the_new_ones(collected, tmp_path, sandbox):
    """A changed config reruns the stage, but the logs answer what was asked before."""
    cfg, run, _, _ = collected
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    model = ScriptedModel()
    run_filter(config(tmp_path, "collect.n_refinements=4"), copy, backend=model, sandbox=sandbox)
    assert model.prompts == 6  # the 6 refinement requests, each for its one new sample; no initial sample


def test_hindsight_records_are_labelled_and_their_training_chat_leaves_the_hint_out(tmp_path, sandbox):
    cfg = config(tmp_path, "collect.hindsight=true")
    run_filter(cfg, tmp_path / "run", backend=ScriptedModel(), sandbox=sandbox)
    records = list(read_jsonl(tmp_path / "run" / "data" / "refinements.jsonl"))
    hind = [r for r in records if r["hindsight"]]
    assert len(hind) == 3 and all(r["mode"] == "explain_refine" for r in hind)
    for r in hind:
        correct = TASKS[int(r["problem_id"].split("/")[1])][2]
        assert r["hint_solution_id"] and correct.strip() in r["teacher_chat"][-1]["content"]
        assert correct.strip() not in r["chat"][-1]["content"] and r["chat"] != r["teacher_chat"]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["table1"]
    assert [r["hindsight"] for r in rows].count(True) == 1  # a row of its own, not pooled into "any"
    assert code_key("x=1  # c\n\n") == code_key("x = 1")


def test_hindsight_alone_asks_only_for_hindsight_replies(tmp_path, sandbox):
    """The cpu profile's setting: no paper-format request at all, one hindsight request per wrong solution
    with a correct sibling; and an empty ``modes`` without hindsight asks nothing, so it is refused."""
    from selfdebug.config import ConfigError

    model = ScriptedModel()
    run_filter(config(tmp_path, "collect.hindsight=true", "collect.modes=[]"), tmp_path / "run", backend=model,
               sandbox=sandbox)
    records = list(read_jsonl(tmp_path / "run" / "data" / "refinements.jsonl"))
    assert len(records) == 3 and all(r["hindsight"] and r["mode"] == "explain_refine" for r in records)
    summary = json.loads((tmp_path / "run" / "refine" / "summary.json").read_text())
    assert [k.split("|")[::2] for k in summary["generation"]] == [["self", "explain_refine/hindsight"]]
    with pytest.raises(ConfigError, match="collect.modes"):
        config(tmp_path, "collect.modes=[]")

