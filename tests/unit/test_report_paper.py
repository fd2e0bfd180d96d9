"""The paper's numbers are parsed from data/paper/LEDEX.md (never typed in), ours are put beside them, and the whole
report rebuilds byte for byte from the committed results."""

from __future__ import annotations

import pytest

from selfdebug.config import REPO_ROOT, load_config
from selfdebug.report.paper import PaperFormatError, comparison, markdown_tables, ours_results, paper_results


def _value(df, **where):
    rows = df
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, (where, len(rows))
    return float(rows["value"].iloc[0])


def test_the_paper_tables_are_read_cell_by_cell():
    paper = paper_results()
    # Table 2: the continuation rows carry the model and approach of the row above
    assert _value(paper, table="Table 2", model="CodeLlama-7B", approach="LeDex RL", prompt="Expl.+Refine",
                  benchmark="HumanEval+", metric="pass@10") == 78.25
    assert _value(paper, table="Table 2", model="StarCoder-15B", approach="Prompt.", prompt="Init.",
                  benchmark="MBPP", metric="pass@1") == 37.70
    # Table 3: "56.62 (−0.60)" is the value 56.62; bold headline cells are numbers too
    assert _value(paper, table="Table 3", model="CodeLlama-7B", approach="LeDex RL", prompt="Refine",
                  benchmark="MBPP & HE", metric="pass@1") == 56.62
    assert _value(paper, table="Table 3", model="StarCoder-15B", approach="LeDex SFT", prompt="Expl.+Refine",
                  benchmark="MBPP+ & HE+", metric="pass@10") == 72.36
    assert _value(paper, table="Table 4", model="CodeLlama-13B", approach="LeDex RL", prompt="Expl.+Refine") == 23.50
    assert _value(paper, table="Table 9", model="StarCoder-15B", approach="LeDex SFT",
                  metric="explanation score (Developers)") == 2.60
    assert _value(paper, table="Table 11", approach="LeDex SFT (Only code-gen data)", prompt="Refine",
                  benchmark="HumanEval", metric="pass@1") == 42.91
    assert _value(paper, table="Table 1", benchmark="APPS", metric="#Wrong Solutions") == 16372
    # every cell of every table: 3 models x 9 rows x 8 columns for Table 2, and so on
    assert paper.groupby("table").size().to_dict() == {"Table 1": 15, "Table 2": 216, "Table 3": 48, "Table 4": 18,
                                                       "Table 9": 14, "Table 11": 48}


def test_a_table_laid_out_otherwise_is_refused_by_name(tmp_path):
    text = (REPO_ROOT / "data" / "paper" / "LEDEX.md").read_text()
    broken = tmp_path / "LEDEX.md"
    broken.write_text(text.replace("| Model | Prompt Refine |", "| Model | Prompted Refine |"))
    with pytest.raises(PaperFormatError, match="Table 4: unexpected column 'Prompted Refine'"):
        paper_results(broken)
    with pytest.raises(FileNotFoundError, match="the paper's tables"):
        paper_results(tmp_path / "missing.md")


def test_markdown_tables_are_named_by_their_heading():
    tables = markdown_tables("### A\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\ntext\n\n| z |\n|---|\n| 3 |\n"
                             "**B (bold)**\n\n| w |\n|---|\n| 4 |\n")
    assert tables == {"A": [["x", "y"], ["1", "2"]], "A #2": [["z"], ["3"]], "B (bold)": [["w"], ["4"]]}


def test_ours_stand_beside_the_paper_where_measured():
    entry = {"chain": "refine", "round": 1, "k": 1, "value": 0.5, "ci_low": 0.25, "ci_high": 0.75}
    init = {**entry, "chain": "init", "round": 0, "value": 0.4}
    metrics = {"base": {"ks": [1], "benchmarks": {"mbpp": {"pass_at_k": [entry, init]}}, "groups": {},
                        "success_rate_average": []}}
    table = comparison(paper_results(), ours_results(metrics), "ours: tiny")
    row = table[(table["table"] == "Table 2") & (table["benchmark"] == "MBPP") & (table["metric"] == "pass@1")
                & (table["approach"] == "Prompt.") & (table["prompt"] == "Refine")].iloc[0]
    assert row["ours: tiny"] == "50.00 [25.0, 75.0]" and row["paper: CodeLlama-7B"] == "43.98"
    sft = table[(table["table"] == "Table 2") & (table["approach"] == "LeDex SFT")]
    assert set(sft["ours: tiny"]) == {"–"}  # not measured, said so
    assert list(dict.fromkeys(table["table"])) == ["Table 1", "Table 2", "Table 3", "Table 4", "Table 9", "Table 11"]


def test_the_cpu_report_rebuilds_byte_for_byte(tmp_path):
    from selfdebug.report.assemble import assemble

    config = load_config("cpu", ["report.rl_log=figures/results/none.jsonl"])
    first = assemble(config, tmp_path / "a")
    assemble(config, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"paper_comparison.md", "table1_sources.png", "sft_curves.png", "fig4_rounds_pass1.png"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert any("RL curves" in m for m in first["missing"])


def test_our_heading_names_the_data_the_sft_run_trained_on_not_a_later_collection():
    from selfdebug.report.assemble import ours_label

    config = {"profile": "cpu", "model": {"id": "embedded"},
              "evaluate": {"limit": 6, "n_samples": 10, "temperature": 0.8}}
    collection = {"counts": {"explained_pairs": 310}}
    assert ours_label(config, collection).endswith("trained on its own collection (310 explained pairs))")
    same = ours_label(config, collection, {"examples": {"explain_refine": 310}})
    assert same.endswith("SFT on 310 explained pairs of its own collection)")
    later = ours_label(config, collection, {"examples": {"explain_refine": 166}})
    assert later.endswith("SFT on 166 explained pairs of its own collection (Table 1's collection has 310))")


def test_the_tables_say_when_the_rl_model_did_not_grow_from_the_sft_model_beside_it():
    from selfdebug.report.assemble import lineage_note

    sft = {"weights_sha256": "a" * 64}
    assert lineage_note(sft, {"sft_weights_sha256": "a" * 64}) == ""  # RL started from this SFT model
    assert lineage_note(None, {"sft_weights_sha256": "b" * 64}) == "" and lineage_note(sft, None) == ""
    other = lineage_note(sft, {"sft_weights_sha256": "b" * 64})
    assert "another SFT model" in other and "bbbbbbbbbbbb" in other and "aaaaaaaaaaaa" in other
    assert "does not record which SFT model" in lineage_note(sft, {"weights_sha256": "c" * 64})


def test_an_rl_run_records_the_sft_run_it_started_from(tmp_path):
    from selfdebug.rl.train import sft_weights_sha256

    run = tmp_path / "sft"
    (run / "model").mkdir(parents=True)
    assert sft_weights_sha256("base", run / "model") is None  # no summary: not an SFT run's model
    (run / "summary.json").write_text('{"weights_sha256": "d1"}')
    assert sft_weights_sha256("base", run / "model") == "d1"  # an adapter over the base
    assert sft_weights_sha256(run / "model", None) == "d1"  # a fully fine-tuned model
