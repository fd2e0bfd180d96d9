"""Per-sample seeds and per-sample cache keys of the evaluation protocol: a completion depends on its request
and sample index only, never on chunking, benchmark order, resuming or batch mates; replies are reused only
from the same model (weights, engine, chat format); more samples later generate only the new ones."""

from __future__ import annotations

import hashlib
import logging
from types import SimpleNamespace

import pytest

from selfdebug.evaluate.protocol import GenerationRunner, Request, evaluate_benchmark
from selfdebug.evaluate.stage import _model_tag
from selfdebug.generate.base import Completion, SamplingParams, resolve_seeds
from selfdebug.io import JsonlLog
from selfdebug.problems.base import Problem, TestCase


def problem(i):
    return Problem(task_id=f"P{i}", benchmark="toy", prompt=f"Write f{i}.", entry_point=f"f{i}", style="full",
                   reference="", tests=[TestCase(call=f"f{i}()", expected=i)])


PROBLEMS = [problem(0), problem(1), problem(2)]


class SeedEcho:
    """A deterministic engine: each reply is a function of its chat and its own seed only (as a real engine's
    sample is of its prompt and RNG), so equal records mean equal seeds."""

    name = "echo"

    def __init__(self, die_after: int | None = None):
        self.calls, self.samples, self.die_after = 0, 0, die_after

    def generate(self, prompts, params, seeds=None):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt
        self.calls += 1
        seeds = resolve_seeds(seeds, params, len(prompts))
        out = []
        for chat, row in zip(prompts, seeds, strict=True):
            h = hashlib.sha256(f"{chat}{params.temperature}".encode()).hexdigest()[:6]
            out.append([Completion(text=f"```python\nx = {s % 5}  # {h} {s}\n```", prompt_tokens=4,
                                   completion_tokens=2, prompt_token_ids=[1, 2, 3, 4], token_ids=[s % 97, 0],
                                   logprobs=[-0.1234567, -2.0]) for s in row])
            self.samples += len(row)
        return out


def execute(pairs):
    """Right when the program sets x = 0 (one seed in five)."""
    return [{"passed": "x = 0" in prog, "status": "passed" if "x = 0" in prog else "wrong_answer",
             "feedback": "nope", "n_passed": 0, "n_total": 1} for prog, _ in pairs]


def evaluate(tmp_path, backend, benches=("toy_a", "toy_b"), chunk_size=3, log_name="gen.jsonl"):
    runner = GenerationRunner(backend=backend, cache=JsonlLog(tmp_path / log_name), model_tag="m", seed=11,
                              chunk_size=chunk_size)
    return {b: evaluate_benchmark(b, PROBLEMS, runner=runner, execute=execute, n_samples=4, temperature=0.8,
                                  top_p=0.95, max_new_tokens=8, refine_temperature=0.7, refine_max_new_tokens=8,
                                  rounds=2, matched_baseline=True) for b in benches}


def test_split_resumed_and_reordered_run_equals_an_uninterrupted_one(tmp_path):
    whole = evaluate(tmp_path / "a", SeedEcho())
    for die_after in (1, 3):
        d = tmp_path / f"b{die_after}"
        with pytest.raises(KeyboardInterrupt):
            evaluate(d, SeedEcho(die_after=die_after), chunk_size=2)
        # resumed with other chunks and the benchmarks in the other order
        resumed = evaluate(d, SeedEcho(), benches=("toy_b", "toy_a"), chunk_size=5)
        assert resumed == whole
    assert sum(r["passed"] for r in whole["toy_a"]) > 0
    assert {r["chain"] for r in whole["toy_a"] if r["round"] == 2} == {"refine", "explain_refine", "resample"}


