"""MBPP+ held-out: MBPP+ less its tasks from MBPP's training ids, scored on MBPP+'s own samples, named apart in
the report. Real MBPP+ v0.2.0 from the offline mirror; a scripted backend and a fake executor (no model runs,
no model-written code runs)."""

from __future__ import annotations

import pytest

from selfdebug.evaluate.metrics import compute_all
from selfdebug.evaluate.protocol import GenerationRunner, evaluate_benchmark
from selfdebug.generate.base import Completion
from selfdebug.io import JsonlLog
from selfdebug.problems import load_benchmark
from selfdebug.problems.mbppplus import heldout, is_training_task, mbpp_task_num


@pytest.fixture(scope="module")
def mbpp_plus():
    return load_benchmark("mbpp_plus")


def test_heldout_is_mbpp_plus_less_the_108_training_tasks(mbpp_plus):
    held = load_benchmark("mbpp-plus-heldout")  # spelled as the other names are
    assert len(mbpp_plus) == 378 and len(held) == 270
    train = [p for p in mbpp_plus if 601 <= mbpp_task_num(p) <= 974]
    assert len(train) == 108 and all(is_training_task(p) for p in train)
    assert {p.task_id for p in held} == {p.task_id for p in mbpp_plus} - {p.task_id for p in train}
    assert all(mbpp_task_num(p) < 601 for p in held)  # MBPP+ ids stop at 809: nothing above 974 either
    # the same problems as MBPP+'s (ids, prompts, tests, benchmark), in MBPP+'s order
    by_id = {p.task_id: p for p in mbpp_plus}
    assert held == [by_id[p.task_id] for p in held] and held[0].benchmark == "mbpp_plus"
    assert [p.task_id for p in held] == [p.task_id for p in mbpp_plus if p.task_id in {q.task_id for q in held}]
    # `limit` takes the first N of the held-out view
    assert [p.task_id for p in load_benchmark("mbpp_plus_heldout", limit=3)] == [p.task_id for p in held[:3]]
    with pytest.raises(ValueError, match="only a 'test' split"):
        load_benchmark("mbpp_plus_heldout", split="train")


def test_heldout_names_a_bad_mbpp_task_id(mbpp_plus):
    from dataclasses import replace

    from selfdebug.problems.base import ProblemFormatError

    bad = replace(mbpp_plus[0], metadata={**mbpp_plus[0].metadata, "mbpp_task_id": "MBPP/two"})
    with pytest.raises(ProblemFormatError, match=r"'Mbpp/2'.*'MBPP/two'.*MBPP/<number>"):
        heldout([bad])


class Scripted:
    """Initial sample j of task ``f`` answers ``init-j``; a refinement answers ``fixed``. Counts the prompts
    asked per kind, by the entry point named in the chat."""
    name = "scripted"

    def __init__(self):
        self.initial: list[str] = []
        self.refined = 0

    def generate(self, prompts, params, seeds=None):
        out = []
        for chat in prompts:
            if len(chat) > 2:
                self.refined += 1
                texts = ["fixed"]
            else:
                self.initial.append(chat[-1]["content"])
                texts = [f"init-{j}" for j in range(params.n)]
            out.append([Completion(text=f"```python\ndef f():\n    return '{t}'\n```", prompt_tokens=5,
                                   completion_tokens=3) for t in texts])
        return out


def execute(pairs):
    """Initial sample 0 is right, the others wrong; every refinement is right. No code runs."""
    out = []
    for prog, _ in pairs:
        ok = "'init-0'" in prog or "'fixed'" in prog
        out.append({"passed": ok, "status": "passed" if ok else "wrong_answer", "feedback": "expected 1, got 2",
                    "n_passed": int(ok), "n_total": 1})
    return out


def evaluate(bench, problems, runner):
    return evaluate_benchmark(bench, problems, runner=runner, execute=execute, n_samples=3, temperature=0.8,
                              top_p=0.95, max_new_tokens=8, refine_temperature=0.8, refine_max_new_tokens=8,
                              rounds=1, matched_baseline=False)


