"""Section 5's failure-mode hypothesis and section 6's "what the turn fixed", on hand-made TIDE numbers."""

from __future__ import annotations

from bddengine.report.casestudy import failure_mode
from bddengine.report.casestudy.failure_mode import ERROR_TYPES, removed, slice_row


def failure_hypothesis(row, overall) -> str:
    return failure_mode.failure_hypothesis(row, overall).replace("\u00a0", " ")  # CIs keep their bounds together


def arm_verdict(entry) -> str:
    return failure_mode.arm_verdict(entry).replace("\u00a0", " ")


def _row(dap: dict, *, fp: float, fn: float, ci: dict | None = None, heights=None, vis=None) -> dict:
    return {
        "grouping": "slice", "key": {"weather": "rainy"}, "n_frames": 40, "map50": 0.2,
        "dap": {t: dap.get(t, 0.0) for t in ERROR_TYPES}, "special": {"fp": fp, "fn": fn},
        "ci95": ci, "recall_by_height": heights or [], "recall_by_visibility": vis or [],
    }


HEIGHTS = [
    {"bucket": "0-32", "lo": 0.0, "hi": 32.0, "n_gt": 200, "n_found": 40, "recall": 0.2},
    {"bucket": "32-64", "lo": 32.0, "hi": 64.0, "n_gt": 100, "n_found": 60, "recall": 0.6},
    {"bucket": "128+", "lo": 128.0, "hi": None, "n_gt": 5, "n_found": 0, "recall": 0.0},  # too few boxes
]


def test_recall_bound_slice() -> None:
    row = _row({"miss": 0.104, "loc": 0.031, "bkg": 0.018, "cls": 0.004}, fp=0.02, fn=0.41,
               ci={"miss": [0.08, 0.13], "loc": [0.02, 0.04], "cls": [0.0, 0.01]}, heights=HEIGHTS)
    text = failure_hypothesis(row, None)
    assert "Failure mode: missed objects" in text
    assert "by 0.104, 95% CI [0.080, 0.130], against 0.031 for loc" in text
    assert "overlap" not in text
    assert "The issue is recall, not precision" in text
    assert "Class confusion is minimal: it costs 0.004" in text
    # the 128+ bucket has 0% recall but only 5 boxes: the lowest bucket named is 0-32 px
    assert "lowest for boxes 0-32 px tall: it finds 20% of 200 (misses 80%)" in text
    assert "60% of boxes 32-64 px tall" in text


def test_precision_bound_slice() -> None:
    row = _row({"bkg": 0.09, "dupe": 0.01, "miss": 0.02, "cls": 0.03}, fp=0.15, fn=0.03)
    text = failure_hypothesis(row, None)
    assert "Failure mode: background false positives" in text
    assert "The issue is precision, not recall" in text
    assert "Class confusion matters: it costs 0.030, 33% of what bkg costs" in text


def test_class_confusion_on_top_and_mixed_bound() -> None:
    row = _row({"cls": 0.05, "miss": 0.04}, fp=0.06, fn=0.07, ci={"cls": [0.02, 0.07], "miss": [0.03, 0.05]})
    text = failure_hypothesis(row, None)
    assert "Failure mode: class confusion" in text
    assert "the two CIs overlap" in text
    assert "Class confusion is the largest cost." in text
    assert "Recall and precision both limit it" in text


def test_a_slice_without_error_costs_claims_nothing() -> None:
    text = failure_hypothesis(_row({}, fp=0.0, fn=0.0), None)
    assert "No error type costs the slice any AP@0.5" in text
    assert "Neither recall nor precision limits it" in text
    assert "Failure mode" not in text and "Class confusion" not in text
    assert "No box-height bucket of the slice holds 10 ground-truth boxes" in text
    assert failure_hypothesis(None, None) == ""
    no_miss = _row({}, fp=0.0, fn=0.0)
    no_miss["dap"]["miss"] = None  # tidecv's re-scoring left no AP: not a cost of 0
    text = failure_hypothesis(no_miss, None)
    assert "The cost of miss is not defined on this slice" in text and "No other error type costs" in text


