"""Every lineage scored at every turn: the learning-curve numbers agree with the one-turn headline."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from bddengine.evaluation import build_match_cache
from bddengine.evaluation.paired import mean_map, paired_bootstrap_many, paired_difference, paired_lineages
from bddengine.report.headline import headline_slices
from bddengine.report.turn_scores import LineageScore, analyse_turns, score_turns

N_BOOT = 40


def _jitter(preds, rng: random.Random, px: float, keep: float):
    out = copy.deepcopy(preds)
    for f in out:
        f["labels"] = [lab for lab in f["labels"] if rng.random() < keep][:8]
        for lab in f["labels"]:
            b = lab["box2d"]
            dx, dy = rng.uniform(-px, px), rng.uniform(-px, px)
            b.update(x1=b["x1"] + dx, x2=b["x2"] + dx, y1=b["y1"] + dy, y2=b["y2"] + dy)
    return out


@pytest.fixture(scope="module")
def lineages(conformance_dir: Path):
    """Two arms x two seeds x two turns on the conformance frames, with made-up bills."""
    gt = json.loads((conformance_dir / "gt.json").read_text())
    preds = json.loads((conformance_dir / "pred.json").read_text())
    rng = random.Random(3)
    for f in gt:
        f["attributes"] = {"weather": rng.choice(["clear", "rainy"]), "timeofday": "daytime", "scene": "highway"}
    cache0 = build_match_cache(gt, _jitter(preds, rng, 8, 0.9))
    scores = []
    for arm, px in (("prototype-human", 2.0), ("random-human", 5.0)):
        for seed in (42, 43):
            scores.append(LineageScore(arm, seed, 0, cache0, 0.0, 0.0))
            for it in (1, 2):
                cache = build_match_cache(gt, _jitter(preds, rng, px / it, 0.95))
                scores.append(LineageScore(arm, seed, it, cache, 100.0 * it + seed - 42, 50.0 * it))
    slices = headline_slices(gt, min_frames=5)
    target = next(s for s in slices if s.grouping == "slice" and s.key["weather"] == "rainy")
    return gt, cache0, scores, slices, target


def test_turn_numbers_are_the_headline_at_iteration_1_and_lineage_pairs_after(lineages) -> None:
    gt, cache0, scores, slices, target = lineages
    points, changes = score_turns(scores, target, slices, baseline="random-human", n_boot=N_BOOT, seed=42,
                                  fragile_min_gt=1)
    assert [(p.arm, p.iter) for p in points] == [(a, i) for a in ("prototype-human", "random-human")
                                                  for i in (0, 1, 2)]
    got = {(p.arm, p.iter): p for p in points}
    caches = {(s.arm, s.iter): [x.cache for x in scores if (x.arm, x.iter) == (s.arm, s.iter)] for s in scores}
    kw = {"n_boot": N_BOOT, "seed": 42, "key": target.rng_key}
    one = paired_bootstrap_many(cache0, caches["prototype-human", 1], target.names, **kw)
    p1 = got["prototype-human", 1]
    assert (p1.gain.value, p1.gain.lo, p1.gain.hi) == (one.delta, *one.ci95)  # the one-turn headline's cell
    vs = paired_difference(caches["prototype-human", 1], caches["random-human", 1], target.names, **kw)
    assert (p1.vs_random.value, p1.vs_random.lo) == (vs.delta, vs.ci95[0])  # the one-turn contrast
    two = paired_lineages(caches["prototype-human", 1], caches["prototype-human", 2], target.names, **kw)
    assert got["prototype-human", 2].gain.value == pytest.approx(two.delta)
    assert got["prototype-human", 2].gain.lo == two.ci95[0]
    level, ci = mean_map(caches["prototype-human", 2], target.names, **kw)
    assert (got["prototype-human", 2].target.value, got["prototype-human", 2].target.lo) == (level, ci[0])
    assert got["random-human", 2].vs_random is None and got["prototype-human", 0].gain is None
    assert got["prototype-human", 2].frames == 200.5 and got["prototype-human", 2].usd == 100.0  # seed means
    assert got["prototype-human", 0].frames == 0 and got["prototype-human", 0].n_seeds == 1
    assert len(changes) == 2 * 2 * len(slices) and {c.iter for c in changes} == {1, 2}
    full = [s for s in slices if s.grouping == "slice"]
    means = {s.label: mean_map(caches["random-human", 2], s.names, n_boot=0)[0] for s in full}
    assert got["random-human", 2].worst == min(means, key=means.get)
    assert got["random-human", 2].worst_map50 == pytest.approx(min(means.values()))

    facts = analyse_turns(points, changes, target=target, lift=None, baseline="random-human", notes=[])
    assert facts.goal == got["prototype-human", 0].overall.value and facts.turns == 2
    assert set(facts.reach) == set(facts.advice) == {"prototype-human", "random-human"}
    doc = json.loads(json.dumps(facts.to_json()))
    assert doc["curve"][1]["gain"]["value"] == one.delta and doc["target_slice"]["label"] == target.label


def test_a_turn_still_running_is_left_out(lineages) -> None:
    gt, cache0, scores, slices, target = lineages
    partial = [s for s in scores if not (s.arm == "random-human" and s.seed == 43 and s.iter == 2)]
    points, changes = score_turns(partial, target, slices[:1], baseline="random-human", n_boot=0, seed=42,
                                  fragile_min_gt=1)
    assert [p.iter for p in points if p.arm == "random-human"] == [0, 1]
    assert next(p for p in points if p.arm == "prototype-human" and p.iter == 2).vs_random is None
