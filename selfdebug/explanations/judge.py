"""The judge's prompt and the reading of its reply: an item (problem, wrong code, feedback, explanation; see
``selfdebug.human.sample``) in, two 1-5 scores out.

The judge sees what a human rater sees (notebook 09): the same item, the same rubric (``selfdebug.human.rubric``,
one source for both), and answers with one line per scale. A local judge is given the start of its reply
(``explanations.reply_prefix``), so that a small model answers in that form instead of discussing the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from selfdebug.generate.base import Chat
from selfdebug.generate.chat import with_prefix
from selfdebug.human.rubric import SCALES, rubric_text
from selfdebug.prompts import FENCE

ANSWER_FORM = "\n".join(f"{scale.capitalize()}: <1-5>" for scale in SCALES)
"""The reply asked for: one line per scale, in the rubric's order."""


def judge_chat(item: dict[str, Any], reply_prefix: str = "") -> Chat:
    """The chat that asks the judge to score ``item``'s explanation (with ``reply_prefix`` as the reply's
    start, when given)."""
    text = (
        "You are reviewing an explanation of why a Python program is wrong.\n\n"
        f"## Problem\n{item['problem'].strip()}\n\n"
        f"## The program\n{FENCE}python\n{item['wrong_code'].strip()}\n{FENCE}\n\n"
        f"## What running it against the tests gave\n{item['feedback'].strip() or '(no output)'}\n\n"
        f"## The explanation to rate\n{item['explanation'].strip()}\n\n"
        f"## Rubric\n{rubric_text()}\n\n"
        "Rate the explanation on both scales. Answer with exactly these lines and nothing else:\n"
        f"{ANSWER_FORM}"
    )
    chat: Chat = [{"role": "user", "content": text}]
    return with_prefix(chat, reply_prefix) if reply_prefix else chat


_SCORE = {scale: re.compile(rf"\b{scale}\b[\s:*=]{{0,6}}([1-5])(?![0-9]|\.[0-9]|\s*-\s*[0-9])", re.IGNORECASE)
          for scale in SCALES}
"""``Correctness: 4``, ``**Correctness**: 4/5``, ``correctness = 4.``; not ``Correctness: 4.5`` or ``10``, and not the
asked form echoed back (``Correctness: <1-5>``, ``Correctness (1-5): 4``): no score rather than a wrong one."""


@dataclass(frozen=True)
class Judgement:
    scores: dict[str, int | None]
    """One score per scale; None where the reply gives none."""
    error: str | None = None
    """Why the reply gives no usable score (None: every scale was read)."""

    @property
    def complete(self) -> bool:
        return self.error is None


def parse_judgement(reply: str) -> Judgement:
    """The scores in a judge's reply (the reply prefix included): the first ``<scale>: <1-5>`` of each scale.
    A reply that scores a scale twice with different values, or misses one, gives an error naming it."""
    scores: dict[str, int | None] = {}
    problems = []
    for scale, pattern in _SCORE.items():
        found = [int(m) for m in pattern.findall(reply)]
        if not found:
            scores[scale] = None
            problems.append(f"no '{scale.capitalize()}: <1-5>'")
        elif len(set(found)) > 1:
            scores[scale] = None
            problems.append(f"{scale} scored differently ({', '.join(map(str, found))})")
        else:
            scores[scale] = found[0]
    return Judgement(scores, "; ".join(problems) or None)
