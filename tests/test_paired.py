"""Paired bootstrap of the mAP@0.5 delta between two detectors on the same frames."""

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bddengine.evaluation import build_match_cache, evaluate_overall
from bddengine.evaluation.paired import (
    mean_map,
    paired_bootstrap,
    paired_bootstrap_many,
    paired_difference,
    paired_lineages,
)
from bddengine.evaluation.slices import score_frames


@pytest.fixture(scope="module")
def detectors(conformance_dir: Path):
    """The conformance GT with three detectors: the reference one, a jittered one, a near-perfect one."""
    gt = json.loads((conformance_dir / "gt.json").read_text())
    preds = json.loads((conformance_dir / "pred.json").read_text())
    rng = random.Random(1)
    jittered = copy.deepcopy(preds)
    for frame in jittered:
        for lab in frame.get("labels") or []:
            b = lab["box2d"]
            dx, dy = rng.uniform(-6, 6), rng.uniform(-6, 6)
            b.update(x1=b["x1"] + dx, x2=b["x2"] + dx, y1=b["y1"] + dy, y2=b["y2"] + dy)
            lab["score"] = lab["score"] * rng.uniform(0.5, 1.0)
    perfect = [{"name": f["name"], "labels": [
        {"id": lab["id"], "category": lab["category"], "score": 0.99, "box2d": dict(lab["box2d"])}
        for lab in f.get("labels") or [] if "box2d" in lab]} for f in gt]
    return gt, {
        "ref": build_match_cache(gt, preds),
        "jittered": build_match_cache(gt, jittered),
        "perfect": build_match_cache(gt, perfect),
    }


def _map50(cache, names):
    return score_frames(cache, np.sort(cache.frame_indices(names)), {}, n_boot=0).map50


def test_point_estimate_is_the_independent_difference(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt]
    d = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=50, seed=3)
    assert d.delta == _map50(c["jittered"], names) - _map50(c["ref"], names)
    # ... and, over all frames, the official evaluator's numbers
    official = evaluate_overall(c["jittered"])["map50"] - evaluate_overall(c["ref"])["map50"]
    assert d.delta == pytest.approx(official, abs=1e-12)
    subset = names[::3]
    s = paired_bootstrap(c["ref"], c["jittered"], subset, n_boot=0)
    assert s.delta == _map50(c["jittered"], subset) - _map50(c["ref"], subset)
    assert s.ci95 is None and s.n_frames == len(subset)


def test_identical_detectors_give_a_zero_ci(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt][:60]
    d = paired_bootstrap(c["ref"], c["ref"], names, n_boot=200, seed=42)
    assert d.delta == 0.0 and d.ci95 == (0.0, 0.0) and not d.excludes_zero


def test_seeded_and_reproducible(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt]
    key = {"weather": "rainy"}
    a = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=100, seed=7, key=key)
    b = paired_bootstrap(c["ref"], c["jittered"], list(reversed(names)), n_boot=100, seed=7, key=key)
    other = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=100, seed=8, key=key)
    assert a.ci95 == b.ci95  # frame order does not matter, the seed does
    assert a.ci95 != other.ci95
    assert a.ci95[0] <= a.delta <= a.ci95[1]


def test_clearly_better_detector_excludes_zero(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt]
    d = paired_bootstrap(c["ref"], c["perfect"], names, n_boot=200, seed=42)
    assert d.delta > 0.3 and d.ci95[0] > 0 and d.excludes_zero
    worse = paired_bootstrap(c["perfect"], c["ref"], names, n_boot=200, seed=42)
    assert worse.delta == pytest.approx(-d.delta) and worse.ci95[1] < 0


def test_paired_ci_is_narrower_than_unpaired(detectors) -> None:
    """The reason for pairing: the shared frame difficulty cancels."""
    gt, c = detectors
    names = [f["name"] for f in gt]
    d = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=300, seed=42)
    a = score_frames(c["ref"], np.sort(c["ref"].frame_indices(names)), {}, n_boot=300, seed=1).ci95
    b = score_frames(c["jittered"], np.sort(c["jittered"].frame_indices(names)), {}, n_boot=300, seed=2).ci95
    unpaired_width = np.hypot(a[1] - a[0], b[1] - b[0])
    assert d.ci95[1] - d.ci95[0] < unpaired_width


