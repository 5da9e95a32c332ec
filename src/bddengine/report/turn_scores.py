"""Score every lineage at every turn: the per-turn numbers `report.curves` reads.

A lineage is one (arm, seed): iteration 0, then each turn's fine-tune of the one before.
`score_turns` takes each lineage's eval matches per iteration (all on the same eval pool)
and gives, per arm and iteration, the target slice's and the pool's mAP@0.5 (seed means,
CIs over seeds x frames), the marginal gain on the target slice (the same lineages one turn
apart, `paired_lineages`), the arm minus the random baseline, and every slice's change from
the previous turn (for the regression alerts). At iteration 1 the numbers are those of the
one-turn headline: the gain and each slice's change are `paired_bootstrap_many` against the
one iteration-0 model, and arm - random is `paired_difference`, on the same resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rich.progress import Progress

from bddengine.evaluation import MatchCache
from bddengine.evaluation.paired import (
    PairedDelta,
    mean_map,
    paired_bootstrap_many,
    paired_difference,
    paired_lineages,
)
from bddengine.evaluation.slices import score_frames
from bddengine.report.curves import (
    CurvePoint,
    Estimate,
    SliceChange,
    StopAdvice,
    TargetReach,
    by_arm,
    frames_to_target,
    regression_alerts,
    stop_advice,
    target_goal,
)
from bddengine.report.headline import SliceSpec, fragile_classes


@dataclass(frozen=True)
class LineageScore:
    """One lineage at one iteration: its eval matches and what it had cost humans and compute so far.

    Attributes:
        arm: the flywheel arm.
        seed: the lineage's training seed.
        iter: the iteration (0: the shared iteration-0 model).
        cache: the iteration's eval matches on the eval pool.
        frames: cumulative frames humans labeled for the lineage.
        usd: cumulative dollars (humans and compute), None when unknown.
    """

    arm: str
    seed: int
    iter: int
    cache: MatchCache
    frames: float
    usd: float | None


def estimate(d: PairedDelta) -> Estimate:
    """A paired delta as an `Estimate`."""
    return Estimate(d.delta, *(d.ci95 or (None, None)))


def score_turns(
    scores: Sequence[LineageScore],
    target: SliceSpec,
    slices: Sequence[SliceSpec],
    *,
    baseline: str | None,
    n_boot: int,
    seed: int,
    fragile_min_gt: int,
    progress: bool = False,
) -> tuple[list[CurvePoint], list[SliceChange]]:
    """Learning-curve points per (arm, iteration) and every slice's change from the previous turn.

    Args:
        scores: every lineage at every iteration it reached (iteration 0 once per lineage or once
            in all: its matches are the shared model's).
        target: the target slice (its ``rng_key`` seeds the resamples, as in the headline).
        slices: the slices whose changes feed the alerts (`headline_slices`).
        baseline: the random arm arm - random is measured against (None: no such column).
        n_boot: bootstrap resamples.
        seed: the bootstrap seed.
        fragile_min_gt: fewer GT boxes of a class than this in a slice marks it fragile.
        progress: show a progress bar.

    Returns:
        (points, changes): points sorted by arm (first seen) and iteration; an iteration enters
        only with every lineage of the arm (a turn still running is left out); an arm without
        iteration 1 has no point.
    """
    grid: dict[str, dict[int, dict[int, LineageScore]]] = {}
    for s in scores:
        grid.setdefault(s.arm, {}).setdefault(s.iter, {})[s.seed] = s
    zero = next((s.cache for s in scores if s.iter == 0), None)
    if zero is None:
        raise ValueError("score_turns needs the iteration-0 model's matches")
    arms = {a: its for a, by_iter in grid.items() if len(its := _complete(by_iter)) > 1}  # an arm that never
    # retrained has no curve
    fragile = {spec.label: bool(fragile_classes(zero, np.unique(zero.frame_indices(spec.names)), fragile_min_gt))
               for spec in slices}
    points: list[CurvePoint] = []
    changes: list[SliceChange] = []
    total = sum(len(its) for its in arms.values()) * (1 + len(slices))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring every lineage at every turn", total=total)
        for arm, its in arms.items():
            for it in its:
                now = _caches(grid[arm][it], zero, it)
                lineages = sorted(grid[arm][it])
                before = _caches(grid[arm].get(it - 1, {}), zero, it - 1, lineages) if it >= 1 else None
                kw = {"n_boot": n_boot, "seed": seed}
                t_map, t_ci = mean_map(now, target.names, key=target.rng_key, **kw)
                o_map, o_ci = mean_map(now, _all(zero), key={"grouping": "overall"}, **kw)
                gain = vs_random = None
                if before is not None:
                    gain = estimate(_step(before, now, target, **kw))
                    if baseline is not None and arm != baseline and it in arms.get(baseline, []):
                        base = _caches(grid[baseline][it], zero, it)
                        vs_random = estimate(paired_difference(now, base, target.names, key=target.rng_key, **kw))
                rows = grid[arm][it].values()
                usds = [r.usd for r in rows]
                full = [s for s in slices if s.grouping == "slice"]  # the target first: it wins a tie
                worst, worst_map = current_worst(now, sorted(full, key=lambda s: s.label != target.label))
                points.append(CurvePoint(
                    arm, it, len(now), float(np.mean([r.frames for r in rows])) if it else 0.0,
                    None if any(u is None for u in usds) else (float(np.mean(usds)) if it else 0.0),
                    Estimate(t_map, *(t_ci or (None, None))), Estimate(o_map, *(o_ci or (None, None))),
                    gain, vs_random, worst, worst_map))
                bar.advance(task)
                for spec in slices:
                    if before is not None:
                        changes.append(SliceChange(arm, it, spec.label, estimate(_step(before, now, spec, **kw)),
                                                   fragile[spec.label]))
                    bar.advance(task)
    return points, changes


def current_worst(caches: list[MatchCache], slices: Sequence[SliceSpec]) -> tuple[str | None, float | None]:
    """The slice with the lowest mAP@0.5 (mean over the detectors) and that mAP, the first listed on a tie;
    (None, None) without one."""
    best: tuple[str | None, float | None] = (None, None)
    for spec in slices:
        maps = [score_frames(c, np.unique(c.frame_indices(spec.names)), spec.key, n_boot=0).map50 for c in caches]
        if any(m is None for m in maps):
            continue
        value = float(np.mean(maps))  # type: ignore[arg-type]
        if best[1] is None or value < best[1]:
            best = (spec.label, value)
    return best


def _complete(by_iter: dict[int, dict[int, LineageScore]]) -> list[int]:
    """The arm's iterations in order, up to the first that lacks one of the arm's lineages."""
    lineages = set().union(*(set(v) for it, v in by_iter.items() if it >= 1)) if len(by_iter) > 1 else set()
    out = []
    for it in sorted(by_iter):
        if it >= 1 and set(by_iter[it]) != lineages:
            break
        out.append(it)
    return out


def _caches(row: dict[int, LineageScore], zero: MatchCache, it: int,
            lineages: list[int] | None = None) -> list[MatchCache]:
    """The lineages' matches at one iteration, seeds in order (iteration 0: the one shared model)."""
    if it == 0:
        return [zero] if lineages is None else [zero] * len(lineages)
    return [row[s].cache for s in (lineages if lineages is not None else sorted(row))]


def _step(before: list[MatchCache], now: list[MatchCache], spec: SliceSpec, *, n_boot: int,
          seed: int) -> PairedDelta:
    """The same lineages one turn on; from the shared iteration 0 exactly the headline's delta."""
    if all(c is before[0] for c in before):
        return paired_bootstrap_many(before[0], now, spec.names, n_boot=n_boot, seed=seed, key=spec.rng_key)
    return paired_lineages(before, now, spec.names, n_boot=n_boot, seed=seed, key=spec.rng_key)


def _all(cache: MatchCache) -> list[str]:
    return list(cache.names)


@dataclass
class TurnsFacts:
    """Everything the case study says about many turns, and what ``turns.json`` holds.

    Attributes:
        target: the target slice's label; ``target_key`` its key.
        goal: the target slice's mAP@0.5 frames-to-target measures against.
        lift: ``flywheel.target_lift`` (None: the goal is iteration 0's overall mAP@0.5).
        baseline: the random arm arm - random is measured against (None without one).
        turns: the last iteration any arm reached.
        points: per arm and iteration, the learning-curve numbers.
        changes: per arm, iteration and slice, the change from the previous turn.
        alerts: the changes that are regressions (`curves.regression_alerts`).
        reach: per arm, frames and dollars to the goal.
        advice: per arm, the stop rule's verdict.
        notes: lineage steps left out, and why.
    """

    target: str
    target_key: dict[str, str]
    goal: float
    lift: float | None
    baseline: str | None
    turns: int
    points: list[CurvePoint]
    changes: list[SliceChange]
    alerts: list[SliceChange]
    reach: dict[str, TargetReach]
    advice: dict[str, StopAdvice]
    notes: list[str]

    def key_numbers(self) -> dict[str, Any]:
        """Per arm: the target slice at its last turn, frames to the goal, the stop verdict; and the alerts' count."""
        arms = {}
        for arm, ps in by_arm(self.points).items():
            last, reach, advice = ps[-1], self.reach[arm], self.advice[arm]
            arms[arm] = {"turn": last.iter, "human_frames": last.frames, "usd": last.usd,
                         "target_map50": last.target.value, "target_ci95": [last.target.lo, last.target.hi],
                         "frames_to_goal": reach.frames, "usd_to_goal": reach.usd, "goal_by_iter": reach.by_iter,
                         "stop_from": advice.iter, "stop_holds_at_last_turn": advice.holds_at_last,
                         "stop_reasons": list(advice.reasons)}
        return {"target_slice": self.target, "goal_map50": self.goal, "turns": self.turns, "arms": arms,
                "n_alerts": len(self.alerts)}

    def to_json(self) -> dict[str, Any]:
        """JSON-safe record (``turns.json``)."""
        return {
            "target_slice": {"label": self.target, "key": self.target_key}, "goal_map50": self.goal,
            "target_lift": self.lift, "baseline": self.baseline, "turns": self.turns,
            "curve": [asdict(p) for p in self.points],
            "frames_to_target": {a: asdict(r) for a, r in self.reach.items()},
            "stop": {a: asdict(v) for a, v in self.advice.items()},
            "alerts": [asdict(c) for c in self.alerts],
            "changes": [asdict(c) for c in self.changes],
            "notes": self.notes,
        }


def analyse_turns(points: list[CurvePoint], changes: list[SliceChange], *, target: SliceSpec, lift: float | None,
                  baseline: str | None, notes: list[str]) -> TurnsFacts | None:
    """The curve read by the rules of `report.curves`; None without an iteration-0 point."""
    zero = next((p for p in points if p.iter == 0), None)
    if zero is None or zero.target.value is None or zero.overall.value is None:
        return None
    goal = target_goal(zero.target.value, zero.overall.value, lift)
    arms = by_arm(points)
    return TurnsFacts(
        target=target.label, target_key=dict(target.key), goal=goal, lift=lift, baseline=baseline,
        turns=max(p.iter for p in points), points=points, changes=changes, alerts=regression_alerts(changes),
        reach={a: frames_to_target(ps, goal) for a, ps in arms.items()},
        advice={a: stop_advice(ps) for a, ps in arms.items()}, notes=notes)
