"""RL prompts from a collection folder (``runs/<profile>/collect/data/refinements.jsonl``, the format of
``selfdebug.collect.dataset``): one prompt per (wrong solution, instruction format).

A wrong solution has one record per teacher, format and hindsight flag; the prompt the policy answers is the
same for all of them (the student never sees the teacher, nor the hindsight hint), so they are pooled by
``solution_id``:

- the chat is the training chat SFT trains on (``selfdebug.sft.examples``): a record's own ``chat`` where one
  of the solution's records was asked in that format (for a hindsight record that is the hint-free chat, never
  ``teacher_chat``), else ``refine_chat(problem, wrong_code, feedback, fmt)``;
- the references are pooled over all of the solution's records (LeDex §2.3: R_c^w and E_c^w are per wrong
  solution): every distinct verified refinement (S_cb), every distinct non-empty explanation of a verified
  pair (S_ex; the filter already blanked the explanations it rejected);
- a solution without any verified refinement is kept: its rewards follow the no-reference rule of
  ``selfdebug.rl.rewards`` (S_cb := S_ut, R(e) = 0).

Prompts come in a stable order (first appearance of the solution in the file, then ``formats`` order) with a
stable id ``<solution_id>/<format>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdebug.collect.dataset import REFINEMENTS
from selfdebug.generate.base import Chat
from selfdebug.problems.base import Problem
from selfdebug.prompts import PROMPT_TYPES, refine_chat
from selfdebug.sft.examples import ExampleError

REQUIRED = ("solution_id", "source", "problem", "wrong_code", "feedback", "mode", "chat", "verified")


class PromptError(ExampleError):
    """A refinements row that cannot give RL prompts: names the file, the line and what is wrong."""


@dataclass
class RlPrompt:
    prompt_id: str
    """``<solution_id>/<format>``: stable across runs."""
    solution_id: str
    source: str
    fmt: str
    """``refine`` or ``explain_refine``: how the reply is read (a "Refine" reply has no explanation)."""
    chat: Chat
    problem: Problem
    """With its tests: the sandbox runs the policy's refinement against them (S_ut)."""
    refinements: list[str] = field(default_factory=list)
    """Verified refinements of this wrong solution (CodeBLEU references)."""
    explanations: list[str] = field(default_factory=list)
    """Explanations of its verified pairs (embedding-similarity references)."""
    record_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"prompt_id": self.prompt_id, "solution_id": self.solution_id, "source": self.source,
                "format": self.fmt, "problem_id": self.problem.task_id, "n_refinements": len(self.refinements),
                "n_explanations": len(self.explanations), "record_ids": self.record_ids}


def _add(seq: list[str], text: str) -> None:
    if text.strip() and text not in seq:
        seq.append(text)


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number in the file, parsed row), blank lines skipped."""
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise PromptError(f"{path}, line {n}: not valid JSON ({e})") from None


def load_prompts(collection: str | Path, formats: Sequence[str] = PROMPT_TYPES,
                 sources: Sequence[str] | None = None, limit: int | None = None) -> list[RlPrompt]:
    """The RL prompts of a collection folder, for records of ``sources`` (None: all), the first ``limit``
    (None: all). Raises ``PromptError`` on a malformed row, ``FileNotFoundError`` without the file."""
    unknown = set(formats) - set(PROMPT_TYPES)
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {PROMPT_TYPES}, got {list(formats)}")
    path = Path(collection) / REFINEMENTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no refinement records; run the collection first (notebooks 01-03, "
                                "`make collect`)")
    pooled: dict[str, dict[str, Any]] = {}
    for n, row in _rows(path):
        where = f"{path}, line {n} ({row.get('record_id') if isinstance(row, dict) else '?'})"
        if not isinstance(row, dict):
            raise PromptError(f"{where}: not a JSON object")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise PromptError(f"{where}: not a refinement record, missing {missing}")
        try:
            problem = Problem.from_dict(json.loads(row["problem"]))
        except (TypeError, ValueError, KeyError) as e:
            raise PromptError(f"{where}: unreadable problem ({type(e).__name__}: {e})") from None
        chat, mode, pairs = row["chat"], row["mode"], row["verified"]
        if mode not in PROMPT_TYPES:
            raise PromptError(f"{where}: mode {mode!r} is not one of {PROMPT_TYPES}")
        if not (isinstance(chat, list) and chat and isinstance(chat[-1], dict) and chat[-1].get("role") == "user"):
            raise PromptError(f"{where}: chat must be a list of turns ending in the user's feedback turn")
        if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
            raise PromptError(f"{where}: verified must be a list of pairs")
        if not isinstance(row["wrong_code"], str) or not isinstance(row["feedback"], str):
            raise PromptError(f"{where}: wrong_code and feedback must be strings")
        if sources is not None and row["source"] not in sources:
            continue
        sid = row["solution_id"]
        entry = pooled.setdefault(sid, {"row": row, "problem": problem, "chats": {}, "refinements": [],
                                        "explanations": [], "records": [], "where": where})
        if entry["row"]["wrong_code"] != row["wrong_code"] or entry["problem"].task_id != problem.task_id:
            raise PromptError(f"{where}: solution {sid} has another wrong code or problem than at "
                              f"{entry['where']}")
        entry["chats"].setdefault(mode, chat)
        entry["records"].append(row.get("record_id", f"line {n}"))
        for j, pair in enumerate(pairs):
            code = pair.get("refinement") or ""
            if not isinstance(code, str) or not code.strip():
                raise PromptError(f"{where}: verified pair {j} has no refinement")
            _add(entry["refinements"], code)
            _add(entry["explanations"], pair.get("explanation") or "")
    out: list[RlPrompt] = []
    for sid, e in pooled.items():
        row = e["row"]
        for fmt in formats:
            chat = e["chats"].get(fmt) or refine_chat(e["problem"], row["wrong_code"], row["feedback"], fmt)
            out.append(RlPrompt(prompt_id=f"{sid}/{fmt}", solution_id=sid, source=row["source"], fmt=fmt,
                                chat=chat, problem=e["problem"], refinements=list(e["refinements"]),
                                explanations=list(e["explanations"]), record_ids=list(e["records"])))
    return out if limit is None else out[:limit]
