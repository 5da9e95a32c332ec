"""TIDE error decomposition: known frames, agreement with tidecv, size buckets, CIs."""

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bddengine.evaluation import build_match_cache, evaluate_overall
from bddengine.evaluation.coco import frames_to_coco
from bddengine.evaluation.errors import (
    ERROR_TYPES,
    error_costs,
    error_counts,
    variant_maps,
)


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
