"""The statistics: weighted kappa and Krippendorff's alpha against hand-computed and published values,
per-model means with bootstrap intervals, agreement with the LLM judge, Table 9's developers' row, and
the plain statement when nobody has rated yet."""

import json
import math

import numpy as np
import pytest

from selfdebug.human.analysis import analyse, krippendorff_alpha, read_judge_scores, weighted_kappa
from selfdebug.human.store import RatingStore

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing values:
# 4 observers x 12 units; unit 12 has one value only and pairs with nothing.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]).T


def test_krippendorff_alpha_matches_the_published_example():
    assert krippendorff_alpha(KRIPPENDORFF_2011, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPPENDORFF_2011, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(KRIPPENDORFF_2011, "interval") == pytest.approx(0.849, abs=5e-4)
    # the lone value of unit 12 changes nothing
    assert krippendorff_alpha(KRIPPENDORFF_2011[:11], "interval") == krippendorff_alpha(KRIPPENDORFF_2011, "interval")


def test_krippendorff_alpha_by_hand_and_edge_cases():
    # two coders, units (1,1), (2,3), (3,3): coincidences o11=2, o23=o32=1, o33=2; n=6, n1=2, n2=1, n3=3.
    # interval: sum(o*d) = 2*1 = 2; sum(n_c n_k d) = 2*(2*1*1 + 2*3*4 + 1*3*1) = 58; alpha = 1 - 5*2/58
    assert krippendorff_alpha([[1, 1], [2, 3], [3, 3]], "interval") == pytest.approx(1 - 10 / 58)
    assert krippendorff_alpha([[2, 2], [4, 4], [1, 1]], "ordinal") == 1.0
    assert math.isnan(krippendorff_alpha([[3, 3], [3, 3]], "ordinal"))  # no variation: undefined
    with pytest.raises(ValueError, match="level must be"):
        krippendorff_alpha([[1, 2]], "ratio-ish")


def test_weighted_kappa_by_hand():
    # a=[1,2,3,4], b=[2,2,3,5], quadratic weights (i-j)^2/16: observed sum(w O) = 2/16; expected
    # sum(w E) = (1/4) * (22+10+6+10)/16 = 0.75; kappa = 1 - 0.125/0.75
    assert weighted_kappa([1, 2, 3, 4], [2, 2, 3, 5]) == pytest.approx(1 - 0.125 / 0.75)
    # linear weights |i-j|/4: observed 1/4 + 1/4 = 0.5; expected (1/4) * (2.0 + 1.0 + 1.0 + 1.5) = 1.375
    assert weighted_kappa([1, 2, 3, 4], [2, 2, 3, 5], weights="linear") == pytest.approx(1 - 0.5 / 1.375)
    assert weighted_kappa([1, 3, 5], [1, 3, 5]) == 1.0
    assert weighted_kappa([1, 5, 1, 5], [5, 1, 5, 1]) < 0
    with pytest.raises(ValueError, match="not among the categories"):
        weighted_kappa([1, 7], [1, 2])


def _items():
    return [{"item_id": f"i{k}", "model": m, "benchmark": "mbpp", "task_id": f"MBPP/{k}", "empty": False}
            for k, m in enumerate(["sft", "base", "sft", "base", "sft", "base"])]


def test_no_ratings_gives_a_plain_statement(tmp_path):
    report = analyse(_items(), tmp_path / "ratings")
    assert report.statement.startswith("No ratings yet")
    assert "developers' row of Table 9 cannot be computed" in report.statement
    assert report.table9.empty and report.means.empty and report.agreement.empty
    assert report.markdown() == report.statement
    # half-rated and skipped items are not ratings
    RatingStore(tmp_path / "ratings", "Ada").record("i0", correctness=3)
    RatingStore(tmp_path / "ratings", "Ada").record("i1", skipped=True)
    assert analyse(_items(), tmp_path / "ratings").statement.startswith("No ratings yet")


def test_means_table9_agreement_and_judge(tmp_path):
    ratings = tmp_path / "ratings"
    ada, bo = RatingStore(ratings, "Ada"), RatingStore(ratings, "Bo")
    scores = {"i0": ((4, 4), (5, 3)), "i1": ((1, 2), (2, 2)), "i2": ((3, 5), (3, 5)),
              "i3": ((2, 1), (1, 1)), "i4": ((5, 5), (4, 4)), "i5": ((2, 2), (2, 3))}
    for item, ((c1, h1), (c2, h2)) in scores.items():
        ada.record(item, correctness=c1, helpfulness=h1)
        bo.record(item, correctness=c2, helpfulness=h2)
    ada.record("i0", correctness=5, helpfulness=4)  # a changed answer: the latest counts
    judge = tmp_path / "judge.jsonl"
    judge.write_text("".join(json.dumps({"item_id": f"i{k}", "correctness": c, "helpfulness": h, "judge": "gpt-4"}) + "\n"
                             for k, (c, h) in enumerate([(5, 4), (2, 2), (3, 4), (1, 1), (5, 5), (3, 3)])))
    report = analyse(_items(), ratings, judge, n_boot=200)
    assert report.statement.startswith("12 ratings of 6 items by 2 rater(s), over 2 model(s)")
    means = report.means.set_index(["model", "measure"])
    # sft items i0, i2, i4: per-item mean over raters of (c+h)/2 -> (4.5+4)/2, 4.0, (5+4)/2
    assert means.loc[("sft", "score"), "mean"] == pytest.approx((4.25 + 4.0 + 4.5) / 3)
    assert means.loc[("sft", "correctness"), "mean"] == pytest.approx((5 + 3 + 4.5) / 3)
    low, high = means.loc[("sft", "score"), ["low", "high"]]
    assert 4.0 <= low < means.loc[("sft", "score"), "mean"] < high <= 4.5
    assert means.loc[("base", "score"), "n_items"] == 3 and means.loc[("base", "score"), "n_raters"] == 2
    assert list(report.table9.index) == ["Developers", "LLM judge"]
    assert report.table9.loc["Developers", "sft"].startswith(f"{(4.25 + 4.0 + 4.5) / 3:.2f} [")
    assert report.table9.loc["LLM judge", "sft"].startswith(f"{(4.5 + 3.5 + 5) / 3:.2f} [")
    agree = report.agreement.set_index(["scale", "statistic"])["value"]
    a_c = [5, 1, 3, 2, 5, 2]
    b_c = [5, 2, 3, 1, 4, 2]
    assert agree[("correctness", "weighted kappa (quadratic)")] == pytest.approx(weighted_kappa(a_c, b_c))
    assert agree[("correctness", "Krippendorff alpha (ordinal)")] == pytest.approx(
        krippendorff_alpha(np.array([a_c, b_c], dtype=float).T, "ordinal"))
    j = report.judge_agreement.set_index(["rater", "scale"])["weighted kappa (quadratic)"]
    assert j[("Ada", "correctness")] == pytest.approx(weighted_kappa(a_c, [5, 2, 3, 1, 5, 3]))
    md = report.markdown()
    assert "Table 9" in md and "Developers" in md and "LLM judge" in md


def test_three_raters_get_alpha_only_and_bad_judge_files_are_named(tmp_path):
    for name, shift in (("A", 0), ("B", 1), ("C", 0)):
        store = RatingStore(tmp_path / "r", name)
        for k in range(4):
            store.record(f"i{k}", correctness=min(5, 1 + k + shift), helpfulness=2)
    agree = analyse(_items(), tmp_path / "r", n_boot=50).agreement
    assert set(agree.statistic) == {"Krippendorff alpha (ordinal)"}
    bad = tmp_path / "judge.jsonl"
    bad.write_text('{"item_id": "i0", "correctness": 9, "helpfulness": 1}\n')
    with pytest.raises(ValueError, match=r"judge.jsonl:1: correctness must be an integer from 1 to 5"):
        read_judge_scores(bad, _items())
    bad.write_text('{"item_id": "zz", "correctness": 3, "helpfulness": 1}\n')
    with pytest.raises(ValueError, match="unknown item id 'zz'"):
        read_judge_scores(bad, _items())