def test_heldout_reuses_mbpp_plus_samples_for_shared_tasks_even_when_limit_picks_others(tmp_path, mbpp_plus):
    """With ``limit``, MBPP+'s first N and the held-out's first N need not be the same tasks (here MBPP+ is
    put in an order that starts with training tasks): what they share is answered from the log, only the
    held-out tasks MBPP+ did not ask for are generated."""
    train = [p for p in mbpp_plus if is_training_task(p)]
    held = heldout(mbpp_plus)
    order = [train[0], held[0], train[1], held[1], held[2]]  # an MBPP+ file in this order...
    first_plus, first_held = order[:3], heldout(order)[:3]  # ...and limit=3 on both benchmarks
    assert [p.task_id for p in first_held] == [held[0].task_id, held[1].task_id, held[2].task_id]
    backend = Scripted()
    runner = GenerationRunner(backend=backend, cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy")
    plus = evaluate("mbpp_plus", first_plus, runner)
    asked_plus = (len(backend.initial), backend.refined)
    assert asked_plus == (3, 3 * 2 * 2)  # 3 tasks; 2 wrong samples each, one refinement per prompt type
    sub = evaluate("mbpp_plus_heldout", first_held, runner)
    # shared: held[0] (initial samples and refinements); new: held[1], held[2]
    assert len(backend.initial) - asked_plus[0] == 2 and backend.refined - asked_plus[1] == 2 * 2 * 2
    assert held[0].description in "".join(backend.initial[:3]) and held[0].description not in "".join(
        backend.initial[3:])
    shared = held[0].task_id
    key = ("task_id", "sample", "chain", "round", "completion", "passed", "chat", "seed", "generation_key")
    assert ([tuple(r[k] for k in key) for r in plus if r["task_id"] == shared]
            == [tuple(r[k] for k in key) for r in sub if r["task_id"] == shared])
    assert {r["benchmark"] for r in sub} == {"mbpp_plus_heldout"}


def test_heldout_is_scored_on_the_plus_tests_by_the_stage(tmp_path, monkeypatch, mbpp_plus):
    from selfdebug.config import load_config
    from selfdebug.evaluate import stage

    suites = {}

    class Sandbox:
        def run(self, jobs, progress=False):
            suites.setdefault(jobs[0].problem.task_id, set()).update(j.suite for j in jobs)
            return [type("R", (), {"to_dict": lambda self, d=d: dict(d, isolation="fake", trust="fake")})()
                    for d in execute([(j.program, j.problem) for j in jobs])]

    held = heldout(mbpp_plus)[:1]
    monkeypatch.setattr(stage, "load_problems", lambda config: {"mbpp_plus_heldout": held})
    config = load_config("smoke", ["evaluate.benchmarks=[mbpp_plus_heldout]", "evaluate.n_samples=3",
                                   "evaluate.ks=[1]", "evaluate.rounds=1", "model.id=toy-scripted"])
    stage.run_evaluation(config, tmp_path / "run", backend=Scripted(), sandbox=Sandbox())
    assert suites == {held[0].task_id: {"all"}}  # base + plus inputs, as MBPP+ itself


def _records(bench, tasks):
    """Per task: (initial passed, refine passed) for two samples."""
    out = []
    for tid, samples in tasks.items():
        for s, (ok, fixed) in enumerate(samples):
            out.append(dict(benchmark=bench, task_id=tid, sample=s, chain="init", round=0, passed=ok,
                            status="passed" if ok else "wrong_answer", completion_tokens=1))
            if not ok:
                out.append(dict(benchmark=bench, task_id=tid, sample=s, chain="refine", round=1, passed=fixed,
                                status="passed" if fixed else "wrong_answer", completion_tokens=1))
    return out


def test_report_names_the_heldout_view_and_its_average_counts_mbpp_plus_once():
    from selfdebug.report.tables import AVERAGE_COLUMN, benchmarks_note, table2, table4

    plus = {"Mbpp/2": [(False, True), (False, True)], "Mbpp/700": [(False, False), (False, False)]}
    recs = {"mbpp_plus": _records("mbpp_plus", plus),
            "mbpp_plus_heldout": _records("mbpp_plus_heldout", {"Mbpp/2": plus["Mbpp/2"]})}
    metrics = compute_all(recs, [1], n_boot=50)
    t4 = table4(metrics).set_index("Approach")
    label = "MBPP+ held-out (outside MBPP train ids)"
    assert t4.loc["Refine", "MBPP+"].startswith("50.00") and t4.loc["Refine", label].startswith("100.00")
    # the average is MBPP+'s alone: the held-out tasks are already inside it (else it would be 75)
    assert t4.loc["Refine", AVERAGE_COLUMN].startswith("50.00")
    assert f"{label} pass@1" in table2(metrics).columns and "MBPP+ pass@1" in table2(metrics).columns
    note = benchmarks_note(metrics)
    assert "comparable with the paper" in note and "601–974" in note and "270 of the 378" in note
    assert "average leaves it out" in note
    # alone, the held-out view is an ordinary benchmark: in the average, no claim about MBPP+
    only = compute_all({"mbpp_plus_heldout": recs["mbpp_plus_heldout"]}, [1], n_boot=50)
    assert table4(only).set_index("Approach").loc["Refine", AVERAGE_COLUMN].startswith("100.00")
    assert "average leaves it out" not in benchmarks_note(only)
    assert benchmarks_note(compute_all({"mbpp_plus": recs["mbpp_plus"]}, [1], n_boot=50)) == ""