def test_visibility_and_overall_comparison() -> None:
    vis = [{"attribute": "occluded", "value": True, "n_gt": 150, "recall": 0.47},
           {"attribute": "occluded", "value": False, "n_gt": 300, "recall": 0.6},
           {"attribute": "truncated", "value": True, "n_gt": 4, "recall": 0.0},
           {"attribute": "truncated", "value": False, "n_gt": 400, "recall": 0.6}]
    row = _row({"miss": 0.1}, fp=0.0, fn=0.3, heights=HEIGHTS, vis=vis)
    overall = {**_row({"miss": 0.05}, fp=0.0, fn=0.2), "grouping": "overall", "key": {},
               "recall_by_height": [{**HEIGHTS[0], "recall": 0.36}]}
    text = failure_hypothesis(row, overall)
    assert "the whole eval pool finds 36% of such boxes" in text
    assert "47% of 150 occluded boxes against 60% of 300 others" in text
    assert "too few truncated or non-truncated boxes to compare" in text
    doc = {"slices": [row, overall]}
    assert slice_row(doc, {"weather": "rainy"}) is row and slice_row(doc, None) is overall


def _entry(delta: dict, ci: dict) -> dict:
    return {"arm": "a", "n_seeds": 2, "iter0": {t: 0.1 for t in ERROR_TYPES},
            "iter1": {t: 0.1 + delta.get(t, 0.0) for t in ERROR_TYPES},
            "delta": {t: delta.get(t, 0.0) for t in ERROR_TYPES}, "ci95": ci}


def test_the_error_an_arm_removed() -> None:
    e = _entry({"miss": -0.04, "loc": -0.01, "bkg": 0.02},
               {"miss": [-0.06, -0.02], "loc": [-0.02, -0.001], "bkg": [0.005, 0.03], "cls": [-0.01, 0.01]})
    assert removed(e) == (["miss", "loc"], ["bkg"])
    text = arm_verdict(e)
    assert text.startswith("removed part of the cost of missed objects: miss 0.100 → 0.060 (-0.040")
    assert "also lowered (CI below 0): loc" in text
    assert "background false positives grew" in text


def test_a_turn_that_changed_nothing() -> None:
    e = _entry({"miss": -0.03, "bkg": 0.01}, {t: [-0.05, 0.02] for t in ERROR_TYPES})
    assert removed(e) == ([], [])
    text = arm_verdict(e)
    assert text.startswith("no error type's cost changed beyond noise (every 95% CI includes 0")
    assert "largest change miss" in text
    # no CI at all (one seed, too few frames) is no claim either
    assert arm_verdict(_entry({"miss": -0.5}, {t: None for t in ERROR_TYPES})).startswith("no error type's cost")


def test_an_arm_that_only_raised_a_cost_removed_nothing() -> None:
    e = _entry({"bkg": 0.003, "miss": -0.02}, {"bkg": [0.001, 0.005], "miss": [-0.05, 0.01]})
    text = arm_verdict(e)
    assert text.startswith("no error type's cost fell beyond noise")
    assert "the cost of background false positives grew: bkg 0.100 → 0.103" in text


def test_short_verdicts_for_the_other_arms() -> None:
    short = failure_mode.short_verdict
    assert short(_entry({"miss": -0.04}, {"miss": [-0.06, -0.02]})).startswith("miss fell -0.040 [-0.060,")
    assert short(_entry({"bkg": 0.003}, {"bkg": [0.001, 0.005]})).startswith("nothing fell beyond noise, bkg rose")
    assert short(_entry({"miss": -0.03}, {"miss": [-0.05, 0.02]})) == "no change beyond noise"


def test_a_change_that_rounds_to_zero_is_no_change() -> None:
    e = _entry({"both": 0.00001, "bkg": 0.003}, {"both": [0.000001, 0.00002], "bkg": [0.001, 0.005]})
    assert removed(e) == ([], ["bkg"])
