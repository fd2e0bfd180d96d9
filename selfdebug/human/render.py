"""What a rater reads of an item, as HTML: one function for the notebook widget and the static export.

Only the problem, the wrong code, its execution feedback and the explanation are shown: never the model,
the records folder, the attempt id or whether the refined code passed (blinding).
"""

from __future__ import annotations

import html
from typing import Any

from selfdebug.human.rubric import rubric_html

SHOWN_FIELDS = ("problem", "wrong_code", "feedback", "explanation")
"""The item fields a rater sees; nothing else of an item reaches the page."""

# pre-wrap keeps the code's lines; overflow-wrap breaks a long unspaced line (a big test input) instead of
# letting it run under the scales beside the item
_PRE = ("white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.35;font-family:monospace;font-size:90%;"
        "background:#f6f8fa;border:1px solid #ddd;padding:6px;margin:2px 0 10px 0;max-height:28em;overflow:auto;"
        "box-sizing:border-box;max-width:100%")


def _block(title: str, text: str, pre: bool = True) -> str:
    body = html.escape(text) if text else "<i>(empty)</i>"
    style = _PRE if pre else _PRE.replace("font-family:monospace;", "").replace("background:#f6f8fa", "background:#fffbe6")
    return f'<div><b>{title}</b><div style="{style}">{body}</div></div>'


def item_html(item: dict[str, Any], heading: str = "") -> str:
    """The item as a rater sees it; ``heading`` (e.g. "Item 3 of 40") goes above it."""
    head = f'<h3 style="margin:0 0 6px 0">{html.escape(heading)}</h3>' if heading else ""
    return (f'<div class="sd-item" style="line-height:1.35;white-space:normal">{head}'
            + _block("Problem", item["problem"])
            + _block("Wrong code (the model's earlier answer)", item["wrong_code"])
            + _block("Execution feedback (what running it against the tests gave)", item["feedback"])
            + _block("Explanation to rate", item["explanation"], pre=False)
            + "</div>")


def static_page(title: str, body: str) -> str:
    """A self-contained HTML page (no scripts, no external files)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<style>body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em}'
            'section{border-top:2px solid #888;padding-top:0.5em;margin-top:1.5em}</style></head>'
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


__all__ = ["SHOWN_FIELDS", "item_html", "rubric_html", "static_page"]
