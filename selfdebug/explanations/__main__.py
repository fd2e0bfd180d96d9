"""Notebook 07's stage from a shell (the notebook makes the same call):

    python -m selfdebug.explanations --profile cpu [--override KEY=VALUE ...] [--run-dir DIR]
    python -m selfdebug.explanations --summarise DIR

The first runs ``run_explanations`` (resumable: replies in ``<run-dir>/generations.jsonl`` are not asked for
again), with the log in ``<run-dir>/explanations.log``, and prints the tables; the second only recomputes the
tables of a written folder. Exit status: 0 done, 2 bad arguments or profile, 3 a judge gave too few scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from selfdebug.config import ConfigError, load_config
    from selfdebug.explanations.analysis import markdown, summarise
    from selfdebug.explanations.stage import JudgeError, explanations_dir, run_explanations
    from selfdebug.logs import log_to_run_dir

    parser = argparse.ArgumentParser(prog="python -m selfdebug.explanations",
                                     description="Score the models' explanations with LLM judges (Table 9).")
    parser.add_argument("--profile", help="configs/<profile>.yaml, or a path to a YAML profile")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. explanations.n_problems=10 (repeatable)")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/<profile>/explanations")
    parser.add_argument("--summarise", type=Path, metavar="DIR", help="only print the tables of a written folder")
    args = parser.parse_args(argv)
    if args.summarise:
        print(markdown(summarise(args.summarise)), end="")
        return 0
    if not args.profile:
        parser.error("--profile or --summarise is needed")
    try:
        config = load_config(args.profile, args.override)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = explanations_dir(config, args.run_dir)
    try:
        with log_to_run_dir(out, "explanations"):
            summary = run_explanations(config, out)
    except JudgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(markdown(summary), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
