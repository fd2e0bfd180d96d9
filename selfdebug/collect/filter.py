"""Stage 3 (notebook 03): run every refinement, keep what the tests verify, write the dataset and Table 1.

A refinement is correct when it passes all tests; its explanation counts as correct with it (§2.1). Each
record keeps its verified and its failed (explanation, refinement) pairs with their pass fractions (RL's
rewards need both), after dropping duplicate pairs (same explanation, same normalised code). Outputs in the
collection folder: ``data/refinements.jsonl``, ``data/solutions.jsonl``, ``README.md`` (the dataset card),
``table1_collection.{csv,md}``, ``table1_sources.png``, ``results.json`` (compact: Table 1 rows and counts),
the train/evaluation overlap report (``overlap.md``, ``overlap.csv``, also in ``results.json``) and
``filter/summary.json``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.collect.codes import code_key
from selfdebug.collect.common import (
    CachedExecutor,
    LazySandbox,
    Progress,
    collect_dir,
    finished,
    mark_done,
    sample_models,
    stage_hash,
    teacher_label,
)
from selfdebug.collect.dataset import REFINEMENTS, SOLUTIONS, solution_record, write_card
from selfdebug.collect.problems import SOURCE_LICENSES
from selfdebug.collect.refine import HINDSIGHT_HINT, load_sample_outputs
from selfdebug.collect.table1 import table1_frame, table1_rows, write_table1
from selfdebug.config import Config
from selfdebug.io import atomic_write_json, read_jsonl, sha256_file, write_jsonl
from selfdebug.problems.base import Problem
from selfdebug.prompts import EXPLAIN_REFINE_ASK, FEEDBACK_HEADER, format_reply, parse_reply
from selfdebug.sanitize import sanitize_for

log = logging.getLogger(__name__)
OUTPUTS = [f"../{REFINEMENTS}", f"../{SOLUTIONS}", "../README.md", "../results.json", "summary.json"]


def _hash(config: Config, root: Path) -> str:
    return stage_hash({"stage": "filter", "sandbox": config.sandbox, "attempts": sha256_file(root / "refine" / "attempts.jsonl"),
                       "solutions": sha256_file(root / "sample" / "solutions.jsonl")})


def add_overlap(config: Config, root: Path) -> str:
    """Check the training sources against every evaluation benchmark (``overlap.check_overlap``) once per
    collection: the report goes to ``overlap.md`` / ``overlap.csv`` and into ``results.json`` (so Table 1's
    rebuild carries it), and Table 1 is rewritten. A benchmark file that cannot be read leaves the report
    saying so, with the error, rather than failing a finished collection."""
    from selfdebug.collect.overlap import check_overlap
    from selfdebug.io import atomic_write_text

    path = root / "results.json"
    results = json.loads(path.read_text())
    if "overlap_md" not in results:
        try:
            overlaps, md = check_overlap(config)
            atomic_write_text(root / "overlap.csv", overlaps.to_csv(index=False))
        except Exception as exc:  # noqa: BLE001 - reported in the artifacts and the log
            md = f"Overlap with the evaluation benchmarks not checked: {type(exc).__name__}: {exc}\n"
            log.warning("filter: %s", md.strip())
        atomic_write_text(root / "overlap.md", md)
        results["overlap_md"] = md
        atomic_write_json(path, results)
    write_table1(results, root)
    return results["overlap_md"]


def parse_refinement(text: str, problem: Problem, mode: str) -> tuple[str, str]:
    """(explanation, code as it runs) of a teacher's reply; "Refine" replies carry no explanation."""
    parsed = parse_reply(text, problem.entry_point)
    parsed = replace(parsed, code=sanitize_for(problem, parsed.code))
    return (parsed.explanation if mode == "explain_refine" else ""), parsed.code


_PROMPT_SENTENCES = tuple(dict.fromkeys(
    sentence.strip() for template in (FEEDBACK_HEADER, EXPLAIN_REFINE_ASK, HINDSIGHT_HINT)
    for sentence in re.split(r"(?<=[.:])\s+|\n", re.sub(r"\{\w+\}", "\n", template))
    if len(sentence.strip()) >= 25 and not sentence.startswith("The code above is not correct.")))
"""Sentences of our own prompts (feedback turn, ask, hindsight hint) that no explanation of a bug contains."""
_MENTIONS_HINT = re.compile(r"\breference\b|\bcorrect (solution|code) (provided|given|above|shown)\b", re.I)
MIN_EXPLANATION_WORDS = 3