def test_resampled_requests_of_one_problem_are_fresh_samples(tmp_path):
    records = evaluate(tmp_path, SeedEcho())["toy_a"]
    for tid in ("P0", "P1", "P2"):
        fresh = [r for r in records if r["task_id"] == tid and r["chain"] in ("init", "resample")]
        assert len(fresh) > 4  # some were resampled
        assert len({r["completion"] for r in fresh}) == len(fresh)
        assert len({r["seed"] for r in fresh}) == len(fresh)
    # the same request under two benchmarks is the same sample only where they share samples by design
    other = evaluate(tmp_path / "x", SeedEcho(), benches=("toy_b",))["toy_b"]
    assert {r["seed"] for r in other}.isdisjoint({r["seed"] for r in records})


def test_more_samples_later_generate_only_the_new_ones(tmp_path):
    log = JsonlLog(tmp_path / "gen.jsonl")
    chat = [{"role": "user", "content": "q"}]
    first = SeedEcho()
    two = GenerationRunner(backend=first, cache=log, model_tag="m").run(
        [Request("t", chat, SamplingParams(n=2))], "x")[0]
    more = SeedEcho()
    four = GenerationRunner(backend=more, cache=log, model_tag="m").run(
        [Request("t", chat, SamplingParams(n=4))], "x")[0]
    assert more.samples == 2 and first.samples == 2
    assert [c["text"] for c in four[:2]] == [c["text"] for c in two]
    alone = GenerationRunner(backend=SeedEcho(), cache=JsonlLog(tmp_path / "fresh.jsonl"), model_tag="m").run(
        [Request("t", chat, SamplingParams(n=4))], "x")[0]
    assert [c["text"] for c in alone] == [c["text"] for c in four]  # samples 2, 3 as if asked at once


def test_generation_log_keeps_token_ids_and_logprobs_once_per_prompt(tmp_path):
    log = JsonlLog(tmp_path / "gen.jsonl")
    runner = GenerationRunner(backend=SeedEcho(), cache=log, model_tag="m")
    req = Request("t", [{"role": "user", "content": "q"}], SamplingParams(n=3))
    rows = runner.run([req], "x")[0]
    assert all(r["prompt_token_ids"] == [1, 2, 3, 4] and r["logprobs"] == [-0.12346, -2.0] for r in rows)
    assert [r["token_ids"] for r in rows] == [[r["seed"] % 97, 0] for r in rows]
    reloaded = JsonlLog(tmp_path / "gen.jsonl").records
    assert sum("prompt_token_ids" in r for r in reloaded.values()) == 1  # not repeated per sample
    assert len(reloaded) == 4


def test_a_stage_log_keeps_token_fields_on_disk_only(tmp_path):
    from selfdebug.evaluate.protocol import TOKEN_FIELDS
    from selfdebug.io import read_jsonl

    log = JsonlLog(tmp_path / "gen.jsonl", drop_in_memory=TOKEN_FIELDS)
    rows = GenerationRunner(backend=SeedEcho(), cache=log, model_tag="m").run(
        [Request("t", [{"role": "user", "content": "q"}], SamplingParams(n=2))], "x")[0]
    assert [r["text"] for r in rows] and all(r.get("token_ids") is None for r in rows)
    on_disk = [r for r in read_jsonl(tmp_path / "gen.jsonl") if r["key"] in {row["key"] for row in rows}]
    assert [r["token_ids"] for r in on_disk] == [[r["seed"] % 97, 0] for r in on_disk]


def test_a_backend_without_seeds_still_runs_with_a_warning(tmp_path, caplog):
    class Old:
        name = "old"

        def generate(self, prompts, params):
            return [[Completion(text="a", prompt_tokens=1, completion_tokens=1)] * params.n for _ in prompts]

    runner = GenerationRunner(backend=Old(), cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="m")
    with caplog.at_level(logging.WARNING):
        out = runner.run([Request("t", [{"role": "user", "content": "q"}], SamplingParams(n=2))], "x")
    assert [c["text"] for c in out[0]] == ["a", "a"]
    assert "takes no per-sample seeds" in caplog.text


# --- the cache key names the model -------------------------------------------------------------------------


def config(model_id="m", chat_format="auto"):
    return SimpleNamespace(model=SimpleNamespace(id=model_id, chat_format=chat_format))


