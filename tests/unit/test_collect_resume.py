"""Kill the collection command with SIGKILL in the middle of the teacher stage, rerun it, and get exactly
the records of an uninterrupted run (the tiny model, a handful of problems)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_collect_helpers import write_mbpp

from selfdebug.config import REPO_ROOT


def command(tiny, mbpp, run_dir):
    overrides = [f"model.id={tiny}", f"collect.paths={{mbpp: {mbpp}}}", "collect.n_samples=2", "collect.n_refinements=3",
                 "collect.max_new_tokens=16", "collect.refine_max_new_tokens=32", "collect.chunk_size=1"]
    return [sys.executable, "-m", "selfdebug.collect", "all", "--profile", "smoke", "--run-dir", str(run_dir),
            *(a for o in overrides for a in ("--override", o))]


def lines(path):
    """The records of a JSONL file; a line torn by the kill is not a record (the log drops it on load)."""
    out = []
    for x in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(x))
        except json.JSONDecodeError:
            continue
    return out


def test_a_killed_collection_resumes_to_the_uninterrupted_result(tmp_path):
    from selfdebug.generate.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    mbpp = write_mbpp(tmp_path / "mbpp.jsonl", malformed=False)
    env = {**os.environ, "SELFDEBUG_FINGERPRINT_CACHE": str(tmp_path / "fp.json")}
    whole = tmp_path / "whole"
    subprocess.run(command(tiny, mbpp, whole), cwd=REPO_ROOT, env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(tiny, mbpp, killed), cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "refine" / "generations.jsonl"
    deadline = time.time() + 300
    def samples_logged():  # a prompt record can come first: wait for a sample, so the kill cuts a real run
        return [r for r in lines(log) if not r["key"].endswith(":prompt")]

    while not samples_logged() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the collection process itself, as an OOM killer or a kill -9 would
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its sandbox workers, which a real kill would orphan
    except ProcessLookupError:
        pass
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "refine" / "done.json").exists(), "the run finished before the kill: nothing was tested"
    partial = [r for r in lines(log) if not r["key"].endswith(":prompt")]  # samples logged before the kill
    assert partial

    subprocess.run(command(tiny, mbpp, killed), cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    for name in ("data/refinements.jsonl", "data/solutions.jsonl", "sample/solutions.jsonl", "refine/attempts.jsonl"):
        assert lines(killed / name) == lines(whole / name), name
    assert lines(whole / "data" / "refinements.jsonl"), "no records to compare"
    keys = [r["key"] for r in lines(log)]
    assert len(keys) == len(set(keys)) and len(keys) == len(lines(whole / "refine" / "generations.jsonl"))
    summary = json.loads((killed / "refine" / "summary.json").read_text())
    assert summary["generation"], summary
    resumed = sum(s["samples_resumed"] for s in summary["generation"].values())
    assert resumed == len(partial)  # what was logged before the kill was not asked again
