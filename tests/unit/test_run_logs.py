"""A stage's log in its run folder (selfdebug.logs) and the notebook's views of a run (selfdebug.report.explore)."""

import logging
import re
import warnings

import pytest

from selfdebug.io import atomic_write_text, write_jsonl
from selfdebug.logs import log_to_run_dir
from selfdebug.report.explore import CHAINS, records_frame, records_view, stage_summary

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


@pytest.fixture
def bare_root(monkeypatch):
    """The root logger as a notebook kernel has it: no handlers. A function, called from the test body,
    since pytest adds its capturing handlers to the root logger after the fixtures ran."""

    def bare() -> logging.Logger:
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", [])
        monkeypatch.setattr(root, "level", logging.WARNING)
        return root

    return bare


def test_info_goes_to_the_file_and_only_warnings_to_stderr(tmp_path, capsys, bare_root):
    root = bare_root()
    with log_to_run_dir(tmp_path, "evaluate") as run_log:
        logging.getLogger("selfdebug.some.stage").info("3 problems loaded")
        logging.getLogger("selfdebug.some.stage").warning("a reference solution timed out")
        warnings.warn("a deprecated flag", UserWarning, stacklevel=1)
    text = (tmp_path / "evaluate.log").read_text()
    assert re.search(rf"^{STAMP} INFO selfdebug\.some\.stage: 3 problems loaded$", text, re.M), text
    assert re.search(rf"^{STAMP} WARNING selfdebug\.some\.stage: a reference solution timed out$", text, re.M)
    assert "a deprecated flag" in text  # Python warnings are log records while the block runs
    err = capsys.readouterr()
    assert "a reference solution timed out" in err.err and "3 problems loaded" not in err.err
    assert "evaluate.log" in err.out  # one line tells where the log is
    assert run_log.warnings == 2 and run_log.errors == 0 and run_log.records >= 4
    assert any("a reference solution timed out" in w for w in run_log.warnings_seen)
    # the root logger is as it was
    assert root.handlers == [] and root.level == logging.WARNING


def test_a_failing_stage_leaves_its_traceback_in_the_file(tmp_path, capsys, bare_root):
    bare_root()
    with pytest.raises(ValueError, match="no such benchmark"), log_to_run_dir(tmp_path, "evaluate") as run_log:
        raise ValueError("no such benchmark")
    text = (tmp_path / "evaluate.log").read_text()
    assert "evaluate: stopped by ValueError: no such benchmark" in text and "Traceback" in text
    assert "Traceback" not in capsys.readouterr().err  # the notebook prints the traceback once, itself
    assert run_log.errors == 1


def test_invocations_append_and_a_library_with_its_own_handler_is_routed_back(tmp_path, bare_root):
    bare_root()
    # transformers logs through a stderr handler of its own, installed on first use, and does not propagate
    from transformers.utils import logging as hf_logging

    hf_logging._reset_library_root_logger()  # as in a fresh kernel: the handler appears during the stage
    lib = hf_logging.get_logger()  # what transformers sets up (it propagates when the CI variable is set)
    before = (lib.propagate, list(lib.handlers))
    hf_logging._reset_library_root_logger()
    for i in range(2):
        with log_to_run_dir(tmp_path, "evaluate"):
            hf_logging.get_logger("transformers.generation").warning("generation flag %d ignored", i)
    lib = hf_logging.get_logger()
    assert (lib.propagate, [type(h) for h in lib.handlers]) == (before[0], [type(h) for h in before[1]])
    text = (tmp_path / "evaluate.log").read_text()
    assert text.count("evaluate: invocation started") == 2
    assert "generation flag 0 ignored" in text and "generation flag 1 ignored" in text


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="console_level='LOUD'"), log_to_run_dir(tmp_path, "x", console_level="LOUD"):
        pass
    with pytest.raises(ValueError, match="plain file stem"), log_to_run_dir(tmp_path, "../x"):
        pass


