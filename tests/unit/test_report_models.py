"""Trained models beside their base: rows per model and a paired difference, from result folders on disk;
runs evaluated differently are refused."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from test_metrics_deltas import RIGHT, records, wrong

from selfdebug.report.models import compare_models, main

SETTINGS = {"seed": 0, "profile": "t", "evaluate": {"benchmarks": ["humaneval"], "limit": 4, "n_samples": 2,
            "temperature": 0.8, "ks": [1], "bootstrap": 200, "ci": 0.95, "rounds": 1}}


def _folder(path, model, table, **evaluate):
    (path / "samples").mkdir(parents=True)
    cfg = {**SETTINGS, "model": {"id": model}, "evaluate": {**SETTINGS["evaluate"], **evaluate}}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with gzip.open(path / "samples" / "humaneval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records("humaneval", table))
    return path


BASE = {"A": [RIGHT, wrong()], "B": [wrong(refine=True), wrong()], "C": [wrong(), wrong()], "D": [RIGHT, RIGHT]}
SFT = {"A": [RIGHT, RIGHT], "B": [wrong(refine=True, explain=True), wrong(refine=True)], "C": [RIGHT, wrong()],
       "D": [RIGHT, RIGHT]}


def test_each_model_has_its_rows_and_the_trained_one_a_paired_difference(tmp_path):
    base = _folder(tmp_path / "base", "embedded", BASE)
    sft = _folder(tmp_path / "sft", "runs/t/sft/model", SFT)
    main([str(base), f"LeDex SFT={sft}", "--out", str(tmp_path / "out")])
    t2 = (tmp_path / "out" / "models_table2_passk.md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[3].strip()
            for line in t2.splitlines() if line.startswith("| ") and "Model" not in line}
    assert rows[("base", "Init.")].startswith("37.50")  # (1/2 + 0 + 0 + 1) / 4
    assert rows[("LeDex SFT", "Init.")].startswith("62.50")  # (1 + 0 + 1/2 + 1) / 4
    assert rows[("LeDex SFT − base (paired)", "Init.")].startswith("+25.00 [")
    # after a Refine round: base A 1/2, B 1/2, C 0, D 1 = 50%; SFT A 1, B 1, C 1/2, D 1 = 87.5%
    assert rows[("LeDex SFT − base (paired)", "Refine")].startswith("+37.50 [")
    t4 = (tmp_path / "out" / "models_table4_success_rate.md").read_text()
    assert "LeDex SFT − base (paired)" in t4 and "(paired bootstrap)" in t4
    compare = json.loads((tmp_path / "out" / "models_compare.json").read_text())
    assert compare["models"] == {"base": "embedded", "LeDex SFT": "runs/t/sft/model"}


def test_runs_evaluated_differently_are_refused(tmp_path):
    base = _folder(tmp_path / "base", "embedded", BASE)
    other = _folder(tmp_path / "sft", "sft", SFT, temperature=1.0)
    with pytest.raises(ValueError, match=r"evaluated differently .*evaluate.temperature: 1.0 vs 0.8"):
        compare_models(base, {"LeDex SFT": other}, tmp_path / "out")
    with pytest.raises(ValueError, match="names the base run"):
        compare_models(base, {"base": other}, tmp_path / "out")


def test_the_common_wrong_programs_table_pairs_models_by_program(tmp_path):
    from selfdebug.evaluate.common import wrong_programs

    base = _folder(tmp_path / "base", "embedded", BASE)
    sft = _folder(tmp_path / "sft", "sft", SFT)
    base_records = records("humaneval", BASE)
    # the SFT model fixes every one of the base's wrong programs in Expl.+Refine, none in Refine
    common = [dict(r, chain=chain, round=1, passed=chain == "explain_refine",
                   status="passed" if chain == "explain_refine" else "wrong_answer")
              for r in wrong_programs(base_records) for chain in ("refine", "explain_refine")]
    (sft / "common").mkdir()
    with gzip.open(sft / "common" / "humaneval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in common)
    compare_models(base, {"LeDex SFT": sft}, tmp_path / "out")
    md = (tmp_path / "out" / "models_common_wrong_programs.md").read_text()
    line = next(x for x in md.splitlines() if "Expl.+Refine" in x)
    # base: 5 wrong programs (A1, B0, B1, C0, C1), its Expl.+Refine fixed none of them; SFT all 5
    assert "| 5 " in line and "0.00" in line and "100.00" in line and "+100.00" in line


def test_a_pair_of_trained_models_gets_its_own_paired_difference(tmp_path):
    base = _folder(tmp_path / "base", "embedded", BASE)
    sft = _folder(tmp_path / "sft", "runs/t/sft/model", SFT)
    # RL: C's second sample is right too -> Init. (1 + 0 + 1 + 1) / 4 = 75%, SFT 62.5%
    rl = _folder(tmp_path / "rl", "runs/t/rl/model", {**SFT, "C": [RIGHT, RIGHT]})
    main([str(base), f"LeDex SFT={sft}", f"LeDex RL={rl}", "--pair", "LeDex RL", "LeDex SFT",
          "--out", str(tmp_path / "out")])
    t2 = (tmp_path / "out" / "models_table2_passk.md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[3].strip()
            for line in t2.splitlines() if line.startswith("| ") and "Model" not in line}
    assert rows[("LeDex RL − LeDex SFT (paired)", "Init.")].startswith("+12.50 [")
    assert rows[("LeDex RL − base (paired)", "Init.")].startswith("+37.50 [")
    t3 = (tmp_path / "out" / "models_table3_overall.md").read_text()
    assert "LeDex RL − LeDex SFT (paired)" in t3.splitlines()[2]  # a column of its own
    compare = json.loads((tmp_path / "out" / "models_compare.json").read_text())
    assert set(compare["diffs"]) == {"LeDex SFT - base", "LeDex RL - base", "LeDex RL - LeDex SFT"}
    with pytest.raises(ValueError, match="no model labelled 'LeDex PPO'"):
        compare_models(base, {"LeDex SFT": sft}, tmp_path / "out", pairs=[("LeDex PPO", "LeDex SFT")])


def test_a_common_set_refined_from_another_base_run_is_named_not_compared(tmp_path):
    """The base re-evaluated (on another CPU its engine samples other programs) no longer holds the wrong programs a
    trained model's committed common set refined: the report says so and writes no common table, instead of
    crashing or comparing programs the base never wrote; the other tables stand."""
    from selfdebug.evaluate.common import wrong_programs

    old_base = records("humaneval", BASE)
    new_base = {**BASE, "C": [RIGHT, RIGHT]}  # C's two wrong programs are gone from the new base run
    base = _folder(tmp_path / "base", "embedded", new_base)
    sft = _folder(tmp_path / "sft", "sft", SFT)
    common = [dict(r, chain=chain, round=1, passed=False, status="wrong_answer")
              for r in wrong_programs(old_base) for chain in ("refine", "explain_refine")]
    (sft / "common").mkdir()
    with gzip.open(sft / "common" / "humaneval.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in common[:2])  # and some of the new base's are missing
    out = tmp_path / "out"
    out.mkdir()
    (out / "models_common_wrong_programs.md").write_text("stale numbers")
    result = compare_models(base, {"LeDex SFT": sft}, out)
    assert "another base run's wrong programs" in result["stale_common"]["LeDex SFT"]
    assert not (out / "models_common_wrong_programs.md").exists()
    assert (out / "models_table2_passk.md").is_file()
