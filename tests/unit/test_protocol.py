"""The evaluation protocol's bookkeeping, with a scripted backend and executor (no model, no sandbox)."""

import pytest

from selfdebug.evaluate.metrics import benchmark_metrics, compute_all
from selfdebug.evaluate.protocol import GenerationRunner, evaluate_benchmark
from selfdebug.generate.base import Completion
from selfdebug.io import JsonlLog
from selfdebug.problems.base import Problem, TestCase


def problem(i):
    return Problem(task_id=f"P{i}", benchmark="toy", prompt=f"Write f{i}.", entry_point=f"f{i}", style="full",
                   reference="", tests=[TestCase(call=f"f{i}()", expected=i)])


class ScriptedBackend:
    """Initial answers are 'wrong' except for sample 0 of P0; a refinement fixes the code only when the
    feedback was shown ('FIXME' in the chat), a resample is always wrong."""
    name = "scripted"

    def __init__(self):
        self.calls = 0
        self.prompts = 0

    def generate(self, prompts, params, seeds=None):
        self.calls += 1
        self.prompts += len(prompts)
        out = []
        for chat in prompts:
            last = chat[-1]["content"]
            if "FIXME" in last:
                text = "because\n```python\nRIGHT\n```"
            else:
                text = "```python\nWRONG\n```"
            out.append([Completion(text=text if j else text.replace("WRONG", "FIRST"), prompt_tokens=5,
                                   completion_tokens=3) for j in range(params.n)])
        return out


def execute(pairs):
    out = []
    for prog, p in pairs:
        ok = "RIGHT" in prog or ("FIRST" in prog and p.task_id == "P0")
        out.append({"passed": ok, "status": "passed" if ok else "wrong_answer", "feedback": "FIXME",
                    "n_passed": int(ok), "n_total": 1})
    return out


def run(tmp_path, backend, rounds=2):
    runner = GenerationRunner(backend=backend, cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy", chunk_size=3)
    return evaluate_benchmark("toy", [problem(0), problem(1)], runner=runner, execute=execute, n_samples=3,
                              temperature=0.8, top_p=0.95, max_new_tokens=8, refine_temperature=0.8,
                              refine_max_new_tokens=8, rounds=rounds, matched_baseline=True)


def test_protocol_refines_only_failures_and_counts(tmp_path):
    records = run(tmp_path, ScriptedBackend())
    init = [r for r in records if r["chain"] == "init"]
    assert len(init) == 6 and sum(r["passed"] for r in init) == 1
    for chain in ("refine", "explain_refine"):
        r1 = [r for r in records if r["chain"] == chain and r["round"] == 1]
        assert len(r1) == 5 and all(r["passed"] for r in r1)
        assert not [r for r in records if r["chain"] == chain and r["round"] == 2]  # nothing left to fix
    resample = [r for r in records if r["chain"] == "resample"]
    # a fresh sample is right only for P0 (its first-sample answer), so round 2 resamples P1's three only
    assert [(r["round"], r["task_id"], r["passed"]) for r in resample] == (
        [(1, "P0", True)] * 2 + [(1, "P1", False)] * 3 + [(2, "P1", False)] * 3)
    assert all(r["explanation"] == "because" for r in records if r["chain"] == "explain_refine")

    m = benchmark_metrics(records, [1, 3], n_boot=100)
    val = {(e["chain"], e["round"], e["k"]): e["value"] for e in m["pass_at_k"]}
    assert val[("init", 0, 1)] == pytest.approx((1 / 3 + 0) / 2)
    assert val[("init", 0, 3)] == pytest.approx(0.5)
    assert val[("refine", 1, 1)] == pytest.approx(1.0)
    assert val[("resample", 2, 1)] == pytest.approx(0.5)
    rate = {(e["chain"], e["round"]): (e["fixed"], e["wrong"]) for e in m["success_rate"]}
    assert rate[("refine", 1)] == (5, 5) and rate[("resample", 1)] == (2, 5)


def test_rerun_asks_the_model_for_nothing(tmp_path):
    first = run(tmp_path, ScriptedBackend())
    again_backend = ScriptedBackend()
    second = run(tmp_path, again_backend)
    assert again_backend.prompts == 0
    assert [r["passed"] for r in first] == [r["passed"] for r in second]


def test_resume_after_a_partial_run(tmp_path):
    class Dying(ScriptedBackend):
        def generate(self, prompts, params, seeds=None):
            if self.calls >= 2:
                raise KeyboardInterrupt
            return super().generate(prompts, params, seeds)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Dying())
    rest = ScriptedBackend()
    records = run(tmp_path, rest)
    assert 0 < rest.prompts < 2 + 5 * 3 + 5 * 3  # only what was missing
    assert len([r for r in records if r["chain"] == "init"]) == 6


