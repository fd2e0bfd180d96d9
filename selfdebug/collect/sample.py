"""Stage 1 (notebook 01): sample solutions to the training problems, run each, keep correct and wrong ones.

Every model of ``collect.models`` (default: the profile's model) draws ``n_samples`` solutions per problem
at ``temperature`` through the resumable runner the evaluation uses (per-sample seeds, a reply cache keyed
by model and request). Replies are parsed and sanitized as evaluation does, deduplicated per problem by
normalised code across models (the paper pooled StarCoder and CodeLlama), and each unique solution runs
once in the sandbox; a wrong one keeps the feedback evaluation would show (the error or the first failed
test). Outputs in ``<collect>/sample/``: ``problems.jsonl``, ``solutions.jsonl`` (one row per unique
solution), ``rejected.jsonl`` (empty replies, malformed problem rows), ``summary.json``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.collect.codes import code_key, digest
from selfdebug.collect.common import (
    CachedExecutor,
    LazySandbox,
    Progress,
    collect_dir,
    finished,
    mark_done,
    open_backend,
    problem_digest,
    sample_models,
    stage_hash,
)
from selfdebug.collect.fewshot import sampling_chat
from selfdebug.collect.problems import load_training_problems
from selfdebug.config import Config
from selfdebug.generate.base import SamplingParams
from selfdebug.generate.runner import TOKEN_FIELDS, GenerationRunner, Request, model_tag
from selfdebug.io import JsonlLog, atomic_write_json, write_jsonl
from selfdebug.problems.base import Problem
from selfdebug.prompts import parse_reply
from selfdebug.sanitize import sanitize_for

log = logging.getLogger(__name__)
OUTPUTS = ["problems.jsonl", "solutions.jsonl", "rejected.jsonl", "summary.json"]


def _hash(config: Config, problems: list[Problem]) -> str:
    co = config.collect
    return stage_hash({
        "stage": "sample", "seed": config.seed, "sandbox": config.sandbox,
        "models": sample_models(config), "n_samples": co.n_samples, "temperature": co.temperature,
        "top_p": co.top_p, "max_new_tokens": co.max_new_tokens, "few_shot": co.few_shot,
        "problems": digest("".join(problem_digest(p) for p in problems), 32),
        **({"top_up": co.top_up} if co.top_up else {}),  # runs made before top-up keep their hash
    })


def parse_solution(text: str, problem: Problem) -> tuple[str, bool]:
    """(code as it runs, found_block): the reply parsed and sanitized exactly as evaluation does."""
    parsed = parse_reply(text, problem.entry_point)
    parsed = replace(parsed, code=sanitize_for(problem, parsed.code))
    return parsed.code, parsed.found_block


def _syntax_error(code: str) -> bool:
    """Whether the code does not even compile (still a wrong solution: the sandbox's feedback says why)."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return True
    return False


def run_sample(config: Config, run_dir: str | Path | None = None, backend: Any = None,
               sandbox: Any = None) -> dict[str, Any]:
    """Run stage 1 (resumable; a finished stage with an unchanged config returns its summary at once).
    ``backend`` (tests) answers for every sampling model; ``sandbox`` is used instead of a new one."""
    out = collect_dir(config, run_dir) / "sample"
    problems, bad_rows = load_training_problems(config)
    key = _hash(config, problems)
    if (done := finished(out, key, OUTPUTS)) is not None:
        log.info("sample: already done with this config (%s); nothing to do", out)
        return {**done, "skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    co = config.collect
    t_start = time.perf_counter()
    execute = CachedExecutor(out.parent / "executions.jsonl", LazySandbox(config, sandbox))
    cache = JsonlLog(out / "generations.jsonl", drop_in_memory=TOKEN_FIELDS)
    params = SamplingParams(n=co.n_samples, temperature=co.temperature, top_p=co.top_p,
                            max_new_tokens=co.max_new_tokens)
    unique: dict[tuple[str, str], dict[str, Any]] = {}  # (task id, code key) -> solution row, in first-seen order
    rejected: list[dict[str, Any]] = [{"kind": "malformed_row", **row} for row in bad_rows]
    gen_stats: dict[str, dict[str, float]] = {}
    top_ups: dict[str, dict[str, int]] = {}
    models = sample_models(config)
    passes = ["base", "top_up"] if co.top_up else ["base"]
    # Every model's base pass comes before any top-up, so that a problem solved by any model is topped up by
    # all of them; one model keeps its engine open for both passes.
    sessions = [passes] if len(models) == 1 else [[which] for which in passes]
    solved: set[str] | None = None
    try:
        for session in sessions:
            for mcfg in models:
                engine, owned = open_backend(mcfg, backend)
                try:
                    runner = GenerationRunner(backend=engine, cache=cache, model_tag=model_tag(
                        mcfg.id, mcfg.chat_format, engine), seed=config.seed,
                        chunk_size=max(co.chunk_size, mcfg.batch_size), log_name=__name__)
                    for which in session:
                        if which == "base":
                            _sample_model(config, mcfg.id, problems, runner, params, execute, unique, rejected)
                        else:  # the problems solved when the first top-up starts, the same for every model
                            solved = solved if solved is not None else solved_problems(unique)
                            top_ups[mcfg.id] = _top_up(config, mcfg.id, [p for p in problems if p.task_id in solved],
                                                       len(problems), runner, params, execute, unique, rejected)
                    _add_stats(gen_stats.setdefault(mcfg.id, {}), runner.stats)
                finally:
                    if owned and hasattr(engine, "close"):
                        engine.close()
    finally:
        execute.sandbox.close()
    solutions = list(unique.values())
    write_jsonl(out / "problems.jsonl", [{"source": p.benchmark, **p.to_dict()} for p in problems])
    write_jsonl(out / "solutions.jsonl", solutions)
    write_jsonl(out / "rejected.jsonl", rejected)
    summary = _summary(problems, solutions, rejected, models, gen_stats, execute.stats, time.perf_counter() - t_start)
    if top_ups:
        summary["top_up"] = top_ups
    atomic_write_json(out / "summary.json", summary)
    mark_done(out, key, summary)
    return summary


def _add_stats(total: dict[str, float], stats: dict[str, float]) -> None:
    for k, v in stats.items():
        total[k] = total.get(k, 0) + v


def _top_up(config: Config, model_id: str, block: list[Problem], n_problems: int, runner: GenerationRunner,
            params: SamplingParams, execute: CachedExecutor, unique: dict[tuple[str, str], dict[str, Any]],
            rejected: list[dict[str, Any]]) -> dict[str, int]:
    """``top_up`` more samples of each problem of ``block`` (the solved ones): ``n_samples + top_up`` asked of the
    same requests, so the runner draws only samples n_samples.. (a sample's seed does not depend on how n was
    reached)."""
    co = config.collect
    log.info("sample (%s): top-up of %d samples for the %d of %d problems solved by the base pass", model_id,
             co.top_up, len(block), n_problems)
    _sample_model(config, model_id, block, runner, replace(params, n=co.n_samples + co.top_up), execute, unique,
                  rejected, first_sample=co.n_samples)
    # the runner counted each request's first n_samples again (as resumed): the base pass already counted them
    runner.stats["samples"] -= len(block) * co.n_samples
    runner.stats["samples_resumed"] -= len(block) * co.n_samples
    return {"problems": len(block), "samples": len(block) * co.top_up}


def solved_problems(unique: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
    """Task ids with at least one correct unique solution in the pool."""
    return {row["problem_id"] for row in unique.values() if row.get("passed")}


def _sample_model(config: Config, model_id: str, problems: list[Problem], runner: GenerationRunner,
                  params: SamplingParams, execute: CachedExecutor, unique: dict[tuple[str, str], dict[str, Any]],
                  rejected: list[dict[str, Any]], first_sample: int = 0) -> None:
    """Samples ``first_sample``..``params.n - 1`` of each problem: parsed, deduplicated into ``unique``, run."""
    co = config.collect
    what = f"sample ({model_id})" if not first_sample else f"sample top-up ({model_id})"
    progress = Progress(what, len(problems), "problems", logger=__name__)
    n_samples = n_correct = n_run = 0
    with tqdm(total=len(problems), desc=what, unit="problem") as bar:
        for start in range(0, len(problems), co.chunk_size):
            block = problems[start : start + co.chunk_size]
            reqs = [Request(f"collect/{p.benchmark}/{p.task_id}/init", sampling_chat(p, co.few_shot, config.data_mirror),
                            params) for p in block]
            outs = runner.run(reqs, f"sample {start + 1}-{start + len(block)}")
            new: list[dict[str, Any]] = []
            for p, req, comps in zip(block, reqs, outs, strict=True):
                for j, comp in enumerate(comps):
                    if j < first_sample:  # pooled by the pass that drew it
                        continue
                    n_samples += 1
                    code, found = parse_solution(comp["text"], p)
                    if not code.strip():
                        rejected.append({"kind": "empty_reply", "source": p.benchmark, "id": p.task_id,
                                         "model": model_id, "sample": j, "generation_key": comp.get("key")})
                        continue
                    occurrence = {"model": model_id, "sample": j, "seed": comp.get("seed"),
                                  "generation_key": comp.get("key")}
                    ukey = (p.task_id, code_key(code))
                    if ukey in unique:
                        unique[ukey]["occurrences"].append(occurrence)
                        if model_id not in unique[ukey]["models"]:
                            unique[ukey]["models"].append(model_id)
                        continue
                    row = {"solution_id": f"{p.task_id}/{digest(ukey[1])}", "source": p.benchmark,
                           "problem_id": p.task_id, "code": code, "completion": comp["text"], "found_block": found,
                           "syntax_error": _syntax_error(code), "sampling_chat": req.chat,
                           "finish_reason": comp.get("finish_reason"),
                           "models": [model_id], "occurrences": [occurrence], "_problem": p}
                    unique[ukey] = row
                    new.append(row)
            results = execute([(r["_problem"].program(r["code"]), r["_problem"]) for r in new])
            for row, res in zip(new, results, strict=True):
                del row["_problem"]
                row.update(passed=bool(res["passed"]), status=res["status"], feedback=res.get("feedback", ""),
                           n_passed=res.get("n_passed"), n_total=res.get("n_total"))
                n_correct += row["passed"]
            n_run += len(new)
            bar.update(len(block))
            done = start + len(block)
            progress.update(done, f"{n_samples} samples, {n_run} new unique solutions, pass rate of unique "
                            f"{n_correct / max(n_run, 1):.1%}", n_samples, "samples")


def _summary(problems: list[Problem], solutions: list[dict[str, Any]], rejected: list[dict[str, Any]],
             models: list[Any], gen_stats: dict[str, Any], exec_stats: dict[str, Any], seconds: float) -> dict[str, Any]:
    per: dict[str, Counter[str]] = {}
    for p in problems:
        per.setdefault(p.benchmark, Counter())["problems"] += 1
    for s in solutions:
        c = per[s["source"]]
        c["samples_kept"] += len(s["occurrences"])
        c["unique"] += 1
        c["correct"] += s["passed"]
        c["wrong"] += not s["passed"] and s["status"] != "sandbox_error"
        c["sandbox_errors"] += s["status"] == "sandbox_error"
        c["syntax_errors"] += s["syntax_error"]
    for r in rejected:
        if r["source"] in per or r["kind"] == "malformed_row":
            per.setdefault(r["source"], Counter())[r["kind"]] += 1
    return {"stage": "sample", "sources": {k: dict(v) for k, v in per.items()}, "models": [m.id for m in models],
            "rejected": dict(Counter(r["kind"] for r in rejected)), "generation": gen_stats,
            "execution": dict(exec_stats), "seconds": round(seconds, 1)}
