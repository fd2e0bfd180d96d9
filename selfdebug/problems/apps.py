"""APPS (Hendrycks et al. 2021) in the ``codeparrot/apps`` format, one JSON object per line.

Row fields: ``problem_id`` (int), ``question``, ``solutions`` (a JSON *string* holding a list of programs, or
``""``), ``input_output`` (a JSON string ``{"inputs": [...], "outputs": [...], "fn_name"?: str}``, or
``""``), ``difficulty``, ``url``, ``starter_code``. The dataset is published on the Hugging Face hub only
(``train.jsonl`` 5,000 problems, ``test.jsonl`` 5,000), so it is read from a local file: ``path=`` or
``<mirror>/apps/<split>.jsonl``. Tested on ``tests/fixtures/apps_sample.jsonl``.

Each problem: ``style="full"``; ``prompt`` = ``description`` = the question, followed by the starter code
when there is one (as APPS's own prompt does); ``reference`` = the first solution (``""`` when none; see
``metadata["n_solutions"]``).

- Standard-input problems (no ``fn_name``): one ``comparison="stdout"`` case per pair, ``call`` = the input
  text, ``expected`` = the output text (a list of lines in the file is joined with newlines).
  ``entry_point`` is ``""``.
- Call-based problems (``fn_name``): ``call = fn_name(args...)`` (``Solution().fn_name(...)`` when the
  starter code is a LeetCode ``class Solution``); APPS stores each expected return value wrapped in a
  one-element list, and its checker accepts the value either wrapped or unwrapped. We store the unwrapped
  value (count in ``metadata["unwrapped_outputs"]``): a function whose true answer *is* a one-element list
  is then compared with that list's element, a known ambiguity the gold check would reveal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem, ProblemFormatError, TestCase
from selfdebug.problems.pyliteral import NotRenderable, call_source
from selfdebug.problems.rows import convert_rows, require

log = logging.getLogger(__name__)
BENCHMARK = "apps"


def _as_text(x: Any) -> str:
    if isinstance(x, list):
        return "\n".join(str(v) for v in x)
    if not isinstance(x, str):
        raise ValueError(f"stdin/stdout entry is {type(x).__name__}, expected text")
    return x


def _json_field(row: dict[str, Any], key: str, where: str) -> Any:
    raw = row.get(key)
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        return raw  # already decoded (e.g. a datasets export)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ProblemFormatError(f"{where}: field {key!r} is not valid JSON: {e.msg}") from e


def problem_from_row(row: dict[str, Any]) -> Problem:
    where = f"APPS row problem_id={row.get('problem_id', '?')!r}"
    pid = require(row, "problem_id", (int, str), where)
    question = require(row, "question", str, where)
    starter = row.get("starter_code") or ""
    solutions = _json_field(row, "solutions", where) or []
    if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
        raise ProblemFormatError(f"{where}: 'solutions' is not a list of programs")
    io = _json_field(row, "input_output", where) or {}
    if not isinstance(io, dict):
        raise ProblemFormatError(f"{where}: 'input_output' is not an object")
    inputs, outputs = io.get("inputs", []), io.get("outputs", [])
    if len(inputs) != len(outputs):
        raise ProblemFormatError(f"{where}: {len(inputs)} inputs but {len(outputs)} outputs")
    fn_name = io.get("fn_name")
    tests: list[TestCase] = []
    unwrapped = 0
    try:
        if fn_name:
            target = f"Solution().{fn_name}" if "class Solution" in starter else fn_name
            for args, out in zip(inputs, outputs, strict=True):
                if not isinstance(args, list):
                    args = [args]
                if isinstance(out, list) and len(out) == 1:
                    out, unwrapped = out[0], unwrapped + 1
                call = call_source(target, args)
                tests.append(TestCase(call=call, expected=out, comparison="eq", source=call))
        else:
            for inp, out in zip(inputs, outputs, strict=True):
                text = _as_text(inp)
                tests.append(TestCase(call=text, expected=_as_text(out), comparison="stdout", source=text))
    except (ValueError, NotRenderable) as e:
        raise ProblemFormatError(f"{where}: {e}") from e
    prompt = question if not starter.strip() else f"{question.rstrip()}\n\n{starter}"
    return Problem(
        task_id=f"APPS/{pid}",
        benchmark=BENCHMARK,
        prompt=prompt,
        entry_point=fn_name or "",
        style="full",
        reference=solutions[0] if solutions else "",
        tests=tests,
        description=question,
        metadata={
            "difficulty": row.get("difficulty", ""),
            "url": row.get("url", ""),
            "starter_code": starter,
            "io_format": "call" if fn_name else "stdin",
            "n_solutions": len(solutions),
            "unwrapped_outputs": unwrapped,
            "tests_from": "input_output",
        },
    )


def load_apps(
    split: str = "train", *, path: str | Path | None = None, mirror: str | Path | None = None
) -> list[Problem]:
    """APPS problems of ``split`` from ``path`` or ``<mirror>/apps/<split>.jsonl``."""
    if path is None:
        from selfdebug.problems.sources import default_mirror

        folder = Path(mirror) if mirror is not None else default_mirror()
        if folder is None or not (folder / "apps" / f"{split}.jsonl").is_file():
            raise FileNotFoundError(
                f"APPS {split}: no local file (looked for apps/{split}.jsonl in mirror {folder}); export the "
                f"Hugging Face dataset codeparrot/apps split {split!r} as JSON lines there, or pass path="
            )
        path = folder / "apps" / f"{split}.jsonl"
    problems = convert_rows(path, problem_from_row, id_key="problem_id")
    n_empty = sum(not p.tests for p in problems)
    log.info("APPS %s: %d problems (%d without tests)", split, len(problems), n_empty)
    return problems
