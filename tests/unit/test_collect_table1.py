"""Paper Table 1 counts on a hand-made set, and the refinement rate's definition."""

import pytest

from selfdebug.collect.table1 import table1_frame, table1_rows, write_table1


def sol(sid, source, passed, status=None):
    return {"solution_id": sid, "source": source, "passed": passed, "status": status or ("passed" if passed else "wrong_answer")}


def rec(sid, source, mode, verified, teacher="self", hindsight=False):
    return {"solution_id": sid, "source": source, "teacher": teacher, "mode": mode, "hindsight": hindsight,
            "verified": [{"explanation": "", "refinement": "x"}] if verified else []}


def test_table1_counts_wrong_solutions_with_a_verified_refinement_per_teacher_and_mode():
    solutions = [sol("a", "mbpp", True), sol("b", "mbpp", False), sol("c", "mbpp", False), sol("d", "mbpp", False),
                 sol("e", "mbpp", False, "sandbox_error"), sol("f", "apps", True), sol("g", "apps", False)]
    records = [rec("b", "mbpp", "refine", True), rec("c", "mbpp", "refine", False),
               rec("b", "mbpp", "explain_refine", False), rec("c", "mbpp", "explain_refine", True),
               rec("d", "mbpp", "explain_refine", False), rec("d", "mbpp", "explain_refine", True, hindsight=True),
               rec("g", "apps", "refine", False), rec("b", "mbpp", "refine", True, teacher="big")]
    rows = table1_rows(solutions, records, {"mbpp": 4})
    got = {(r["source"], r["teacher"], r["mode"], r["hindsight"]): (r["unique"], r["correct"], r["wrong"],
                                                                     r["wrong_refined"]) for r in rows}
    assert got == {
        ("mbpp", "self", "refine", False): (5, 1, 3, 1),  # the sandbox failure is neither correct nor wrong
        ("mbpp", "self", "explain_refine", False): (5, 1, 3, 1),
        ("mbpp", "self", "any", False): (5, 1, 3, 2),  # b by Refine, c by Expl.+Refine
        ("mbpp", "self", "explain_refine", True): (5, 1, 3, 1),  # hindsight kept apart, not in "any"
        ("mbpp", "big", "refine", False): (5, 1, 3, 1), ("mbpp", "big", "any", False): (5, 1, 3, 1),
        ("apps", "self", "refine", False): (2, 1, 1, 0), ("apps", "self", "any", False): (2, 1, 1, 0),
    }
    asked = {(r["source"], r["teacher"], r["mode"], r["hindsight"]): r["asked"] for r in rows}
    assert asked[("mbpp", "self", "any", False)] == 3 and asked[("mbpp", "self", "refine", False)] == 2
    assert asked[("mbpp", "self", "explain_refine", True)] == 1  # hindsight asked about d only
    any_row = next(r for r in rows if (r["source"], r["teacher"], r["mode"]) == ("mbpp", "self", "any"))
    assert any_row["refinement_rate"] == pytest.approx(2 / 3)
    frame = table1_frame(rows)
    assert "66.67%" in set(frame["Refinement Rate"]) and "MBPP (4)" in set(frame["Dataset"])
    assert "Expl.+Refine + hindsight" in set(frame["Mode"])
    assert table1_frame([{k: v for k, v in rows[0].items() if k != "asked"}])["#Asked"].tolist() == [""]  # older


def test_write_table1_from_compact_results(tmp_path):
    rows = table1_rows([sol("a", "mbpp", True), sol("b", "mbpp", False)], [rec("b", "mbpp", "refine", True)])
    paths = write_table1({"table1": rows}, tmp_path)
    assert [p.name for p in paths] == ["table1_collection.csv", "table1_collection.md", "table1_sources.png"]
    assert "100.00%" in paths[1].read_text() and paths[2].stat().st_size > 1000
