"""TIDE error decomposition: known frames, agreement with tidecv, size buckets, CIs."""

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bddengine.evaluation import build_match_cache, evaluate_overall
from bddengine.evaluation.coco import frames_to_coco
from bddengine.evaluation.error_ap import variant_maps
from bddengine.evaluation.errors import ERROR_TYPES, error_costs, error_counts


def _box(x1, y1, x2, y2):
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _gt(cat, box, **attrs):
    return {"category": cat, "box2d": box, "attributes": {"occluded": False, "truncated": False, **attrs}}


def _det(cat, box, score):
    return {"category": cat, "box2d": box, "score": score}


def known_frames():
    """One frame per error type (and true positives, so every class keeps some AP)."""
    car, truck = _box(100, 100, 199, 199), _box(400, 300, 599, 399)
    gt = [
        {"name": "a-tp", "labels": [_gt("car", car), _gt("truck", truck)]},
        {"name": "b-loc", "labels": [_gt("car", car)]},
        {"name": "c-cls", "labels": [_gt("car", car)]},
        {"name": "d-dupe", "labels": [_gt("car", car)]},
        {"name": "e-bkg", "labels": [_gt("truck", truck)]},
        {"name": "f-both", "labels": [_gt("car", car)]},
        {"name": "g-miss", "labels": [_gt("car", car), _gt("truck", truck)]},
    ]
    preds = [
        {"name": "a-tp", "labels": [_det("car", car, 0.95), _det("truck", truck, 0.9)]},
        # IoU of the shifted box with the car: 0.3 (localization)
        {"name": "b-loc", "labels": [_det("car", _box(154, 100, 253, 199), 0.85)]},
        # the right box, the wrong class (classification)
        {"name": "c-cls", "labels": [_det("truck", _box(101, 101, 199, 199), 0.8)]},
        # two boxes on one car: the lower-scoring one is a duplicate
        {"name": "d-dupe", "labels": [_det("car", car, 0.75), _det("car", _box(102, 102, 200, 200), 0.7)]},
        # nowhere near anything (background)
        {"name": "e-bkg", "labels": [_det("truck", truck, 0.65), _det("car", _box(900, 500, 999, 599), 0.6)]},
        # wrong class and IoU 0.3 (both)
        {"name": "f-both", "labels": [_det("truck", _box(154, 100, 253, 199), 0.55)]},
        # the truck is found, the car is missed
        {"name": "g-miss", "labels": [_det("truck", truck, 0.5)]},
    ]
    return gt, preds


def tidecv_errors(gt_frames, pred_frames):
    """tidecv 1.0.1's main and special errors (as fractions) on the COCO conversion of the frames."""
    tidecv = pytest.importorskip("tidecv")
    pair = frames_to_coco(gt_frames, pred_frames)
    gt, preds = tidecv.Data("gt"), tidecv.Data("preds")
    for i, name in enumerate(pair.names):
        gt.add_image(i + 1, name)
    for ann in sorted(pair.gt.anns.values(), key=lambda a: a["id"]):
        assert not ann["iscrowd"], "the agreement fixture has no crowd boxes"
        gt.add_ground_truth(ann["image_id"], ann["category_id"], ann["bbox"])
    for ann in sorted(pair.dt.anns.values(), key=lambda a: a["id"]):
        preds.add_detection(ann["image_id"], ann["category_id"], ann["score"], ann["bbox"])
    tide = tidecv.TIDE()
    run = tide.evaluate(gt, preds, mode=tidecv.TIDE.BOX, name="run")
    errors = tide.get_all_errors()
    main = {k.lower(): v / 100 for k, v in errors["main"]["run"].items()}
    special = errors["special"]["run"]
    return {
        "base": run.ap / 100,
        "cls": main["cls"], "loc": main["loc"], "both": main["both"], "dupe": main["dupe"],
        "bkg": main["bkg"], "miss": main["miss"],
        "fp": special["FalsePos"] / 100, "fn": special["FalseNeg"] / 100,
    }


def ours(gt_frames, pred_frames):
    cache = build_match_cache(gt_frames, pred_frames, errors=True)
    frames = np.arange(cache.n_frames)
    maps = variant_maps(cache, cache.errors, frames, np.ones((1, frames.size), dtype=np.int64))
    costs = {k: float(v[0]) for k, v in error_costs(maps).items()}
    return cache, float(maps["base"][0]), costs


def test_known_frames_get_their_error_types():
    gt, preds = known_frames()
    cache, base, _ = ours(gt, preds)
    assert base == pytest.approx(evaluate_overall(cache)["map50"], abs=1e-15)
    em = cache.errors
    assert error_counts(em, np.arange(cache.n_frames)) == {
        "cls": 1, "loc": 1, "both": 1, "dupe": 1, "bkg": 1, "miss": 2}
    per_frame = {}
    for k in range(em.kind.size):
        if em.kind[k] >= 0:
            per_frame[cache.names[em.det_frame[k]]] = ("cls", "loc", "both", "dupe", "bkg")[em.kind[k]]
    assert per_frame == {"b-loc": "loc", "c-cls": "cls", "d-dupe": "dupe", "e-bkg": "bkg", "f-both": "both"}
    # the cars of b-loc and c-cls are not missed (fixing their error finds them); a "both"
    # error does not point at a box, so f-both's car is missed, as g-miss's
    missed = [cache.names[em.gt_frame[g]] for g in np.flatnonzero(em.gt_missed)]
    assert missed == ["f-both", "g-miss"]


