"""Every numbered notebook runs end to end through papermill on the smoke profile (tiny model, few problems)."""

import json
import re
import shutil

import pytest

from selfdebug.config import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
papermill = pytest.importorskip("papermill")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from selfdebug.generate.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, "no numbered notebooks found"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), path.name
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), path.name


REPORT_OVERRIDES = ["report.results=figures/results/cpu", 'report.models={"LeDex SFT": "figures/results/cpu-sft"}',
                    "report.pairs=[]", "report.budget=figures/results/cpu",
                    "report.collection=figures/results/cpu/collect", "report.sft_log=figures/results/cpu/sft/log.jsonl"]


def check_the_report(out):
    """Notebook 08 wrote every table and figure, ours beside the paper's, and named what it had not."""
    for name in ("table1_collection.md", "table2_passk.md", "table3_overall.md", "table4_success_rate.md",
                 "fig4_rounds_pass1.png", "sft_curves.png", "models_table3_overall.md", "paper_comparison.md",
                 "paper_comparison.csv", "table9_explanations.md", "report.md"):
        assert (out / name).stat().st_size > 0, name
    comparison = (out / "paper_comparison.md").read_text()
    assert "Not the paper's setting" in comparison and "ours: Qwen2.5-Coder-0.5B-Instruct (cpu profile" in comparison
    assert "no-rl/log.jsonl" in (out / "report.md").read_text()  # an RL log that is not there is named


@pytest.mark.smoke
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_smoke_profile(notebook, tmp_path, tiny_model):
    run_dir = tmp_path / "run"
    overrides = [f"model.id={tiny_model}"]
    # SFT and RL train on the smoke profile's committed collection (the tiny model's own verifies nothing)
    if notebook.stem.endswith("rl"):  # RL straight on the tiny model (rl.sft_adapter=none): no SFT run here
        overrides.append("rl.sft_adapter=none")
    if notebook.stem.endswith("explanations"):  # the committed cpu run's explanations, judged by the tiny model
        overrides.append('explanations.models={"base": "figures/results/cpu", "LeDex SFT": "figures/results/cpu-sft"}')
    parameters = {"profile": "smoke", "run_dir": str(run_dir), "overrides": overrides}
    if notebook.stem.endswith("report"):  # the committed cpu results (a smoke run has no trained models)
        parameters = {"profile": "smoke", "out_dir": str(run_dir),
                      "overrides": [*REPORT_OVERRIDES, f"report.rl_log={tmp_path}/no-rl/log.jsonl"]}
    papermill.execute_notebook(
        str(notebook), str(tmp_path / notebook.name), parameters=parameters,
        kernel_name="python3", progress_bar=False, cwd=str(REPO_ROOT),
    )
    if notebook.stem.endswith("report"):
        check_the_report(run_dir)
    if notebook.stem.endswith("sft"):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["examples"]["total"] == 3 and summary["steps"] >= 1
        assert (run_dir / "model" / "adapter_config.json").is_file() and (run_dir / "curves.png").is_file()
    if notebook.stem.endswith("rl"):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["prompts"] == 2 and summary["steps"] == 2
        assert (run_dir / "model" / "adapter_config.json").is_file() and (run_dir / "curves.png").is_file()
    if notebook.stem.endswith("explanations"):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["n_items"] == 6 and summary["models"] == ["LeDex SFT", "base"]
        judged = (run_dir / "judgements.jsonl").read_text().splitlines()
        assert len(judged) == 6 - summary["n_empty"]  # one reply per explained item, scored or not
        assert "Table 9, ours" in (run_dir / "explanations.md").read_text()
    if notebook.stem.endswith("filter"):  # 03 runs the whole collection (01 and 02 first)
        for name in ("data/refinements.jsonl", "README.md", "results.json", "table1_collection.md",
                     "table1_sources.png", "filter/done.json"):
            assert (run_dir / name).stat().st_size > 0, name
    if notebook.stem.endswith("evaluate"):
        assert (run_dir / "config.yaml").is_file()
        samples = sorted(p.name for p in (run_dir / "samples").glob("*.jsonl.gz"))
        assert samples == ["humaneval.jsonl.gz", "humaneval_plus.jsonl.gz", "mbpp.jsonl.gz"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        he = metrics["benchmarks"]["humaneval"]
        assert he["n_problems"] == 3 and he["n_samples"] == [2]
        chains = {e["chain"] for e in he["pass_at_k"]}
        assert chains >= {"init", "refine", "explain_refine", "resample"}
        for name in ("table2_passk.md", "table3_overall.md", "table4_success_rate.md", "selfdebug_passk.png"):
            assert (run_dir / "report" / name).stat().st_size > 0
        check_what_the_notebook_shows(tmp_path / notebook.name, run_dir)
        # a second run resumes from the generation log: it must not change any verdict
        first = (run_dir / "samples" / "humaneval.jsonl.gz").read_bytes()
        shutil.rmtree(run_dir / "samples")
        papermill.execute_notebook(
            str(notebook), str(tmp_path / ("again_" + notebook.name)),
            parameters={"profile": "smoke", "run_dir": str(run_dir), "overrides": [f"model.id={tiny_model}"]},
            kernel_name="python3", progress_bar=False, cwd=str(REPO_ROOT),
        )
        assert (run_dir / "samples" / "humaneval.jsonl.gz").read_bytes() == first
        # the log of the resumed invocation is appended to the first one's, not written over it
        assert (run_dir / "evaluate.log").read_text().count("evaluate: invocation started") == 2


def check_what_the_notebook_shows(executed, run_dir):
    """The executed notebook reads as a report: the stage's INFO lines are in its log file, not in red under
    the cell; progress ran as widget bars (ipywidgets installed); a summary names the log; the notebook ends
    with a table of the per-sample records."""
    log_text = (run_dir / "evaluate.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO selfdebug\.evaluate\.",
                     log_text, re.M), log_text[:2000]
    nb = json.loads(executed.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    shown = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert not [o for o in outputs if o.get("name") == "stderr"], "the notebook shows stderr output"
    assert not re.search(r"INFO:? ?selfdebug\.", shown), "the notebook shows INFO log lines"
    assert "IProgress not found" not in shown
    # tqdm drew its bars as widgets: their models are in the widget state papermill saved
    widget_state = json.dumps(nb["metadata"].get("widgets", {}))
    assert "FloatProgressModel" in widget_state, "progress bars were not widgets (is ipywidgets installed?)"
    assert "Full log:" in shown and str(run_dir / "evaluate.log") in shown
    last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]["outputs"]
    assert len(last) == 1 and last[0]["output_type"] == "execute_result", last
    table = "".join(last[0]["data"]["text/html"])
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert headers[:6] == ["benchmark", "task_id", "sample", "chain", "round", "status"], headers
    assert {"feedback", "explanation", "code"} <= set(headers)
    assert table.count("<tr>") > 1, "no failing Explain + Refine attempt is listed (the tiny model fails them all)"
