"""Tables and figures say what the numbers are: Table 4's average counts HumanEval once, Fig. 4 names the
benchmarks a pooled panel lacks, the deltas table and the sandbox-failure counts reach the report."""

import json

from selfdebug.evaluate.metrics import compute_all
from selfdebug.report import figures
from selfdebug.report.tables import AVERAGE_COLUMN, sandbox_note, table4, table_deltas


def records(bench, table):
    """``table``: task -> list of samples, each ``(initial passed, {chain: refinement passed})``."""
    out = []
    for tid, samples in table.items():
        for s, (ok, refined) in enumerate(samples):
            out.append(dict(benchmark=bench, task_id=tid, sample=s, chain="init", round=0, passed=ok,
                            status="passed" if ok else "wrong_answer", completion_tokens=1))
            for chain, rok in ({} if ok else refined).items():
                out.append(dict(benchmark=bench, task_id=tid, sample=s, completion_tokens=1, chain=chain, round=1,
                                passed=rok, status="passed" if rok else "wrong_answer"))
    return out


def wrong(refine=False, explain=False, resample=False):
    return (False, {"refine": refine, "explain_refine": explain, "resample": resample})


RIGHT = (True, {})


def three_benchmarks():
    return {"humaneval": records("humaneval", {"A": [wrong(refine=True), wrong()], "B": [RIGHT, RIGHT]}),
            "humaneval_plus": records("humaneval_plus", {"A": [wrong(), wrong()], "B": [RIGHT, RIGHT]}),
            "mbpp": records("mbpp", {"M": [wrong(refine=True), RIGHT]})}


def test_table4_average_does_not_count_humaneval_twice():
    df = table4(compute_all(three_benchmarks(), [1], n_boot=100)).set_index("Approach")
    assert df.loc["Refine", "HumanEval"].startswith("50.00") and df.loc["Refine", "HumanEval+"].startswith("0.00")
    assert df.loc["Refine", "MBPP"].startswith("100.00")
    # (mean(50, 0) + 100) / 2 = 62.5; the mean over the three columns would be 50
    assert df.loc["Refine", AVERAGE_COLUMN].startswith("62.50 [")


def test_fig4_panel_of_a_group_names_what_it_lacks(tmp_path, monkeypatch):
    metrics = compute_all(three_benchmarks(), [1], n_boot=20)
    assert metrics["groups"]["MBPP+ & HE+"]["missing"] == ["mbpp_plus"]
    titles = []

    def keep_titles(fig, path):
        titles.extend(ax.get_title() for ax in fig.axes if ax.get_title())
        return path

    monkeypatch.setattr(figures, "_save", keep_titles)
    figures.rounds_figure(metrics, tmp_path / "fig4.png", k=1)
    assert "MBPP+ & HE+ (without MBPP+)" in titles
    assert "MBPP & HE" in titles  # complete: no qualifier
    assert "MBPP+ & HE+" not in titles


def test_deltas_table_has_paired_cis():
    df = table_deltas(compute_all(three_benchmarks(), [1], n_boot=100))
    row = df[(df["Benchmarks"] == "MBPP") & (df["Comparison"] == "Refine − Resample") & (df["Metric"] == "pass@1")]
    # MBPP: Refine fixes M's wrong sample (pass@1 1/2 -> 1), Resample does not
    assert row["Δ (points)"].tolist() == ["+50.00 [+50.0, +50.0]"]
    assert "MBPP+ & HE+ (without MBPP+)" in set(df["Benchmarks"])


def test_sandbox_failures_are_named_in_the_notes():
    recs = three_benchmarks()
    recs["mbpp"].append(dict(recs["mbpp"][0], task_id="N", sample=0, passed=False, status="sandbox_error"))
    note = sandbox_note(compute_all(recs, [1], n_boot=20))
    assert "MBPP 1 of 6 attempts (16.7%; 1 initial samples dropped; no sample left for N)" in note
    assert "HumanEval" not in note
    assert sandbox_note(compute_all(three_benchmarks(), [1], n_boot=20)).endswith("none.")


