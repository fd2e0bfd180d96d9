"""The evaluation stage from a shell, beside notebooks/06_evaluate.ipynb (which makes the same two calls).

    python -m selfdebug.evaluate --profile cpu [--override KEY=VALUE ...] [--run-dir DIR] [--no-report]

Runs ``run_evaluation`` (resumable: replies already in ``<run-dir>/generations.jsonl`` are not asked for
again), then ``build_report`` into ``<run-dir>/report``, with the log in ``<run-dir>/evaluate.log`` (warnings
also on stderr), and prints a summary and the tables. The samples are also
written in EvalPlus's format under ``<run-dir>/evalplus/`` (selfdebug.evaluate.export), for scoring with
evalplus itself. Exit status: 0 done, 2 bad arguments or profile, 3 too many sandbox failures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TABLES = ("table2_passk", "table3_overall", "table4_success_rate", "table_deltas")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m selfdebug.evaluate",
        description="Run the self-debugging evaluation of a profile and build its tables and figures.")
    parser.add_argument("--profile", required=True, help="configs/<profile>.yaml, or a path to a YAML profile")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. evaluate.limit=5 (repeatable; values are YAML)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="result folder (default: runs/<profile>/evaluate)")
    parser.add_argument("--no-report", action="store_true", help="run the stage only; no tables or figures")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from selfdebug.config import REPO_ROOT, ConfigError, load_config
    from selfdebug.evaluate.stage import SandboxErrorShareExceeded, run_evaluation
    from selfdebug.logs import log_to_run_dir
    from selfdebug.report import build_report
    from selfdebug.report.explore import stage_summary

    args = parse_args(argv)
    try:
        config = load_config(args.profile, args.override)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir) if args.run_dir else REPO_ROOT / "runs" / config.profile / "evaluate"
    report = run_dir / "report"
    # as the notebook does: the whole log to <run-dir>/evaluate.log, warnings on stderr
    try:
        with log_to_run_dir(run_dir, "evaluate") as run_log:
            summary = run_evaluation(config, run_dir)
            if not args.no_report:
                build_report(run_dir, report)
    except SandboxErrorShareExceeded as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(stage_summary(summary, run_log))
    if not args.no_report:
        for name in TABLES:
            print((report / f"{name}.md").read_text())
    print(f"Results: {run_dir} (samples/, metrics.json, report/, evalplus/, evaluate.log)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