def test_switching_the_backend_regenerates_replies(tmp_path):
    class Other(SeedEcho):
        name = "other"

    log_path = tmp_path / "gen.jsonl"
    reqs = [Request("t", [{"role": "user", "content": "q"}], SamplingParams(n=2))]
    a, b, a_again = SeedEcho(), Other(), SeedEcho()
    for backend in (a, b, a_again):
        GenerationRunner(backend=backend, cache=JsonlLog(log_path), model_tag=_model_tag(config(), backend)).run(
            reqs, "x")
    assert (a.samples, b.samples, a_again.samples) == (2, 2, 0)
    # a backend's own cache tag (engine, weights, chat format) decides, and so does the chat format
    assert _model_tag(config(), SimpleNamespace(cache_tag="hf|weights=1")) != _model_tag(
        config(), SimpleNamespace(cache_tag="hf|weights=2"))
    assert _model_tag(config(chat_format="auto"), a) != _model_tag(config(chat_format="starchat"), a)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from selfdebug.generate.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_retrained_weights_in_the_same_folder_regenerate_replies(tmp_path, monkeypatch):
    from selfdebug.generate.hf import HFBackend
    from selfdebug.generate.tiny import build_tiny_model

    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "fp.json"))
    folder = build_tiny_model(tmp_path / "ckpt", seed=0)
    log_path = tmp_path / "gen.jsonl"
    reqs = [Request("t", [{"role": "user", "content": "def add(a, b):"}], SamplingParams(n=2, max_new_tokens=8))]

    def run():
        backend = HFBackend(folder, dtype="float32", device="cpu")
        runner = GenerationRunner(backend=backend, cache=JsonlLog(log_path), model_tag=_model_tag(config(), backend))
        out = runner.run(reqs, "x")[0]
        return runner.stats["resumed"], [c["text"] for c in out]

    resumed0, before = run()
    resumed1, same = run()
    build_tiny_model(folder, seed=1)  # "retrained": same architecture, same file sizes, new weights
    resumed2, after = run()
    assert (resumed0, resumed1, resumed2) == (0, 1, 0)  # the one request: asked, reused, asked again
    assert same == before and after != before


def test_tiny_model_run_split_and_resumed_equals_an_uninterrupted_one(tmp_path, tiny_dir, monkeypatch):
    """The same check on a real sampler: the hf backend on the tiny model, with different batch layouts."""
    from selfdebug.generate.hf import HFBackend

    monkeypatch.setenv("SELFDEBUG_FINGERPRINT_CACHE", str(tmp_path / "fp.json"))
    engine = HFBackend(tiny_dir, dtype="float32", device="cpu", batch_size=4)

    class Dying:
        name, cache_tag = "hf", engine.cache_tag

        def __init__(self, die_after=None):
            self.calls, self.die_after = 0, die_after

        def generate(self, prompts, params, seeds=None):
            if self.die_after is not None and self.calls >= self.die_after:
                raise KeyboardInterrupt
            self.calls += 1
            return engine.generate(prompts, params, seeds)

    def hashed(pairs):  # a verdict that depends on the program text only
        ok = [hashlib.sha256(prog.encode()).digest()[0] % 3 == 0 for prog, _ in pairs]
        return [{"passed": k, "status": "passed" if k else "wrong_answer", "feedback": "no", "n_passed": 0,
                 "n_total": 1} for k in ok]

    def go(d, backend, chunk):
        runner = GenerationRunner(backend=backend, cache=JsonlLog(d / "gen.jsonl"), model_tag="tiny", seed=3,
                                  chunk_size=chunk)
        return evaluate_benchmark("toy", PROBLEMS[:2], runner=runner, execute=hashed, n_samples=3, temperature=1.0,
                                  top_p=0.95, max_new_tokens=6, refine_temperature=0.8, refine_max_new_tokens=6,
                                  rounds=2)

    whole = go(tmp_path / "a", Dying(), 16)
    with pytest.raises(KeyboardInterrupt):
        go(tmp_path / "b", Dying(die_after=2), 1)
    assert go(tmp_path / "b", Dying(), 3) == whole
    assert len(whole) > 6  # refinements happened
