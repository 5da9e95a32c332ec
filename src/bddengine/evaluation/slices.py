"""Per-slice scores: mAP@0.5, mAP and a bootstrap CI for every slice of frames.

Each slice is scored from the match cache (`average_precision`), which gives
exactly what the official evaluator gives for that slice's frames alone. Its 95%
CI resamples the slice's frames with replacement; a resample is a weighting of
the same cached matches, so 1000 resamples cost one vectorized pass per class.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.progress import track

from bddengine.bdd.categories import CLASSES, UNDEFINED
from bddengine.evaluation.ap import average_precision
from bddengine.evaluation.cache import IGNORED, TP, ClassMatches, MatchCache

_DRAW_ELEMENTS = 1 << 22  # resample rows x frames drawn at a time


@dataclass
class SliceResult:
    """The scores of one slice (fractions in 0-1; None where there is no ground truth).

    Attributes:
        key: the slice, e.g. ``{"weather": "rainy", "timeofday": "night"}``.
        n_frames: frames in the slice.
        map50: AP at IoU 0.5, mean over classes with ground truth in the slice.
        map: AP at IoU 0.50:0.95, same classes.
        ci95: 2.5 and 97.5 percentiles of map50 over bootstrap resamples of the
            slice's frames (None without resamples or without ground truth).
        ap50_per_class: AP at IoU 0.5 per class, None for a class without GT.
        recall_per_class: recall at IoU 0.5 and 100 detections per image.
    """

    key: dict[str, str]
    n_frames: int
    map50: float | None
    map: float | None
    ci95: tuple[float, float] | None
    ap50_per_class: dict[str, float | None]
    recall_per_class: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """The slice's row in the ``score`` JSON document."""
        return {
            "key": self.key,
            "n_frames": self.n_frames,
            "map50": self.map50,
            "map": self.map,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
        }


def slice_keys(gt_frames: list[dict[str, Any]], by: Sequence[str]) -> dict[str, dict[str, str]]:
    """The slice of every frame: its values of the ``by`` frame attributes.

    A frame without the attribute (or with an empty value) gets ``"undefined"``,
    the value BDD itself uses. One attribute gives the marginal slices, several
    give their combinations.

    Args:
        gt_frames: BDD frames with ``attributes`` such as weather, timeofday, scene.
        by: attribute names, e.g. ``["weather", "timeofday"]``.

    Returns:
        frame name -> ``{attribute: value}``, attributes in ``by`` order.
    """
    keys: dict[str, dict[str, str]] = {}
    for frame in gt_frames:
        attributes = frame.get("attributes") or {}
        keys[frame["name"]] = {a: str(attributes.get(a) or UNDEFINED) for a in by}
    return keys


def evaluate_slices(
    cache: MatchCache,
    slice_of: Mapping[str, tuple | dict],
    *,
    n_boot: int = 1000,
    seed: int = 42,
    min_frames: int = 1,
    progress: bool = False,
    advance: Callable[[int], None] | None = None,
) -> list[SliceResult]:
    """Score every slice of frames.

    Args:
        cache: from `build_match_cache`.
        slice_of: frame name -> slice key, a dict of attribute values (see
            `slice_keys`), a tuple of ``(attribute, value)`` pairs, or a plain
            tuple of values (named ``k0``, ``k1``, ...). Frames not listed belong to
            no slice.
        n_boot: bootstrap resamples per slice for the CI (0: no CI).
        seed: seeds each slice's resampling together with its key, so a slice's
            CI does not depend on which other slices are scored.
        min_frames: slices with fewer frames are left out.
        progress: show a progress bar (it leaves no line behind).
        advance: called with each scored slice's frame count, for a caller's own
            bar over several calls.

    Returns:
        One result per slice, largest first (ties by key).

    Raises:
        KeyError: a frame of ``slice_of`` is not in the cache's ground truth.
    """
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for name, key in slice_of.items():
        if name not in cache.index:
            raise KeyError(f"frame {name!r} of the slice mapping is not in the evaluated ground truth")
        groups.setdefault(_key_items(key), []).append(cache.index[name])
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ordered = [(items, idx) for items, idx in ordered if len(idx) >= min_frames]
    if progress:
        ordered = track(ordered, description="scoring slices", transient=True)
    results = []
    for items, idx in ordered:
        results.append(score_frames(cache, np.sort(np.asarray(idx, dtype=np.int64)), dict(items),
                                    n_boot=n_boot, seed=seed))
        if advance is not None:
            advance(len(idx))
    return results


