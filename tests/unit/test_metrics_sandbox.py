"""A sandbox failure is never the model's failure: dropped from the metrics, never refined, counted, and the
stage stops past a configured share (a scripted backend and a fake executor; no model, no sandbox)."""

import gzip
import json
import re

import pytest

from selfdebug.evaluate.metrics import benchmark_metrics
from selfdebug.evaluate.protocol import GenerationRunner, evaluate_benchmark
from selfdebug.generate.base import Completion
from selfdebug.io import JsonlLog
from selfdebug.problems.base import Problem, TestCase


def problem(i):
    return Problem(task_id=f"HumanEval/{i}", benchmark="humaneval", prompt=f"Write f{i}.", entry_point=f"f{i}",
                   style="full", reference="", tests=[TestCase(call=f"f{i}()", expected=i)])


class Scripted:
    """Initial sample j answers ``init-j``; a refinement (feedback shown) of ``init-j`` answers ``fixed-j``;
    a resample (n=1) answers ``init-0``. Every answer is a real function, so it survives any sanitizer."""
    name = "scripted"

    def __init__(self):
        self.prompts = 0

    def generate(self, prompts, params):
        self.prompts += len(prompts)
        out = []
        for chat in prompts:
            entry = re.search(r"Write (f\d+)\.", chat[0]["content"] + chat[-1]["content"]).group(1)
            prev = re.search(r"init-(\d+)", chat[-2]["content"]) if len(chat) > 2 else None
            tags = [f"fixed-{prev.group(1)}"] if prev else [f"init-{j}" for j in range(params.n)]
            out.append([Completion(text=f"```python\ndef {entry}():\n    return '{t}'\n```", prompt_tokens=5,
                                   completion_tokens=3) for t in tags])
        return out


def fake_executor(pairs):
    """HumanEval/1's initial sample 1 and HumanEval/2's refinement of sample 0 hit a sandbox failure."""
    out = []
    for prog, p in pairs:
        tid = p.task_id
        if (tid == "HumanEval/1" and "'init-1'" in prog) or (tid == "HumanEval/2" and "'fixed-0'" in prog):
            out.append({"passed": False, "status": "sandbox_error", "feedback": "sandbox failure: reference crashed",
                        "n_passed": 0, "n_total": 0})
            continue
        ok = "'fixed-" in prog or ("'init-0'" in prog and tid in ("HumanEval/0", "HumanEval/1"))
        out.append({"passed": ok, "status": "passed" if ok else "wrong_answer", "feedback": "FIXME",
                    "n_passed": int(ok), "n_total": 1})
    return out


