"""``python -m selfdebug.sft --profile P [--override k=v ...] [--run-dir D] [--collection C]``: notebook 04's
training from a shell (resumable: rerun after a kill)."""

from __future__ import annotations

import argparse
import json

from selfdebug.config import load_config
from selfdebug.logs import log_to_run_dir
from selfdebug.sft.train import run_sft, sft_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selfdebug.sft", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--collection", default=None, help="collection folder (default: sft.collection)")
    args = ap.parse_args(argv)
    config = load_config(args.profile, args.override)
    out = sft_dir(config, args.run_dir)
    with log_to_run_dir(out, "sft"):
        summary = run_sft(config, out, args.collection)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
