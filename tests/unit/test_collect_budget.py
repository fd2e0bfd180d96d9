"""Where the collection's hour goes. collect.top_up: after n_samples for every problem, more samples only for the
problems already solved; the runner draws only the new sample indices, so turning it on over a finished sampling
stage generates only them. collect.max_wrong_per_problem: the teacher is asked about a problem's first wrong
solutions only."""

from __future__ import annotations

import json

import pytest
from test_collect_helpers import TASKS, block, config, task_of

from selfdebug.collect.refine import load_sample_outputs, plan_attempts
from selfdebug.collect.sample import run_sample
from selfdebug.config import ConfigError
from selfdebug.generate.base import Completion
from selfdebug.io import read_jsonl

# the k-th sample ever drawn for a problem (function body): 601 is solved at its third sample, 602 at its sixth,
# 603 at its first; the top-up samples (k = 3, 4) add new correct and wrong solutions
BODIES = {
    601: ["return a - b", "return a * b", "return a + b", "return b + a", "return a - b - 1",
          "return a + b + 0", "return a * 2", "return b - a", "return a ** 2", "return 0"],
    602: ["return a + b", "return a - b", "return a ** b", "return b - a", "return a // b",
          "return a * b * 1", "return a - 1", "return b", "return a", "return 1"],
    603: ["return -x", "return x", "return 0 - x", "return x * -1", "return x + 1",
          "return -1 * x", "return x - 1", "return -x + 0", "return x * 1", "return 2 - x"],
}


class CountingModel:
    """Answers each problem's k-th sample with BODIES[problem][k], whatever the request's n; records (problem, n)
    of every prompt it is asked."""

    name = "counting"

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.drawn: dict[int, int] = {}

    def generate(self, prompts, params, seeds=None):
        out = []
        for chat in prompts:
            num = task_of(chat[0]["content"])
            self.asked.append((num, params.n))
            head = TASKS[num][2].splitlines()[0]
            texts = []
            for _ in range(params.n):
                k = self.drawn.get(num, 0)
                self.drawn[num] = k + 1
                texts.append(block(f"{head}\n    {BODIES[num][k]}\n"))
            out.append([Completion(text=t, prompt_tokens=3, completion_tokens=5) for t in texts])
        return out

    def close(self) -> None:
        pass


def _solutions(run):
    return {(s["problem_id"], s["code"].splitlines()[-1].strip()): s for s in read_jsonl(run / "sample" / "solutions.jsonl")}


def test_top_up_samples_only_solved_problems_and_pools_the_new_solutions(tmp_path, sandbox):
    model = CountingModel()
    summary = run_sample(config(tmp_path, "collect.top_up=2"), tmp_path / "run", backend=model, sandbox=sandbox)
    # first pass: 3 samples of each problem; top-up: the 2 new samples of the solved problems 601 and 603 only
    assert sorted(model.asked) == sorted([(601, 3), (602, 3), (603, 3), (601, 2), (603, 2)])
    sols = _solutions(tmp_path / "run")
    assert len(sols) == 3 * 3 + 2 * 2
    assert sols[("MBPP/601", "return b + a")]["passed"] and not sols[("MBPP/601", "return a - b - 1")]["passed"]
    assert [o["sample"] for o in sols[("MBPP/603", "return x * -1")]["occurrences"]] == [3]
    assert not any(s["problem_id"] == "MBPP/602" and s["occurrences"][0]["sample"] >= 3 for s in sols.values())
    assert list(summary["top_up"].values()) == [{"problems": 2, "samples": 4}]
    assert summary["sources"]["mbpp"]["correct"] == 2 + 3  # 601: a + b, b + a; 603: -x, 0 - x, x * -1


def test_turning_top_up_on_over_a_finished_stage_generates_only_the_new_samples(tmp_path, sandbox):
    model = CountingModel()
    run_sample(config(tmp_path), tmp_path / "run", backend=model, sandbox=sandbox)
    assert len(model.asked) == 3
    summary = run_sample(config(tmp_path, "collect.top_up=2"), tmp_path / "run", backend=model, sandbox=sandbox)
    assert not summary.get("skipped") and sorted(model.asked[3:]) == [(601, 2), (603, 2)]
    assert len(_solutions(tmp_path / "run")) == 3 * 3 + 2 * 2
    stored = json.loads((tmp_path / "run" / "sample" / "summary.json").read_text())
    assert [t["samples"] for t in stored["top_up"].values()] == [4]