def score_frames(
    cache: MatchCache, frames: np.ndarray, key: dict[str, str], *, n_boot: int = 1000, seed: int = 42
) -> SliceResult:
    """Score one set of frames (unique frame indices into ``cache.names``).

    As the official evaluator run on these frames alone: when they hold no
    prediction at all it gives its empty result, 0.0 for every class with any GT
    box (crowd and ignored ones included) and None for the others; otherwise a
    class reads None when it has no GT box that is scored (not crowd, not ignored).

    Returns:
        The set's `SliceResult`, labelled with ``key``.
    """
    if not cache.n_pred[frames].any():
        return _empty_result(cache, frames, key, n_boot=n_boot)
    n, n_thr = frames.size, cache.classes[0].state.shape[0]
    once = np.ones((1, n), dtype=np.int64)
    ap = np.full((len(CLASSES), n_thr), np.nan)
    recall50 = np.full(len(CLASSES), np.nan)
    at50: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (class, is_tp, frame, n_gt)
    for k, matches, pos, local, n_gt in classes_with_gt(cache, frames):
        for t in range(n_thr):
            is_tp, frame = scored_at(matches, pos, local, t)
            ap_t, rec_t = average_precision(is_tp, frame, once, n_gt)
            ap[k, t] = ap_t[0]
            if t == 0:
                recall50[k] = rec_t[0]
                at50.append((k, is_tp, frame, n_gt))

    ci95 = None
    if at50 and n_boot > 0:
        boot = _bootstrap_map50(at50, n, n_boot, slice_rng(seed, key))
        boot = boot[np.isfinite(boot)]
        if boot.size:
            ci95 = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    has_gt = np.isfinite(ap[:, 0])
    return SliceResult(
        key=key,
        n_frames=int(n),
        map50=float(ap[has_gt, 0].mean()) if has_gt.any() else None,
        map=float(ap[has_gt].mean(axis=1).mean()) if has_gt.any() else None,
        ci95=ci95,
        ap50_per_class={c: _num(ap[k, 0]) for k, c in enumerate(CLASSES)},
        recall_per_class={c: _num(recall50[k]) for k, c in enumerate(CLASSES)},
    )


def _empty_result(cache: MatchCache, frames: np.ndarray, key: dict[str, str], *, n_boot: int) -> SliceResult:
    """A set of frames without predictions, as scalabel's ``DetResult.empty`` scores it."""
    has_gt = cache.n_gt_any[:, frames].any(axis=1)
    per_class = {c: 0.0 if has_gt[k] else None for k, c in enumerate(CLASSES)}
    overall = 0.0 if has_gt.any() else None
    return SliceResult(key=key, n_frames=int(frames.size), map50=overall, map=overall,
                       ci95=(0.0, 0.0) if overall is not None and n_boot > 0 else None,
                       ap50_per_class=per_class, recall_per_class=dict(per_class))


def classes_with_gt(
    cache: MatchCache, frames: np.ndarray
) -> Iterator[tuple[int, ClassMatches, np.ndarray, np.ndarray, np.ndarray]]:
    """Per class with ground truth in ``frames`` (sorted frame indices): its index, its
    matches, their positions within ``frames``, their local frame columns, and n_gt per frame."""
    for k, matches in enumerate(cache.classes):
        n_gt = cache.n_gt[k, frames]
        if not n_gt.any():
            continue
        pos = matches.positions(frames)
        yield k, matches, pos, np.searchsorted(frames, matches.frame[pos]), n_gt


def scored_at(matches: ClassMatches, pos: np.ndarray, local: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """``(is_tp, frame)`` of the detections at IoU threshold index ``t``, ignored ones left out."""
    state = matches.state[t, pos]
    scored = state != IGNORED
    return state[scored] == TP, local[scored]


def _bootstrap_map50(
    at50: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], n: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """mAP@0.5 of ``n_boot`` resamples (with replacement) of the n frames; NaN without GT."""
    out = np.full(n_boot, np.nan)
    for lo, counts in resample_counts(n, n_boot, rng):
        out[lo : lo + counts.shape[0]] = resampled_map50([(t, f, g) for _, t, f, g in at50], counts)
    return out


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> Iterator[tuple[int, np.ndarray]]:
    """Bootstrap resamples of n frames as ``(first row, counts[b, n])`` blocks.

    ``counts[r, i]`` is how often frame i is drawn in resample ``first + r``; the
    blocks keep ``b x n`` draws within a fixed memory budget.
    """
    rows = max(1, _DRAW_ELEMENTS // n)
    for lo in range(0, n_boot, rows):
        b = min(rows, n_boot - lo)
        draws = rng.integers(0, n, size=(b, n))
        yield lo, np.bincount((draws + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)


def resampled_map50(at50: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], counts: np.ndarray) -> np.ndarray:
    """Mean AP@0.5 over the classes with GT, per resample (rows of ``counts``); NaN without GT.

    Args:
        at50: per class with GT, ``(is_tp, frame, n_gt)`` of its scored detections at IoU 0.5.
        counts: ``[b, n]`` draw counts from `resample_counts`.
    """
    per_class = np.full((len(at50), counts.shape[0]), np.nan)
    for j, (is_tp, frame, n_gt) in enumerate(at50):
        per_class[j] = average_precision(is_tp, frame, counts, n_gt)[0]
    valid = np.isfinite(per_class)
    n_valid = valid.sum(axis=0)
    total = np.where(valid, per_class, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_valid > 0, total / n_valid, np.nan)


def slice_rng(seed: int, key: dict[str, str]) -> np.random.Generator:
    """The resampling generator of one slice: seeded by ``seed`` and the slice key, so a
    slice's draws do not depend on which other slices are scored."""
    return np.random.default_rng([seed, key_tag(key)])


def key_tag(key: dict[str, str]) -> int:
    """A stable integer for a slice key (part of the seed of its resampling)."""
    return zlib.crc32(json.dumps(key, sort_keys=True).encode())


def _key_items(key: tuple | dict | str) -> tuple[tuple[str, str], ...]:
    if isinstance(key, Mapping):
        return tuple((str(a), str(v)) for a, v in key.items())
    if isinstance(key, str):
        return (("k0", key),)
    if all(isinstance(part, tuple) and len(part) == 2 for part in key):
        return tuple((str(a), str(v)) for a, v in key)
    return tuple((f"k{i}", str(v)) for i, v in enumerate(key))


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
