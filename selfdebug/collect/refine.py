"""Stage 2 (notebook 02): a teacher explains and refines every unique wrong solution.

For each wrong solution (a sandbox failure is the harness's, not the model's, and is left out), each
teacher of ``collect.teachers`` and each instruction format of ``collect.modes`` ("Refine": code only;
"Explain + Refine": explanation, then code), ``n_refinements`` replies at ``refine_temperature``, in the
paper's conversation shape (``refine_chat``: the wrong code is the assistant's first answer, the feedback
is the next user turn). ``self`` is the model that sampled the wrong solution (self-bootstrap). With
``collect.hindsight`` the teacher also sees the correct sample of the problem closest to the wrong one
(STaR's rationalization): such records are labelled, and their training chat leaves the hint out.

A teacher endpoint that errors or times out (after the backend's own retries) costs only its block: the
block is retried request by request, a request that still fails is recorded with its error, and after
``MAX_CONSECUTIVE_FAILURES`` failed requests in a row the teacher is given up for this invocation. Replies
already logged are never lost; the stage is marked done only without errors, so a rerun retries exactly
the failed requests. Outputs in ``<collect>/refine/``: ``attempts.jsonl`` (one row per wrong solution,
teacher, mode and hindsight flag, with the teacher's raw replies), ``summary.json``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from selfdebug.collect.codes import closest
from selfdebug.collect.common import (
    Progress,
    collect_dir,
    finished,
    mark_done,
    open_backend,
    sample_models,
    stage_hash,
    teacher_label,
)
from selfdebug.config import Config, ModelConfig
from selfdebug.generate.base import Chat, SamplingParams
from selfdebug.generate.chat import with_prefix
from selfdebug.generate.runner import TOKEN_FIELDS, GenerationRunner, Request, model_tag
from selfdebug.io import JsonlLog, atomic_write_json, read_jsonl, sha256_file, write_jsonl
from selfdebug.problems.base import Problem
from selfdebug.prompts import EXPLAIN_REFINE_ASK, FENCE, refine_chat

log = logging.getLogger(__name__)
OUTPUTS = ["attempts.jsonl", "summary.json"]
MAX_CONSECUTIVE_FAILURES = 3
HINDSIGHT_HINT = (
    "For reference, here is a correct solution to the task:\n\n{fence}python\n{code}\n{fence}\n\n"
    "Use it only to find the bug: your explanation must be about the code above and must not mention "
    "the reference solution. "
)


def hindsight_chat(problem: Problem, wrong_code: str, feedback: str, correct_code: str) -> Chat:
    """The "Explain + Refine" chat with a correct solution shown before the ask (only the teacher sees it)."""
    chat = refine_chat(problem, wrong_code, feedback, "explain_refine")
    hint = HINDSIGHT_HINT.format(fence=FENCE, code=correct_code.strip())
    last = chat[-1]["content"]
    if not last.endswith(EXPLAIN_REFINE_ASK):
        raise AssertionError("refine_chat's last turn no longer ends with the Explain + Refine ask")
    return [*chat[:-1], {"role": "user", "content": last[: -len(EXPLAIN_REFINE_ASK)] + hint + EXPLAIN_REFINE_ASK}]


def load_sample_outputs(sample_dir: Path) -> tuple[dict[str, Problem], list[dict[str, Any]]]:
    problems = {}
    for row in read_jsonl(sample_dir / "problems.jsonl"):
        row.pop("source")
        problems[row["task_id"]] = Problem.from_dict(row)
    return problems, list(read_jsonl(sample_dir / "solutions.jsonl"))


def _teachers(config: Config) -> list[tuple[str, ModelConfig | None]]:
    """(label, model) per teacher; ``self`` has no model of its own (each wrong solution's sampler answers)."""
    return [(teacher_label(t), None if isinstance(t, str) else t) for t in config.collect.teachers]


def _hash(config: Config, sample_dir: Path) -> str:
    co = config.collect
    return stage_hash({
        "stage": "refine", "seed": config.seed, "teachers": co.teachers, "models": sample_models(config),
        "modes": co.modes, "n_refinements": co.n_refinements, "refine_temperature": co.refine_temperature,
        "top_p": co.top_p, "refine_max_new_tokens": co.refine_max_new_tokens, "hindsight": co.hindsight,
        **({"max_wrong_per_problem": co.max_wrong_per_problem} if co.max_wrong_per_problem is not None else {}),
        **({"explanation_prefix": co.explanation_prefix} if co.explanation_prefix else {}),
        **({"prefix_one_pass": True} if co.explanation_prefix and co.prefix_one_pass else {}),
        "solutions": sha256_file(sample_dir / "solutions.jsonl"),
    })


def plan_attempts(config: Config, problems: dict[str, Problem], solutions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (wrong solution, teacher, mode[, hindsight]) with the chats, in a stable order."""
    co = config.collect
    correct: dict[str, list[tuple[str, str]]] = {}
    for s in solutions:
        if s["passed"]:
            correct.setdefault(s["problem_id"], []).append((s["solution_id"], s["code"]))
    rows = []
    for label, teacher in _teachers(config):
        planned: Counter[str] = Counter()  # wrong solutions of each problem asked of this teacher
        for s in solutions:
            if s["passed"] or s["status"] == "sandbox_error":
                continue
            if co.max_wrong_per_problem is not None and planned[s["problem_id"]] >= co.max_wrong_per_problem:
                continue  # the problem's first wrong solutions (in sampling order) are asked, the rest are not
            n_rows = len(rows)
            p = problems[s["problem_id"]]
            variants: list[tuple[str, bool]] = [(m, False) for m in co.modes]
            if co.hindsight:
                variants.append(("explain_refine", True))
            for mode, hind in variants:
                chat = refine_chat(p, s["code"], s["feedback"], mode)  # type: ignore[arg-type]
                hint = closest(s["code"], correct.get(s["problem_id"], [])) if hind else None
                if hind and hint is None:
                    continue  # no correct sample of this problem to show
                rows.append({
                    "record_id": f"{s['solution_id']}/{label}/{mode}" + ("/hindsight" if hind else ""),
                    "solution_id": s["solution_id"], "source": s["source"], "problem_id": s["problem_id"],
                    "teacher": label, "teacher_model": teacher.id if teacher else s["models"][0],
                    "mode": mode, "hindsight": hind, "hint_solution_id": hint[0] if hint else None,
                    "chat": chat, "teacher_chat": hindsight_chat(p, s["code"], s["feedback"], hint[1]) if hint else chat,
                })
            planned[s["problem_id"]] += len(rows) > n_rows
    return rows


def run_refine(config: Config, run_dir: str | Path | None = None, backend: Any = None,
               sandbox: Any = None) -> dict[str, Any]:
    """Run stage 2 (after stage 1, which runs first when it is not done). ``backend`` (tests) answers for
    every teacher (and the sampling models, when stage 1 runs). Resumable; a finished stage with an unchanged config and input returns at once."""
    from selfdebug.collect.sample import run_sample

    root = collect_dir(config, run_dir)
    run_sample(config, root, backend=backend, sandbox=sandbox)
    out = root / "refine"
    key = _hash(config, root / "sample")
    if (done := finished(out, key, OUTPUTS)) is not None:
        log.info("refine: already done with this config and input (%s); nothing to do", out)
        return {**done, "skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    t_start = time.perf_counter()
    problems, solutions = load_sample_outputs(root / "sample")
    attempts = plan_attempts(config, problems, solutions)
    cache = JsonlLog(out / "generations.jsonl", drop_in_memory=TOKEN_FIELDS)
    errors: dict[str, str] = {}
    stats: dict[str, Any] = {}
    models = {m.id: m for m in sample_models(config)}
    # one engine at a time: the rows each teacher model answers ("self": the sampler of each wrong solution)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in attempts:
        groups.setdefault((a["teacher"], a["teacher_model"]), []).append(a)
    teachers = dict(_teachers(config))
    for (label, model_id), rows in groups.items():
        mcfg = teachers[label] or models[model_id]
        engine, owned = open_backend(mcfg, backend)
        try:
            # one format at a time, each with its own counters: the cost of each (benchmarks compare them)
            for variant, part in _by_variant(rows).items():
                runner = GenerationRunner(backend=engine, cache=cache,
                                          model_tag=model_tag(mcfg.id, mcfg.chat_format, engine), seed=config.seed,
                                          chunk_size=max(config.collect.chunk_size, mcfg.batch_size),
                                          log_name=__name__)
                _ask(config, f"{label} ({model_id}), {variant}", part, runner, errors)
                stats[f"{label}|{model_id}|{variant}"] = dict(runner.stats)
        finally:
            if owned and hasattr(engine, "close"):
                engine.close()
    for a in attempts:
        a["teacher_error"] = errors.get(a["record_id"])
    write_jsonl(out / "attempts.jsonl", attempts)
    summary = {"stage": "refine", "attempts": len(attempts), "replies": sum(len(a["replies"]) for a in attempts),
               "teacher_errors": len(errors), "by_teacher_mode": dict(Counter(
                   f"{a['teacher']}/{variant_name(a)}" for a in attempts)),
               "generation": stats, "seconds": round(time.perf_counter() - t_start, 1), "complete": not errors}
    atomic_write_json(out / "summary.json", summary)
    if errors:
        log.warning("refine: %d of %d requests failed (first: %s); the stage is not marked done, so a rerun "
                    "retries them", len(errors), len(attempts), next(iter(errors.values()))[:300])
    else:
        mark_done(out, key, summary)
    return summary


def variant_name(row: dict[str, Any]) -> str:
    """``refine``, ``explain_refine`` or ``explain_refine/hindsight``: the format a record was asked in."""
    return row["mode"] + ("/hindsight" if row["hindsight"] else "")


def _by_variant(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(variant_name(r), []).append(r)
    return out


CODE_OPENING = f"\n\n{FENCE}python\n"
"""What the second prefix adds after the explanation: the block the refined code is written in."""
CLOSING_STOP = f"\n{FENCE}\n"
"""Where a one-pass prefixed reply stops: the closing fence of its first code block (an opening fence carries
a language tag; one without, ending its line, also stops it, and the code is then asked for separately)."""
_OPENING = re.compile(r"\n?[ \t]*" + re.escape(FENCE) + r"[A-Za-z0-9_+.-]*[ \t]*\n")


def split_reply(text: str, finish_reason: str | None) -> tuple[str, str, bool] | None:
    """A one-pass prefixed reply as (text before its first code block, the block's code, whether the token
    limit cut the code); None when the reply opened no code block, or wrote a fence before it (the explanation
    is then the text up to its first fence and the code is asked for separately, as in two passes)."""
    m = _OPENING.search(text)
    if m is None or FENCE in text[: m.start()]:
        # no block, or a fence inside the prose ("in a single ```python code block:"): cut there, as the two
        # passes do, and ask for the code
        return None
    code, closed = text[m.end():], False
    if FENCE in code:  # the block closed and the reply ended right there (no newline after the fence to stop at)
        code, closed = code[: code.index(FENCE)], True
    return text[: m.start()].rstrip(), code, not closed and finish_reason == "length"


def prefixed_reply(explanation: str, code: str, code_cut: bool) -> str:
    """One reply from a prefixed generation (or two): the explanation, then the code in its block (left open
    when the code was cut by the token limit, as a single reply cut there would be)."""
    return explanation + CODE_OPENING + code.rstrip("\n") + ("" if code_cut else f"\n{FENCE}")


class _Asker:
    """Blocks of requests to one teacher; a failed block is retried request by request, and after
    ``MAX_CONSECUTIVE_FAILURES`` failed requests in a row the teacher is given up (``None`` answers)."""

    def __init__(self, runner: GenerationRunner, desc: str) -> None:
        self.runner, self.desc = runner, desc
        self.failed_in_row, self.given_up = 0, False

    def __call__(self, reqs: list[Request], what: str) -> list[Any]:
        if self.given_up:
            return [None] * len(reqs)
        try:
            outs: list[Any] = self.runner.run(reqs, what)
            self.failed_in_row = 0
            return outs
        except Exception as exc:  # noqa: BLE001 - an endpoint's failure: retry request by request
            log.warning("refine: a teacher call failed (%s: %s); retrying its %d requests one by one",
                        type(exc).__name__, str(exc)[:200], len(reqs))
        outs = []
        for req in reqs:
            if self.given_up:
                outs.append(None)
                continue
            try:
                outs.append(self.runner.run([req], req.tag)[0])
                self.failed_in_row = 0
            except Exception as one:  # noqa: BLE001
                outs.append(one)
                self.failed_in_row += 1
                self.given_up = self.failed_in_row >= MAX_CONSECUTIVE_FAILURES
                if self.given_up:
                    log.warning("refine: teacher %s failed %d requests in a row: giving up on it for this "
                                "invocation (a rerun continues)", self.desc, self.failed_in_row)
        return outs


def _failed(got: Any) -> str | None:
    if got is None:
        return "not asked: the teacher was given up after repeated failures"
    return f"{type(got).__name__}: {got}" if isinstance(got, BaseException) else None


def _ask(config: Config, desc: str, rows: list[dict[str, Any]], runner: GenerationRunner,
         errors: dict[str, str]) -> None:
    """Ask the teacher for each row's replies, block by block; fill ``row["replies"]``. With
    ``collect.explanation_prefix`` an "Explain + Refine" reply is two generations: the explanation (the
    prefix continued up to the first code fence), then the code (the explanation continued after an opened
    code block, up to its closing fence)."""
    co = config.collect
    params = SamplingParams(n=co.n_refinements, temperature=co.refine_temperature, top_p=co.top_p,
                            max_new_tokens=co.refine_max_new_tokens)
    prefix = co.explanation_prefix
    first_stop = (CLOSING_STOP,) if co.prefix_one_pass else (FENCE,)
    per_block = co.chunk_size
    ask = _Asker(runner, desc)
    progress = Progress(f"refine: teacher {desc}", len(rows), "requests", logger=__name__)
    n_replies = n_second = 0
    with tqdm(total=len(rows), desc=f"refine: {desc}", unit="request") as bar:
        for start in range(0, len(rows), per_block):
            block = rows[start : start + per_block]
            two_phase = [bool(prefix) and r["mode"] == "explain_refine" for r in block]
            reqs = [Request(f"collect/{r['record_id']}",
                            with_prefix(r["teacher_chat"], prefix) if tp else r["teacher_chat"],
                            replace(params, stop=first_stop) if tp else params) for r, tp in zip(block, two_phase, strict=True)]
            outs = ask(reqs, f"refine {start + 1}-{start + len(block)}")
            # The code of each prefixed explanation. One pass: the block the reply opened itself, up to its
            # closing fence; a reply that opened none (and every reply, with prefix_one_pass off) gets a
            # second request, the explanation continued in an opened block, which evaluates its prompt again.
            code_reqs, where = [], []
            code_of: dict[tuple[int, int], tuple[str, Any]] = {}
            for i, (r, got, tp) in enumerate(zip(block, outs, two_phase, strict=True)):
                if tp and _failed(got) is None:
                    for j, c in enumerate(got):
                        parts = split_reply(c["text"], c.get("finish_reason")) if co.prefix_one_pass else None
                        if parts is not None:
                            before, code, cut = parts
                            code_of[(i, j)] = ((prefix + before).rstrip(),
                                               {"text": code, "key": c.get("key"), "completion_tokens": 0,
                                                "finish_reason": "length" if cut else "stop"})
                            continue
                        explanation = (prefix + c["text"].split(FENCE, 1)[0]).rstrip()
                        code_reqs.append(Request(f"collect/{r['record_id']}/code/s{j}",
                                                 with_prefix(r["teacher_chat"], explanation + CODE_OPENING),
                                                 replace(params, n=1, stop=(FENCE,))))
                        where.append((i, j, explanation))
            code_outs = ask(code_reqs, f"refine {start + 1}-{start + len(block)}: code") if code_reqs else []
            # a request's one completion, or its failure as it came
            code_of |= {(i, j): (expl, got if _failed(got) else got[0])
                        for (i, j, expl), got in zip(where, code_outs, strict=True)}
            n_second += len(code_reqs)
            for i, (row, got) in enumerate(zip(block, outs, strict=True)):
                error = _failed(got) or next(filter(None, (_failed(g) for (a, _), (_, g) in code_of.items() if a == i)),
                                             None)
                if error:
                    errors[row["record_id"]] = error
                    row["replies"] = []
                    continue
                row["explanation_prefix"] = prefix if two_phase[i] else ""
                row["replies"] = []
                for j, c in enumerate(got):
                    reply = {"sample": j, "seed": c.get("seed"), "generation_key": c.get("key"),
                             "completion": c["text"], "finish_reason": c.get("finish_reason"),
                             "completion_tokens": c.get("completion_tokens")}
                    if two_phase[i]:
                        expl, code = code_of[(i, j)]
                        cut = code.get("finish_reason") == "length"
                        reply.update(completion=prefixed_reply(expl, code["text"], cut),
                                     code_generation_key=code.get("key"), finish_reason=code.get("finish_reason"),
                                     completion_tokens=(c.get("completion_tokens") or 0)
                                     + (code.get("completion_tokens") or 0))
                    row["replies"].append(reply)
                n_replies += len(got)
            bar.update(len(block))
            second = f", {n_second} code continuations" if prefix else ""
            progress.update(start + len(block), f"{n_replies} replies{second}, {len(errors)} failed requests",
                            n_replies, "replies")
