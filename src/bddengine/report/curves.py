"""Many turns read as numbers: learning curves, frames to a target, when to stop, what regressed.

Pure functions over per-turn numbers that were already scored (`CurvePoint`: one arm at one
iteration, every mAP a mean over the arm's seeds with its CI over seeds x frames); nothing
here reads a file or scores a detector, so every rule is tested on hand-made numbers.

- `frames_to_target`: the human-labeled frames (and dollars) an arm needed to lift the
  target slice to a goal, linearly interpolated between the turns that bracket it, or
  "not reached" after the turns that ran.
- `stop_advice`: stop when the marginal gain on the target slice has a CI including 0
  for two turns in a row (returns diminished), or when a targeted arm no longer beats
  random (its arm - random CI includes 0 or lies below it).
- `regression_alerts`: every (arm, turn, slice) whose mAP@0.5 fell from the previous
  turn with a CI below 0, on a slice that is not fragile: what a nightly job would act on.

A CI "includes 0" when its lower end is at most 0 and its upper end at least 0 (a CI
touching 0 includes it), the same test as `PairedDelta.excludes_zero`; a number without a
CI has shown nothing, so it includes 0 as far as every rule here is concerned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PLATEAU = "plateau"
"""Stop reason: the marginal gain's CI included 0 for two turns in a row."""
NOT_BEATING_RANDOM = "not beating random"
"""Stop reason: arm - random on the target slice has a CI including 0 or below it."""


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% CI (``lo``/``hi`` None without one)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None

    @property
    def has_ci(self) -> bool:
        """Whether both ends of the CI are known."""
        return self.lo is not None and self.hi is not None

    @property
    def above_zero(self) -> bool:
        """The CI lies entirely above 0."""
        return self.has_ci and self.lo > 0  # type: ignore[operator]

    @property
    def below_zero(self) -> bool:
        """The CI lies entirely below 0."""
        return self.has_ci and self.hi < 0  # type: ignore[operator]

    @property
    def includes_zero(self) -> bool:
        """The CI includes 0 (touching counts), or there is no CI to exclude it."""
        return not (self.above_zero or self.below_zero)


@dataclass(frozen=True)
class CurvePoint:
    """One arm at one iteration of its lineages (the seeds' mean).

    Attributes:
        arm: the flywheel arm.
        iter: the iteration (0 = the shared iteration-0 model).
        n_seeds: lineages (training seeds) behind the means.
        frames: cumulative frames humans labeled for the lineage up to this iteration.
        usd: cumulative dollars (humans and compute) up to this iteration; None when unknown.
        target: the target slice's mAP@0.5 with its CI over seeds x frames.
        overall: the eval pool's mAP@0.5 with its CI.
        gain: target slice, this iteration minus the previous one of the same lineages (None at 0).
        vs_random: target slice, this arm minus the random baseline arm at this iteration
            (None for the baseline itself, at iteration 0, or without a baseline).
        worst: the slice with the lowest mAP@0.5 (seed mean) at this iteration, among those scored.
        worst_map50: its mAP@0.5.
    """

    arm: str
    iter: int
    n_seeds: int
    frames: float
    usd: float | None
    target: Estimate
    overall: Estimate
    gain: Estimate | None = None
    vs_random: Estimate | None = None
    worst: str | None = None
    worst_map50: float | None = None


@dataclass(frozen=True)
class SliceChange:
    """One slice's mAP@0.5 change from the previous turn, for one arm."""

    arm: str
    iter: int
    slice: str
    delta: Estimate
    fragile: bool


@dataclass(frozen=True)
class TargetReach:
    """How many labeled frames (and dollars) an arm needed to reach the goal on the target slice.

    Attributes:
        arm: the arm.
        goal: the target slice's mAP@0.5 to reach.
        reached: whether a turn reached it.
        frames: interpolated cumulative human-labeled frames at the goal (None when not reached).
        usd: interpolated cumulative dollars at the goal (None when not reached or unknown).
        by_iter: the first iteration at or past the goal (None when not reached).
        turns: the turns that ran (the last iteration).
    """

    arm: str
    goal: float
    reached: bool
    frames: float | None
    usd: float | None
    by_iter: int | None
    turns: int


