"""The rating sample: drawn from saved evaluation records, the same for the same seed, the wrong code and
feedback those of the attempt being refined (parent_id, or the previous round's record), empty explanations
listed rather than dropped."""

import gzip
import json

import pytest

from selfdebug.human.sample import draw_sample, read_items, write_sample
from selfdebug.problems import Problem

TASKS = [f"T/{i}" for i in range(6)]


def _problem(bench, task_id):
    return Problem(task_id=task_id, benchmark=bench, prompt=f"Solve task {task_id} of {bench}.", entry_point="f",
                   style="full", reference="", tests=[])


def _write_records(folder, tag, *, with_parent_ids, empty_task=None, skip_task=None):
    """init (round 0) and explain_refine rounds 1-2 for two samples of each task; round-1 explanations name
    the model's tag so that tests can tell whose explanation an item holds."""
    for bench in ("humaneval", "mbpp"):
        rows = []
        for task in TASKS:
            if task == skip_task:
                continue
            for s in range(2):
                base = f"{bench}/{task}"
                init = {"benchmark": bench, "task_id": task, "sample": s, "chain": "init", "round": 0,
                        "code": f"def f(): return {s}  # {tag} wrong {base}", "feedback": f"{tag} feedback {base} s{s}",
                        "explanation": "", "passed": False}
                r1 = {"benchmark": bench, "task_id": task, "sample": s, "chain": "explain_refine", "round": 1,
                      "code": "def f(): return 1", "feedback": "r1 feedback",
                      "explanation": "" if task == empty_task else f"{tag} explains {base} s{s}", "passed": False}
                r2 = {**r1, "round": 2, "explanation": f"{tag} round 2", "feedback": "r2 feedback"}
                other = {**r1, "chain": "refine", "explanation": "", "code": "def f(): return 'refine'"}
                if with_parent_ids:
                    for r in (init, r1, r2, other):
                        r["attempt_id"] = f"{bench}/{task}/{r['chain']}/r{r['round']}/s{s}"
                    # the parent of a new-style record is named explicitly; point it somewhere a
                    # (task, sample) match would not find, to see that parent_id is the one used
                    init["attempt_id"] = f"{bench}/{task}/init/r0/s{s}-renamed"
                    r1["parent_id"] = init["attempt_id"]
                    r2["parent_id"] = r1["attempt_id"]
                rows += [init, r1, r2, other]
        path = folder / "samples" / f"{bench}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    return folder


@pytest.fixture
def models(tmp_path):
    return {"zephyr-alpha": _write_records(tmp_path / "rec_zephyr", "ZEPHYR", with_parent_ids=True, empty_task="T/3"),
            "quokka-beta": _write_records(tmp_path / "rec_quokka", "QUOKKA", with_parent_ids=False, skip_task="T/5")}


def test_items_pair_an_explanation_with_the_code_and_feedback_it_explains(models):
    sample = draw_sample(models, 4, seed=1, problems=_problem)
    assert len(sample.items) == 8 and len(sample.report["problems"]) == 4
    for it in sample.items:
        tag = "ZEPHYR" if it["model"] == "zephyr-alpha" else "QUOKKA"
        where = f"{it['benchmark']}/{it['task_id']}"
        assert it["round"] == 1 and it["attempt_id"].endswith(f"explain_refine/r1/s{it['sample']}")
        # the wrong code and feedback come from this model's init attempt of the same sample
        assert f"{tag} wrong {where}" in it["wrong_code"]
        assert it["feedback"] == f"{tag} feedback {where} s{it['sample']}"
        assert it["problem"] == f"Solve task {it['task_id']} of {it['benchmark']}."
        if not it["empty"]:
            assert it["explanation"] == f"{tag} explains {where} s{it['sample']}"
    # new-style records: the parent is the one parent_id names (the renamed init record)
    assert all(it["parent_id"].endswith("-renamed") for it in sample.items if it["model"] == "zephyr-alpha")


def test_every_model_is_rated_on_the_same_problems_and_a_shortfall_is_said(models):
    sample = draw_sample(models, 50, seed=0, problems=_problem)
    drawn = sample.report["problems"]
    assert len(drawn) == 10 and not any(p.endswith("T/5") for p in drawn)  # quokka has no T/5
    by_model = {m: sorted(f"{it['benchmark']}/{it['task_id']}" for it in sample.items if it["model"] == m) for m in models}
    assert by_model["zephyr-alpha"] == by_model["quokka-beta"] == sorted(drawn)
    assert "only 10" in sample.report["shortfall"]


def test_same_seed_same_sample_and_stable_ids_another_seed_differs(models):
    a = draw_sample(models, 3, seed=7, problems=_problem)
    b = draw_sample(models, 3, seed=7, problems=_problem)
    assert [it["item_id"] for it in a.items] == [it["item_id"] for it in b.items]
    others = {tuple(draw_sample(models, 3, seed=s, problems=_problem).report["problems"]) for s in range(8)}
    assert len(others) > 1
    assert len({it["item_id"] for it in a.items}) == len(a.items)
    assert not any(m in it["item_id"] for it in a.items for m in models)


def test_empty_explanations_are_listed_not_dropped(models, tmp_path):
    sample = draw_sample(models, 50, seed=0, problems=_problem)
    empty = [it for it in sample.items if it["empty"]]
    assert {(it["model"], it["task_id"]) for it in empty} == {("zephyr-alpha", "T/3")}
    assert len(empty) == 2  # T/3 of humaneval and of mbpp
    assert sample.report["empty"] == [{k: it[k] for k in ("item_id", "model", "benchmark", "task_id", "attempt_id")}
                                      for it in empty]
    assert sample.ratable == [it for it in sample.items if not it["empty"]]
    items_path, report_path = write_sample(sample, tmp_path / "study")
    assert read_items(items_path) == sample.items  # the judge reads the very same sample, empties included
    assert json.loads(report_path.read_text())["empty"] == sample.report["empty"]




def test_missing_records_and_unknown_problems_give_clear_errors(models, tmp_path):
    with pytest.raises(ValueError, match="problem text is unknown"):
        draw_sample({"zephyr-alpha": models["zephyr-alpha"]}, 2, seed=0, problems=lambda b, t: None)
    with pytest.raises(FileNotFoundError, match="no records for benchmark 'mbpp'"):
        (tmp_path / "half" / "samples").mkdir(parents=True)
        draw_sample({"x": tmp_path / "half"}, 2, seed=0, benchmarks=["mbpp"], problems=_problem)
