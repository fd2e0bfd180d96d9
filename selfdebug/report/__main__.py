import argparse
import logging

from selfdebug.report import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild tables and figures from saved per-sample results.")
    parser.add_argument("results_dir", help="an evaluation result folder (config.yaml + samples/)")
    parser.add_argument("out_dir", help="where the tables (CSV, Markdown) and figures (PNG) go")
    parser.add_argument("--prefix", default="", help="file name prefix")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_report(args.results_dir, args.out_dir, args.prefix)


if __name__ == "__main__":
    main()
