"""What `make reproduce` cost, stage by stage: wall time and peak memory, and the machine it ran on.

`make reproduce` times each step of the pipeline into ``runs/<profile>/budget.tsv`` (step, seconds, when it
finished) and records the machine in ``machine.json``; every notebook stage also leaves GNU time's report
(``time.txt``, ``time_<notebook>.txt``: wall time and the peak resident memory of its largest process). This
module joins them into one table per profile, written to ``budget.md`` and, for a profile with committed results,
by the report (``figures/budget.md``). Where no ``budget.tsv`` exists (the stages were run one at a time), the
table says so and gives each notebook stage's own last run. After a timed run the stages' GNU time reports are
copied into ``time/<step>/`` beside ``budget.tsv``, so that the folder alone (committed as compact results for the
cpu profiles) rebuilds the table.

    python -m selfdebug.report.budget --machine runs/cpu/machine.json      # record this machine
    python -m selfdebug.report.budget runs/cpu-quick --profile cpu-quick   # print (or --out) the table
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from selfdebug.config import Config, load_config, repo_path
from selfdebug.io import atomic_write_text, write_or_print

log = logging.getLogger(__name__)

PIPELINE = ("setup", "provision", "evaluate", "collect", "sft", "evaluate-sft", "rl", "evaluate-rl", "report")
"""`make reproduce`'s steps in order (the Makefile's PIPELINE; a test checks that the two agree)."""
WALL = "Elapsed (wall clock) time (h:mm:ss or m:ss)"
RSS = "Maximum resident set size (kbytes)"


@dataclass
class StageTime:
    """GNU time's measurement of one notebook stage (its last invocation)."""

    wall_s: float
    peak_rss_gib: float | None


def parse_gnu_time(path: str | Path) -> StageTime | None:
    """Wall time and peak resident memory from a ``/usr/bin/time -v`` report; None when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    fields = dict(line.strip().split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
    wall = fields.get(WALL)
    if wall is None:
        raise ValueError(f"{path}: not a GNU time -v report (no {WALL!r} line)")
    seconds = 0.0
    for part in wall.split(":"):
        seconds = 60 * seconds + float(part)
    rss = fields.get(RSS, "")
    return StageTime(seconds, int(rss) / 1024 ** 2 if rss.isdigit() else None)


def read_budget(path: str | Path) -> dict[str, float]:
    """Step -> seconds of the last `make reproduce` (``budget.tsv``); a malformed line is named."""
    steps: dict[str, float] = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
            try:
                steps[row["step"]] = float(row["seconds"])
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}:{i}: expected step<TAB>seconds<TAB>finished_utc, got {row}") from err
    return steps


def stage_time_files(config: Config) -> dict[str, list[Path]]:
    """Where each step's GNU time reports are, from the profile's report section (the committed layout of
    ``figures/results/cpu*`` and the run layout of ``runs/`` alike)."""
    rc, profile = config.report, config.profile

    at = repo_path
    results = at(rc.results, f"runs/{profile}/evaluate")
    collection = at(rc.collection, f"runs/{profile}/collect")
    models = {label: at(folder, folder) for label, folder in rc.models.items()}
    return {
        "evaluate": [results / "time.txt"],
        "collect": sorted(collection.glob("time_*.txt")),
        "sft": [at(rc.sft_log, f"runs/{profile}/sft/log.jsonl").parent / "time.txt"],
        "evaluate-sft": [models[label] / "time.txt" for label in models if "SFT" in label],
        "rl": [at(rc.rl_log, f"runs/{profile}/rl/log.jsonl").parent / "time.txt"],
        "evaluate-rl": [models[label] / "time.txt" for label in models if "RL" in label],
    }


def _recorded_cpu(time_files: list[Path]) -> str:
    """The CPU a stage's own summary recorded (``summary.json``'s ``machine``, beside its GNU time report)."""
    names = []
    for path in time_files:
        try:
            machine = json.loads((path.parent / "summary.json").read_text()).get("machine") or {}
        except (OSError, ValueError):
            machine = {}
        names.append(str(machine.get("model") or "not recorded"))
    return ", ".join(dict.fromkeys(names)) if names else "–"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


TIME_DIR = "time"
"""Beside ``budget.tsv``: a copy of each step's GNU time reports, ``time/<step>/<report>.txt``."""


