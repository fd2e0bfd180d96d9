"""What a person reads in an executed notebook: the stage's summary and the per-sample records as a
DataFrame to filter (the failing refinements, say) and read case by case.

Every view here has a plain-text form as well as its rich one: papermill's ``--log-output`` prints the
plain text of each output to the terminal of ``make reproduce``, so the terminal gets the same summary and
tables as the notebook rather than ``<IPython.core.display.Markdown object>``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.logs import RunLog
from selfdebug.prompts import PROMPT_TYPES
from selfdebug.report import load_results

CHAINS = ("init", *PROMPT_TYPES, "resample")
"""Attempt chains in the order the protocol makes them (initial samples, each refinement prompt, the baseline)."""

KEY_COLUMNS = ("benchmark", "task_id", "sample", "chain", "round", "passed", "status", "n_passed", "n_total",
               "feedback", "explanation", "code")
"""The columns every per-sample record has, first in the frame; the record's other fields follow."""

READ_COLUMNS = ("benchmark", "task_id", "sample", "chain", "round", "status", "feedback", "explanation", "code")
"""What :func:`records_view` shows of each attempt."""

_TEXT_COLUMNS = ("feedback", "explanation", "code")


class MarkdownText(str):
    """Markdown that a notebook renders and whose plain text (the terminal's copy) is the Markdown itself."""

    def _repr_markdown_(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def markdown(text: str) -> MarkdownText:
    return MarkdownText(text)


def records_frame(results_dir: str | Path, benchmarks: Iterable[str] | None = None) -> pd.DataFrame:
    """Every attempt of one evaluation (``samples/<benchmark>.jsonl.gz``), one row each, sorted by benchmark,
    task, sample, chain and round; ``chain`` is ordered as :data:`CHAINS`. Filter it like any frame, e.g.
    ``df[(df.chain == "explain_refine") & ~df.passed]``."""
    _, records = load_results(results_dir)
    if benchmarks is not None:
        wanted = list(benchmarks)
        unknown = [b for b in wanted if b not in records]
        if unknown:
            raise ValueError(f"{results_dir}: no per-sample records for {', '.join(unknown)}; "
                             f"this run has {', '.join(sorted(records))}")
        records = {b: records[b] for b in wanted}
    frames = []
    for bench, rows in records.items():
        frame = pd.DataFrame(rows)
        missing = [c for c in KEY_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{Path(results_dir) / 'samples'}/{bench}.jsonl.gz: records lack {', '.join(missing)} "
                             "(written by an older version of the protocol?)")
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    df = df[list(KEY_COLUMNS) + [c for c in df.columns if c not in KEY_COLUMNS]]
    # a chain this module does not know yet sorts last instead of turning into NaN
    chains = list(CHAINS) + sorted(set(df["chain"]) - set(CHAINS))
    df["chain"] = pd.Categorical(df["chain"], categories=chains, ordered=True)
    return df.sort_values(["benchmark", "task_id", "sample", "chain", "round"], kind="stable", ignore_index=True)


class RecordsView:
    """Attempts shown for reading: code, explanation and feedback keep their line breaks (an HTML table
    with ``white-space: pre-wrap``); the plain-text form is a compact table."""

    def __init__(self, frame: pd.DataFrame, max_rows: int = 20, title: str = ""):
        missing = [c for c in READ_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"records_view: the frame lacks {', '.join(missing)} (pass a records_frame or a "
                             "filtered part of one)")
        self.total = len(frame)
        self.frame = frame.loc[:, list(READ_COLUMNS)].head(max_rows)
        self.title = title

    def _caption(self) -> str:
        shown = f"the first {len(self.frame)} of {self.total}" if self.total > len(self.frame) else f"all {self.total}"
        return f"{self.title}: {shown} attempts" if self.title else f"{shown} attempts"

    def _repr_html_(self) -> str:
        cell = "text-align:left;vertical-align:top;"
        pre = cell + "white-space:pre-wrap;font-family:monospace;max-width:48em;"
        head = "".join(f'<th style="{cell}">{html.escape(c)}</th>' for c in self.frame.columns)
        body = []
        for _, row in self.frame.iterrows():
            tds = "".join(f'<td style="{pre if c in _TEXT_COLUMNS else cell}">{html.escape(str(row[c]))}</td>'
                          for c in self.frame.columns)
            body.append(f"<tr>{tds}</tr>")
        return (f'<table class="dataframe selfdebug-records"><caption style="text-align:left">'
                f"{html.escape(self._caption())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            flat = self.frame.assign(**{c: self.frame[c].astype(str).str.replace("\n", " | ") for c in _TEXT_COLUMNS})
            return f"{self._caption()}\n{flat.to_string(index=False)}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def records_view(frame: pd.DataFrame, max_rows: int = 20, title: str = "") -> RecordsView:
    """The first ``max_rows`` attempts of ``frame`` (a :func:`records_frame` or a filtered part of one),
    laid out for reading."""
    return RecordsView(frame, max_rows=max_rows, title=title)


def stage_summary(summary: dict[str, Any], run_log: RunLog | None = None, stage: str = "evaluate") -> MarkdownText:
    """A few lines on what the stage did (from the summary ``run_evaluation`` returns) and where its log is."""
    gen = summary.get("generation", {})
    benches = summary.get("benchmarks", {})
    lines = [f"**{stage}** ran {len(benches)} benchmark(s) with backend `{summary.get('backend', '?')}` in "
             f"{summary.get('seconds', 0):.0f} s: {int(gen.get('requests', 0))} requests to the model, "
             f"{int(gen.get('resumed', 0))} of them answered from the generation log, "
             f"{int(gen.get('completion_tokens', 0))} tokens generated."]
    if run_log is not None:
        lines.append("")
        lines.append(f"Full log: `{run_log.path}` ({run_log.records} records at INFO and above in this invocation; "
                     f"{run_log.warnings} warnings, {run_log.errors} errors).")
        if run_log.warnings_seen:
            more = run_log.warnings - len(run_log.warnings_seen)
            lines += ["", "Warnings:", "", "```", *run_log.warnings_seen, "```"]
            if more > 0:
                lines.append(f"and {more} more in the log.")
    if benches:
        lines += ["", "| benchmark | problems | attempts recorded | seconds |", "|---|---|---|---|"]
        lines += [f"| {b} | {row.get('problems', '?')} | {row.get('records', '?')} | {row.get('seconds', '?')} |"
                  for b, row in benches.items()]
    return MarkdownText("\n".join(lines) + "\n")