@dataclass(frozen=True)
class StopAdvice:
    """Whether to stop labeling for an arm, from which iteration on, and why.

    ``holds_at_last`` says whether the rule still holds at the arm's last iteration (a turn run
    after the rule fired may have shown a gain or a lead again).
    """

    arm: str
    stop: bool
    iter: int | None
    reasons: tuple[str, ...] = ()
    holds_at_last: bool = False


def by_arm(points: Sequence[CurvePoint]) -> dict[str, list[CurvePoint]]:
    """Points grouped per arm (first-seen order), each list sorted by iteration."""
    out: dict[str, list[CurvePoint]] = {}
    for p in points:
        out.setdefault(p.arm, []).append(p)
    return {a: sorted(ps, key=lambda p: p.iter) for a, ps in out.items()}


def target_goal(iter0_target: float, iter0_overall: float, lift: float | None) -> float:
    """The target slice's goal: iteration 0's value plus ``lift``, or iteration 0's overall mAP@0.5 (None)."""
    return iter0_overall if lift is None else iter0_target + lift


def frames_to_target(points: Sequence[CurvePoint], goal: float) -> TargetReach:
    """Labeled frames and dollars at which one arm's target-slice curve first reaches ``goal``.

    Between two turns the curve is a straight line in (frames, mAP) and in (dollars, mAP); the
    goal is read off where it first crosses. A point with no target value breaks the curve there.

    Args:
        points: one arm's points, any order (iteration 0 included).
        goal: the mAP@0.5 to reach.

    Raises:
        ValueError: ``points`` is empty or mixes arms.
    """
    if not points:
        raise ValueError("frames_to_target needs at least one point")
    if len({p.arm for p in points}) > 1:
        raise ValueError(f"frames_to_target takes one arm's points, got {sorted({p.arm for p in points})}")
    ps = sorted(points, key=lambda p: p.iter)
    arm, turns = ps[0].arm, ps[-1].iter
    first = ps[0]
    if first.target.value is not None and first.target.value >= goal:
        return TargetReach(arm, goal, True, first.frames, first.usd, first.iter, turns)
    for a, b in zip(ps, ps[1:], strict=False):
        va, vb = a.target.value, b.target.value
        if va is None or vb is None or vb < goal:
            continue
        frac = (goal - va) / (vb - va) if vb != va else 1.0
        usd = None if a.usd is None or b.usd is None else a.usd + frac * (b.usd - a.usd)
        return TargetReach(arm, goal, True, a.frames + frac * (b.frames - a.frames), usd, b.iter, turns)
    return TargetReach(arm, goal, False, None, None, None, turns)


def stop_advice(points: Sequence[CurvePoint]) -> StopAdvice:
    """The first iteration at which one arm should stop labeling, and why (both reasons when both hold).

    Plateau: the marginal gain's CI includes 0 at this iteration and at the one before
    (two turns in a row, so from iteration 2 on). Not beating random: the arm's difference
    to the random baseline at this iteration does not lie above 0 (arms without a
    ``vs_random`` number, the baseline itself, are judged on the plateau alone).
    """
    ps = [p for p in sorted(points, key=lambda p: p.iter) if p.iter >= 1]
    arm = points[0].arm if points else ""
    fired: list[tuple[int, tuple[str, ...]]] = []
    flat_before = False
    for p in ps:
        flat = p.gain is not None and p.gain.includes_zero
        reasons = []
        if flat and flat_before:
            reasons.append(PLATEAU)
        if p.vs_random is not None and not p.vs_random.above_zero:
            reasons.append(NOT_BEATING_RANDOM)
        if reasons:
            fired.append((p.iter, tuple(reasons)))
        flat_before = flat
    if not fired:
        return StopAdvice(arm, False, None)
    return StopAdvice(arm, True, fired[0][0], fired[0][1], holds_at_last=fired[-1][0] == ps[-1].iter)


def regression_alerts(changes: Sequence[SliceChange]) -> list[SliceChange]:
    """The slice falls a nightly job would act on: mAP@0.5 down with a CI below 0, slice not fragile.

    Returns:
        The alerts by iteration, arm, then the largest fall first.
    """
    alerts = [c for c in changes if c.delta.below_zero and not c.fragile]
    return sorted(alerts, key=lambda c: (c.iter, c.arm, c.delta.value if c.delta.value is not None else 0.0))