def explanation_problem(explanation: str, prefix: str = "", hindsight: bool = False) -> str | None:
    """Why an "Explain + Refine" explanation is not one (None when it is): ``empty`` (nothing beyond the reply
    prefix), ``copies_prompt`` (it repeats our feedback turn or ask: a small teacher often echoes the last user
    turn instead of explaining), ``mentions_hint`` (hindsight: it talks about the correct solution it was shown,
    which the student, trained on it, never sees). Its verified refinement is kept, without the explanation."""
    body = explanation.strip()
    if prefix and body.startswith(prefix.strip()):
        body = body[len(prefix.strip()):]
    if len(re.findall(r"\w+", body)) < MIN_EXPLANATION_WORDS:
        return "empty"
    if any(s in explanation for s in _PROMPT_SENTENCES):
        return "copies_prompt"
    if hindsight and _MENTIONS_HINT.search(explanation):
        return "mentions_hint"
    return None


def run_filter(config: Config, run_dir: str | Path | None = None, backend: Any = None,
               sandbox: Any = None) -> dict[str, Any]:
    """Run stage 3 (after stages 1 and 2, which run first when they are not done); resumable."""
    from selfdebug.collect.refine import run_refine

    root = collect_dir(config, run_dir)
    upstream = run_refine(config, root, backend=backend, sandbox=sandbox)
    out = root / "filter"
    key = _hash(config, root)
    if (done := finished(out, key, OUTPUTS)) is not None:
        log.info("filter: already done with this input (%s); nothing to do", root)
        add_overlap(config, root)
        return {**done, "skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    t_start = time.perf_counter()
    problems, solutions = load_sample_outputs(root / "sample")
    attempts = list(read_jsonl(root / "refine" / "attempts.jsonl"))
    by_solution = {s["solution_id"]: s for s in solutions}
    execute = CachedExecutor(root / "executions.jsonl", LazySandbox(config, sandbox))
    records: list[dict[str, Any]] = []
    counts = {"replies": 0, "reply_errors": 0, "duplicates": 0, "unformattable": 0,
              "verified_without_explanation": 0, "explained_pairs": 0,
              **{f"explanations_rejected_{why}": 0 for why in ("empty", "copies_prompt", "mentions_hint")}}
    progress = Progress("filter", len(attempts), "records", logger=__name__)
    block_size = max(1, config.collect.chunk_size)
    verified_so_far = 0
    try:
        with tqdm(total=len(attempts), desc="filter: verify refinements", unit="record") as bar:
            for start in range(0, len(attempts), block_size):
                block = attempts[start : start + block_size]
                for rec in _verify_block(block, problems, by_solution, execute, counts):
                    records.append(rec)
                    verified_so_far += rec["n_verified"]
                bar.update(len(block))
                progress.update(start + len(block), f"{verified_so_far} verified pairs so far, {counts['replies']} "
                                "replies run", counts["replies"], "replies")
    finally:
        execute.sandbox.close()
    correct = [solution_record(s, problems[s["problem_id"]]) for s in solutions if s["passed"]]
    write_jsonl(root / REFINEMENTS, records)
    write_jsonl(root / SOLUTIONS, correct)
    sample_summary = json.loads((root / "sample" / "summary.json").read_text())
    n_problems = {src: c.get("problems", 0) for src, c in sample_summary["sources"].items()}
    rows = table1_rows(solutions, records, n_problems)
    totals = {"refinements": len(records), "wrong_solutions": len({r["solution_id"] for r in records}),
              "verified_pairs": sum(r["n_verified"] for r in records), "failed_pairs": sum(r["n_failed"] for r in records),
              "solutions": len(correct), "teacher_errors": sum(r["teacher_error"] is not None for r in records),
              "malformed_rows": sample_summary["rejected"].get("malformed_row", 0),
              "empty_initial_replies": sample_summary["rejected"].get("empty_reply", 0), **counts}
    note = (f"{totals['teacher_errors']} records got no teacher replies (endpoint errors; a rerun retries them)."
            if totals["teacher_errors"] else "")
    results = {"profile": config.profile, "table1": rows, "counts": totals, "note": note,
               "seconds": {"sample": sample_summary.get("seconds"), "refine": upstream.get("seconds"),
                           "filter": round(time.perf_counter() - t_start, 1)}}
    atomic_write_json(root / "results.json", results)
    add_overlap(config, root)
    sources = sorted({s["source"] for s in solutions} | set(config.collect.sources))
    write_card(root / "README.md", config=config, counts=totals, table_md=table1_frame(rows).to_markdown(index=False),
               licenses={s: SOURCE_LICENSES[s] for s in sources}, models=[m.id for m in sample_models(config)],
               teachers=[teacher_label(t) for t in config.collect.teachers])
    summary = {"stage": "filter", **totals, "execution": dict(execute.stats),
               "seconds": round(time.perf_counter() - t_start, 1), "complete": upstream.get("complete", True)}
    atomic_write_json(out / "summary.json", summary)
    if summary["complete"]:
        mark_done(out, key, summary)
    return summary


def _verify_block(block: list[dict[str, Any]], problems: dict[str, Problem], by_solution: dict[str, dict[str, Any]],
                  execute: CachedExecutor, counts: dict[str, int]) -> list[dict[str, Any]]:
    """The dataset records of a block of attempts: every reply parsed, deduplicated and run."""
    runs: list[tuple[int, dict[str, Any]]] = []  # (attempt index in block, pair) to execute
    staged: list[dict[str, Any]] = []
    for i, a in enumerate(block):
        p = problems[a["problem_id"]]
        seen: set[tuple[str, str]] = set()
        stats = {"n_duplicates": 0, "reply_errors": 0}
        for reply in a["replies"]:
            counts["replies"] += 1
            explanation, code = parse_refinement(reply["completion"], p, a["mode"])
            if not code.strip():
                stats["reply_errors"] += 1
                counts["reply_errors"] += 1
                continue
            rejected = None
            if a["mode"] == "explain_refine" and explanation.strip():
                rejected = explanation_problem(explanation, a.get("explanation_prefix", ""), a["hindsight"])
                if rejected:
                    explanation = ""  # the refinement may still be verified: a "Refine" example
            dedup = (explanation.strip(), code_key(code))
            if dedup in seen:
                stats["n_duplicates"] += 1
                counts["duplicates"] += 1
                continue
            seen.add(dedup)
            runs.append((i, {"explanation": explanation.strip(), "refinement": code, "sample": reply["sample"],
                             "seed": reply["seed"], "generation_key": reply["generation_key"],
                             "completion": reply["completion"], "finish_reason": reply["finish_reason"],
                             **({"explanation_rejected": rejected} if rejected else {})}))
        staged.append(stats)
    results = execute([(problems[block[i]["problem_id"]].program(pair["refinement"]), problems[block[i]["problem_id"]])
                       for i, pair in runs])
    verified: list[list[dict[str, Any]]] = [[] for _ in block]
    failed: list[list[dict[str, Any]]] = [[] for _ in block]
    for (i, pair), res in zip(runs, results, strict=True):
        total = res.get("n_total") or 0
        pair.update(status=res["status"], feedback=res.get("feedback", ""),
                    pass_fraction=(res.get("n_passed") or 0) / total if total else 0.0)
        if res["passed"]:
            try:
                format_reply(pair["explanation"], pair["refinement"])  # the training target must be writable
            except ValueError:
                counts["unformattable"] += 1
                continue
            if block[i]["mode"] == "explain_refine":
                counts["verified_without_explanation"] += not pair["explanation"]
                counts["explained_pairs"] += bool(pair["explanation"])
                if why := pair.get("explanation_rejected"):
                    counts[f"explanations_rejected_{why}"] += 1
            verified[i].append(pair)
        else:
            failed[i].append(pair)
    out = []
    for i, a in enumerate(block):
        s = by_solution[a["solution_id"]]
        total = s.get("n_total") or 0
        out.append({
            "record_id": a["record_id"], "source": a["source"], "problem_id": a["problem_id"],
            "problem": json.dumps(problems[a["problem_id"]].to_dict(), sort_keys=True, default=str),
            "solution_id": a["solution_id"], "models": s["models"], "wrong_code": s["code"], "status": s["status"],
            "feedback": s["feedback"], "wrong_pass_fraction": (s.get("n_passed") or 0) / total if total else 0.0,
            "teacher": a["teacher"], "teacher_model": a["teacher_model"], "mode": a["mode"],
            "hindsight": a["hindsight"], "hint_solution_id": a["hint_solution_id"], "chat": a["chat"],
            "teacher_chat": a["teacher_chat"], "verified": verified[i], "failed": failed[i],
            "n_verified": len(verified[i]), "n_failed": len(failed[i]), **staged[i],
            "teacher_error": a.get("teacher_error"),
        })
    return out
