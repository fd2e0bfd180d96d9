"""What each way of making training data costs: verified (explanation, refinement) pairs per minute of
generation, for the self-teacher and the 1.5B teacher in the paper's "Explain + Refine" format and for the
hindsight option, on the same wrong solutions.

It reads a finished collection (``make collect PROFILE=cpu-teachers``: the cpu profile's sampling on fewer
problems, with both teachers, the paper's format and hindsight) and writes ``benchmarks/results/
collect_teachers.{json,md}``. Nothing is generated or run here: the collection has done both.

* **cost** of a (teacher, format): the wall time its replies took to generate (``refine/summary.json``: each
  format is generated on its own), shared out among records by the completion tokens of their replies, so
  that a subset of wrong solutions is charged for its own replies; on a 2-core machine a wall minute of
  generation is two CPU-minutes (the engine uses both cores).
* **yield**: verified pairs (a reply whose code passes every test, with its explanation; duplicates dropped)
  and wrong solutions with at least one.
* **the same wrong solutions**: hindsight can only be asked where the problem has a correct sample, so the
  table has two parts: every wrong solution (paper format, both teachers), and the wrong solutions that have
  a correct sibling (all three, each charged for those records alone).

    python benchmarks/bench_collect.py [--collection runs/cpu-teachers/collect]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> str:
    from selfdebug.generate.cpu import describe_cpu

    return describe_cpu()


def measure(collection: Path) -> dict[str, Any]:
    from selfdebug.collect.refine import variant_name
    from selfdebug.io import read_jsonl

    summary = json.loads((collection / "refine" / "summary.json").read_text())
    attempts = {a["record_id"]: a for a in read_jsonl(collection / "refine" / "attempts.jsonl")}
    records = list(read_jsonl(collection / "data" / "refinements.jsonl"))
    results = json.loads((collection / "results.json").read_text())
    # wall seconds and tokens per (teacher, format) from the generation counters
    cost: dict[tuple[str, str], dict[str, float]] = {}
    for key, st in summary["generation"].items():
        label, _model, variant = key.split("|")
        cost[(label, variant)] = {"seconds": float(st["seconds"]), "tokens": float(st["completion_tokens"])}
    hinted = {r["solution_id"] for r in records if r["hindsight"]}
    groups: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"records": 0, "tokens": 0, "verified_pairs": 0, "solutions_fixed": 0})
    for r in records:
        variant = variant_name(r)
        tokens = sum(int(x.get("completion_tokens") or 0) for x in attempts[r["record_id"]]["replies"])
        for subset in ("all", "with_correct_sibling"):
            if subset == "with_correct_sibling" and r["solution_id"] not in hinted:
                continue
            if subset == "all" and r["hindsight"]:
                continue  # hindsight has no "every wrong solution" row: it needs a correct sibling
            g = groups[(subset, r["teacher"], variant)]
            g["records"] += 1
            g["tokens"] += tokens
            g["verified_pairs"] += int(r["n_verified"])
            g["solutions_fixed"] += int(r["n_verified"] > 0)
    rows = []
    for (subset, teacher, variant), g in sorted(groups.items()):
        c = cost.get((teacher, variant))
        seconds = c["seconds"] * g["tokens"] / c["tokens"] if c and c["tokens"] else None
        minutes = seconds / 60 if seconds else None
        rows.append({"subset": subset, "teacher": teacher, "format": variant, **g,
                     "generation_s": round(seconds, 1) if seconds is not None else None,
                     "tok_per_s": round(c["tokens"] / c["seconds"], 1) if c and c["seconds"] else None,
                     "pairs_per_min": round(g["verified_pairs"] / minutes, 2) if minutes else None,
                     "fix_rate": round(g["solutions_fixed"] / g["records"], 4) if g["records"] else None})
    return {"collection": str(collection), "cpu": _cpu(), "python": platform.python_version(),
            "counts": results["counts"], "seconds": results["seconds"], "rows": rows}


def render(res: dict[str, Any]) -> str:
    head = ("| wrong solutions | teacher | format | records | verified pairs | solutions fixed | fix rate | "
            "generation s | tok/s | verified pairs per minute |\n|---|---|---|---|---|---|---|---|---|---|\n")
    names = {"all": "every wrong solution", "with_correct_sibling": "those with a correct sibling"}
    lines = [f"| {names[r['subset']]} | {r['teacher']} | {r['format']} | {r['records']} | {r['verified_pairs']} | "
             f"{r['solutions_fixed']} | {100 * r['fix_rate']:.1f}% | {r['generation_s']} | {r['tok_per_s']} | "
             f"**{r['pairs_per_min']}** |" for r in res["rows"]]
    c = res["counts"]
    return ("# Cost of training data: teachers and formats on the same wrong solutions\n\n"
            f"CPU: {res['cpu']}. Collection `{res['collection']}` (`make collect PROFILE=cpu-teachers`): "
            f"{c['wrong_solutions']} wrong solutions, {c['solutions']} correct; stage seconds {res['seconds']}.\n\n"
            "Cost = wall time of generation (the engine uses both cores: one wall minute is two CPU-minutes), "
            "shared among records by their replies' completion tokens; sandbox time (seconds for the whole "
            "filter stage) is left out. Verified pair = a reply whose code passes every test, with its "
            "explanation. Hindsight shows the teacher the closest correct sample of the problem (labelled; "
            "not in the paper), so its rows are only over wrong solutions that have one.\n\n"
            + head + "\n".join(lines) + "\n\nRerun: `make bench-collect`.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", default=str(ROOT / "runs" / "cpu-teachers" / "collect"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "collect_teachers"))
    args = ap.parse_args()
    from selfdebug.io import atomic_write_json, atomic_write_text

    res = measure(Path(args.collection))
    atomic_write_json(args.out + ".json", res)
    atomic_write_text(args.out + ".md", render(res))
    print(render(res))


if __name__ == "__main__":
    main()
