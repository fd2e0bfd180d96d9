"""`make reproduce PROFILE=smoke` runs the whole pipeline as a user runs it (the Makefile, papermill, every numbered
notebook of the pipeline, the trained models' evaluations, the report), times every step into ``budget.tsv``, and a
second invocation redoes no stage."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pytest

from selfdebug.config import REPO_ROOT
from selfdebug.report.budget import PIPELINE

RUNS = [REPO_ROOT / "runs" / name for name in ("smoke", "smoke-sft", "smoke-rl")]
DONE = [REPO_ROOT / "runs" / p for p in ("smoke/evaluate/.done", "smoke/collect/.done", "smoke/sft/.done",
                                          "smoke/rl/.done", "smoke-sft/evaluate/.done", "smoke-rl/evaluate/.done")]


@pytest.mark.smoke
def test_make_reproduce_runs_every_stage_once():
    if not shutil.which("make") or not (REPO_ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("needs make and the project's .venv (make setup)")
    for folder in RUNS:
        shutil.rmtree(folder, ignore_errors=True)
    run = subprocess.run(["make", "--no-print-directory", "reproduce", "PROFILE=smoke"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(REPO_ROOT / "runs" / "smoke" / "budget.tsv", newline="") as f:
        steps = [row["step"] for row in csv.DictReader(f, delimiter="\t")]
    assert tuple(steps) == PIPELINE
    assert all(p.is_file() for p in DONE), [str(p) for p in DONE if not p.is_file()]
    figures = REPO_ROOT / "runs" / "smoke" / "figures"
    for name in ("table1_collection.md", "table2_passk.md", "models_table4_success_rate.md",
                 "models_common_wrong_programs.md", "sft_curves.png", "rl_curves.png", "paper_comparison.md",
                 "budget.md"):
        assert (figures / name).stat().st_size > 0, name
    report = (figures / "report.md").read_text()
    assert "runs/smoke-sft/evaluate" in report and "runs/smoke-rl/evaluate" in report
    assert "| evaluate-rl |" in (REPO_ROOT / "runs" / "smoke" / "budget.md").read_text()
    if shutil.which("time", path="/usr/bin"):  # GNU time: every notebook step's report, snapshotted beside budget.tsv
        snapshot = REPO_ROOT / "runs" / "smoke" / "time"
        assert {p.parent.relative_to(snapshot).parts[0] for p in snapshot.rglob("time*.txt")} == {
            "evaluate", "collect", "sft", "evaluate-sft", "rl", "evaluate-rl"}
    stamps = [p.stat().st_mtime_ns for p in DONE]
    again = subprocess.run(["make", "--no-print-directory", "reproduce", "PROFILE=smoke"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in DONE] == stamps  # nothing was redone
    assert "papermill" not in again.stdout