def test_group_metrics_pool_problems_and_name_what_is_missing(tmp_path):
    records = run(tmp_path, ScriptedBackend(), rounds=1)
    other = [dict(r, benchmark="humaneval") for r in records]
    allm = compute_all({"mbpp": [dict(r, benchmark="mbpp") for r in records], "humaneval": other}, [1], n_boot=50)
    group = allm["groups"]["MBPP & HE"]
    assert group["n_problems"] == 4 and group["missing"] == []
    assert "MBPP+ & HE+" not in allm["groups"]


def test_humaneval_plus_is_scored_on_humanevals_samples(tmp_path):
    """Same ids and prompts: HumanEval+ asks the model for nothing HumanEval already asked."""
    backend = ScriptedBackend()
    runner = GenerationRunner(backend=backend, cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy")
    kwargs = dict(runner=runner, execute=execute, n_samples=3, temperature=0.8, top_p=0.95, max_new_tokens=8,
                  refine_temperature=0.8, refine_max_new_tokens=8, rounds=1)
    base = evaluate_benchmark("humaneval", [problem(0), problem(1)], **kwargs)
    asked = backend.prompts
    plus = evaluate_benchmark("humaneval_plus", [problem(0), problem(1)], **kwargs)
    assert backend.prompts == asked
    assert [r["completion"] for r in plus] == [r["completion"] for r in base]
    evaluate_benchmark("mbpp", [problem(0), problem(1)], **kwargs)
    assert backend.prompts > asked  # other benchmarks are not shared


def test_per_problem_table_averages_to_the_headline_numbers(tmp_path):
    from selfdebug.report.tables import per_problem_frame

    records = run(tmp_path, ScriptedBackend())
    frame = per_problem_frame({"toy": records}, [1, 3])
    m = benchmark_metrics(records, [1, 3], n_boot=10)
    for e in m["pass_at_k"]:
        label = {"init": "Init.", "refine": "Refine", "explain_refine": "Expl.+Refine", "resample": "Resample"}
        rows = frame[(frame["approach"] == label[e["chain"]]) & (frame["round"] == e["round"])]
        assert len(rows) == 2
        assert rows[f"pass@{e['k']}"].mean() == pytest.approx(e["value"], abs=1e-4)


def test_a_round_sends_every_chain_to_the_engine_together(tmp_path):
    """Refine, Expl.+Refine and Resample requests of one round reach the engine in one runner call per
    sampling-parameter group (refinements share theirs), not one call per chain."""

    class Recording(ScriptedBackend):
        def __init__(self):
            super().__init__()
            self.batches = []

        def generate(self, prompts, params, seeds=None):
            self.batches.append([c[-1]["content"][:5] for c in prompts])
            return super().generate(prompts, params, seeds)

    b = Recording()
    runner = GenerationRunner(backend=b, cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy", chunk_size=100)
    evaluate_benchmark("toy", [problem(0), problem(1)], runner=runner, execute=execute, n_samples=3,
                       temperature=0.8, top_p=0.95, max_new_tokens=8, refine_temperature=0.7,
                       refine_max_new_tokens=8, rounds=1, matched_baseline=True)
    # initial call, then round 1: one call with 5 refine + 5 explain_refine prompts, one with 5 resamples
    assert [len(x) for x in b.batches] == [2, 10, 5]


def test_streaming_engine_results_are_logged_as_they_finish(tmp_path):
    """An engine with ``streams_results`` gets ``on_result``; a failure mid-call keeps what was finished."""

    class Streaming(ScriptedBackend):
        streams_results = True

        def generate(self, prompts, params, seeds=None, on_result=None):
            outs = super().generate(prompts, params, seeds)
            on_result(1, outs[1])
            raise RuntimeError("killed")

    log = JsonlLog(tmp_path / "gen.jsonl")
    runner = GenerationRunner(backend=Streaming(), cache=log, model_tag="toy", chunk_size=1)
    from selfdebug.evaluate.protocol import Request
    from selfdebug.generate.base import SamplingParams

    reqs = [Request(f"t{i}", [{"role": "user", "content": f"q{i}"}], SamplingParams(n=2)) for i in range(3)]
    with pytest.raises(RuntimeError, match="killed"):
        runner.run(reqs, "x")
    again = JsonlLog(tmp_path / "gen.jsonl")
    assert [[runner.sample_key(r, j) in again for j in range(2)] for r in reqs] == [[False] * 2, [True] * 2, [False] * 2]


def test_every_record_holds_its_chat_and_the_attempt_it_refines(tmp_path):
    """A training example is rebuilt from one record: the chat sent, the reply, and ``parent_id`` naming the
    attempt whose code was refined (Resample: the attempt it replaces; init: None)."""
    from selfdebug.prompts import initial_chat, refine_chat

    records = run(tmp_path, ScriptedBackend())
    by_id = {r["attempt_id"]: r for r in records}
    assert len(by_id) == len(records)  # ids are unique
    probs = {p.task_id: p for p in (problem(0), problem(1))}
    for r in records:
        assert r["attempt_id"] == f"toy/{r['task_id']}/{r['chain']}/r{r['round']}/s{r['sample']}"
        p = probs[r["task_id"]]
        if r["chain"] == "init":
            assert r["parent_id"] is None and r["chat"] == initial_chat(p)
            continue
        parent = by_id[r["parent_id"]]
        assert (parent["task_id"], parent["sample"], parent["round"]) == (r["task_id"], r["sample"], r["round"] - 1)
        assert parent["chain"] in ("init", r["chain"]) and not parent["passed"]
        if r["chain"] == "resample":
            assert r["chat"] == initial_chat(p)
        else:
            assert r["chat"] == refine_chat(p, parent["code"], parent["feedback"], r["chain"])
        assert r["seed"] is not None and r["generation_key"].startswith("toy:")
    assert any(by_id[r["parent_id"]]["chain"] == "resample" for r in records if r["chain"] == "resample")
    # the per-sample records stay small: token ids are only in the generation log
    assert not any("token_ids" in r or "logprobs" in r for r in records)


def test_generation_progress_reaches_the_log(tmp_path, caplog):
    """A notebook's progress bars are widgets: the stage's log (and a terminal following it) gets lines."""
    import logging

    from selfdebug.evaluate.protocol import Request
    from selfdebug.generate.base import SamplingParams

    runner = GenerationRunner(backend=ScriptedBackend(), cache=JsonlLog(tmp_path / "g.jsonl"), model_tag="m",
                              chunk_size=2)
    reqs = [Request(f"toy/P{i}/init", [{"role": "user", "content": f"Write f{i}."}], SamplingParams(n=2))
            for i in range(5)]
    with caplog.at_level(logging.INFO, logger="selfdebug.evaluate.protocol"):
        runner.run(reqs, "toy: initial samples")
    lines = [r.getMessage() for r in caplog.records if "prompts done" in r.getMessage()]
    assert lines and lines[-1] == "toy: initial samples: 5 of 5 prompts done, 30 tokens, " + lines[-1].split(", ")[-1]
