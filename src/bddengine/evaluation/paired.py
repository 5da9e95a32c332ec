"""Paired bootstrap of the mAP@0.5 difference between detectors scored on the same frames.

Two detectors evaluated on one eval pool are not independent samples: a hard frame is
hard for both. Resampling each detector's frames separately would add that shared
frame-to-frame variance twice and give a CI far wider than the real uncertainty of
the difference. Here each resample draws the frames ONCE and scores every detector
on that same draw, so the CI is that of the delta itself.

A resample is a weighting of the cached matches (a frame drawn twice counts twice),
scored with `average_precision` exactly as the per-slice CI of `evaluate_slices`.

Several training seeds of one arm add a second level: each resample also draws the
arm's seeds with replacement (then its frames, shared by every detector), so the CI
holds the seed-to-seed training variance as well as the eval-frame noise. With one
seed there is nothing to draw and the CI is the frames-only interval; `PairedDelta.levels`
says which one a CI is. `paired_difference` compares two arms the same way: each arm's
seeds drawn on its own, the frames shared, iteration 0 cancelling out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bddengine.evaluation.cache import MatchCache
from bddengine.evaluation.slices import (
    classes_with_gt,
    key_tag,
    resample_counts,
    resampled_map50,
    score_frames,
    scored_at,
    slice_rng,
)


@dataclass
class PairedDelta:
    """mAP@0.5 of detector(s) B minus detector A over one set of frames.

    Attributes:
        n_frames: frames in the set.
        map50_a: A's mAP@0.5 (`score_frames`), None without ground truth.
        map50_b: mean over the B detectors of their mAP@0.5.
        delta: ``map50_b - map50_a``; None without ground truth.
        ci95: 2.5 and 97.5 percentiles of the delta over paired resamples
            (None without resamples or without ground truth).
        deltas: each B detector's own delta, in the order given.
        n_boot: resamples drawn.
        levels: what the CI resamples: ``"frames"`` (one detector per side) or
            ``"seeds+frames"`` (a side with several training seeds).
    """

    n_frames: int
    map50_a: float | None
    map50_b: float | None
    delta: float | None
    ci95: tuple[float, float] | None
    deltas: list[float | None]
    n_boot: int
    levels: str = "frames"

    @property
    def excludes_zero(self) -> bool:
        """True when the 95% CI lies entirely above or entirely below 0."""
        return self.ci95 is not None and (self.ci95[0] > 0 or self.ci95[1] < 0)


def paired_bootstrap(
    cache_a: MatchCache,
    cache_b: MatchCache,
    names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    key: dict[str, str] | None = None,
) -> PairedDelta:
    """Delta of mAP@0.5 (B - A) over ``names`` with its paired bootstrap 95% CI.

    Args:
        cache_a: the baseline detector's matches (`build_match_cache`).
        cache_b: the other detector's matches against the same ground truth.
        names: the frames (unique GT frame names) to score.
        n_boot: resamples; 0 gives the point estimate only.
        seed: seeds the resampling together with ``key``.
        key: the slice, e.g. ``{"weather": "rainy"}``; one key always gets the
            same resamples, whichever other slices or detectors are scored.

    Returns:
        The delta; ``delta`` equals ``map50_b - map50_a`` of `score_frames`.

    Raises:
        ValueError: the two caches were not built on the same ground truth.
        KeyError: a name is not a GT frame.
    """
    return paired_bootstrap_many(cache_a, [cache_b], names, n_boot=n_boot, seed=seed, key=key)


def paired_bootstrap_many(
    cache_a: MatchCache,
    caches_b: Sequence[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    key: dict[str, str] | None = None,
) -> PairedDelta:
    """Like `paired_bootstrap`, for the mean of several B detectors (training seeds).

    Every resample draws the frames once and scores A and the B detectors on them; with
    several B detectors it also draws which of them (seeds, with replacement) enter the
    mean. The resampled statistic is ``mean over drawn s of mapB_s - mapA``. With one B
    this is exactly `paired_bootstrap`.
    """
    if not caches_b:
        raise ValueError("paired_bootstrap_many needs at least one detector to compare")
    return _compare([cache_a], list(caches_b), names, n_boot=n_boot, seed=seed, key=key)


def paired_difference(
    caches_x: Sequence[MatchCache],
    caches_y: Sequence[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    key: dict[str, str] | None = None,
) -> PairedDelta:
    """mAP@0.5 of arm X minus arm Y (each the mean over its training seeds) on the same frames.

    This is the difference of two arms' deltas against one iteration-0 detector (which
    cancels out). Each resample draws the frames once for both arms and each arm's seeds
    on their own, since the arms' trainings are independent.

    Returns:
        A `PairedDelta` with A = arm Y (``map50_a`` its mean), B = arm X, ``deltas`` the
        per-seed-pair differences X_i - Y_i where both arms have seed i's position.
    """
    if not caches_x or not caches_y:
        raise ValueError("paired_difference needs at least one detector per arm")
    return _compare(list(caches_y), list(caches_x), names, n_boot=n_boot, seed=seed, key=key)


def paired_lineages(
    caches_before: Sequence[MatchCache],
    caches_after: Sequence[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    key: dict[str, str] | None = None,
) -> PairedDelta:
    """mAP@0.5 of the same lineages one turn on minus the turn before (the mean over the lineages).

    Lineage i is ``caches_before[i]`` then ``caches_after[i]`` (one training seed's chain of
    fine-tunes). Each resample draws the frames once and the lineages once, with replacement,
    for both turns: a drawn lineage brings its own before and after, so the CI holds the
    lineage-to-lineage variance of the gain, not that of each turn's level.

    Raises:
        ValueError: the two sides do not hold the same number of lineages, or none.
    """
    if not caches_before or len(caches_before) != len(caches_after):
        raise ValueError(f"paired_lineages needs one before and one after per lineage, got "
                         f"{len(caches_before)} and {len(caches_after)}")
    return _compare(list(caches_before), list(caches_after), names, n_boot=n_boot, seed=seed, key=key,
                    shared_seeds=True)


def mean_map(
    caches: Sequence[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    key: dict[str, str] | None = None,
) -> tuple[float | None, tuple[float, float] | None]:
    """mAP@0.5 over ``names``, the mean over several detectors (seeds), with its bootstrap 95% CI.

    The CI draws the frames and, with several detectors, the seeds (as `paired_bootstrap_many`
    draws its B side): a level's uncertainty, where the other functions give a difference's.
    """
    if not caches:
        raise ValueError("mean_map needs at least one detector")
    for cache in caches[1:]:
        _check_same_gt(caches[0], cache)
    key = dict(key or {})
    frames = np.unique(caches[0].frame_indices(list(names)))
    points = [score_frames(c, frames, key, n_boot=0).map50 for c in caches]
    if any(p is None for p in points):
        return None, None
    ci = None
    if n_boot > 0 and frames.size:
        means = _resampled_means([[_at50(c, frames) for c in caches]], frames.size, n_boot, slice_rng(seed, key),
                                 np.random.default_rng([seed, key_tag(key), 1]))[0]
        means = means[np.isfinite(means)]
        if means.size:
            ci = (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    return float(np.mean(points)), ci


def _compare(
    side_a: list[MatchCache],
    side_b: list[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    key: dict[str, str] | None,
    shared_seeds: bool = False,
) -> PairedDelta:
    """mean(side B) - mean(side A), with the two-level paired bootstrap CI (``shared_seeds``: the
    sides are the same lineages, drawn together)."""
    for cache in side_a[1:] + side_b:
        _check_same_gt(side_a[0], cache)
    key = dict(key or {})
    levels = "seeds+frames" if max(len(side_a), len(side_b)) > 1 else "frames"
    frames = np.unique(side_a[0].frame_indices(list(names)))
    point_a = [score_frames(c, frames, key, n_boot=0).map50 for c in side_a]
    point_b = [score_frames(c, frames, key, n_boot=0).map50 for c in side_b]
    if len(side_a) == 1:
        deltas = [None if (b is None or point_a[0] is None) else b - point_a[0] for b in point_b]
    else:
        deltas = [None if (b is None or a is None) else b - a for a, b in zip(point_a, point_b, strict=False)]
    if any(a is None for a in point_a) or any(b is None for b in point_b):
        return PairedDelta(int(frames.size), point_a[0] if len(side_a) == 1 else None, None, None, None, deltas,
                           n_boot, levels)
    map_a, map_b = float(np.mean(point_a)), float(np.mean(point_b))

    ci95 = None
    if n_boot > 0 and frames.size:
        at50_a = [_at50(c, frames) for c in side_a]
        at50_b = [_at50(c, frames) for c in side_b]
        means = _resampled_means([at50_a, at50_b], frames.size, n_boot, slice_rng(seed, key),
                                 np.random.default_rng([seed, key_tag(key), 1]),  # seed draws apart from frames
                                 shared_seeds=shared_seeds)
        boot = means[1] - means[0]
        boot = boot[np.isfinite(boot)]
        if boot.size:
            ci95 = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    return PairedDelta(int(frames.size), map_a, map_b, map_b - map_a, ci95, deltas, n_boot, levels)


def _check_same_gt(a: MatchCache, b: MatchCache) -> None:
    if a.names != b.names or not np.array_equal(a.n_gt, b.n_gt):
        raise ValueError(
            "the two detectors were not scored on the same ground truth (different eval frames "
            "or labels): a paired comparison needs both evaluated on one eval pool"
        )


def _at50(cache: MatchCache, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per class with GT in ``frames``: (is_tp, local frame column, n_gt) at IoU 0.5."""
    return [(*scored_at(matches, pos, local, 0), n_gt)
            for _, matches, pos, local, n_gt in classes_with_gt(cache, frames)]


