"""``python -m selfdebug.rl --profile P [--override k=v ...] [--run-dir D] [--collection C]``: notebook 05's
PPO training from a shell (resumable: rerun after a kill)."""

from __future__ import annotations

import argparse
import json

from selfdebug.config import load_config
from selfdebug.logs import log_to_run_dir
from selfdebug.rl.train import rl_dir, run_rl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selfdebug.rl", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--collection", default=None, help="collection folder (default: rl.collection)")
    args = ap.parse_args(argv)
    config = load_config(args.profile, args.override)
    out = rl_dir(config, args.run_dir)
    with log_to_run_dir(out, "rl"):
        summary = run_rl(config, out, args.collection)
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
