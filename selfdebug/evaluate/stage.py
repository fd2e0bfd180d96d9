"""The evaluation stage: config in, per-sample results + metrics + tables + figures out, under the run folder.

Layout of ``runs/<profile>/evaluate/``: ``config.yaml`` (resolved), ``generations.jsonl`` (every model
reply, the resume log), ``samples/<benchmark>.jsonl.gz`` (one record per attempt: code, explanation,
verdict, feedback), ``evalplus/<benchmark>_<chain>.jsonl`` (the samples in EvalPlus's format:
selfdebug.evaluate.export), ``metrics.json``, ``tables/`` and ``figures/``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT, Config
from selfdebug.evaluate.common import COMMON_DIR, refine_common
from selfdebug.evaluate.export import export_evalplus
from selfdebug.evaluate.protocol import TOKEN_FIELDS, GenerationRunner, evaluate_benchmark
from selfdebug.generate.runner import backend_settings as model_backend_settings
from selfdebug.generate.runner import model_tag
from selfdebug.io import JsonlLog, atomic_write_json, read_jsonl, write_jsonl
from selfdebug.problems import SUBSET_OF, load_benchmark
from selfdebug.problems.base import Problem

log = logging.getLogger(__name__)

PLUS_BENCHMARKS = ("humaneval_plus", "mbpp_plus")


def make_executor(sandbox: Any, suite: str):
    """Wrap the sandbox into the protocol's executor: (program, problem) pairs in, result dicts out."""
    from selfdebug.sandbox import Job

    def execute(pairs: list[tuple[str, Problem]]) -> list[dict[str, Any]]:
        results = sandbox.run([Job(program=prog, problem=p, suite=suite) for prog, p in pairs], progress=True)
        return [r.to_dict() for r in results]

    return execute


class SandboxErrorShareExceeded(RuntimeError):
    """Too many of a benchmark's attempts failed in the sandbox itself: the harness, not the model, is broken."""


def check_sandbox_errors(bench: str, records: list[dict[str, Any]], max_share: float, where: Path | str = "") -> None:
    """Raise when more than ``max_share`` of a benchmark's attempts are sandbox failures.

    Such attempts are left out of every metric (selfdebug.evaluate.metrics); past a small share the numbers
    would describe whatever problems the harness could run, so the stage stops instead of reporting them.
    """
    bad = [r for r in records if r["status"] == "sandbox_error"]
    if not records or len(bad) / len(records) <= max_share:
        return
    first = bad[0]
    raise SandboxErrorShareExceeded(
        f"{bench}: {len(bad)} of {len(records)} attempts ({len(bad) / len(records):.1%}) were sandbox failures "
        f"(the harness or a reference solution failed, not the model's program), more than "
        f"evaluate.max_sandbox_error_share={max_share:.1%}. First: {first['task_id']} ({first['chain']}, round "
        f"{first['round']}): {str(first.get('feedback', ''))[:300]!r}. Records: {where}. Fix the harness, or allow "
        "more with --override evaluate.max_sandbox_error_share=<share>.")


def load_problems(config: Config) -> dict[str, list[Problem]]:
    """Every benchmark the profile names. One that cannot be loaded is an error, not a silent gap: a profile
    lists only what it can run (the tables name the benchmarks a group is missing)."""
    out = {}
    for bench in config.evaluate.benchmarks:
        try:
            out[bench] = load_benchmark(bench, limit=config.evaluate.limit, mirror=config.data_mirror)
        except Exception as exc:
            raise RuntimeError(f"profile {config.profile}: benchmark {bench!r} cannot be loaded: {exc}") from exc
        log.info("%s: %d problems", bench, len(out[bench]))
    return out