def test_build_report_writes_deltas_and_sandbox_counts(tmp_path):
    from selfdebug.config import load_config
    from selfdebug.io import write_jsonl
    from selfdebug.report import build_report

    results = tmp_path / "results"
    load_config("smoke", ["evaluate.ks=[1]"]).save(results / "config.yaml")
    for bench, recs in three_benchmarks().items():
        write_jsonl(results / "samples" / f"{bench}.jsonl.gz", recs)
    build_report(results, tmp_path / "report")
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["benchmarks"]["mbpp"]["sandbox_errors"]["attempts"] == 0
    assert metrics["benchmarks"]["mbpp"]["deltas"] and metrics["success_rate_average"]
    deltas_md = (tmp_path / "report" / "table_deltas.md").read_text()
    assert "Expl.+Refine − Refine" in deltas_md and "paired bootstrap" in deltas_md
    assert (tmp_path / "report" / "table_deltas.csv").is_file()
    assert "Sandbox failures" in (tmp_path / "report" / "table2_passk.md").read_text()
    assert "Average over sample groups" in (tmp_path / "report" / "table4_success_rate.md").read_text()


def test_per_problem_frame_leaves_undefined_pass_at_k_empty():
    from selfdebug.report.tables import per_problem_frame

    recs = {"mbpp": records("mbpp", {"M": [RIGHT, RIGHT], "N": [RIGHT, RIGHT]})}
    recs["mbpp"][-1] = dict(recs["mbpp"][-1], passed=False, status="sandbox_error")  # N keeps one sample
    frame = per_problem_frame(recs, [1, 2]).set_index("task_id")
    assert frame.loc["N", "pass@1"] == 1.0 and frame.loc["N", "pass@2"] != frame.loc["N", "pass@2"]  # NaN
    assert frame.loc["M", "pass@2"] == 1.0


def test_run_summary_counts_replies_cut_by_the_token_cap_and_names_the_machine(tmp_path):
    from selfdebug.io import write_jsonl
    from selfdebug.report import run_summary

    rows = []
    loop = "def f(x):\n    return x\n" + "print('and again and again and again')\n" * 60
    for s, reason in enumerate(["stop", "length", "stop", "stop", "length"]):
        rows.append(dict(benchmark="mbpp", task_id="M", sample=s, chain="init", round=0, passed=False,
                         status="wrong_answer", completion_tokens=5,
                         completion=loop if s == 4 else f"reply {s} " + "".join(f"line {i}\n" for i in range(300)),
                         finish_reason=reason))
    rows.append(dict(benchmark="mbpp", task_id="M", sample=0, chain="explain_refine", round=1, passed=True,
                     status="passed", completion_tokens=5, completion="fix", finish_reason="stop"))
    write_jsonl(tmp_path / "samples" / "mbpp.jsonl.gz", rows)
    (tmp_path / "config.yaml").write_text("evaluate:\n  ks: [1]\n")
    machine = {"model": "Test CPU", "cores": 2, "flags": {"avx2": False, "amx_tile": True}}
    probe = [{"settings": "as configured", "ok": False, "how": "killed by SIGSEGV"},
             {"settings": "plain kernels", "ok": True, "how": "ok"}]
    (tmp_path / "summary.json").write_text(json.dumps({"backend": "llamacpp", "benchmarks": {}, "generation": {},
                                                       "machine": machine, "engine_probe": probe}))
    text = run_summary(tmp_path)
    # two cut replies: one stuck in a loop (no cap ends it), one that was merely long
    assert "| Init. | 5 | 2 | 40.0% | 1 | 20.0% |" in text and "| Expl.+Refine | 1 | 0 | 0.0% | 0 | 0.0% |" in text
    assert "Test CPU, 2 cores (avx2 no, amx_tile yes)" in text
    assert "as configured: killed by SIGSEGV; plain kernels: ok" in text


def test_report_has_table9_from_human_ratings_or_says_there_are_none(tmp_path):
    from selfdebug.human.store import RatingStore
    from selfdebug.io import write_jsonl
    from selfdebug.report import human_ratings_section

    assert "No human rating study beside these results" in human_ratings_section(tmp_path)
    items = [{"item_id": f"i{k}", "model": m, "benchmark": "mbpp", "task_id": f"MBPP/{k}", "problem": "p",
              "wrong_code": "c", "feedback": "f", "explanation": "e", "empty": False}
             for k, m in enumerate(["sft", "base", "sft", "base"])]
    write_jsonl(tmp_path / "human_eval" / "items.jsonl", items)
    assert "No ratings yet" in human_ratings_section(tmp_path)
    store = RatingStore(tmp_path / "human_eval" / "ratings", "Ada")
    for k, score in enumerate([5, 1, 4, 2]):
        store.record(f"i{k}", correctness=score, helpfulness=score)
    text = human_ratings_section(tmp_path)
    assert "Table 9 (score = mean of correctness and helpfulness)" in text and "Developers" in text
    assert "4.50" in text and "1.50" in text  # sft's and base's mean scores
