"""Many turns on hand-made numbers: frames to target, the stop rule and regression alerts."""

from __future__ import annotations

import pytest

from bddengine.report.curves import (
    NOT_BEATING_RANDOM,
    PLATEAU,
    CurvePoint,
    Estimate,
    SliceChange,
    frames_to_target,
    regression_alerts,
    stop_advice,
    target_goal,
)

UP = Estimate(0.05, 0.01, 0.09)  # a gain whose CI excludes 0
FLAT = Estimate(0.01, -0.02, 0.04)  # a gain whose CI includes 0


def point(it: int, target: float | None, *, arm: str = "prototype-pyramid", frames: float | None = None,
          usd: float | None = None, gain: Estimate | None = None, vs_random: Estimate | None = None) -> CurvePoint:
    return CurvePoint(arm, it, 2, 100.0 * it if frames is None else frames, 50.0 * it if usd is None else usd,
                      Estimate(target), Estimate(0.4), gain, vs_random)


def test_goal_defaults_to_iteration_0_overall() -> None:
    assert target_goal(0.24, 0.34, None) == 0.34
    assert target_goal(0.24, 0.34, 0.05) == pytest.approx(0.29)


def test_frames_to_target_interpolates_between_turns() -> None:
    reach = frames_to_target([point(2, 0.30), point(0, 0.20), point(1, 0.25)], 0.28)
    assert reach.reached and reach.by_iter == 2 and reach.turns == 2
    # 0.25 at 100 frames, 0.30 at 200: 0.28 is 3/5 of the way
    assert reach.frames == pytest.approx(160.0)
    assert reach.usd == pytest.approx(80.0)


def test_frames_to_target_exactly_at_a_turn() -> None:
    reach = frames_to_target([point(0, 0.20), point(1, 0.25), point(2, 0.30)], 0.25)
    assert reach.reached and reach.by_iter == 1
    assert reach.frames == pytest.approx(100.0) and reach.usd == pytest.approx(50.0)


def test_frames_to_target_first_crossing_counts_after_a_dip() -> None:
    reach = frames_to_target([point(0, 0.20), point(1, 0.18), point(2, 0.26), point(3, 0.22)], 0.22)
    assert reach.by_iter == 2
    assert reach.frames == pytest.approx(100 + 100 * 0.04 / 0.08)


def test_frames_to_target_not_reached() -> None:
    reach = frames_to_target([point(0, 0.20), point(1, 0.22), point(2, 0.23)], 0.30)
    assert not reach.reached and reach.frames is None and reach.usd is None and reach.turns == 2


def test_frames_to_target_unknown_cost_keeps_frames() -> None:
    ps = [point(0, 0.20), CurvePoint("prototype-pyramid", 1, 2, 90.0, None, Estimate(0.30), Estimate(0.4))]
    reach = frames_to_target(ps, 0.25)
    assert reach.frames == pytest.approx(45.0) and reach.usd is None


def test_frames_to_target_takes_one_arm() -> None:
    with pytest.raises(ValueError, match="one arm"):
        frames_to_target([point(0, 0.2), point(1, 0.3, arm="random-human")], 0.25)


def test_stop_when_gain_ci_includes_zero_two_turns_in_a_row() -> None:
    ps = [point(0, 0.2), point(1, 0.25, gain=UP), point(2, 0.26, gain=FLAT), point(3, 0.26, gain=FLAT),
          point(4, 0.27, gain=FLAT)]
    advice = stop_advice(ps)
    assert advice.stop and advice.iter == 3 and advice.reasons == (PLATEAU,)


def test_one_flat_turn_between_gains_is_not_a_plateau() -> None:
    ps = [point(0, 0.2), point(1, 0.25, gain=FLAT), point(2, 0.3, gain=UP), point(3, 0.31, gain=FLAT)]
    assert not stop_advice(ps).stop


def test_gain_ci_touching_zero_includes_it() -> None:
    touching = Estimate(0.02, 0.0, 0.04)
    assert touching.includes_zero and not touching.above_zero
    ps = [point(0, 0.2), point(1, 0.22, gain=touching), point(2, 0.24, gain=Estimate(0.02, -0.01, 0.0))]
    advice = stop_advice(ps)
    assert advice.stop and advice.iter == 2 and advice.reasons == (PLATEAU,)


def test_stop_when_targeted_mining_no_longer_beats_random() -> None:
    ps = [point(0, 0.2), point(1, 0.26, gain=UP, vs_random=Estimate(0.05, 0.02, 0.08)),
          point(2, 0.31, gain=UP, vs_random=Estimate(0.02, 0.0, 0.05))]  # CI touches 0: no longer beats it
    advice = stop_advice(ps)
    assert advice.stop and advice.iter == 2 and advice.reasons == (NOT_BEATING_RANDOM,)


def test_random_ahead_is_a_reason_to_stop_and_both_reasons_are_named() -> None:
    behind = Estimate(-0.03, -0.05, -0.01)
    ps = [point(0, 0.2), point(1, 0.21, gain=FLAT, vs_random=Estimate(0.03, 0.01, 0.05)),
          point(2, 0.21, gain=FLAT, vs_random=behind)]
    advice = stop_advice(ps)
    assert advice.iter == 2 and advice.reasons == (PLATEAU, NOT_BEATING_RANDOM)


def test_no_ci_shows_nothing() -> None:
    assert Estimate(0.05).includes_zero
    ps = [point(0, 0.2), point(1, 0.25, gain=Estimate(0.05)), point(2, 0.3, gain=Estimate(0.05))]
    assert stop_advice(ps).reasons == (PLATEAU,)


def test_keep_labeling_while_gains_and_the_lead_hold() -> None:
    lead = Estimate(0.04, 0.01, 0.07)
    ps = [point(0, 0.2), point(1, 0.25, gain=UP, vs_random=lead), point(2, 0.3, gain=UP, vs_random=lead)]
    advice = stop_advice(ps)
    assert not advice.stop and advice.iter is None and advice.reasons == ()


def test_alerts_are_significant_falls_on_slices_not_fragile() -> None:
    changes = [
        SliceChange("prototype-human", 1, "clear / night / city street", Estimate(-0.031, -0.107, -0.002), False),
        SliceChange("prototype-human", 1, "foggy / night / city street", Estimate(-0.08, -0.15, -0.01), True),
        SliceChange("prototype-human", 1, "snowy / daytime / city street", Estimate(-0.048, -0.187, 0.055), False),
        SliceChange("prototype-human", 1, "rainy / night / highway", Estimate(-0.02, -0.04, 0.0), False),
        SliceChange("random-human", 2, "overall", Estimate(-0.01, -0.02, -0.005), False),
        SliceChange("prototype-human", 2, "clear / daytime / city street", Estimate(0.03, 0.01, 0.05), False),
        SliceChange("prototype-human", 2, "rainy / daytime / highway", Estimate(-0.05, -0.09, -0.02), False),
        SliceChange("prototype-human", 2, "clear / dawn/dusk / highway", Estimate(-0.09, -0.12, -0.03), False),
    ]
    alerts = regression_alerts(changes)
    assert [(a.iter, a.arm, a.slice) for a in alerts] == [
        (1, "prototype-human", "clear / night / city street"),
        (2, "prototype-human", "clear / dawn/dusk / highway"),
        (2, "prototype-human", "rainy / daytime / highway"),
        (2, "random-human", "overall"),
    ]
