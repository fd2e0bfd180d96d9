"""The paper's own numbers, read from its tables in ``data/paper/LEDEX.md`` (a copy of the project's
specification, with its source at the top), as one long frame, and our numbers beside them.

Nothing here is typed in by hand: every paper value is parsed from the Markdown tables of that file, and every one
of ours is recomputed from per-sample records (``evaluate.metrics``). The comparison labels both sides with model,
data and scale, since a 0.5B model on a few problems per benchmark is not the paper's setting.

Columns of the long frame: ``table`` (``Table 2`` ...), ``model`` (the paper's model, or ours), ``approach``
(``Prompt.``, ``LeDex SFT``, ``LeDex RL``, or Table 11's data), ``prompt`` (``Init.``, ``Refine``,
``Expl.+Refine``), ``benchmark`` (``MBPP`` ... or ``MBPP & HE`` / ``MBPP+ & HE+`` / ``average of four``),
``metric`` (``pass@1``, ``pass@10``, ``success rate``, ``explanation score``) and ``value`` (in %, scores 1-5).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from selfdebug.config import REPO_ROOT

PAPER_FILE = REPO_ROOT / "data" / "paper" / "LEDEX.md"
PAPER_MODELS = ("StarCoder-15B", "CodeLlama-7B", "CodeLlama-13B")
APPROACHES = ("Prompt.", "LeDex SFT", "LeDex RL")
_BENCH = {"MBPP": "MBPP", "HE": "HumanEval", "MBPP+": "MBPP+", "HE+": "HumanEval+"}
_PROMPTS = {"Refine": "Refine", "Expl+Ref": "Expl.+Refine", "Expl.+Refine": "Expl.+Refine", "Init.": "Init."}
_NUMBER = re.compile(r"[−-]?\d+(?:\.\d+)?")
COLUMNS = ["table", "model", "approach", "prompt", "benchmark", "metric", "value"]


class PaperFormatError(ValueError):
    """A table of the paper file is not laid out as this parser expects; names the table and the cell."""


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Every Markdown table of ``text`` under the heading (``### ...``) or bold line it follows: the first table
    after a heading gets the heading's text, later ones ``<heading> #2`` ... Rows are lists of stripped cells,
    the header first, the ``|---|`` line dropped."""
    tables: dict[str, list[list[str]]] = {}
    heading, count, current = "", 0, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (stripped.startswith("**") and not stripped.startswith("|")):
            heading, count, current = stripped.lstrip("#").strip().strip("*").strip(), 0, None
            continue
        if not stripped.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells):
            continue
        if current is None:
            count += 1
            current = []
            tables[heading if count == 1 else f"{heading} #{count}"] = current
        current.append(cells)
    return tables


def _number(cell: str, where: str) -> float:
    """The first number of a cell (``54.35 (+15.34)`` -> 54.35, ``**+15.92**`` -> 15.92; U+2212 is a minus)."""
    m = _NUMBER.search(cell.replace("*", ""))
    if m is None:
        raise PaperFormatError(f"{where}: no number in cell {cell!r}")
    return float(m.group().replace("−", "-"))


def _find(tables: dict[str, list[list[str]]], needle: str) -> list[list[str]]:
    hits = [rows for name, rows in tables.items() if re.search(re.escape(needle) + r"\b", name)]
    if len(hits) != 1:
        raise PaperFormatError(f"{len(hits)} tables under a heading with {needle!r} (expected one)")
    return hits[0]


def _benchmark_columns(header: list[str], where: str) -> list[tuple[str, str]]:
    """``MBPP p@1`` -> (``MBPP``, ``pass@1``) for every column after the row labels."""
    out = []
    for cell in header:
        m = re.fullmatch(r"(MBPP\+?|HE\+?) p@(\d+)", cell)
        if m is None:
            raise PaperFormatError(f"{where}: unexpected column {cell!r}")
        out.append((_BENCH[m.group(1)], f"pass@{m.group(2)}"))
    return out


def _per_benchmark(rows: list[list[str]], table: str, label_cols: int, labels: Any) -> list[dict[str, Any]]:
    """Tables 2 and 11: a few label columns (blank when they repeat the row above), then pass@k per benchmark."""
    columns = _benchmark_columns(rows[0][label_cols:], table)
    out, carried = [], [""] * label_cols
    for row in rows[1:]:
        carried = [cell or carried[i] for i, cell in enumerate(row[:label_cols])]
        model, approach, prompt = labels(carried)
        for (bench, metric), cell in zip(columns, row[label_cols:], strict=True):
            out.append({"table": table, "model": model, "approach": approach, "prompt": _PROMPTS[prompt],
                        "benchmark": bench, "metric": metric, "value": _number(cell, f"{table} {model} {prompt}")})
    return out


