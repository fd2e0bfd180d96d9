"""Instruction templates (initial, "Refine", "Explain + Refine") and parsing code/explanations from replies.

The paper's templates exist only as images; these are our own, modelled on its description (§2.2): the
wrong solution sits in the chat history as the assistant's first answer, then a user turn gives the
execution feedback and asks either for a refined solution ("Refine") or for an explanation of the bug
followed by the refinement ("Expl. + Refine", chain-of-thought style). Chats are rendered by
``selfdebug.generate.chat`` with the model's template, or the StarChat format for base models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from selfdebug.generate.base import Chat
from selfdebug.problems.base import Problem

PromptType = Literal["refine", "explain_refine"]
PROMPT_TYPES: tuple[PromptType, ...] = ("refine", "explain_refine")
PROMPT_LABELS = {"init": "Init.", "refine": "Refine", "explain_refine": "Expl.+Refine", "resample": "Resample"}

FENCE = "```"

INITIAL_COMPLETION = (
    "Complete the following Python function. Reply with the complete function (with any imports it "
    "needs) in a single ```python code block.\n\n```python\n{prompt}\n```"
)
INITIAL_FULL = "{prompt}\n\nReply with your Python solution in a single ```python code block."
FEEDBACK_HEADER = "The code above is not correct. Running it against the tests gave:\n\n{feedback}\n\n"
REFINE_ASK = "Fix the code. Reply with the complete corrected code in a single ```python code block."
EXPLAIN_REFINE_ASK = (
    "First explain briefly what is wrong with the code and why it fails this test. Then reply with the "
    "complete corrected code in a single ```python code block."
)
MAX_FEEDBACK_CHARS = 1500
"""Long feedback (huge EvalPlus inputs, long tracebacks) is cut to keep prompts inside a small context."""


def initial_chat(problem: Problem) -> Chat:
    template = INITIAL_COMPLETION if problem.style == "completion" else INITIAL_FULL
    return [{"role": "user", "content": template.format(prompt=problem.prompt.strip("\n"))}]


def shown_code(problem: Problem, code: str) -> str:
    """The wrong solution as the assistant's answer in the chat: whole function(s), not a bare body."""
    if problem.style == "completion" and not re.search(
        rf"^(async\s+)?def\s+{re.escape(problem.entry_point)}\s*\(", code, flags=re.M
    ):
        return problem.program(code)
    return code


def truncate_feedback(feedback: str, limit: int = MAX_FEEDBACK_CHARS) -> str:
    if len(feedback) <= limit:
        return feedback
    half = limit // 2
    return feedback[:half] + f"\n... [{len(feedback) - limit} characters cut] ...\n" + feedback[-half:]


def refine_chat(problem: Problem, wrong_code: str, feedback: str, prompt_type: PromptType) -> Chat:
    """The paper's refinement chat: task, the wrong answer as the assistant's turn, feedback + the ask."""
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown prompt type {prompt_type!r}; expected one of {PROMPT_TYPES}")
    ask = REFINE_ASK if prompt_type == "refine" else EXPLAIN_REFINE_ASK
    return [
        *initial_chat(problem),
        {"role": "assistant", "content": f"{FENCE}python\n{shown_code(problem, wrong_code).strip()}\n{FENCE}"},
        {"role": "user", "content": FEEDBACK_HEADER.format(feedback=truncate_feedback(feedback)) + ask},
    ]


@dataclass(frozen=True)
class ParsedReply:
    code: str
    explanation: str
    found_block: bool
    """False when the reply had no fenced code block (the whole reply is then taken as code)."""


_BLOCK = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def parse_reply(text: str, entry_point: str | None = None) -> ParsedReply:
    """Split a reply into (explanation, code).

    The code is the fenced block that defines ``entry_point`` (the last such, since a model that explains
    may first quote the wrong code), else the longest block; an unterminated block at the end (a reply cut
    by the token limit) still counts. The explanation is the prose before that block.
    """
    blocks = [(m.start(), m.group(1).lower(), m.group(2)) for m in _BLOCK.finditer(text)]
    blocks = [b for b in blocks if b[1] in ("", "python", "py", "python3")]
    if not blocks:
        return ParsedReply(code=text.strip("\n"), explanation="", found_block=False)
    chosen = None
    if entry_point:
        pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        defining = [b for b in blocks if pattern.search(b[2])]
        if defining:
            chosen = defining[-1]
    if chosen is None:
        chosen = max(blocks, key=lambda b: len(b[2]))
    explanation = _BLOCK.sub("", text[: chosen[0]]).strip()
    return ParsedReply(code=chosen[2].rstrip() + "\n", explanation=explanation, found_block=True)