def run_evaluation(config: Config, run_dir: str | Path, backend: Any = None, sandbox: Any = None) -> dict[str, Any]:
    """Run the evaluation protocol for every benchmark of the profile; resumable; returns a summary."""
    from selfdebug.generate import make_backend
    from selfdebug.sandbox import Sandbox, SandboxConfig

    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    problems = load_problems(config)
    ev = config.evaluate
    own_backend = backend is None
    backend = backend or make_backend(backend_settings(config))
    sb_cfg = SandboxConfig.from_settings(config.sandbox)
    own_sandbox = sandbox is None
    sandbox = sandbox or Sandbox(sb_cfg)
    # chunks at least as large as the engine's parallel sequences, so no slot idles between calls
    # token ids and log-probabilities go to the file only: in memory they would cost GBs at paper scale
    runner = GenerationRunner(backend=backend, cache=JsonlLog(out / "generations.jsonl", drop_in_memory=TOKEN_FIELDS),
                              model_tag=_model_tag(config, backend), seed=config.seed,
                              chunk_size=max(16, config.model.batch_size))
    from selfdebug.generate.cpu import cpu_summary

    # the speed choices (engine, kernels, precision) are made per machine, so every run records the machine
    summary: dict[str, Any] = {"benchmarks": {}, "backend": getattr(backend, "name", type(backend).__name__),
                               "machine": cpu_summary(), "engine_probe": getattr(backend, "probe_report", None),
                               "torch_dtype": _torch_dtype(backend)}
    t_start = time.perf_counter()
    try:
        for bench, probs in problems.items():
            t0 = time.perf_counter()
            log.info("evaluating %s: %d problems x %d samples", bench, len(probs), ev.n_samples)
            records = evaluate_benchmark(
                bench, probs, runner=runner,
                execute=make_executor(sandbox, "all" if SUBSET_OF.get(bench, bench) in PLUS_BENCHMARKS else "base"),
                n_samples=ev.n_samples, temperature=ev.temperature, top_p=ev.top_p, max_new_tokens=ev.max_new_tokens,
                refine_temperature=ev.refine_temperature, refine_max_new_tokens=ev.refine_max_new_tokens,
                prompts=tuple(ev.prompts), rounds=ev.rounds, matched_baseline=ev.matched_baseline,
            )
            write_jsonl(out / "samples" / f"{bench}.jsonl.gz", records)
            export_evalplus(bench, records, probs, out / "evalplus")
            summary["benchmarks"][bench] = {"problems": len(probs), "records": len(records),
                                            "seconds": round(time.perf_counter() - t0, 1)}
            summary["benchmarks"][bench]["sandbox_errors"] = sum(r["status"] == "sandbox_error" for r in records)
            check_sandbox_errors(bench, records, ev.max_sandbox_error_share, out / "samples" / f"{bench}.jsonl.gz")
            if ev.common_wrong_from:
                common = refine_common(
                    bench, probs, _base_records(config, bench), runner=runner,
                    execute=make_executor(sandbox, "all" if SUBSET_OF.get(bench, bench) in PLUS_BENCHMARKS else "base"),
                    top_p=ev.top_p, refine_temperature=ev.refine_temperature,
                    refine_max_new_tokens=ev.refine_max_new_tokens, prompts=tuple(ev.prompts))
                write_jsonl(out / COMMON_DIR / f"{bench}.jsonl.gz", common)
                summary["benchmarks"][bench]["common_wrong_programs"] = len(common)
    finally:
        if own_sandbox and hasattr(sandbox, "close"):
            sandbox.close()
        if own_backend and hasattr(backend, "close"):
            backend.close()
    summary["generation"] = dict(runner.stats)
    if isinstance(getattr(backend, "stats", None), dict):
        summary["generation"]["engine"] = dict(backend.stats)  # e.g. llama.cpp prompt tokens reused
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    # a resumed stage keeps what earlier invocations cost, so the run's total is never lost
    previous = out / "summary.json"
    history = []
    if previous.is_file():
        old = json.loads(previous.read_text())
        history = old.pop("previous_invocations", []) + [old]
    summary["previous_invocations"] = history
    atomic_write_json(previous, summary)
    return summary


def _base_records(config: Config, bench: str) -> list[dict[str, Any]]:
    """The per-sample records of ``evaluate.common_wrong_from`` for one benchmark, or a clear error."""
    folder = Path(str(config.evaluate.common_wrong_from))
    folder = folder if folder.is_absolute() else REPO_ROOT / folder
    path = next((p for p in (folder / "samples" / f"{bench}.jsonl.gz", folder / "samples" / f"{bench}.jsonl")
                 if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"evaluate.common_wrong_from: {folder} has no samples/{bench}.jsonl(.gz); it must be "
                                "the results folder of an evaluation of the same benchmarks")
    return list(read_jsonl(path))


def _torch_dtype(backend: Any) -> str | None:
    """The precision a transformers backend runs in (chosen per CPU for ``dtype: auto``), else None."""
    dtype = getattr(getattr(backend, "model", None), "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else None


def _model_tag(config: Config, backend: Any = None) -> str:
    """Cache namespace of the profile's model (``selfdebug.generate.runner.model_tag``)."""
    return model_tag(config.model.id, config.model.chat_format, backend)


def backend_settings(config: Config) -> dict[str, Any]:
    """The profile's model section as ``make_backend`` takes it (``selfdebug.generate.runner.backend_settings``)."""
    return model_backend_settings(config.model)
