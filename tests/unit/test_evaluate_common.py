"""The common set of wrong programs: a second model refines exactly the base run's wrong initial samples,
with the requests the base model got in round 1, and the two are compared program by program."""

from __future__ import annotations

import pytest
from test_protocol import ScriptedBackend, execute, problem, run

from selfdebug.evaluate.common import compare_common, compare_common_pair, refine_common, wrong_programs
from selfdebug.evaluate.protocol import GenerationRunner
from selfdebug.generate.base import Completion
from selfdebug.io import JsonlLog


class Trained:
    """Fixes what it is shown in "Explain + Refine" only for problem P1; never in "Refine"."""

    name = "trained"

    def __init__(self) -> None:
        self.chats: list = []

    def generate(self, prompts, params, seeds=None):
        self.chats += prompts
        return [[Completion(text="```python\n" + ("RIGHT" if "explain" in c[-1]["content"].lower()
                                                   and "f1" in c[0]["content"] else "WRONG") + "\n```",
                            prompt_tokens=5, completion_tokens=3)] for c in prompts]


def _common(tmp_path, base_records, backend, tag="trained"):
    runner = GenerationRunner(backend=backend, cache=JsonlLog(tmp_path / f"{tag}.jsonl"), model_tag=tag, chunk_size=4)
    return refine_common("toy", [problem(0), problem(1)], base_records, runner=runner, execute=execute, top_p=0.95,
                         refine_temperature=0.8, refine_max_new_tokens=8)


def test_every_model_gets_the_base_models_round_one_requests(tmp_path):
    base = run(tmp_path, ScriptedBackend(), rounds=1)
    wrong = wrong_programs(base)
    assert len(wrong) == 5  # 6 samples, sample 0 of P0 passes
    model = Trained()
    common = _common(tmp_path, base, model)
    assert len(common) == 2 * len(wrong)
    round1 = {(r["chain"], r["task_id"], r["sample"]): r for r in base if r["round"] == 1 and r["chain"] != "resample"}
    for r in common:
        twin = round1[(r["chain"], r["task_id"], r["sample"])]
        assert r["chat"] == twin["chat"]  # the same request, word for word
        assert r["parent_id"] == next(w["attempt_id"] for w in wrong if (w["task_id"], w["sample"]) ==
                                      (r["task_id"], r["sample"]))
    # the base model answering the common set gives back its own round-1 records (same tags, same seeds)
    again = _common(tmp_path, base, ScriptedBackend(), tag="base")
    assert sorted((r["chain"], r["task_id"], r["sample"], r["seed"], r["passed"]) for r in again) == sorted(
        (k[0], k[1], k[2], v["seed"], v["passed"]) for k, v in round1.items())

    rows = {r["chain"]: r for r in compare_common(common, base, n_boot=200)}
    # the base fixes all 5 in both formats (the feedback says FIXME); the trained model 3 (P1's) in E+R, 0 in Refine
    assert rows["explain_refine"]["fixed_trained"] == 3 and rows["explain_refine"]["fixed_base"] == 5
    assert rows["explain_refine"]["diff"][0] == pytest.approx(3 / 5 - 1)
    assert rows["refine"]["diff"][0] == pytest.approx(-1.0) and rows["refine"]["programs"] == 5


def test_a_trained_run_missing_some_of_the_programs_is_refused(tmp_path):
    base = run(tmp_path, ScriptedBackend(), rounds=1)
    common = _common(tmp_path, base, Trained())
    with pytest.raises(ValueError, match="have no refinement in the trained run's common set"):
        compare_common(common[1:], base)


def test_the_stage_writes_the_common_set_beside_the_samples(tmp_path, monkeypatch):
    """``evaluate.common_wrong_from``: the stage refines the base run's wrong programs (sandbox failures left
    out) and writes them to ``common/``; a base folder without the benchmark is a clear error."""
    import gzip
    import json

    from test_metrics_sandbox import FakeSandbox, Scripted, stage_config
    from test_metrics_sandbox import problem as he_problem

    from selfdebug.config import load_config
    from selfdebug.evaluate import stage

    probs = [he_problem(0), he_problem(1), he_problem(2)]
    monkeypatch.setattr(stage, "load_problems", lambda config: {"humaneval": probs})
    stage.run_evaluation(stage_config(0.5), tmp_path / "base", backend=Scripted(), sandbox=FakeSandbox())
    with gzip.open(tmp_path / "base" / "samples" / "humaneval.jsonl.gz", "rt") as fh:
        base = [json.loads(line) for line in fh]
    overrides = ["evaluate.benchmarks=[humaneval]", "evaluate.n_samples=3", "evaluate.ks=[1]", "evaluate.rounds=1",
                 "model.id=toy-scripted", "evaluate.max_sandbox_error_share=0.5"]
    cfg = load_config("smoke", [*overrides, f"evaluate.common_wrong_from={tmp_path / 'base'}"])
    summary = stage.run_evaluation(cfg, tmp_path / "sft", backend=Scripted(), sandbox=FakeSandbox())
    with gzip.open(tmp_path / "sft" / "common" / "humaneval.jsonl.gz", "rt") as fh:
        common = [json.loads(line) for line in fh]
    wrong = wrong_programs(base)
    assert wrong and len(common) == 2 * len(wrong) == summary["benchmarks"]["humaneval"]["common_wrong_programs"]
    assert {r["parent_id"] for r in common} == {w["attempt_id"] for w in wrong}
    assert not any(w["status"] == "sandbox_error" for w in wrong) and any(r["status"] == "sandbox_error" for r in base)
    bad = load_config("smoke", [*overrides, f"evaluate.common_wrong_from={tmp_path / 'nowhere'}"])
    with pytest.raises(FileNotFoundError, match=r"common_wrong_from: .*nowhere has no samples/humaneval"):
        stage.run_evaluation(bad, tmp_path / "bad", backend=Scripted(), sandbox=FakeSandbox())


def test_two_trained_models_are_compared_program_by_program(tmp_path):
    """RL minus SFT on the common set: each model's verdicts on the same programs, paired; a program where either
    met a sandbox failure is left out of the pair."""
    base = run(tmp_path, ScriptedBackend(), rounds=1)
    a = _common(tmp_path, base, Trained(), tag="a")  # fixes P1's 3 programs in E+R, none in Refine
    b = _common(tmp_path, base, ScriptedBackend(), tag="b")  # fixes all 5 in both formats
    rows = {r["chain"]: r for r in compare_common_pair(a, b, base, n_boot=200)}
    assert rows["explain_refine"]["fixed_a"] == 3 and rows["explain_refine"]["fixed_b"] == 5
    assert rows["explain_refine"]["diff"][0] == pytest.approx(3 / 5 - 1)
    assert rows["refine"]["diff"][0] == pytest.approx(-1.0) and rows["refine"]["programs"] == 5
    flipped = {r["chain"]: r for r in compare_common_pair(b, a, base, n_boot=200)}
    assert flipped["explain_refine"]["diff"][0] == pytest.approx(1 - 3 / 5)
    # one of b's E+R refinements of P1 failed in the sandbox: that program leaves the pair on both sides
    broken = next(r for r in b if r["chain"] == "explain_refine" and "1" in r["task_id"])
    broken["status"], broken["passed"] = "sandbox_error", False
    rows = {r["chain"]: r for r in compare_common_pair(a, b, base, n_boot=200)}
    assert rows["explain_refine"]["programs"] == 4
    assert rows["explain_refine"]["fixed_a"] == 2 and rows["explain_refine"]["fixed_b"] == 4
    with pytest.raises(ValueError, match="have no refinement"):
        compare_common_pair(a[1:], b, base)