def test_a_top_up_sample_has_the_seed_it_would_have_had_in_one_pass(tmp_path, sandbox):
    """Sample j of a problem is the same draw whether it came from the top-up or from n_samples = n + top_up."""
    run_sample(config(tmp_path, "collect.top_up=2"), tmp_path / "a", backend=CountingModel(), sandbox=sandbox)
    run_sample(config(tmp_path, "collect.n_samples=5"), tmp_path / "b", backend=CountingModel(), sandbox=sandbox)

    def seeds(run):
        return {(s["problem_id"], o["sample"]): (o["seed"], o["generation_key"])
                for s in read_jsonl(run / "sample" / "solutions.jsonl") for o in s["occurrences"]}

    topped, plain = seeds(tmp_path / "a"), seeds(tmp_path / "b")
    assert {k: v for k, v in topped.items() if k[1] >= 3} == {k: v for k, v in plain.items()
                                                              if k[1] >= 3 and k[0] != "MBPP/602"}
    assert {k for k in topped if k[1] >= 3} == {(p, j) for p in ("MBPP/601", "MBPP/603") for j in (3, 4)}


def test_every_model_tops_up_every_problem_any_model_solved_in_its_base_pass(tmp_path, sandbox):
    model = CountingModel()
    first = 'collect.models=[{id: embedded, backend: llamacpp}, {id: other, backend: llamacpp}]'
    summary = run_sample(config(tmp_path, "collect.top_up=2", first), tmp_path / "run", backend=model,
                         sandbox=sandbox)
    base, top = model.asked[:6], model.asked[6:]
    assert sorted(base) == sorted([(n, 3) for n in TASKS] * 2)
    # 602 is solved only by the second model's base pass (its sixth sample): both models top it up
    assert sorted(top) == sorted([(n, 2) for n in TASKS] * 2)
    assert summary["top_up"] == {"embedded": {"problems": 3, "samples": 6}, "other": {"problems": 3, "samples": 6}}
    gen = summary["generation"]["embedded"]
    assert gen["samples"] == 3 * 3 + 3 * 2 and gen["samples_resumed"] == 0  # each sample counted once, none resumed


def test_a_negative_top_up_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="collect.top_up"):
        config(tmp_path, "collect.top_up=-1")


def test_the_teacher_is_asked_about_a_problems_first_wrong_solutions_only(tmp_path, sandbox):
    run_sample(config(tmp_path, "collect.top_up=2"), tmp_path / "run", backend=CountingModel(), sandbox=sandbox)
    problems, solutions = load_sample_outputs(tmp_path / "run" / "sample")
    wrong = {}  # problem -> its wrong solutions' last lines, in sampling order
    for s in solutions:
        if not s["passed"]:
            wrong.setdefault(s["problem_id"], []).append(s["code"].splitlines()[-1].strip())
    assert wrong["MBPP/601"] == ["return a - b", "return a * b", "return a - b - 1"]

    def asked(*extra):
        rows = plan_attempts(config(tmp_path, "collect.hindsight=true", "collect.modes=[]", *extra), problems, solutions)
        return [(r["problem_id"], next(s for s in solutions if s["solution_id"] == r["solution_id"])["code"]
                 .splitlines()[-1].strip()) for r in rows]

    # hindsight only: 602 has no correct sibling, so it is never asked; 601 and 603 all, or their first two
    assert sorted(asked()) == sorted([("MBPP/601", w) for w in wrong["MBPP/601"]]
                                     + [("MBPP/603", w) for w in wrong["MBPP/603"]])
    assert sorted(asked("collect.max_wrong_per_problem=2")) == sorted(
        [("MBPP/601", "return a - b"), ("MBPP/601", "return a * b"), *[("MBPP/603", w) for w in wrong["MBPP/603"][:2]]])
    with pytest.raises(ConfigError, match="collect.max_wrong_per_problem"):
        config(tmp_path, "collect.max_wrong_per_problem=0")
