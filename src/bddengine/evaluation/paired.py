"""Paired bootstrap of the mAP@0.5 difference between detectors scored on the same frames.

Two detectors evaluated on one eval pool are not independent samples: a hard frame is
hard for both. Resampling each detector's frames separately would add that shared
frame-to-frame variance twice and give a CI far wider than the real uncertainty of
the difference. Here each resample draws the frames ONCE and scores every detector
on that same draw, so the CI is that of the delta itself.

A resample is a weighting of the cached matches (a frame drawn twice counts twice),
scored with `average_precision` exactly as the per-slice CI of `evaluate_slices`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bddengine.evaluation.cache import MatchCache
from bddengine.evaluation.slices import (
    classes_with_gt,
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
    """

    n_frames: int
    map50_a: float | None
    map50_b: float | None
    delta: float | None
    ci95: tuple[float, float] | None
    deltas: list[float | None]
    n_boot: int

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

    Every resample scores A and each B on the same frames; the resampled statistic
    is ``mean_s(mapB_s) - mapA``. With one B this is exactly `paired_bootstrap`.
    """
    if not caches_b:
        raise ValueError("paired_bootstrap_many needs at least one detector to compare")
    for cache in caches_b:
        _check_same_gt(cache_a, cache)
    key = dict(key or {})
    frames = np.unique(cache_a.frame_indices(list(names)))
    point_a = score_frames(cache_a, frames, key, n_boot=0).map50
    point_b = [score_frames(c, frames, key, n_boot=0).map50 for c in caches_b]
    deltas = [None if (b is None or point_a is None) else b - point_a for b in point_b]
    if point_a is None or any(b is None for b in point_b):
        return PairedDelta(int(frames.size), point_a, None, None, None, deltas, n_boot)
    map_b = float(np.mean(point_b))
    delta = float(np.mean(deltas))

    ci95 = None
    if n_boot > 0 and frames.size:
        at50_a = _at50(cache_a, frames)
        at50_b = [_at50(c, frames) for c in caches_b]
        boot = _paired_deltas(at50_a, at50_b, frames.size, n_boot, slice_rng(seed, key))
        boot = boot[np.isfinite(boot)]
        if boot.size:
            ci95 = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    return PairedDelta(int(frames.size), point_a, map_b, delta, ci95, deltas, n_boot)


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


def _paired_deltas(
    at50_a: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    at50_b: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    n: int,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """mean_s(mapB_s) - mapA on each of ``n_boot`` shared resamples; NaN without GT."""
    out = np.full(n_boot, np.nan)
    for lo, counts in resample_counts(n, n_boot, rng):
        map_a = resampled_map50(at50_a, counts)
        map_b = np.mean([resampled_map50(at50, counts) for at50 in at50_b], axis=0)
        out[lo : lo + counts.shape[0]] = map_b - map_a
    return out
