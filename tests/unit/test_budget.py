"""The time budget (``selfdebug.report.budget``), the evaluation-size projection (``selfdebug.report.sizing``) and the
GPU-hour estimate (``selfdebug.report.gpu_hours``): each reads what the runs measured and says where it came from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from selfdebug.config import REPO_ROOT, load_config
from selfdebug.report import budget, gpu_hours, sizing


def test_the_pipeline_steps_are_the_makefiles():
    makefile = (REPO_ROOT / "Makefile").read_text()
    steps = re.search(r"^PIPELINE := (.+)$", makefile, re.M).group(1).split()
    assert tuple(steps) == budget.PIPELINE
    for step in steps:  # every step is a target of its own
        assert re.search(rf"^{re.escape(step)}:", makefile, re.M), step


def test_gnu_time_report_of_a_real_process_is_read(tmp_path):
    out = tmp_path / "time.txt"
    if not (gnu := __import__("shutil").which("time")) or not gnu.startswith("/usr/bin"):
        pytest.skip("GNU time is not installed (Debian: time)")
    subprocess.run([gnu, "-v", "-o", str(out), sys.executable, "-c",
                    "import time; x = bytearray(200 * 2**20); time.sleep(1.2)"], check=True)
    t = budget.parse_gnu_time(out)
    assert 1.2 <= t.wall_s < 10
    assert 0.19 < t.peak_rss_gib < 1.0  # the 200 MiB it held
    assert budget.parse_gnu_time(tmp_path / "absent.txt") is None
    (tmp_path / "bad.txt").write_text("hello: world\n")
    with pytest.raises(ValueError, match="bad.txt: not a GNU time -v report"):
        budget.parse_gnu_time(tmp_path / "bad.txt")


def test_a_malformed_budget_line_is_named(tmp_path):
    path = tmp_path / "budget.tsv"
    path.write_text("step\tseconds\tfinished_utc\nsetup\t3\t2026-12-03T07:00:00Z\nsft\tlots\t-\n")
    with pytest.raises(ValueError, match=r"budget.tsv:3: expected step<TAB>seconds"):
        budget.read_budget(path)


def _time_report(path, wall: str, rss_kb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"\tCommand being timed: \"papermill\"\n\tElapsed (wall clock) time (h:mm:ss or m:ss): {wall}\n"
                    f"\tMaximum resident set size (kbytes): {rss_kb}\n")


def test_budget_of_a_timed_reproduce_and_of_stages_run_alone(tmp_path):
    root = tmp_path / "runs"
    overrides = [f"report.results={root}/evaluate", f"report.collection={root}/collect",
                 f"report.sft_log={root}/sft/log.jsonl", f"report.rl_log={root}/rl/log.jsonl",
                 f'report.models={{"LeDex SFT": "{root}-sft/evaluate", "LeDex RL": "{root}-rl/evaluate"}}']
    config = load_config("smoke", overrides)
    _time_report(root / "evaluate" / "time.txt", "1:02:03", 2 * 1024 ** 2)
    _time_report(root / "collect" / "time_01_sample.txt", "10:00.50", 1024 ** 2)
    _time_report(root / "collect" / "time_02_explain_refine.txt", "5:00.00", 3 * 1024 ** 2)
    _time_report(tmp_path / "runs-sft" / "evaluate" / "time.txt", "0:30.00", 1024 ** 2)
    alone = budget.budget_markdown(config, root / "budget.tsv", None)
    assert "No `make reproduce` of this profile has been timed end to end" in alone
    assert "| evaluate | 1:02:03 | 2.00 | not recorded |" in alone
    assert "| collect | 0:15:00 | 3.00 | not recorded |" in alone  # the notebooks' walls summed, the peak the max
    assert "| sft | – | – | – |" in alone
    assert "**1:17:34**" in alone  # 3723 + 900.5 + 30 s
    (root / "budget.tsv").write_text("step\tseconds\tfinished_utc\n" + "".join(
        f"{s}\t{60 * (i + 1)}\t-\n" for i, s in enumerate(budget.PIPELINE)))
    budget.record_machine(root / "machine.json")
    timed = budget.budget_markdown(config, root / "budget.tsv", root / "machine.json")
    assert "| evaluate | 0:03:00 | 2.00 |" in timed and "| report | 0:09:00 | – |" in timed
    assert f"**{budget._clock(60 * sum(range(1, 10)))}**" in timed
    assert "Machine: " in timed and "cores" in timed
    # the run's GNU time reports, snapshotted beside budget.tsv, rebuild the same table once the stages are gone
    budget.snapshot_time_files(config, root)
    for stage in ("evaluate", "collect"):
        shutil.rmtree(root / stage)
    shutil.rmtree(tmp_path / "runs-sft")
    assert budget.budget_markdown(config, root / "budget.tsv", root / "machine.json") != timed
    assert budget.budget_markdown(config, root / "budget.tsv", root / "machine.json", root / "time") == timed
    # without any GNU time report (no /usr/bin/time) the snapshot is an empty folder, which `make reproduce` copies
    empty = tmp_path / "bare"
    nowhere = [o.replace(str(root), str(tmp_path / "none")) for o in overrides]
    assert budget.snapshot_time_files(load_config("smoke", nowhere), empty)
    assert (empty / "time").is_dir() and not any((empty / "time").rglob("*.txt"))


def test_projected_ci_narrows_with_problems_as_one_over_root_p():
    rng = np.random.default_rng(0)
    totals = rng.integers(0, 6, size=12).astype(float)
    trained = np.stack([np.minimum(totals, rng.integers(0, 3, size=12)), totals], axis=1)
    base = np.stack([np.zeros(12), totals], axis=1)
    w12, w48, w192 = (sizing.projected_half_width(trained, base, p, draws=20, n_boot=300) for p in (12, 48, 192))
    assert w12 > w48 > w192 > 0
    assert w12 / w48 == pytest.approx(2.0, rel=0.3) and w48 / w192 == pytest.approx(2.0, rel=0.3)


def test_sizing_of_the_committed_cpu_run_scales_the_measured_evaluations():
    result = sizing.sizing(load_config("cpu"), sizes=(12, 24))
    assert result["benchmarks"] == ["humaneval", "mbpp"] and result["pilot_limit"] == 6
    for row in result["rows"]:
        assert row["pilot_problems"] == 12 and row["widths"][24] < row["widths"][12]
    # 12 problems = the pilot's 6 per benchmark: the measured stages as they are; 24 adds the evaluations again
    assert result["hours"][12] == pytest.approx(result["fixed_hours"] + result["evaluation_hours"])
    assert result["hours"][24] == pytest.approx(result["fixed_hours"] + 2 * result["evaluation_hours"])
    text = sizing.markdown(result)
    assert "±8 is" in text
    # the 3-hour target: the pilot's own size costs exactly the measured stages, so the verdict follows them
    fits = result["hours"][12] <= 3.0
    assert ("The whole pipeline within 3 h: up to P=" in text) == fits
    assert ("at no projected size" in text) == (not fits)


def test_gpu_hours_follow_the_model_size_and_the_profile_sizes():
    config = load_config("gpu-small")
    small = gpu_hours.estimate(config)
    double = gpu_hours.estimate(config, params=2 * small["params"])
    assert double["total"] == pytest.approx(2 * small["total"])
    more = gpu_hours.estimate(load_config("gpu-small", ["evaluate.n_samples=200"]))
    assert more["stages"]["evaluate"]["gpu_hours"] == pytest.approx(2 * small["stages"]["evaluate"]["gpu_hours"])
    assert more["stages"]["sft_example"] == small["stages"]["sft_example"]
    faster = gpu_hours.estimate(config, generate_mfu=0.2)
    assert faster["stages"]["evaluate"]["gpu_hours"] == pytest.approx(small["stages"]["evaluate"]["gpu_hours"] / 2)
    assert "Assumed, not measured" in gpu_hours.markdown(small)
    with pytest.raises(ValueError, match="no parameter count known for 'someone/model'"):
        gpu_hours.estimate(load_config("gpu-small", ["model.id=someone/model"]))


def test_the_readme_budget_block_is_the_committed_tables():
    """The README's budget section is generated (`make figures`), never typed: it holds figures/budget.md and
    figures/sizing.md as they are committed."""
    from selfdebug.report.assemble import README_BUDGET, _demoted

    readme = (REPO_ROOT / "README.md").read_text()
    block = readme[readme.index(README_BUDGET[0]) + len(README_BUDGET[0]):readme.index(README_BUDGET[1])]
    for name in ("budget.md", "sizing.md"):
        table = _demoted((REPO_ROOT / "figures" / name).read_text()).strip()
        assert table in block, name