def test_known_frames_agree_with_tidecv():
    gt, preds = known_frames()
    _, base, costs = ours(gt, preds)
    ref = tidecv_errors(gt, preds)
    assert base == pytest.approx(ref["base"], abs=1e-9)
    for t in (*ERROR_TYPES, "fp", "fn"):
        assert costs[t] == pytest.approx(ref[t], abs=1e-9), t
    assert all(costs[t] > 0 for t in ("cls", "loc", "miss"))


def agreement_set(conformance_dir: Path):
    """The conformance case made tidecv-comparable: no crowd box, scores without ties,
    predictions only of classes with ground truth."""
    gt = json.loads((conformance_dir / "gt.json").read_text())
    preds = json.loads((conformance_dir / "pred.json").read_text())
    for f in gt:
        f["labels"] = [lab for lab in f["labels"] if not (lab.get("attributes") or {}).get("crowd")]
    with_gt = {lab["category"] for f in gt for lab in f["labels"]}
    rng = random.Random(3)
    preds = copy.deepcopy(preds)
    for f in preds:
        f["labels"] = [dict(lab, score=lab["score"] * 0.999 + rng.random() * 1e-4)
                       for lab in f["labels"] if lab["category"] in with_gt]
    return gt, preds


def test_conformance_agrees_with_tidecv(conformance_dir: Path):
    gt, preds = agreement_set(conformance_dir)
    _, base, costs = ours(gt, preds)
    ref = tidecv_errors(gt, preds)
    assert base == pytest.approx(ref["base"], abs=1e-9)
    for t in (*ERROR_TYPES, "fp", "fn"):
        assert costs[t] == pytest.approx(ref[t], abs=1e-9), t


def test_size_buckets_and_visibility_count_each_box_once():
    from bddengine.evaluation.error_slices import error_document

    gt, preds = known_frames()
    gt = copy.deepcopy(gt)
    # heights 100 (car), 100 (truck) -> make one car 20 px tall and occluded, found by nothing
    gt.append({"name": "h-small", "labels": [_gt("car", _box(10, 10, 60, 29), occluded=True),
                                              _gt("car", _box(700, 10, 760, 49), truncated=True)]})
    preds.append({"name": "h-small", "labels": [_det("car", _box(700, 10, 760, 49), 0.45)]})
    cache = build_match_cache(gt, preds, errors=True)
    names = [f["name"] for f in gt]
    doc = error_document(cache, gt, [("overall", {}, names), ("slice", {"k": "h"}, ["h-small"])],
                         worst={"k": "h"}, height_edges=[32, 64], n_boot=50, seed=42)
    small = doc["slices"][1]
    assert [(r["bucket"], r["n_gt"], r["n_found"]) for r in small["recall_by_height"]] == [
        ("0-32", 1, 0), ("32-64", 1, 1), ("64+", 0, 0)]
    assert small["recall_by_height"][2]["recall"] is None
    vis = {(r["attribute"], r["value"]): (r["n_gt"], r["n_found"]) for r in small["recall_by_visibility"]}
    assert vis == {("occluded", True): (1, 0), ("occluded", False): (1, 1),
                   ("truncated", True): (1, 1), ("truncated", False): (1, 0)}
    overall = doc["slices"][0]
    n_boxes = sum(len(f["labels"]) for f in gt)
    assert sum(r["n_gt"] for r in overall["recall_by_height"]) == n_boxes
    assert sum(r["n_gt"] for r in overall["recall_by_visibility"] if r["attribute"] == "occluded") == n_boxes
    # CIs: the worst slice and overall, one [lo, hi] per type around the point estimate
    for row in doc["slices"]:
        assert set(row["ci95"]) == set(ERROR_TYPES)
        for _, ci in row["ci95"].items():
            if ci is not None:
                assert len(ci) == 2 and ci[0] <= ci[1]
    assert overall["map50"] == pytest.approx(evaluate_overall(cache)["map50"])


def test_box_errors_and_paired_deltas():
    from bddengine.evaluation.error_slices import box_errors, paired_error_deltas

    gt, preds = known_frames()
    cache = build_match_cache(gt, preds, errors=True)
    boxes = box_errors(cache, gt, preds)
    assert boxes["b-loc"] == {"pred": ["loc"], "gt": ["loc"]}
    assert boxes["c-cls"] == {"pred": ["cls"], "gt": ["cls"]}
    assert boxes["d-dupe"]["pred"] == ["tp", "dupe"]
    assert boxes["g-miss"] == {"pred": ["tp"], "gt": ["miss", "tp"]}
    # iteration 1 fixes the missed car of g-miss: its miss cost falls, the CI has one value per type
    fixed = copy.deepcopy(preds)
    fixed[-1]["labels"].append(_det("car", _box(100, 100, 199, 199), 0.52))
    names = [f["name"] for f in gt]
    d = paired_error_deltas(cache, [build_match_cache(gt, fixed, errors=True)] * 2, names, n_boot=40, seed=1)
    assert d["levels"] == "seeds+frames" and d["n_seeds"] == 2
    assert d["delta"]["miss"] < 0
    assert d["delta"]["miss"] == pytest.approx(d["iter1"]["miss"] - d["iter0"]["miss"])
    assert set(d["ci95"]) == set(ERROR_TYPES)
