"""``python -m selfdebug.sandbox``: run one program against one problem and print the result as JSON.

The problem is a JSON file in HumanEval's format (``task_id``, ``prompt``, ``test``, ``entry_point``: the
program is the completion appended to the prompt), MBPP's (``text``, ``test_list``, ``test_setup_code``:
the program is the whole solution) or the project's own ``Problem.to_dict`` form. The reference solution
(``canonical_solution``, ``code``) is optional: without one, every test gets the time-limit floor, and the
result's ``note`` says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from selfdebug.problems.base import Problem, ProblemFormatError
from selfdebug.sandbox import Job, Sandbox, SandboxConfig


def detect_format(row: dict[str, Any]) -> str:
    if {"task_id", "benchmark", "style", "tests"} <= row.keys():
        return "problem"
    if {"prompt", "test", "entry_point"} <= row.keys():
        return "humaneval"
    if {"text", "test_list"} <= row.keys():
        return "mbpp"
    raise ProblemFormatError(f"problem file has keys {sorted(row)}: not HumanEval (prompt, test, entry_point), "
                             "MBPP (text, test_list, test_setup_code) or a Problem dict")


def load_problem(row: dict[str, Any], fmt: str) -> Problem:
    """Loaders of ``selfdebug.problems`` are imported lazily: they live in another part of the project."""
    if fmt == "problem":
        return Problem.from_dict(row)
    if fmt == "humaneval":
        from selfdebug.problems.humaneval import problem_from_row
        return problem_from_row(row, require_reference=False)
    from selfdebug.problems.mbpp import problem_from_row as mbpp_row
    return mbpp_row(row, require_reference=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selfdebug.sandbox", description=__doc__.splitlines()[0])
    ap.add_argument("--problem", required=True, type=Path, help="JSON file with one problem")
    ap.add_argument("--program", default="-", help="file with the model's answer, or - for standard input")
    ap.add_argument("--format", choices=["auto", "humaneval", "mbpp", "problem"], default="auto")
    ap.add_argument("--suite", choices=["base", "plus", "all"], default="base")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-test time limit in seconds (default: max(floor, factor x reference time), "
                         "the floor without a reference solution)")
    ap.add_argument("--run-timeout", type=float, default=30.0, help="bound on the whole run, seconds")
    ap.add_argument("--memory-mb", type=int, default=1024)
    args = ap.parse_args(argv)
    try:
        row = json.loads(args.problem.read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read problem file {args.problem}: {e}", file=sys.stderr)
        return 2
    if not isinstance(row, dict):
        print(f"error: {args.problem} must hold one JSON object", file=sys.stderr)
        return 2
    try:
        problem = load_problem(row, detect_format(row) if args.format == "auto" else args.format)
    except (ProblemFormatError, KeyError, TypeError, ValueError) as e:
        print(f"error: {args.problem}: {e}", file=sys.stderr)
        return 2
    code = sys.stdin.read() if args.program == "-" else Path(args.program).read_text()
    cfg = SandboxConfig(workers=1, run_timeout_s=args.run_timeout, memory_mb=args.memory_mb)
    if args.timeout is not None:
        cfg.timeout_floor_s = cfg.per_test_timeout_cap_s = args.timeout
        cfg.timeout_factor = 0.0
    with Sandbox(cfg) as sb:
        result = sb.run([Job(program=problem.program(code), problem=problem, suite=args.suite)])[0]
    out = result.to_dict()
    if not problem.reference and args.timeout is None:
        out["note"] = (f"no reference solution: every test got the time-limit floor of {cfg.timeout_floor_s:g} s "
                       f"(with one: max(floor, {cfg.timeout_factor:g} x its time), at most "
                       f"{cfg.per_test_timeout_cap_s:g} s); pass --timeout to choose the limit")
    print(json.dumps(out, indent=2))
    return 0 if result.status != "sandbox_error" else 3


if __name__ == "__main__":
    sys.exit(main())
