"""The explanation reward's similarity range from collected data (``selfdebug.rl.calibrate``): S_ex as RL computes
it, each explanation against the verified explanations of its own wrong solution (itself left out) or, lacking
those, of the problem's other wrong solutions; the proposed range is the observed 5th-95th percentile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfdebug.config import load_config
from selfdebug.io import write_jsonl
from selfdebug.rl import calibrate

VECTORS = {"a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.0, 1.0], "d": [0.6, 0.8], "e": [-1.0, 0.0]}


class LetterEmbedder:
    """Each text's first letter names its vector (unit vectors, so dot products are the cosines)."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.array([VECTORS[t[0]] for t in texts])


def rec(solution, problem, verified=(), failed=()):
    return {"record_id": f"{solution}/r", "solution_id": solution, "problem_id": problem,
            "verified": [{"explanation": e, "refinement": "x"} for e in verified],
            "failed": [{"explanation": e, "refinement": "y"} for e in failed]}


RECORDS = [
    rec("S1", "P1", verified=["a1", "b1"], failed=["c1"]),   # two verified: each against the other
    rec("S2", "P1", failed=["d2"]),                           # no verified of its own: P1's other solution's
    rec("S3", "P2", verified=["a3"]),                         # alone in its problem: no reference, no row
    rec("S4", "P3", failed=["", "  "]),                       # no explanation text: nothing to score
]


def test_similarities_use_the_solutions_references_then_the_problems():
    embedder = LetterEmbedder()
    rows = calibrate.similarity_rows(RECORDS, embedder)
    got = sorted((r["solution_id"], r["kind"], r["level"], round(r["s_ex"], 6)) for r in rows)
    assert got == sorted([
        ("S1", "verified", "solution", 0.8),    # a . b
        ("S1", "verified", "solution", 0.8),    # b . a
        ("S1", "failed", "solution", 0.3),      # c . mean(a, b) = (0 + 0.6) / 2
        ("S2", "failed", "problem", 0.78),      # d . mean(a, b) = (0.6 + 0.96) / 2
    ])
    assert embedder.calls == 1  # every text embedded once, in one call


def test_the_proposed_range_is_the_observed_central_ninety_percent():
    rows = [{"kind": "verified" if i % 2 else "failed", "level": "solution", "s_ex": v}
            for i, v in enumerate(np.linspace(0.1, 0.9, 101))]
    summary = calibrate.summarise(rows, "fake")
    assert summary["range"] == pytest.approx([0.14, 0.86]) and summary["border"] == pytest.approx(0.5)
    assert summary["share_in_paper_range"] == pytest.approx(63 / 101)
    # the proposed range puts each kind's median near the border: mean rewards near 0, the paper's far below
    for kind in summary["kinds"].values():
        assert abs(kind["mean_reward_proposed"]) < 0.2 and kind["mean_reward_paper"] < -3
    assert summary["auc"] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="no explanation with a reference"):
        calibrate.summarise([], "fake")
    with pytest.raises(ValueError, match="span no range"):
        calibrate.summarise([{"kind": "failed", "level": "problem", "s_ex": 0.5}] * 3, "fake")


def test_calibrate_writes_its_records_and_names_a_missing_collection(tmp_path):
    config = load_config("smoke")
    with pytest.raises(FileNotFoundError, match="no .*refinements.jsonl"):
        calibrate.calibrate(config, tmp_path / "absent", None, tmp_path / "out", LetterEmbedder())
    collection = tmp_path / "collect"
    write_jsonl(collection / "data" / "refinements.jsonl", RECORDS)
    write_jsonl(tmp_path / "rollouts.jsonl", [{"prompt_id": "S1/explain_refine", "s_ut": 1.0, "s_ex": 0.9},
                                              {"prompt_id": "S1/refine", "s_ut": 0.0, "s_ex": None}])
    summary = calibrate.calibrate(config, collection, tmp_path / "rollouts.jsonl", tmp_path / "out", LetterEmbedder())
    assert summary["n"] == 5 and summary["levels"] == {"solution": 3, "problem": 1, "rollout": 1}
    assert json.loads((tmp_path / "out" / "calibration.json").read_text())["range"] == summary["range"]
    assert len((tmp_path / "out" / "similarities.jsonl").read_text().splitlines()) == 5
    text = (tmp_path / "out" / "calibration.md").read_text()
    assert "Proposed `rl.explanation_range`" in text and calibrate.report_from(tmp_path / "out") == text
    with pytest.raises(ValueError, match="refinement record 1 .*no 'problem_id'"):
        calibrate.similarity_rows([{"solution_id": "S", "verified": [], "failed": []}], LetterEmbedder())


def test_the_cpu_profiles_range_is_its_committed_measurement():
    """configs/cpu.yaml's rl.explanation_range is the range the committed calibration proposes (no drift between
    the measurement and the setting; rerun `make rl-range` and copy it over when the collection changes)."""
    from selfdebug.config import REPO_ROOT

    measured = json.loads((REPO_ROOT / "figures/results/cpu/rl/calibration/calibration.json").read_text())
    assert load_config("cpu").rl.explanation_range == measured["range"]
    assert load_config("base").rl.explanation_range == [0.4, 1.0]  # the paper's, for the paper-* profiles
