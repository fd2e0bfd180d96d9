"""Human evaluation from the command line (the notebook is ``notebooks/09_human_eval.ipynb``).

    python -m selfdebug.human sample  [--profile cpu] [--records NAME=DIR ...] [--n-problems 50] [--seed 0] [--out DIR]
    python -m selfdebug.human export  [--out DIR]                  # DIR/export/items.html + ratings.csv
    python -m selfdebug.human import  FILLED.csv [--out DIR]       # validates, then appends to DIR/ratings/
    python -m selfdebug.human analyse [--out DIR] [--judge SCORES.jsonl]

``--out`` is the study folder (default ``runs/<profile>/human_eval``); export, import and analyse read the
sample already written there (``items.jsonl``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfdebug.config import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selfdebug.human", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["sample", "export", "import", "analyse"])
    ap.add_argument("csv", nargs="?", type=Path, help="the filled-in ratings CSV (import)")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--out", type=Path, help="the study folder (default runs/<profile>/human_eval)")
    ap.add_argument("--records", nargs="*", default=[], metavar="NAME=DIR", help="one records folder per model")
    ap.add_argument("--n-problems", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge", type=Path, help="the LLM judge's scores (analyse)")
    args = ap.parse_args(argv)
    out = args.out or REPO_ROOT / "runs" / args.profile / "human_eval"
    try:
        if args.command == "sample":
            from selfdebug.human.study import open_study

            bad = [r for r in args.records if "=" not in r]
            if bad:
                ap.error(f"--records takes NAME=DIR, got {bad[0]!r}")
            records = dict(r.split("=", 1) for r in args.records)
            study = open_study(args.profile, records=records, out_dir=out, n_problems=args.n_problems, seed=args.seed)
            print(f"{out / 'items.jsonl'}: {len(study.items)} items ({len(study.sample.empty)} with an empty explanation)")
            return 0
        from selfdebug.human.sample import read_items

        items = read_items(out / "items.jsonl")
        if args.command == "export":
            from selfdebug.human.export import export_items

            html_path, csv_path = export_items(items, out / "export")
            print(f"wrote {html_path} and {csv_path}")
        elif args.command == "import":
            from selfdebug.human.export import import_ratings_csv

            if args.csv is None:
                ap.error("import needs the filled-in CSV")
            counts = import_ratings_csv(args.csv, items, out / "ratings")
            print(", ".join(f"{r}: {n} ratings" for r, n in counts.items()) or "no filled-in rows")
        else:
            from selfdebug.human.analysis import analyse

            print(analyse(items, out / "ratings", args.judge).markdown())
    except (OSError, ValueError) as e:
        print(f"selfdebug.human {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
