"""Kill notebook 07's stage (its command line) with SIGKILL while the judge is answering, rerun it, and get the
judgements of an uninterrupted run, with no reply asked twice (the tiny model judging the committed records)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from test_collect_resume import lines

from selfdebug.config import REPO_ROOT


def command(tiny, run_dir):
    overrides = [f"model.id={tiny}", "explanations.n_problems=7", "explanations.embedder=none",
                 'explanations.models={"base": "figures/results/cpu", "SFT": "figures/results/cpu-sft", '
                 '"RL": "figures/results/cpu-rl"}']
    return [sys.executable, "-m", "selfdebug.explanations", "--profile", "smoke", "--run-dir", str(run_dir),
            *(a for o in overrides for a in ("--override", o))]


def test_a_killed_judge_resumes_to_the_uninterrupted_judgements(tmp_path):
    from selfdebug.generate.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    env = {**os.environ, "SELFDEBUG_FINGERPRINT_CACHE": str(tmp_path / "fp.json")}
    whole = tmp_path / "whole"
    subprocess.run(command(tiny, whole), cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    n_items = len(lines(whole / "items.jsonl"))
    assert n_items > 8, "one chunk of replies only: a kill could not fall between two"

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(tiny, killed), cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "generations.jsonl"
    deadline = time.time() + 300

    def replies():
        return [r for r in lines(log) if not r["key"].endswith(":prompt")]

    while not replies() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "judgements.jsonl").exists(), "the stage finished before the kill: nothing was tested"
    partial = len(replies())
    assert 0 < partial < n_items

    subprocess.run(command(tiny, killed), cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    assert lines(killed / "judgements.jsonl") == lines(whole / "judgements.jsonl")
    keys = [r["key"] for r in replies()]
    assert len(keys) == len(set(keys)) == n_items  # nothing logged before the kill was asked again
    assert "already done (resuming)" in (killed / "explanations.log").read_text()