def _overall(rows: list[list[str]]) -> list[dict[str, Any]]:
    """Table 3: per model and metric, SFT and RL values (with their deltas, dropped) by benchmark group."""
    header = rows[0][2:]
    groups, columns = ("MBPP & HE", "MBPP+ & HE+"), []
    for i, cell in enumerate(header):
        m = re.search(r"(SFT|RL) (Refine|Expl\+Ref)$", cell)
        if m is None:
            raise PaperFormatError(f"Table 3: unexpected column {cell!r}")
        columns.append((groups[i // 4], "LeDex " + m.group(1), _PROMPTS[m.group(2)]))
    out, model = [], ""
    for row in rows[1:]:
        model = row[0] or model
        for (group, approach, prompt), cell in zip(columns, row[2:], strict=True):
            out.append({"table": "Table 3", "model": model, "approach": approach, "prompt": prompt,
                        "benchmark": group, "metric": row[1], "value": _number(cell, f"Table 3 {model}")})
    return out


def _success(rows: list[list[str]]) -> list[dict[str, Any]]:
    """Table 4: success-refinement rate averaged over the four benchmarks, per approach and prompt type."""
    names = {"Prompt": "Prompt.", "SFT": "LeDex SFT", "RL": "LeDex RL"}
    columns = []
    for cell in rows[0][1:]:
        approach, _, prompt = cell.partition(" ")
        if approach not in names or prompt not in _PROMPTS:
            raise PaperFormatError(f"Table 4: unexpected column {cell!r}")
        columns.append((names[approach], _PROMPTS[prompt]))
    return [{"table": "Table 4", "model": row[0], "approach": a, "prompt": p, "benchmark": "average of four",
             "metric": "success rate", "value": _number(cell, f"Table 4 {row[0]}")}
            for row in rows[1:] for (a, p), cell in zip(columns, row[1:], strict=True)]


def _explanations(rows: list[list[str]]) -> list[dict[str, Any]]:
    """Table 9: the mean explanation score (1-5) per model and approach, by rater (GPT-4, developers)."""
    short = {"SC": "StarCoder-15B", "SC-15B": "StarCoder-15B", "CL-7B": "CodeLlama-7B", "CL-13B": "CodeLlama-13B"}
    names = {"Prompt": "Prompt.", "SFT": "LeDex SFT", "RL": "LeDex RL"}
    columns = []
    for cell in rows[0][1:]:
        parts = cell.split()
        if parts[0] in short and len(parts) == 2 and parts[1] in names:
            columns.append((short[parts[0]], names[parts[1]]))
        else:  # GPT-3.5-Turbo, the teacher, prompted
            columns.append((cell, "Prompt."))
    out = []
    for row in rows[1:]:
        for (model, approach), cell in zip(columns, row[1:], strict=True):
            if _NUMBER.search(cell):
                out.append({"table": "Table 9", "model": model, "approach": approach, "prompt": "Expl.+Refine",
                            "benchmark": "MBPP & HE (50 problems)", "metric": f"explanation score ({row[0]})",
                            "value": _number(cell, f"Table 9 {model}")})
    return out


TABLE1_METRICS = {"#Unique Solutions": "unique", "#Correct Solutions": "correct", "#Wrong Solutions": "wrong",
                  "#Correct Refinement": "wrong_refined", "Refinement Rate": "refinement_rate"}
"""Table 1's columns and the ``collect.table1`` keys of ours."""


def _collection(rows: list[list[str]]) -> list[dict[str, Any]]:
    """Table 1 (GPT-3.5-Turbo as teacher): solutions and verified refinements per training set."""
    header = rows[0]
    if header[0] != "Dataset" or any(h not in TABLE1_METRICS for h in header[1:]):
        raise PaperFormatError(f"Table 1: unexpected columns {header}")
    out = []
    for row in rows[1:]:
        source = row[0].split(" (")[0].replace(" Training", "")
        for metric, cell in zip(header[1:], row[1:], strict=True):
            out.append({"table": "Table 1", "model": "GPT-3.5-Turbo (teacher)", "approach": "collection",
                        "prompt": "Expl.+Refine", "benchmark": source, "metric": metric,
                        "value": _number(cell.replace(",", ""), f"Table 1 {source}")})
    return out


def ours_collection(table1: list[dict[str, Any]]) -> pd.DataFrame:
    """Our Table 1 rows (``results.json``'s ``table1``, summed over teachers and modes per source) in the long
    frame; the refinement rate in %."""
    rows = []
    sources = {r["source"] for r in table1}
    for source in sorted(sources):
        part = [r for r in table1 if r["source"] == source]
        first = part[0]  # sampled solutions are the same in every teacher / mode row of a source
        refined = sum(r["wrong_refined"] for r in part)
        values = {"unique": first["unique"], "correct": first["correct"], "wrong": first["wrong"],
                  "wrong_refined": refined, "refinement_rate": 100 * refined / max(first["wrong"], 1)}
        label = {"mbpp": "MBPP", "apps": "APPS", "codecontests": "CodeContest"}.get(source, source)
        for metric, key in TABLE1_METRICS.items():
            rows.append({"table": "Table 1", "model": "ours", "approach": "collection", "prompt": "Expl.+Refine",
                         "benchmark": label, "metric": metric, "value": values[key], "ci_low": None, "ci_high": None})
    return pd.DataFrame(rows, columns=[*COLUMNS, "ci_low", "ci_high"])


def paper_results(path: str | Path = PAPER_FILE) -> pd.DataFrame:
    """Tables 1, 2, 3, 4, 9 and 11 of the paper as one long frame (``COLUMNS``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's tables (a copy of ../shared/paper/LEDEX.md) are missing")
    tables = markdown_tables(path.read_text())
    rows = _collection(_find(tables, "Dataset sizes"))
    rows += _per_benchmark(_find(tables, "Table 2"), "Table 2", 3, lambda c: (c[0], c[1], c[2]))
    rows += _overall(_find(tables, "Table 3"))
    rows += _success(_find(tables, "Table 4"))
    rows += _explanations(_find(tables, "Table 9"))
    ablation = _find(tables, "Table 11")
    rows += _per_benchmark(ablation, "Table 11", 2, lambda c: ("CodeLlama-7B", f"LeDex SFT ({c[0]})", c[1]))
    return pd.DataFrame(rows, columns=COLUMNS)


OURS_APPROACH = {"base": "Prompt."}
"""Our model labels as the paper's approaches (the base model prompted is the paper's ``Prompt.``)."""


def ours_results(metrics: dict[str, dict[str, Any]], round_: int = 1) -> pd.DataFrame:
    """Our Tables 2, 3 and 4 as the paper's long frame, from ``evaluate.metrics.compute_all`` output per model
    label (``base``, ``LeDex SFT``, ``LeDex RL``); values in %, with the CI bounds in ``ci_low`` / ``ci_high``."""
    from selfdebug.prompts import PROMPT_LABELS
    from selfdebug.report.tables import BENCH_LABELS, _lookup

    rows: list[dict[str, Any]] = []

    def add(table: str, label: str, chain: str, bench: str, metric: str, e: dict[str, Any] | None) -> None:
        if e is not None:
            rows.append({"table": table, "model": "ours", "approach": OURS_APPROACH.get(label, label),
                         "prompt": PROMPT_LABELS[chain], "benchmark": bench, "metric": metric,
                         "value": 100 * e["value"], "ci_low": 100 * e["ci_low"], "ci_high": 100 * e["ci_high"]})

    for label, m in metrics.items():
        for chain in ("init", "refine", "explain_refine"):
            r = 0 if chain == "init" else round_
            for k in m["ks"]:
                for bench, bm in m["benchmarks"].items():
                    if bench in ("mbpp", "humaneval", "mbpp_plus", "humaneval_plus"):
                        add("Table 2", label, chain, BENCH_LABELS[bench], f"pass@{k}", _lookup(bm, chain, r, k))
                for group, gm in m["groups"].items():
                    add("Table 3", label, chain, group, f"pass@{k}", _lookup(gm, chain, r, k))
            if chain != "init":
                average = next((e for e in m.get("success_rate_average", [])
                                if (e["chain"], e["round"]) == (chain, round_)), None)
                add("Table 4", label, chain, "average of four", "success rate", average)
    return pd.DataFrame(rows, columns=[*COLUMNS, "ci_low", "ci_high"])


def _cell(value: float, low: float | None = None, high: float | None = None) -> str:
    text = f"{value:.0f}" if float(value).is_integer() and abs(value) >= 100 else f"{value:.2f}"
    return text + (f" [{low:.1f}, {high:.1f}]" if low is not None and not pd.isna(low) else "")


def comparison(paper: pd.DataFrame, ours: pd.DataFrame, ours_column: str) -> pd.DataFrame:
    """One row per table cell the paper reports (Tables 2, 3, 4, 9, 11), our value (with its 95% CI) in
    ``ours_column`` where we measured it ("–" where not), then the paper's value for each of its models."""
    keys = ["table", "benchmark", "metric", "approach", "prompt"]
    wide = paper.pivot_table(index=keys, columns="model", values="value", aggfunc="first", sort=False)
    mine = {tuple(r[k] for k in keys): _cell(r["value"], r["ci_low"], r["ci_high"]) for r in ours.to_dict("records")}
    out = wide.reset_index()
    out.insert(len(keys), ours_column, [mine.get(tuple(row), "–") for row in out[keys].itertuples(index=False)])
    models = [m for m in (*PAPER_MODELS, "GPT-3.5-Turbo", "GPT-3.5-Turbo (teacher)") if m in wide.columns]
    for m in models:
        out[m] = [("–" if pd.isna(v) else _cell(v)) for v in out[m]]
    out = out.rename(columns={m: f"paper: {m}" for m in models})
    order = {t: i for i, t in enumerate(("Table 1", "Table 2", "Table 3", "Table 4", "Table 9", "Table 11"))}
    return out.sort_values("table", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
