"""Many turns: the learning curve, frames to target, whether to stop labeling, and the regression alerts.

Empty with one turn (`ReportData.turns` is None), so a one-turn case study is unchanged. With
more, a short section after the headline: the curve figure, one row per arm (labeled frames and
cost, the target slice at the last turn, frames and cost to the goal, the stop rule's verdict),
and the alerts in a sentence; the per-turn tables go to the appendix (`many_turns_tables`).
Every number is read from `TurnsFacts`, which the report run also writes to ``turns.json``.
"""

from __future__ import annotations

from bddengine.report.casestudy.shared import figure
from bddengine.report.curves import NOT_BEATING_RANDOM, PLATEAU, CurvePoint, Estimate, StopAdvice, TargetReach
from bddengine.report.data import ReportData
from bddengine.report.tables import NA, fmt_ci, fmt_delta, fmt_int, fmt_map, fmt_usd, md_table
from bddengine.report.turn_scores import TurnsFacts

MAX_ALERTS = 6
"""Alerts named in the main text; all of them are in the appendix and turns.json."""


def many_turns(d: ReportData) -> str:
    """The case study's "Many turns" section (empty with one turn)."""
    t = d.turns
    if t is None:
        return ""
    goal = (f"{fmt_map(t.goal)} (iteration 0's overall mAP@0.5)" if t.lift is None
            else f"{fmt_map(t.goal)} (iteration 0 + {t.lift:g})")
    lines = [f"### Many turns: {t.target}, {t.turns} turns",
             figure(d, "learning_curve", "Learning curve"), "",
             md_table(["arm", "human frames", "cost", f"target, turn {t.turns} [95% CI]", "frames to goal",
                       "cost to goal", "stop from"],
                      [_arm_row(t, a) for a in t.reach], align="lrrrrrl"), "",
             " ".join(s for s in [*(stop_sentence(t.advice[a], t.baseline, _last(t, a)) for a in t.advice),
                                  moved_sentence(t),
                                  alerts_sentence(t), f"Goal: {goal}; per turn: appendix I; every number: "
                                  f"`turns.json`."] if s)]
    return "\n".join(lines).strip()


def _last(t: TurnsFacts, arm: str) -> CurvePoint:
    return max((p for p in t.points if p.arm == arm), key=lambda p: p.iter)


def _arm_row(t: TurnsFacts, arm: str) -> list[str]:
    last = _last(t, arm)
    r, a = t.reach[arm], t.advice[arm]
    return [arm, fmt_int(round(last.frames)), fmt_usd(last.usd) if last.usd is not None else NA,
            f"{fmt_map(last.target.value)} {_ci(last.target, signed=False)}".strip()
            + (f" (turn {last.iter})" if last.iter != t.turns else ""), *_reach_cells(r),
            f"turn {a.iter}" if a.stop else "—"]


def _reach_cells(r: TargetReach) -> list[str]:
    if not r.reached:
        return [f"not in {r.turns} turns", "—"]
    if r.by_iter == 0:
        return ["met at iteration 0", "—"]
    return [fmt_int(round(r.frames or 0)), fmt_usd(r.usd) if r.usd is not None else NA]


def _ci(e: Estimate | None, *, signed: bool = True) -> str:
    return fmt_ci(e.lo, e.hi, signed=signed) if e is not None and e.has_ci else ""


def stop_sentence(a: StopAdvice, baseline: str | None, last: CurvePoint | None = None) -> str:
    """The stop rule's verdict for one arm, with its reason(s) (``last``: the arm's last point, whose
    arm - random says whether it still beats the baseline)."""
    if not a.stop:
        ahead = last is not None and last.vs_random is not None and last.vs_random.above_zero
        return (f"**{a.arm}: keep labeling** (no two flat turns in a row"
                + (f", still beats {baseline})." if ahead else ")."))
    why = []
    if PLATEAU in a.reasons:
        why.append(f"the marginal gain's CI included 0 at turns {a.iter - 1} and {a.iter}")  # type: ignore[operator]
    if NOT_BEATING_RANDOM in a.reasons:
        why.append(f"at turn {a.iter} it does not beat {baseline} (arm − random CI includes 0 or lies below)")
    later = "" if a.holds_at_last or last is None or last.iter == a.iter else \
        f"; at turn {last.iter}, run anyway, the rule no longer holds"
    return f"**{a.arm}: stop from turn {a.iter}**: {'; and '.join(why)}{later}."


