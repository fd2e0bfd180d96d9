"""Notebook 07's stage: explanations of wrong code scored by LLM judges, and the automatic proxy beside them.

1. The sample (``selfdebug.human.sample``): ``n_problems`` problems with an Explain + Refine attempt at
   ``round`` for every model, one attempt per (problem, model): the same items a human rater gets.
2. Each judge of ``explanations.judges`` scores every item with an explanation, greedily (``judge``), through
   the resumable ``GenerationRunner``: a kill loses at most the chunk being generated.
3. The proxy: each explanation's mean embedding similarity to the *verified* explanations of the same problem
   (those whose refinement passed, from every model's records, the item's own attempt left out): what
   ``rl.scores`` computes for the RL reward, here measured against the judges.

Writes to ``runs/<profile>/explanations/``: ``items.jsonl`` and ``sample.json``, ``judgements.jsonl`` (every
reply with its scores, or the reason it gave none), ``scores/<judge>.jsonl`` (the parsed scores in the format
``selfdebug.human.analysis`` reads, for comparing with human raters), ``proxy.jsonl``, ``summary.json`` and
``explanations.md`` (``analysis``), and the resolved ``config.yaml``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.config import REPO_ROOT, Config, ModelConfig
from selfdebug.explanations.judge import judge_chat, parse_judgement
from selfdebug.generate.base import SamplingParams
from selfdebug.generate.runner import TOKEN_FIELDS, GenerationRunner, Request, model_tag
from selfdebug.human.sample import CHAIN, draw_sample, has_records, load_records, write_sample
from selfdebug.io import JsonlLog, write_jsonl

log = logging.getLogger(__name__)


class JudgeError(RuntimeError):
    """A judge whose replies mostly give no score: it measures nothing (its replies are kept to read)."""


def explanations_dir(config: Config, run_dir: str | Path | None = None) -> Path:
    return Path(run_dir) if run_dir else REPO_ROOT / "runs" / config.profile / "explanations"


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve())
    except ValueError:
        return path


def resolve_models(config: Config) -> dict[str, Path]:
    """Label -> records folder: ``explanations.models``, else ``base`` (``report.results``, else this profile's
    evaluation) and each ``report.models`` entry whose records exist (one that does not is logged)."""
    if config.explanations.models:
        models = {label: _resolve(p) for label, p in config.explanations.models.items()}
        absent = [f"{label} ({p})" for label, p in models.items() if not has_records(p)]
        if absent:
            raise FileNotFoundError(f"explanations.models: no evaluation records (samples/*.jsonl.gz) for "
                                    f"{', '.join(absent)}")
        return models
    base = _resolve(config.report.results or f"runs/{config.profile}/evaluate")
    if not has_records(base):
        raise FileNotFoundError(f"explanations: the base model has no evaluation records in {base} (run notebook "
                                "06 first, or set explanations.models)")
    models = {"base": base}
    for label, folder in config.report.models.items():
        if has_records(_resolve(folder)):
            models[label] = _resolve(folder)
        else:
            log.info("explanations: %s left out (no evaluation records in %s)", label, folder)
    return models


def judge_model(judge: str | ModelConfig, config: Config) -> ModelConfig:
    return config.model if judge == "self" else judge  # type: ignore[return-value]


def judge_name(model: ModelConfig) -> str:
    """How tables name a judge: the upstream name of a shipped model, else its id."""
    from selfdebug.generate.model_specs import MODELS

    return MODELS[model.id].upstream if model.id in MODELS else model.id


def judge_slug(name: str) -> str:
    """A judge's name as a file stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "judge"