def snapshot_time_files(config: Config, run_root: str | Path) -> dict[str, list[Path]]:
    """Copy each step's GNU time reports (and the summary beside each, for its CPU) into ``run_root/time/<step>/``;
    a step's earlier snapshot is replaced whole, so a report from another run never lingers."""
    import shutil

    out: dict[str, list[Path]] = {}
    (Path(run_root) / TIME_DIR).mkdir(parents=True, exist_ok=True)  # there even without GNU time
    for step, paths in stage_time_files(config).items():
        present = [p for p in paths if p.is_file()]
        dest = Path(run_root) / TIME_DIR / step
        shutil.rmtree(dest, ignore_errors=True)
        out[step] = []
        for i, path in enumerate(present):
            folder = dest / str(i) if len(present) > 1 and step.startswith("evaluate") else dest
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / path.name)
            if (path.parent / "summary.json").is_file():
                shutil.copyfile(path.parent / "summary.json", folder / "summary.json")
            out[step].append(folder / path.name)
    return out


def snapshot_files(time_dir: str | Path) -> dict[str, list[Path]]:
    """The GNU time reports of a snapshot (``snapshot_time_files``), by step."""
    time_dir = Path(time_dir)
    return {step: sorted((time_dir / step).rglob("time*.txt")) for step in PIPELINE if (time_dir / step).is_dir()}


def budget_markdown(config: Config, budget_tsv: str | Path | None, machine_json: str | Path | None,
                    time_dir: str | Path | None = None) -> str:
    """The per-stage table: wall time of each `make reproduce` step (``budget.tsv``) or, without one, of each
    notebook stage's last run, and the peak memory of every notebook stage (from ``time_dir``, a snapshot of the
    run's GNU time reports, where it exists, else from the profile's stage folders); the total; the machine."""
    from selfdebug.generate.cpu import describe_cpu

    files = snapshot_files(time_dir) if time_dir and Path(time_dir).is_dir() else stage_time_files(config)
    steps = read_budget(budget_tsv) if budget_tsv and Path(budget_tsv).is_file() else None
    lines = [f"### Time budget of `make reproduce PROFILE={config.profile}`", ""]
    if steps is not None:
        lines += ["Wall time of each step of one `make reproduce` (`budget.tsv`), and the peak resident memory of "
                  "the largest process of each notebook stage (GNU time). A step that found its work done took "
                  "about 0 s.", "", "| step | wall (h:mm:ss) | peak memory (GiB) |", "|---|---|---|"]
        per_stage_cpu = False
    else:
        lines += ["No `make reproduce` of this profile has been timed end to end (no `budget.tsv`): each notebook "
                  "stage's own last run is given (GNU time; a stage that was resumed shows what the resume cost), "
                  "with the CPU its summary recorded; the steps without a notebook (setup, provision, report) are "
                  "not measured.", "",
                  "| step | wall (h:mm:ss) | peak memory (GiB) | CPU |", "|---|---|---|---|"]
        per_stage_cpu = True
    total = 0.0
    for step in PIPELINE:
        times = [t for t in (parse_gnu_time(p) for p in files.get(step, [])) if t is not None]
        rss = max((t.peak_rss_gib for t in times if t.peak_rss_gib is not None), default=None)
        wall = steps.get(step) if steps is not None else (sum(t.wall_s for t in times) if times else None)
        total += wall or 0.0
        cpu = f" {_recorded_cpu([p for p in files.get(step, []) if p.is_file()])} |" if per_stage_cpu else ""
        lines.append(f"| {step} | {_clock(wall) if wall is not None else '–'} | "
                     f"{f'{rss:.2f}' if rss is not None else '–'} |{cpu}")
    lines.append(f"| **total** | **{_clock(total)}** | |" + (" |" if per_stage_cpu else ""))
    if machine_json and Path(machine_json).is_file():
        lines += ["", f"Machine: {describe_cpu(json.loads(Path(machine_json).read_text()))}."]
    else:
        lines += ["", "Machine: not recorded for the run as a whole; each evaluation's run summary names its own."]
    return "\n".join(lines) + "\n"


def record_machine(path: str | Path) -> Path:
    """This machine's CPU (model, cores, the flags that decide kernels and precision), as JSON."""
    from selfdebug.generate.cpu import cpu_summary

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(cpu_summary(), indent=1, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The per-stage time budget of `make reproduce`.")
    parser.add_argument("run_root", nargs="?", help="runs/<profile> (holds budget.tsv and machine.json; the "
                        "stages' GNU time reports are copied into its time/)")
    parser.add_argument("--profile", help="the profile (its report section says where each stage's results are)")
    parser.add_argument("--out", help="write the table here (default: print it)")
    parser.add_argument("--machine", help="only record this machine's CPU to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.machine:
        record_machine(args.machine)
        return
    if not args.run_root or not args.profile:
        parser.error("give RUN_ROOT and --profile (or --machine FILE)")
    root, config = Path(args.run_root), load_config(args.profile)
    snapshot_time_files(config, root)
    text = budget_markdown(config, root / "budget.tsv", root / "machine.json", root / TIME_DIR)
    write_or_print(text, args.out)
    if args.out:
        log.info("budget of %s written to %s", args.profile, args.out)


if __name__ == "__main__":
    main()
