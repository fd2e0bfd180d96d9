"""The rating rubric: two 1-5 scales, correctness and helpfulness of an explanation (paper Table 15).

The paper gives the end points of its scale (1 = completely wrong or misleading; 5 = correct and gives a
detailed hint how to fix the code) and says the rubric has separate correctness and helpfulness scales; its
Table 15 wording of the levels in between is not in our copy of the paper, so levels 2-4 below are our
wording, written to step evenly between the paper's end points. How the paper combined the two scales into
Table 9's single score is not stated; :mod:`.analysis` reports both scales and their mean.
"""

from __future__ import annotations

import html

SCALES: dict[str, str] = {
    "correctness": "Does the explanation say correctly what is wrong with the code and why it fails the test?",
    "helpfulness": "How much would the explanation help a developer fix the code?",
}
"""The scales a rater scores, in the order they are shown; every rating has one integer score per scale."""

SCORES = (1, 2, 3, 4, 5)

LEVELS: dict[str, dict[int, str]] = {
    "correctness": {
        1: "Completely wrong or misleading: it blames code that is fine, or describes a bug that is not there.",
        2: "Mostly wrong: it points near the failing code, but the cause it gives is wrong.",
        3: "Partly correct: it names the symptom or the failing part but not the cause, or mixes right and wrong claims.",
        4: "Correct but incomplete or imprecise: the real bug is named, some details are missing or loose.",
        5: "Correct: it identifies the actual bug and why the code fails the test.",
    },
    "helpfulness": {
        1: "No help, or misleading: following it would not fix the code, or would make it worse.",
        2: "Little help: vague or generic advice that does not point to the bug.",
        3: "Some help: it shows where the problem is, but not how to fix it.",
        4: "Helpful: it points to the fix, with gaps a developer must fill in.",
        5: "Very helpful: it is correct and gives a detailed hint how to fix the code.",
    },
}


def check_score(value: object, scale: str, where: str) -> int:
    """``value`` as a score of ``scale``; a clear error naming ``where`` when it is not an integer 1-5."""
    if scale not in SCALES:
        raise ValueError(f"{where}: unknown scale {scale!r}; the scales are {', '.join(SCALES)}")
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
        raise ValueError(f"{where}: {scale} must be an integer from 1 to 5, got {value!r}")
    return value


def rubric_html() -> str:
    """The rubric as an HTML block: each scale's question and what each score means."""
    parts = ['<div class="sd-rubric" style="line-height:1.3;white-space:normal"><h4 style="margin:0 0 4px 0">Rubric</h4>']
    for scale, question in SCALES.items():
        rows = "".join(f'<tr><td style="vertical-align:top;padding:1px 6px 1px 0"><b>{s}</b></td>'
                       f'<td style="padding:1px 0">{html.escape(LEVELS[scale][s])}</td></tr>' for s in SCORES)
        parts.append(f'<p style="margin:8px 0 2px 0"><b>{scale.capitalize()}</b>: {html.escape(question)}</p>'
                     f'<table style="border-collapse:collapse;font-size:90%">{rows}</table>')
    parts.append("</div>")
    return "".join(parts)


def rubric_text() -> str:
    """The rubric as plain text (for a judge prompt or a terminal)."""
    lines = []
    for scale, question in SCALES.items():
        lines.append(f"{scale.capitalize()} (1-5): {question}")
        lines += [f"  {s} = {LEVELS[scale][s]}" for s in SCORES]
    return "\n".join(lines)
