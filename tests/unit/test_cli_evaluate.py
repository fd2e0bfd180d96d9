"""``python -m selfdebug.evaluate``: arguments, a tiny end-to-end run (tiny random model, real sandbox), and
the export of the samples in EvalPlus's ``samples.jsonl`` format."""

import json
import subprocess
import sys

import pytest

from selfdebug.config import REPO_ROOT
from selfdebug.evaluate.__main__ import main, parse_args
from selfdebug.evaluate.export import evalplus_samples, evalplus_task_id, export_evalplus
from selfdebug.problems.base import Problem, TestCase


def test_arguments():
    args = parse_args(["--profile", "cpu", "--override", "evaluate.limit=2", "--override", "evaluate.rounds=1",
                       "--run-dir", "/tmp/x"])
    assert (args.profile, args.override, str(args.run_dir), args.no_report) == (
        "cpu", ["evaluate.limit=2", "evaluate.rounds=1"], "/tmp/x", False)
    assert parse_args(["--profile", "smoke"]).run_dir is None  # runs/<profile>/evaluate
    with pytest.raises(SystemExit):
        parse_args([])  # --profile is required


def test_a_bad_override_is_a_clear_error(capsys):
    assert main(["--profile", "smoke", "--override", "evaluate.n_sample=3"]) == 2
    assert "n_sample" in capsys.readouterr().err


def test_end_to_end_on_the_smoke_profile(tmp_path):
    """One HumanEval problem, n=2, one round, the tiny random model (hf) and the real sandbox: ~10 s."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "selfdebug.evaluate", "--profile", "smoke", "--run-dir", str(run_dir),
           "--override", "evaluate.benchmarks=[humaneval]", "--override", "evaluate.limit=1",
           "--override", "evaluate.rounds=1", "--override", f"model.id=tiny:{tmp_path / 'tiny'}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| humaneval | 1 |" in proc.stdout and "Table 4: success-refinement rate" in proc.stdout
    assert "INFO" not in proc.stderr and "evaluating humaneval" in (run_dir / "evaluate.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["benchmarks"]["humaneval"]["n_samples"] == [2]
    assert (run_dir / "report" / "table_deltas.md").is_file()
    init = [json.loads(line) for line in (run_dir / "evalplus" / "humaneval_init.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in init] == ["HumanEval/0", "HumanEval/0"]
    assert all(r["solution"].startswith("from typing import List") for r in init)  # the whole program
    assert sorted(p.name for p in (run_dir / "evalplus").iterdir()) == [
        f"humaneval_{c}.jsonl" for c in ("explain_refine", "init", "refine", "resample")]


def toy(tid, style="full"):
    return Problem(task_id=tid, benchmark="x", prompt="import math\ndef f(x):\n    '''doc'''\n", entry_point="f",
                   style=style, reference="", tests=[TestCase(call="f(1)", expected=1)])


def test_evalplus_task_ids():
    assert evalplus_task_id("humaneval", "HumanEval/0") == "HumanEval/0"
    assert evalplus_task_id("humaneval_plus", "HumanEval/163") == "HumanEval/163"
    assert evalplus_task_id("mbpp_plus", "Mbpp/2") == "Mbpp/2"
    assert evalplus_task_id("mbpp", "MBPP/2") == "Mbpp/2"
    with pytest.raises(ValueError, match="apps"):
        evalplus_task_id("apps", "APPS/1")
    with pytest.raises(ValueError, match="HumanEval/<number>"):
        evalplus_task_id("humaneval", "Mbpp/2")


def rec(tid, sample, chain, round_, code):
    return {"task_id": tid, "sample": sample, "chain": chain, "round": round_, "code": code}


def test_export_holds_the_program_the_sandbox_ran_and_each_chains_last_attempt(tmp_path):
    problems = [toy("HumanEval/0", "completion"), toy("HumanEval/1", "completion")]
    body = "    return x\n"
    records = [rec("HumanEval/1", 0, "init", 0, body), rec("HumanEval/0", 0, "init", 0, "def f(x):\n    return 0\n"),
               rec("HumanEval/0", 1, "init", 0, body),
               rec("HumanEval/0", 0, "refine", 2, "def f(x):\n    return 2\n"),
               rec("HumanEval/0", 0, "refine", 1, "def f(x):\n    return 1\n")]
    rows = evalplus_samples("humaneval", records, problems, "init")
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/0", "HumanEval/1"]  # problem, then sample
    assert rows[0]["solution"] == problems[0].program("def f(x):\n    return 0\n")
    assert rows[1]["solution"] == problems[0].prompt + body  # a body is appended to the prompt, as the sandbox ran it
    refined = evalplus_samples("humaneval", records, problems, "refine")
    # round 2 is the last attempt of sample 0; sample 1 and HumanEval/1 were never refined: their initial program
    assert [r["solution"].rstrip().rsplit(" ", 1)[-1] for r in refined] == ["2", "x", "x"]
    paths = export_evalplus("humaneval", records, problems, tmp_path)
    assert sorted(p.name for p in paths) == ["humaneval_init.jsonl", "humaneval_refine.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "humaneval_refine.jsonl").read_text().splitlines()]
    assert lines == refined and all(set(line) == {"task_id", "solution"} for line in lines)
    assert export_evalplus("apps", records, problems, tmp_path / "apps") == []