def _resampled_means(
    sides: list[list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    n: int,
    n_boot: int,
    rng_frames: np.random.Generator,
    rng_seeds: np.random.Generator,
    *,
    shared_seeds: bool = False,
) -> np.ndarray:
    """``[len(sides), n_boot]``: each side's mean mAP@0.5 over its drawn seeds, on shared frame resamples.

    The frame draws come from ``rng_frames`` alone, so they are the same whichever
    detectors are compared; a side with one detector draws no seeds. With ``shared_seeds``
    (sides of equal length: the same lineages at two turns) one seed draw serves every side.
    """
    out = np.full((len(sides), n_boot), np.nan)
    for lo, counts in resample_counts(n, n_boot, rng_frames):
        b = counts.shape[0]
        shared = None
        if shared_seeds and len(sides[0]) > 1:
            s = len(sides[0])
            shared = rng_seeds.multinomial(s, np.full(s, 1.0 / s), size=b).T
        for j, side in enumerate(sides):
            maps = np.stack([resampled_map50(at50, counts) for at50 in side])  # [seeds, b]
            if len(side) == 1:
                out[j, lo : lo + b] = maps[0]
                continue
            s = len(side)
            weights = shared if shared is not None else \
                rng_seeds.multinomial(s, np.full(s, 1.0 / s), size=b).T  # [seeds, b], columns sum to s
            # a resample without GT is NaN for every seed alike (all share the frames); keep it NaN
            out[j, lo : lo + b] = np.where(np.isnan(maps).any(axis=0), np.nan,
                                           (weights * np.nan_to_num(maps)).sum(axis=0) / s)
    return out
