"""BDD100K detection scoring: official conformance, exact slices, ignore rules, bootstrap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bddengine.bdd.categories import CLASSES
from bddengine.bdd.validate import NOTE_PRED_NOT_IN_GT
from bddengine.evaluation import (
    PROTOCOL,
    UnknownFrameError,
    build_match_cache,
    evaluate_overall,
    evaluate_slices,
    per_frame_metrics,
    score_files,
    slice_keys,
)
from bddengine.evaluation.ap import average_precision
from bddengine.evaluation.cache import IGNORED, TP
from bddengine.evaluation.coco import AREA_ALL, frames_to_coco, official_scores, run_cocoeval
from bddengine.evaluation.slices import score_frames


@pytest.fixture(scope="module")
def conformance(conformance_dir: Path) -> tuple[list[dict], list[dict]]:
    gt = json.loads((conformance_dir / "gt.json").read_text())
    pred = json.loads((conformance_dir / "pred.json").read_text())
    return gt, pred


@pytest.fixture(scope="module")
def cache(conformance):
    return build_match_cache(*conformance)


def _independent(gt: list[dict], pred: list[dict], names: list[str]) -> tuple[dict, np.ndarray]:
    """Official scores of ``names`` alone: a fresh COCO of only those frames, fresh COCOeval."""
    keep = set(names)
    ev = run_cocoeval(frames_to_coco([f for f in gt if f["name"] in keep],
                                     [f for f in pred if f["name"] in keep]))
    summary, table = official_scores(ev)
    recall50 = ev.eval["recall"][0, :, AREA_ALL, -1]  # IoU .5, every class, area all, 100 dets
    return {"map50": summary["AP50"], "map": summary["AP"],
            "ap50_per_class": {c: table[c]["AP50"] for c in CLASSES}}, recall50


def _close(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol


# --- conformance with the official evaluator -------------------------------------------------


def test_overall_matches_official_summary(cache, conformance_dir: Path) -> None:
    expected = json.loads((conformance_dir / "expected.json").read_text())
    overall = evaluate_overall(cache)
    assert overall["n_frames"] == 202
    assert abs(overall["map"] * 100 - expected["AP"]) < 1e-6
    assert abs(overall["map50"] * 100 - expected["AP50"]) < 1e-6
    for metric, value in overall["summary"].items():
        assert abs(value * 100 - expected[metric]) < 1e-6, metric
    for name in CLASSES:
        want = expected[f"AP/{name}"]
        got = overall["ap_per_class"][name]
        if math.isnan(want):
            assert got is None, name
        else:
            assert abs(got * 100 - want) < 1e-6, name


def test_per_class_table_matches_official_table(cache, conformance_dir: Path) -> None:
    expected = json.loads((conformance_dir / "expected_table.json").read_text())
    overall = evaluate_overall(cache)
    rows = dict(overall["table"], OVERALL=overall["summary"])
    assert set(rows) == set(expected)
    for name, row in expected.items():
        for metric, want in row.items():
            got = rows[name][metric]
            assert _close(None if got is None else got * 100, want, 1e-6), (name, metric, got, want)


# --- slices equal an independent evaluation of their frames ------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slices_equal_independent_evaluation(conformance, cache, seed: int) -> None:
    gt, pred = conformance
    rng = np.random.default_rng(seed)
    n_slices = 2 + seed * 2
    # 120 random frames in random slices; the other frames belong to no slice
    chosen = rng.choice(len(gt), 120, replace=False)
    assign = {gt[i]["name"]: {"part": f"p{rng.integers(n_slices)}"} for i in chosen}
    results = evaluate_slices(cache, assign, n_boot=0)
    assert sum(r.n_frames for r in results) == len(assign)
    for result in results:
        names = [n for n, key in assign.items() if key == result.key]
        official, recall50 = _independent(gt, pred, names)
        assert result.n_frames == len(names)
        assert _close(result.map50, official["map50"], 1e-12)
        assert _close(result.map, official["map"], 1e-12)
        for k, name in enumerate(CLASSES):
            assert _close(result.ap50_per_class[name], official["ap50_per_class"][name], 1e-12), name
            want = None if recall50[k] < 0 else float(recall50[k])
            assert _close(result.recall_per_class[name], want, 1e-12), name


def test_all_frames_through_the_cache_equal_the_official_scores(cache) -> None:
    result = score_frames(cache, np.arange(cache.n_frames), {}, n_boot=0)
    overall = evaluate_overall(cache)
    assert _close(result.map50, overall["map50"], 1e-12)
    assert _close(result.map, overall["map"], 1e-12)


def test_per_frame_metrics_equal_single_frame_evaluation(conformance, cache) -> None:
    gt, pred = conformance
    names = [cache.names[i] for i in (0, 17, 58, 101, 150, 201)]
    metrics = per_frame_metrics(cache, names)
    for name in names:
        official, recall50 = _independent(gt, pred, [name])
        n_gt = cache.n_gt[:, cache.index[name]]
        assert metrics[name]["n_gt"] == n_gt.sum()
        assert _close(metrics[name]["ap50"], official["map50"], 1e-12), name
        pooled = float(np.sum(np.where(n_gt > 0, recall50, 0) * n_gt) / n_gt.sum())
        assert _close(metrics[name]["recall"], pooled, 1e-12), name
        assert metrics[name]["tp"] + metrics[name]["fn"] == metrics[name]["n_gt"]


def test_resample_weights_equal_duplicated_frames(conformance, cache) -> None:
    """A frame drawn twice scores like two copies of it evaluated independently."""
    gt, pred = conformance
    rng = np.random.default_rng(7)
    counts = np.bincount(rng.integers(0, len(gt), 100), minlength=len(gt))
    by_name = {f["name"]: f for f in gt}, {f["name"]: f for f in pred}
    copies_gt, copies_pred = [], []
    for name, count in zip(cache.names, counts, strict=True):
        for c in range(count):  # "#c" sorts right after the name, so copies stay adjacent
            copies_gt.append(dict(by_name[0][name], name=f"{name}#{c}"))
            copies_pred.append(dict(by_name[1][name], name=f"{name}#{c}"))
    official = evaluate_overall(build_match_cache(copies_gt, copies_pred))

    ap50 = []
    for k, matches in enumerate(cache.classes):
        if not cache.n_gt[k][counts > 0].any():
            continue
        state = matches.state[0]
        scored = state != IGNORED
        ap, _ = average_precision(state[scored] == TP, matches.frame[scored], counts[None, :], cache.n_gt[k])
        assert abs(ap[0] - official["ap50_per_class"][CLASSES[k]]) < 1e-12, CLASSES[k]
        ap50.append(ap[0])
    assert abs(np.mean(ap50) - official["map50"]) < 1e-12


# --- ignore rules and category mapping ------------------------------------------------------------


def _box(x1: float, y1: float, x2: float, y2: float) -> dict:
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _label(category: str, box: dict, score: float | None = None, **attributes) -> dict:
    label = {"category": category, "box2d": box, "attributes": attributes}
    if score is not None:
        label["score"] = score
    return label


def test_predictions_on_ignored_and_crowd_boxes_are_not_false_positives() -> None:
    gt = [{"name": "a.jpg", "labels": [
        _label("car", _box(10, 10, 110, 60)),
        _label("other vehicle", _box(300, 300, 400, 380)),  # ignored category, scored as car
        _label("car", _box(600, 100, 800, 250), crowd=True),
    ]}]
    on_ignored = [{"name": "a.jpg", "labels": [
        _label("car", _box(10, 10, 110, 60), 0.5),
        _label("car", _box(300, 300, 400, 380), 0.9),
        _label("car", _box(650, 120, 700, 200), 0.8),  # inside the crowd region
    ]}]
    cache = build_match_cache(gt, on_ignored)
    overall = evaluate_overall(cache)
    assert overall["ap50_per_class"]["car"] == pytest.approx(1.0)
    assert cache.n_gt[CLASSES.index("car")].sum() == 1
    frame = per_frame_metrics(cache, ["a.jpg"])["a.jpg"]
    assert frame == {"ap50": pytest.approx(1.0), "recall": 1.0, "n_gt": 1, "n_pred": 3,
                     "tp": 1, "fp": 0, "fn": 0}

    elsewhere = [{"name": "a.jpg", "labels": [
        _label("car", _box(10, 10, 110, 60), 0.5),
        _label("car", _box(900, 500, 1000, 600), 0.9),  # on nothing: a false positive
    ]}]
    cache = build_match_cache(gt, elsewhere)
    assert evaluate_overall(cache)["ap50_per_class"]["car"] < 1.0
    frame = per_frame_metrics(cache, ["a.jpg"], score_threshold=0.6)["a.jpg"]
    assert (frame["n_pred"], frame["tp"], frame["fp"], frame["fn"], frame["recall"]) == (1, 0, 1, 1, 0.0)


def test_legacy_names_map_and_unknown_categories_drop() -> None:
    gt = [{"name": "a.jpg", "labels": [
        _label("person", _box(10, 10, 40, 90)),
        _label("van", _box(200, 200, 300, 260)),
        _label("bike", _box(500, 300, 540, 340)),
        _label("motor", _box(700, 300, 760, 360)),
        _label("caravan", _box(900, 200, 1000, 260)),
        _label("drivable area", _box(0, 400, 1279, 719)),
    ]}]
    pred = [{"name": "a.jpg", "labels": [
        _label("pedestrian", _box(10, 10, 40, 90), 0.9),
        _label("car", _box(200, 200, 300, 260), 0.9),
        _label("bike", _box(500, 300, 540, 340), 0.9),
        _label("motorcycle", _box(700, 300, 760, 360), 0.9),
        _label("caravan", _box(900, 200, 1000, 260), 0.8),
        _label("lane", _box(0, 0, 10, 10), 0.9),
    ]}]
    cache = build_match_cache(gt, pred)
    overall = evaluate_overall(cache)
    assert cache.n_pred_dropped == 1
    for name in ("pedestrian", "car", "bicycle", "motorcycle"):
        assert overall["ap50_per_class"][name] == pytest.approx(1.0), name
    assert overall["ap50_per_class"]["truck"] is None
    assert cache.n_gt[CLASSES.index("car")].sum() == 2


def test_unknown_prediction_frame_is_named() -> None:
    gt = [{"name": "a.jpg", "labels": []}]
    pred = [{"name": "zzz-not-here.jpg", "labels": [_label("car", _box(0, 0, 10, 10), 0.5)]}]
    with pytest.raises(UnknownFrameError, match="zzz-not-here.jpg"):
        build_match_cache(gt, pred)


def test_frames_without_attributes_are_undefined() -> None:
    frames = [
        {"name": "a.jpg", "attributes": {"weather": "rainy", "timeofday": "night"}},
        {"name": "b.jpg"},
        {"name": "c.jpg", "attributes": {"weather": None, "scene": ""}},
    ]
    keys = slice_keys(frames, ["weather", "timeofday", "scene"])
    assert keys["a.jpg"] == {"weather": "rainy", "timeofday": "night", "scene": "undefined"}
    assert keys["b.jpg"] == keys["c.jpg"] == {
        "weather": "undefined", "timeofday": "undefined", "scene": "undefined"}


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_ci_is_deterministic_and_brackets_the_estimate(conformance, cache) -> None:
    gt, _ = conformance
    assign = {f["name"]: ("first" if i < 120 else "second",) for i, f in enumerate(gt)}
    first = evaluate_slices(cache, assign, n_boot=1000, seed=42)
    again = evaluate_slices(cache, assign, n_boot=1000, seed=42)
    other = evaluate_slices(cache, assign, n_boot=1000, seed=43)
    assert [r.ci95 for r in first] == [r.ci95 for r in again]
    assert [r.ci95 for r in first] != [r.ci95 for r in other]
    for result in first:
        lo, hi = result.ci95
        assert lo < result.map50 < hi
        assert hi - lo < 0.5
    # a slice's CI does not depend on the other slices evaluated with it
    alone = evaluate_slices(cache, {n: k for n, k in assign.items() if k == ("first",)}, n_boot=1000)
    assert alone[0].ci95 == next(r.ci95 for r in first if r.key == {"k0": "first"})


def test_min_frames_and_unknown_slice_frame(cache) -> None:
    assign = {name: ("big" if i else "tiny",) for i, name in enumerate(cache.names)}
    results = evaluate_slices(cache, assign, n_boot=0, min_frames=2)
    assert [r.key for r in results] == [{"k0": "big"}]
    with pytest.raises(KeyError, match="nope.jpg"):
        evaluate_slices(cache, {"nope.jpg": ("x",)}, n_boot=0)


# --- files ----------------------------------------------------------------------------------


def test_score_files_document(conformance, tmp_path: Path) -> None:
    gt, pred = (frames[:60] for frames in conformance)
    gt[0] = dict(gt[0], attributes={"weather": "rainy"})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    doc = score_files(tmp_path / "gt.json", tmp_path / "pred.json", by=["weather"], n_boot=200)
    assert doc["protocol"] == PROTOCOL
    assert set(doc) == {"protocol", "overall", "slices", "official", "checks"}  # issue 14 adds the last two
    assert set(doc["overall"]) == {"n_frames", "map50", "map", "ap50_per_class"}
    assert doc["overall"]["n_frames"] == 60
    assert doc["overall"]["ap50_per_class"]["train"] is None
    undefined, rainy = doc["slices"]  # largest first
    assert undefined["key"] == {"weather": "undefined"} and undefined["n_frames"] == 59
    assert rainy["key"] == {"weather": "rainy"} and rainy["n_frames"] == 1
    assert set(undefined) == {"key", "n_frames", "map50", "map", "ci95"}
    lo, hi = undefined["ci95"]
    assert lo <= undefined["map50"] <= hi
    json.dumps(doc, allow_nan=False)  # plain JSON: nulls, no NaN

    # a prediction frame the GT lacks is left out, as the official evaluator does, and noted
    extra = [*pred, dict(pred[3], name="ffffffff-00000000.jpg")]
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    with_extra = score_files(tmp_path / "gt.json", tmp_path / "extra.json", n_boot=0)
    assert with_extra["official"] == score_files(tmp_path / "gt.json", tmp_path / "pred.json", n_boot=0)["official"]
    assert with_extra["checks"]["pred"]["notes"] == {NOTE_PRED_NOT_IN_GT: 1}
    # ... but predictions for another file altogether are an error naming a frame
    (tmp_path / "bad.json").write_text(json.dumps([dict(f, name="x" + f["name"]) for f in pred]))
    with pytest.raises(UnknownFrameError, match="none of its frames.*xffffffff|none of its frames"):
        score_files(tmp_path / "gt.json", tmp_path / "bad.json")


def adversarial_frames(n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Frames that exercise every branch of COCO matching.

    Duplicate GT boxes (IoU ties), duplicate predictions (score ties), crowd and
    ignored-category regions, boxes on both sides of the small / medium / large
    limits, and frames with more than 100 predictions of one class.
    """
    from bddengine.bdd.categories import IGNORED_NAMES

    rng = np.random.default_rng(seed)
    ignored = sorted(IGNORED_NAMES)
    gt, preds = [], []
    for i in range(n):
        labels, guesses = [], []
        for j in range(int(rng.integers(0, 14))):
            side = float(rng.choice([8, 30, 31, 33, 95, 96, 97, 150, 400]))  # around sqrt(32^2), sqrt(96^2)
            x, y = rng.uniform(0, 800), rng.uniform(0, 500)
            cat = str(rng.choice(CLASSES[:4]))
            roll = rng.random()
            if roll < 0.1:
                cat = str(rng.choice(ignored))
            box = {"x1": x, "y1": y, "x2": x + side * rng.uniform(0.7, 1.3), "y2": y + side}
            labels.append({"id": str(j), "category": cat, "box2d": box,
                           "attributes": {"crowd": bool(0.1 <= roll < 0.18)}})
            if rng.random() < 0.2:  # an identical twin: an IoU tie
                labels.append({"id": f"{j}b", "category": cat, "box2d": dict(box), "attributes": {}})
            for _ in range(int(rng.integers(0, 3))):
                d = side * rng.choice([0.0, 0.05, 0.2, 0.4])
                score = float(rng.choice([0.5, 0.9, rng.random()]))  # repeated scores: ties
                guesses.append({"category": cat if cat in CLASSES else "car", "score": score,
                                "box2d": {k: v + d * rng.normal() for k, v in box.items()}})
        for _ in range(int(rng.choice([0, 5, 130]))):  # past the 100 detections a class may keep
            x, y = rng.uniform(0, 800), rng.uniform(0, 500)
            w, h = rng.uniform(4, 200, 2)
            guesses.append({"category": "car", "score": float(rng.random()),
                            "box2d": {"x1": x, "y1": y, "x2": x + w, "y2": y + h}})
        gt.append({"name": f"a{i:03d}.jpg", "attributes": {}, "labels": labels})
        preds.append({"name": f"a{i:03d}.jpg", "labels": guesses})
    return gt, preds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matching_cocoeval_equals_pycocotools_entry_for_entry(seed: int) -> None:
    from pycocotools.cocoeval import COCOeval

    from bddengine.evaluation.coco import MatchingCOCOeval, quiet

    pair = frames_to_coco(*adversarial_frames(80, seed))
    evals = []
    for kind in (COCOeval, MatchingCOCOeval):
        with quiet():
            ev = kind(pair.gt, pair.dt, "bbox")
            ev.params.imgIds = list(range(1, len(pair.names) + 1))
            ev.params.catIds = list(range(1, len(CLASSES) + 1))
            ev.evaluate()
            ev.accumulate()
        evals.append(ev)
    want, got = evals
    assert len(got.evalImgs) == len(want.evalImgs)
    n_matched = 0
    for w, g in zip(want.evalImgs, got.evalImgs, strict=True):
        assert (w is None) == (g is None)
        if w is None:
            continue
        assert w.keys() == g.keys()
        for key, value in w.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == g[key].dtype and value.shape == g[key].shape, key
                np.testing.assert_array_equal(value, g[key], err_msg=key)
            else:
                assert value == g[key], key
        n_matched += int((w["dtMatches"] > 0).sum())
    assert n_matched > 1000  # the matching loop ran, not only its shortcuts
    np.testing.assert_array_equal(want.eval["precision"], got.eval["precision"])
    np.testing.assert_array_equal(want.eval["recall"], got.eval["recall"])