def test_many_seeds_average_and_guard_gt(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt][:80]
    one = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=100, seed=5)
    twice = paired_bootstrap_many(c["ref"], [c["jittered"], c["jittered"]], names, n_boot=100, seed=5)
    assert twice.delta == pytest.approx(one.delta) and twice.ci95 == pytest.approx(one.ci95)
    mixed = paired_bootstrap_many(c["ref"], [c["jittered"], c["perfect"]], names, n_boot=0)
    assert mixed.deltas[0] == pytest.approx(one.delta)
    assert mixed.delta == pytest.approx(np.mean(mixed.deltas))
    other_gt = build_match_cache(gt[:50], [])
    with pytest.raises(ValueError, match="same ground truth"):
        paired_bootstrap(c["ref"], other_gt, names[:10])


def test_seed_level_resamples_training_variance(detectors) -> None:
    """Two seeds that disagree: the two-level CI reaches from one seed's delta towards the other's."""
    gt, c = detectors
    names = [f["name"] for f in gt]
    both = paired_bootstrap_many(c["ref"], [c["perfect"], c["ref"]], names, n_boot=400, seed=11)
    alone = paired_bootstrap(c["ref"], c["perfect"], names, n_boot=400, seed=11)
    assert both.levels == "seeds+frames" and alone.levels == "frames"
    assert both.delta == pytest.approx(alone.delta / 2)
    # a quarter of the resamples draw the `ref` seed twice, whose delta is exactly 0
    assert both.ci95[0] == pytest.approx(0.0, abs=1e-12)
    assert both.ci95[1] > both.delta and both.ci95[1] == pytest.approx(alone.delta, abs=0.05)
    frames_only_width = alone.ci95[1] - alone.ci95[0]
    assert both.ci95[1] - both.ci95[0] > 3 * frames_only_width / 2


def test_arm_difference_is_the_difference_of_deltas(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt][:120]
    key = {"grouping": "slice", "weather": "clear"}
    diff = paired_difference([c["perfect"]], [c["jittered"]], names, n_boot=200, seed=4, key=key)
    to_perfect = paired_bootstrap(c["ref"], c["perfect"], names, n_boot=0)
    to_jittered = paired_bootstrap(c["ref"], c["jittered"], names, n_boot=0)
    assert diff.delta == pytest.approx(to_perfect.delta - to_jittered.delta, abs=1e-12)  # iteration 0 cancels
    direct = paired_bootstrap(c["jittered"], c["perfect"], names, n_boot=200, seed=4, key=key)
    assert diff.ci95 == pytest.approx(direct.ci95) and diff.excludes_zero
    same = paired_difference([c["jittered"], c["ref"]], [c["jittered"], c["ref"]], names, n_boot=100, seed=4)
    assert same.delta == pytest.approx(0.0) and same.levels == "seeds+frames"
    assert same.deltas == [pytest.approx(0.0), pytest.approx(0.0)]


def test_lineages_draw_their_seeds_together(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt][:80]
    before, after = [c["ref"], c["jittered"]], [c["jittered"], c["perfect"]]
    d = paired_lineages(before, after, names, n_boot=200, seed=5)
    gains = [_map50(a, names) - _map50(b, names) for b, a in zip(before, after, strict=True)]
    assert d.delta == pytest.approx(np.mean(gains)) and d.deltas == pytest.approx(gains)
    assert d.levels == "seeds+frames"
    # two lineages that gain nothing, at very different levels: drawn together the gain stays 0 in every
    # resample; drawn apart, each turn's seed draw adds the levels' spread
    flat = paired_lineages([c["ref"], c["perfect"]], [c["ref"], c["perfect"]], names, n_boot=200, seed=5)
    apart = paired_difference([c["ref"], c["perfect"]], [c["ref"], c["perfect"]], names, n_boot=200, seed=5)
    assert flat.delta == apart.delta == 0 and flat.ci95 == (0.0, 0.0)
    assert apart.ci95[1] - apart.ci95[0] > 0.1
    same = paired_lineages([c["ref"], c["jittered"]], [c["ref"], c["jittered"]], names, n_boot=100)
    assert same.delta == 0 and same.ci95 == (0.0, 0.0)
    one = paired_lineages([c["ref"]], [c["jittered"]], names, n_boot=100, seed=7)
    assert one == paired_bootstrap(c["ref"], c["jittered"], names, n_boot=100, seed=7)
    with pytest.raises(ValueError, match="one before and one after per lineage"):
        paired_lineages([c["ref"]], [c["ref"], c["jittered"]], names)


def test_mean_map_level_and_ci(detectors) -> None:
    gt, c = detectors
    names = [f["name"] for f in gt][:80]
    point, ci = mean_map([c["ref"], c["jittered"]], names, n_boot=200, seed=3)
    assert point == pytest.approx((_map50(c["ref"], names) + _map50(c["jittered"], names)) / 2)
    assert ci[0] < point < ci[1]
    alone, ci1 = mean_map([c["ref"]], names, n_boot=0)
    assert alone == _map50(c["ref"], names) and ci1 is None