def _record(task, sample, chain, round_, passed=False, code="def f():\n    return 1 < 2\n"):
    return {"benchmark": "humaneval", "task_id": task, "sample": sample, "chain": chain, "round": round_,
            "passed": passed, "status": "passed" if passed else "wrong_answer", "n_passed": 0, "n_total": 1,
            "feedback": "" if passed else "expect f() == 2, but was 1", "explanation": "", "code": code,
            "finish_reason": "stop"}


def _results(tmp_path, rows, bench="humaneval"):
    atomic_write_text(tmp_path / "config.yaml", "profile: test\n")
    write_jsonl(tmp_path / "samples" / f"{bench}.jsonl.gz", rows)
    return tmp_path


def test_records_frame_orders_attempts_and_keeps_every_field(tmp_path):
    rows = [_record("HumanEval/1", 0, "resample", 1), _record("HumanEval/1", 0, "explain_refine", 2),
            _record("HumanEval/1", 0, "init", 0), _record("HumanEval/0", 1, "refine", 1, passed=True),
            _record("HumanEval/1", 0, "explain_refine", 1)]
    df = records_frame(_results(tmp_path, rows))
    assert list(df.columns[:12]) == ["benchmark", "task_id", "sample", "chain", "round", "passed", "status",
                                     "n_passed", "n_total", "feedback", "explanation", "code"]
    assert "finish_reason" in df.columns
    assert list(zip(df.task_id, df.chain.astype(str), df["round"], strict=True)) == [
        ("HumanEval/0", "refine", 1), ("HumanEval/1", "init", 0), ("HumanEval/1", "explain_refine", 1),
        ("HumanEval/1", "explain_refine", 2), ("HumanEval/1", "resample", 1)]
    assert list(df.chain.cat.categories) == list(CHAINS)
    failing = df[(df.chain == "explain_refine") & ~df.passed]
    assert len(failing) == 2


def test_records_frame_names_what_is_wrong(tmp_path):
    results = _results(tmp_path, [_record("HumanEval/0", 0, "init", 0)])
    with pytest.raises(ValueError, match="no per-sample records for mbpp; this run has humaneval"):
        records_frame(results, benchmarks=["mbpp"])
    bad = {k: v for k, v in _record("HumanEval/0", 0, "init", 0).items() if k != "feedback"}
    _results(tmp_path, [bad], bench="mbpp")
    with pytest.raises(ValueError, match=r"mbpp\.jsonl\.gz: records lack feedback"):
        records_frame(results)


def test_records_view_keeps_code_readable_and_escaped(tmp_path):
    df = records_frame(_results(tmp_path, [_record(f"HumanEval/{i}", 0, "init", 0) for i in range(5)]))
    view = records_view(df, max_rows=2, title="wrong initial samples")
    page = view._repr_html_()
    assert page.count("<tr>") == 3  # the header and two attempts
    assert "the first 2 of 5 attempts" in page and "white-space:pre-wrap" in page
    assert "return 1 &lt; 2\n" in page  # code is shown as text, line breaks kept
    assert "return 1 < 2 |" in repr(view)  # the terminal's copy: one line per attempt
    with pytest.raises(ValueError, match="lacks code"):
        records_view(df.drop(columns=["code"]))


def test_stage_summary_names_the_log_and_repeats_warnings(tmp_path, bare_root):
    bare_root()
    with log_to_run_dir(tmp_path, "evaluate") as run_log:
        logging.getLogger("selfdebug.x").warning("2 sandbox failures on mbpp")
    summary = {"backend": "hf", "seconds": 12.3, "generation": {"requests": 10, "resumed": 4, "completion_tokens": 99},
               "benchmarks": {"mbpp": {"problems": 3, "records": 42, "seconds": 6.0}}}
    text = stage_summary(summary, run_log)
    assert "10 requests to the model, 4 of them answered from the generation log" in text
    assert f"Full log: `{tmp_path / 'evaluate.log'}`" in text and "1 warnings" in text
    assert "WARNING selfdebug.x: 2 sandbox failures on mbpp" in text
    assert "| mbpp | 3 | 42 | 6.0 |" in text
    assert text._repr_markdown_() == str(text)