def run_explanations(config: Config, run_dir: str | Path | None = None, *,
                     backends: Mapping[str, Any] | None = None, embedder: Any = None) -> dict[str, Any]:
    """Sample, judge, embed, summarise (module docstring); resumable. ``backends`` (judge name -> backend) and
    ``embedder`` replace the configured ones (tests inject doubles)."""
    from selfdebug.collect.common import open_backend
    from selfdebug.explanations.analysis import summarise, write_summary

    ex = config.explanations
    out = explanations_dir(config, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    models = resolve_models(config)
    sample = draw_sample(models, ex.n_problems, ex.seed, benchmarks=ex.benchmarks, round_=ex.round)
    if not sample.items:
        raise ValueError(f"explanations: no problem of {', '.join(ex.benchmarks)} has an Explain + Refine attempt at "
                         f"round {ex.round} for every model ({', '.join(models)}): nothing to judge")
    # the report names folders as the profile does (repository-relative), so a committed copy is the same anywhere
    sample.report["models"] = {m: str(_relative(p)) for m, p in models.items()}
    write_sample(sample, out)
    ratable = sample.ratable
    log.info("explanations: %d items (%d problems x %d models), %d with an explanation; judges: %s",
             len(sample.items), len(sample.report["problems"]), len(models), len(ratable),
             ", ".join(judge_name(judge_model(j, config)) for j in ex.judges))
    cache = JsonlLog(out / "generations.jsonl", drop_in_memory=TOKEN_FIELDS)
    params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=ex.max_new_tokens)
    judgements: list[dict[str, Any]] = []
    failures = []
    for judge in ex.judges:
        mcfg = judge_model(judge, config)
        name = judge_name(mcfg)
        engine, owned = open_backend(mcfg, (backends or {}).get(name))
        try:
            runner = GenerationRunner(backend=engine, cache=cache, model_tag=model_tag(mcfg.id, mcfg.chat_format, engine),
                                      chunk_size=max(8, mcfg.batch_size), seed=config.seed, log_name=__name__)
            reqs = [Request(f"judge/{it['item_id']}", judge_chat(it, ex.reply_prefix), params) for it in ratable]
            replies = []
            with tqdm(total=len(reqs), desc=f"judge {name}", unit="item") as bar:
                for start in range(0, len(reqs), runner.chunk_size):
                    replies += runner.run(reqs[start:start + runner.chunk_size], f"judge {name}")
                    bar.update(min(runner.chunk_size, len(reqs) - start))
        finally:
            if owned and hasattr(engine, "close"):
                engine.close()
        rows = []
        for it, got in zip(ratable, replies, strict=True):
            reply = ex.reply_prefix + got[0]["text"]
            j = parse_judgement(reply)
            rows.append({"item_id": it["item_id"], "judge": name, **j.scores, "reply": reply, "error": j.error,
                         "finish_reason": got[0].get("finish_reason")})
        judgements += rows
        write_jsonl(out / "scores" / f"{judge_slug(name)}.jsonl",
                    [{k: r[k] for k in ("item_id", "judge", "correctness", "helpfulness")} for r in rows if not r["error"]])
        unparsed = [r for r in rows if r["error"]]
        share = len(unparsed) / len(rows) if rows else 0.0
        log.info("explanations: judge %s scored %d of %d items (%d replies gave no score)", name,
                 len(rows) - len(unparsed), len(rows), len(unparsed))
        if share > ex.max_unparsed_share:
            failures.append(f"judge {name}: {len(unparsed)} of {len(rows)} replies gave no score (more than "
                            f"explanations.max_unparsed_share={ex.max_unparsed_share}); first: "
                            f"{unparsed[0]['error']} in {unparsed[0]['reply'][:200]!r}")
    write_jsonl(out / "judgements.jsonl", judgements)
    write_jsonl(out / "proxy.jsonl", proxy_scores(sample.items, models, ex.benchmarks, ex.embedder, embedder))
    summary = summarise(out, n_boot=config.evaluate.bootstrap, ci=config.evaluate.ci, seed=config.seed)
    write_summary(summary, out)
    if failures:
        raise JudgeError("; ".join(failures) + f" (every reply is in {out / 'judgements.jsonl'})")
    return summary


def verified_explanations(models: Mapping[str, Path], benchmarks: list[str]) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(benchmark, task) -> (model, attempt id, explanation) of every Explain + Refine attempt whose refinement
    passed, in every model's records."""
    out: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for model, folder in models.items():
        for bench, rows in load_records(folder, benchmarks).items():
            for r in rows:
                text = (r.get("explanation") or "").strip()
                if r.get("chain") == CHAIN and r.get("passed") and text:
                    attempt = r.get("attempt_id") or f"{bench}/{r['task_id']}/{r['chain']}/r{r['round']}/s{r['sample']}"
                    out.setdefault((bench, r["task_id"]), []).append((model, attempt, text))
    return out


def proxy_scores(items: list[dict[str, Any]], models: Mapping[str, Path], benchmarks: list[str], embedder_name: str,
                 embedder: Any = None) -> list[dict[str, Any]]:
    """Per item with an explanation: its mean similarity to the problem's verified explanations (its own
    attempt left out), and how many there were; ``similarity`` None without any. Nothing with ``none``."""
    if embedder is None and embedder_name == "none":
        return []
    from selfdebug.rl.scores import explanation_similarity, load_embedder

    embedder = embedder or load_embedder(embedder_name)
    verified = verified_explanations(models, benchmarks)
    rows = []
    for it in tqdm([it for it in items if not it["empty"]], desc="proxy: similarity to verified explanations",
                   unit="item"):
        refs = [text for model, attempt, text in verified.get((it["benchmark"], it["task_id"]), [])
                if (model, attempt) != (it["model"], it["attempt_id"])]
        rows.append({"item_id": it["item_id"], "n_references": len(refs),
                     "similarity": explanation_similarity(it["explanation"], refs, embedder)})
    return rows