def moved_sentence(t: TurnsFacts) -> str:
    """Where the worst slice is at each arm's last turn, when it is no longer the target slice."""
    moved = [p for p in (_last(t, a) for a in t.reach) if p.worst is not None and p.worst != t.target]
    if not moved:
        return ""
    return "The worst slice moved: " + "; ".join(
        f"{p.arm}'s at turn {p.iter} is {p.worst} ({fmt_map(p.worst_map50)})" for p in moved) + "."


def alerts_sentence(t: TurnsFacts) -> str:
    """The regression alerts from turn 2 on in one sentence (turn 1's are the regressions section 6 names;
    the first `MAX_ALERTS`, the rest in the appendix)."""
    later = [c for c in t.alerts if c.iter >= 2]
    first = sum(c.iter == 1 for c in t.alerts)
    turn1 = f"turn 1: {first}, named above" if first else "turn 1: none"
    if not later:
        return (f"**Regression alerts** (a slice not fragile fell from the previous turn, 95% CI below 0): {turn1}; "
                f"later turns: none.")
    shown = [f"turn {c.iter} {c.arm} on {c.slice} {fmt_delta(c.delta.value)} {_ci(c.delta)}"
             for c in later[:MAX_ALERTS]]
    more = f" (and {len(later) - MAX_ALERTS} more: appendix I)" if len(later) > MAX_ALERTS else ""
    return (f"**Regression alerts** (a slice not fragile fell from the previous turn, 95% CI below 0: what a nightly "
            f"job acts on): {turn1}; {'; '.join(shown)}{more}.")


def many_turns_tables(d: ReportData) -> str:
    """Appendix I: per arm and turn, the curve's numbers; then every alert."""
    t = d.turns
    if t is None:
        return ""
    rows = []
    for p in sorted(t.points, key=lambda p: (list(t.reach).index(p.arm), p.iter)):
        rows.append([p.arm, str(p.iter), str(p.n_seeds), p.worst or NA, fmt_int(round(p.frames)),
                     fmt_usd(p.usd) if p.usd is not None else NA,
                     f"{fmt_map(p.target.value)} {_ci(p.target, signed=False)}".strip(),
                     f"{fmt_map(p.overall.value)} {_ci(p.overall, signed=False)}".strip(),
                     f"{fmt_delta(p.gain.value)} {_ci(p.gain)}" if p.gain is not None else "—",
                     f"{fmt_delta(p.vs_random.value)} {_ci(p.vs_random)}" if p.vs_random is not None else "—"])
    parts = [f"Target slice {t.target}; CIs resample seeds × frames; marginal gain: the same lineages one turn "
             f"apart; arm − random: against {t.baseline or 'no random arm'} at the same turn.",
             md_table(["arm", "turn", "seeds", "worst slice", "human frames", "cost", "target mAP@0.5 [95% CI]",
                       "overall mAP@0.5 [95% CI]", "marginal gain [95% CI]", "arm − random [95% CI]"], rows,
                      align="lrrlrrrrrr")]
    if t.alerts:
        parts.append("Every regression alert:")
        parts.append(md_table(["turn", "arm", "slice", "Δ from the previous turn [95% CI]"],
                              [[str(c.iter), c.arm, c.slice, f"{fmt_delta(c.delta.value)} {_ci(c.delta)}"]
                               for c in t.alerts], align="rllr"))
    for note in t.notes:
        parts.append(f"- Note: {note}.")
    return "\n\n".join(parts)
