"""SFT examples from a collected dataset (paper §2.2), as prompt-completion pairs.

Two kinds, as the paper trains on both:

- ``code``: the task (``initial_chat``), answered by a correct initial solution (``data/solutions.jsonl``);
- ``refine`` / ``explain_refine``: the refinement conversation of a verified pair (``data/refinements.jsonl``):
  the task, the wrong solution as the assistant's first answer, the feedback turn in the given instruction
  format, answered by the refinement alone ("Refine") or by the explanation and then the refinement ("Explain
  + Refine"). Each verified pair gives an example in every format of ``formats`` (the paper's augmentation:
  both instruction types from one pair); a "Refine" example of a pair whose record asked for code only has no
  explanation to give, so it gives the "Refine" example alone.

The prompt is every turn up to the final assistant turn, the completion that turn alone: the loss is computed
on the completion only (``tokenize.tokenize_example``), never on the task or the wrong code, although the
wrong code is an assistant turn. A hindsight record's prompt is its training ``chat``, never the teacher's
chat with the correct solution in it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypedDict

from selfdebug.collect.dataset import REFINEMENTS, SOLUTIONS
from selfdebug.generate.base import Chat
from selfdebug.io import read_jsonl
from selfdebug.problems.base import Problem
from selfdebug.prompts import PROMPT_TYPES, format_reply, refine_chat

KINDS = ("code", *PROMPT_TYPES)
"""Example kinds: code generation, then the paper's two instruction formats."""


class Example(TypedDict):
    example_id: str
    kind: str
    source_id: str
    """The solution (``code``) or record and pair (refinements) it was built from."""
    prompt: Chat
    completion: Chat


class ExampleError(ValueError):
    """A dataset row that cannot become an example: names the file, the line and what is wrong."""


def _id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def code_examples(path: Path) -> list[Example]:
    out: list[Example] = []
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            chat, code = row["chat"], row["code"]
        except KeyError as e:
            raise ExampleError(f"{path}, line {n}: solution row without {e.args[0]!r}") from None
        if not isinstance(chat, list) or not chat or chat[-1].get("role") != "user" or not code.strip():
            raise ExampleError(f"{path}, line {n} ({row.get('solution_id')}): needs a chat ending in a user turn "
                               "and non-empty code")
        out.append({"example_id": _id("code", row["solution_id"]), "kind": "code", "source_id": row["solution_id"],
                    "prompt": chat, "completion": [{"role": "assistant", "content": format_reply("", code)}]})
    return out


def refinement_examples(path: Path, formats: tuple[str, ...] = PROMPT_TYPES) -> list[Example]:
    unknown = set(formats) - set(PROMPT_TYPES)
    if unknown:
        raise ValueError(f"formats must be among {PROMPT_TYPES}, got {sorted(unknown)}")
    out: list[Example] = []
    for n, row in enumerate(read_jsonl(path), 1):
        where = f"{path}, line {n} ({row.get('record_id')})"
        try:
            problem = Problem.from_dict(json.loads(row["problem"]))
            pairs, wrong, feedback, mode = row["verified"], row["wrong_code"], row["feedback"], row["mode"]
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ExampleError(f"{where}: not a refinement record ({type(e).__name__}: {e})") from None
        for j, pair in enumerate(pairs):
            explanation, code = pair.get("explanation") or "", pair.get("refinement") or ""
            if not code.strip():
                raise ExampleError(f"{where}: verified pair {j} has no refinement")
            for fmt in formats:
                if fmt == "explain_refine" and (mode != "explain_refine" or not explanation.strip()):
                    continue  # nothing to explain with: a "Refine" reply has no explanation
                # the record's own chat where it was asked in this format (hindsight: the hint-free chat)
                prompt = row["chat"] if fmt == mode else refine_chat(problem, wrong, feedback, fmt)  # type: ignore[arg-type]
                target = format_reply(explanation if fmt == "explain_refine" else "", code)
                out.append({"example_id": _id(fmt, row["record_id"], str(j)), "kind": fmt,
                            "source_id": f"{row['record_id']}#{j}", "prompt": prompt,
                            "completion": [{"role": "assistant", "content": target}]})
    return out


def build_examples(collection: str | Path, formats: tuple[str, ...] = PROMPT_TYPES, code_generation: bool = True,
                   refinement: bool = True) -> list[Example]:
    """Every example of a collection folder (``runs/<profile>/collect``), in a stable order: code
    generation first, then refinements; an ``example_id`` is stable across runs (kind, record, pair)."""
    root = Path(collection)
    missing = [f for f, on in ((SOLUTIONS, code_generation), (REFINEMENTS, refinement)) if on and not (root / f).exists()]
    if missing:
        raise FileNotFoundError(f"{root}: no {', '.join(missing)}; run the collection first (notebooks 01-03, "
                                "`make collect`)")
    out: list[Example] = []
    if code_generation:
        out += code_examples(root / SOLUTIONS)
    if refinement:
        out += refinement_examples(root / REFINEMENTS, formats)
    ids = [e["example_id"] for e in out]
    if len(set(ids)) != len(ids):
        raise ExampleError(f"{root}: duplicate examples (the same record and pair twice)")
    return out


def example_counts(examples: list[Example]) -> dict[str, Any]:
    counts = dict.fromkeys(KINDS, 0)
    for e in examples:
        counts[e["kind"]] += 1
    return {**counts, "total": len(examples)}