def run(tmp_path, rounds=2):
    runner = GenerationRunner(backend=Scripted(), cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy")
    return evaluate_benchmark("humaneval", [problem(0), problem(1), problem(2)], runner=runner,
                              execute=fake_executor, n_samples=3, temperature=0.8, top_p=0.95, max_new_tokens=8,
                              refine_temperature=0.8, refine_max_new_tokens=8, rounds=rounds)


def test_a_sandbox_failure_is_never_refined(tmp_path):
    records = run(tmp_path)
    # the initial sample the sandbox failed on gets no refinement and no resample in any round
    assert [r["chain"] for r in records if (r["task_id"], r["sample"]) == ("HumanEval/1", 1)] == ["init"]
    # a refinement the sandbox failed on is not refined again (round 2 would fix it: 'fixed-0' is asked anew)
    for chain in ("refine", "explain_refine"):
        attempts = [(r["round"], r["status"]) for r in records
                    if r["chain"] == chain and (r["task_id"], r["sample"]) == ("HumanEval/2", 0)]
        assert attempts == [(1, "sandbox_error")]


def test_sandbox_failures_leave_pass_at_k_and_success_rates(tmp_path):
    m = benchmark_metrics(run(tmp_path), [1, 3], n_boot=50)
    val = {(e["chain"], e["round"], e["k"]): e for e in m["pass_at_k"]}
    # HumanEval/1 keeps 2 samples (1 passing): 1/2, not 1/3 as if the sandbox failure were a wrong answer
    assert val[("init", 0, 1)]["value"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    # pass@3 is undefined for HumanEval/1 (2 samples left): averaged over the other two problems only
    assert val[("init", 0, 3)]["n_problems"] == 2 and val[("init", 0, 3)]["value"] == pytest.approx(0.5)
    # the refinement the sandbox failed on does not count as fixed: HumanEval/2 has 2 of 3 passing
    assert val[("refine", 1, 1)]["value"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    rate = {(e["chain"], e["round"]): (e["fixed"], e["wrong"]) for e in m["success_rate"]}
    assert rate[("refine", 1)] == (5, 6)  # wrong: 2 + 1 + 3, the dropped initial sample is not among them
    assert m["n_samples"] == [3]  # what was asked for
    se = m["sandbox_errors"]
    assert se["attempts"] == 3 and se["initial"] == 1
    assert se["by_chain"] == {"init": 1, "refine": 1, "explain_refine": 1}
    assert se["share"] == pytest.approx(3 / se["total_attempts"])
    assert se["problems_below_k"] == {"3": ["HumanEval/1"]}


def test_a_problem_whose_every_sample_failed_in_the_sandbox_leaves_the_metrics():
    rec = dict(benchmark="b", chain="init", round=0, completion_tokens=1)
    records = [dict(rec, task_id="A", sample=s, passed=s == 0, status="passed" if s == 0 else "wrong_answer")
               for s in range(2)]
    records += [dict(rec, task_id="B", sample=s, passed=False, status="sandbox_error") for s in range(2)]
    m = benchmark_metrics(records, [1], n_boot=20)
    (entry,) = m["pass_at_k"]
    assert entry["value"] == pytest.approx(0.5) and entry["n_problems"] == 1
    assert m["n_problems"] == 2 and m["sandbox_errors"]["problems_without_samples"] == ["B"]


class FakeResult:
    def __init__(self, d):
        self.d = d

    def to_dict(self):
        return dict(self.d, isolation="fake", trust="fake")


class FakeSandbox:
    """The sandbox stage wrapper's interface (``run(jobs, progress=...)``), backed by the fake executor."""

    def run(self, jobs, progress=False):
        return [FakeResult(d) for d in fake_executor([(j.program, j.problem) for j in jobs])]


def stage_config(share):
    from selfdebug.config import load_config

    return load_config("smoke", ["evaluate.benchmarks=[humaneval]", "evaluate.n_samples=3", "evaluate.ks=[1]",
                                 "evaluate.rounds=1", "model.id=toy-scripted",
                                 f"evaluate.max_sandbox_error_share={share}"])


def test_stage_fails_past_the_sandbox_error_share(tmp_path, monkeypatch):
    from selfdebug.evaluate import stage

    monkeypatch.setattr(stage, "load_problems", lambda config: {"humaneval": [problem(0), problem(1), problem(2)]})
    # 3 sandbox failures among 9 initial + 3 x 6 round-1 attempts = 11.1%, more than 10%
    with pytest.raises(stage.SandboxErrorShareExceeded, match=r"humaneval: 3 of 27 attempts \(11\.1%\)") as exc:
        stage.run_evaluation(stage_config(0.1), tmp_path / "run", backend=Scripted(), sandbox=FakeSandbox())
    assert "max_sandbox_error_share=10.0%" in str(exc.value) and "HumanEval/1" in str(exc.value)
    # the records are kept for inspection
    with gzip.open(tmp_path / "run" / "samples" / "humaneval.jsonl.gz", "rt") as fh:
        assert sum(json.loads(line)["status"] == "sandbox_error" for line in fh) == 3

    summary = stage.run_evaluation(stage_config(0.2), tmp_path / "run", backend=Scripted(), sandbox=FakeSandbox())
    assert summary["benchmarks"]["humaneval"]["sandbox_errors"] == 3

