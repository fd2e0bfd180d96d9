"""The collection from a shell, beside notebooks 01-03 (which call the same functions).

    python -m selfdebug.collect {sample,refine,filter,all} --profile P [--override KEY=VALUE ...] [--run-dir DIR]

Each stage first runs the stages before it that are not done; the log goes to ``<run-dir>/collect.log``
(warnings also on stderr). Exit status: 0 done, 2 bad arguments or profile, 4 finished with teacher
errors (a rerun retries them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from selfdebug.collect.common import collect_dir
    from selfdebug.collect.stages import STAGES, run_all
    from selfdebug.config import ConfigError, load_config
    from selfdebug.logs import log_to_run_dir

    parser = argparse.ArgumentParser(prog="python -m selfdebug.collect", description="Collect LeDex training data.")
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.add_argument("--profile", required=True, help="configs/<profile>.yaml, or a path to a YAML profile")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. collect.limit=5 (repeatable; values are YAML)")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/<profile>/collect")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.profile, args.override)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = collect_dir(config, args.run_dir)
    with log_to_run_dir(run_dir, "collect"):
        summary = (run_all if args.stage == "all" else STAGES[args.stage])(config, run_dir)
    print(json.dumps({k: v for k, v in summary.items() if k != "generation"}, indent=2, default=str))
    return 0 if summary.get("complete", True) else 4


if __name__ == "__main__":
    sys.exit(main())
