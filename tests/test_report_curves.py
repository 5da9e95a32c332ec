"""Many turns on hand-made numbers: frames to target, the stop rule and regression alerts."""

from __future__ import annotations

import pandas as pd
import pytest

from bddengine.report.casestudy.regressions import regression_records, regression_sentence
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


def test_a_rule_that_fired_then_stopped_holding_says_so() -> None:
    ps = [point(0, 0.2), point(1, 0.21, gain=UP, vs_random=Estimate(0.0, -0.01, 0.01)),
          point(2, 0.3, gain=UP, vs_random=Estimate(0.03, 0.01, 0.06))]
    advice = stop_advice(ps)
    assert advice.stop and advice.iter == 1 and not advice.holds_at_last
    assert stop_advice(ps[:2]).holds_at_last
    from bddengine.report.casestudy.many_turns import stop_sentence

    assert stop_sentence(advice, "random-human", ps[-1]).endswith(
        "; at turn 2, run anyway, the rule no longer holds.")


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


def _headline(rows: list[tuple]) -> pd.DataFrame:
    cols = ["grouping", "slice", "fragile", "arm", "delta", "ci_lo", "ci_hi"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def _contrasts(rows: list[tuple]) -> pd.DataFrame:
    cols = ["slice", "arm", "control", "diff", "ci_lo", "ci_hi", "ci_excludes_0"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


# the demo turn's numbers (seed 42): prototype-human lowered a head slice and random-human beat it there
DEMO_HEADLINE = _headline([
    ("slice", "foggy / daytime / city street", True, "prototype-human", 0.077, 0.054, 0.101),
    ("slice", "foggy / daytime / city street", True, "random-human", 0.018, -0.004, 0.043),
    ("slice", "clear / night / city street", False, "prototype-human", -0.031, -0.107, -0.002),
    ("slice", "clear / night / city street", False, "random-human", -0.007, -0.05, 0.02),
    ("slice", "snowy / daytime / city street", False, "prototype-human", -0.048, -0.187, 0.055),
    ("slice", "foggy / night / city street", True, "prototype-human", -0.06, -0.1, -0.01),
    ("overall", "overall", False, "prototype-human", -0.004, -0.025, 0.012),
])
DEMO_CONTRASTS = _contrasts([
    ("clear / night / city street", "prototype-human", "random-human", -0.024, -0.087, -0.002, True),
    ("clear / night / city street", "prototype-pyramid", "prototype-human", 0.022, -0.008, 0.119, False),
])


def test_one_turn_summary_names_each_significant_regression_and_who_beat_it() -> None:
    summary = regression_sentence(DEMO_HEADLINE, DEMO_CONTRASTS, numbers=True).replace("\xa0", " ")
    assert summary == "Regression: prototype-human on clear / night / city street, -0.031 [-0.107, -0.002]."
    section = regression_sentence(DEMO_HEADLINE, DEMO_CONTRASTS)
    assert section == "Regression: prototype-human on clear / night / city street (random-human beat it there)."
    # a fragile fall and a fall whose CI includes 0 are not regressions
    assert "foggy / night" not in summary + section and "snowy" not in summary + section
    records = regression_records(DEMO_HEADLINE, DEMO_CONTRASTS)
    assert records == [{"arm": "prototype-human", "slice": "clear / night / city street", "delta": -0.031,
                        "ci95": [-0.107, -0.002], "beaten_by": {"arm": "random-human", "diff": 0.024,
                                                                "ci95": [0.002, 0.087]}}]


def test_rival_read_from_either_side_of_a_contrast_and_several_falls() -> None:
    headline = _headline([("slice", "rainy / night / highway", False, "random-human", -0.05, -0.09, -0.01),
                          ("overall", "overall", False, "prototype-human", -0.01, -0.02, -0.001)])
    contrasts = _contrasts([("rainy / night / highway", "prototype-human", "random-human", 0.04, 0.01, 0.07, True)])
    assert regression_sentence(headline, contrasts) == (
        "Regressions: prototype-human on overall; random-human on rainy / night / highway (prototype-human beat it "
        "there).")


def test_no_regression_leaves_the_report_as_it_was() -> None:
    calm = DEMO_HEADLINE[DEMO_HEADLINE["slice"] != "clear / night / city street"]
    assert regression_sentence(calm, DEMO_CONTRASTS) == regression_sentence(calm, DEMO_CONTRASTS, numbers=True) == ""
    assert regression_records(calm, DEMO_CONTRASTS) == []
    assert regression_sentence(_headline([("overall", "overall", False, None, None, None, None)]), None) == ""


def test_stop_sentences_give_the_reason_and_claim_a_lead_only_when_shown() -> None:
    from bddengine.report.casestudy.many_turns import stop_sentence

    lead = point(2, 0.3, gain=UP, vs_random=Estimate(0.04, 0.01, 0.07))
    keep = stop_advice([point(0, 0.2), point(1, 0.25, gain=UP), lead])
    assert stop_sentence(keep, "random-human", lead) == (
        "**prototype-pyramid: keep labeling** (no two flat turns in a row, still beats random-human).")
    assert stop_sentence(keep, "random-human", point(2, 0.3, gain=UP)).endswith("in a row).")
    flat = stop_advice([point(0, 0.2), point(1, 0.21, gain=FLAT), point(2, 0.21, gain=FLAT)])
    assert stop_sentence(flat, None) == ("**prototype-pyramid: stop from turn 2**: the marginal gain's CI included 0 "
                                         "at turns 1 and 2.")
    behind = stop_advice([point(0, 0.2), point(1, 0.25, gain=UP, vs_random=Estimate(-0.01, -0.03, 0.01))])
    assert stop_sentence(behind, "random-human") == (
        "**prototype-pyramid: stop from turn 1**: at turn 1 it does not beat random-human (arm − random CI "
        "includes 0 or lies below).")
