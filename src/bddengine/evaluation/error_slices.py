"""The TIDE decomposition of every slice, its bootstrap CIs, recall by size and visibility,
and the change of each error's cost between two iterations.

Everything reads the match cache built with ``errors=True`` (`bddengine.evaluation.errors`);
a slice, a bootstrap resample and a paired resample are weightings of its frames, as for
the slice table's mAP@0.5 and its CI (`slices`, `paired`), and draw the same resamples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bddengine.evaluation.cache import MatchCache
from bddengine.evaluation.error_ap import variant_maps
from bddengine.evaluation.errors import (
    BKG,
    BOTH,
    CLS,
    DUPE,
    ERROR_TYPES,
    LOC,
    SPECIAL_TYPES,
    error_costs,
    error_counts,
    label_index_map,
)
from bddengine.evaluation.slices import key_tag, resample_counts, slice_keys, slice_rng

METHOD = "TIDE (Bolya et al., ECCV 2020), tidecv 1.0.1 rules; fg IoU 0.5, bg IoU 0.1; base = official AP@0.5"
VISIBILITY = ("occluded", "truncated")
_DET_NAMES = {CLS: "cls", LOC: "loc", BOTH: "both", DUPE: "dupe", BKG: "bkg"}


def slice_sets(gt_frames: Sequence[dict[str, Any]], groupings: Sequence[Sequence[str]]
               ) -> list[tuple[str, dict[str, str], list[str]]]:
    """``(grouping, key, frame names)`` of every slice of each grouping, then the overall set.

    A grouping of several attributes is called ``slice``, one attribute by its name.
    """
    out = []
    for attrs in groupings:
        groups: dict[tuple, list[str]] = {}
        for name, key in slice_keys(list(gt_frames), list(attrs)).items():
            groups.setdefault(tuple(key.items()), []).append(name)
        grouping = "slice" if len(attrs) > 1 else attrs[0]
        out += [(grouping, dict(items), names) for items, names in sorted(groups.items())]
    return out + [("overall", {}, [f["name"] for f in gt_frames])]


def _costs(cache: MatchCache, frames: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    assert cache.errors is not None, "build the match cache with errors=True"
    return error_costs(variant_maps(cache, cache.errors, frames, weights))


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def slice_errors(cache: MatchCache, frames: np.ndarray) -> dict[str, Any]:
    """Point estimates for one set of frames (sorted unique indices): base mAP@0.5, each type's
    cost (``dap``), the special costs and the error counts."""
    maps = variant_maps(cache, cache.errors, frames, np.ones((1, frames.size), dtype=np.int64))
    costs = error_costs(maps)
    return {
        "map50": _num(maps["base"][0]),
        "dap": {t: _num(costs[t][0]) for t in ERROR_TYPES},
        "counts": error_counts(cache.errors, frames),
        "special": {t: _num(costs[t][0]) for t in SPECIAL_TYPES},
    }


def bootstrap_errors(cache: MatchCache, frames: np.ndarray, key: dict[str, str], *, n_boot: int,
                     seed: int) -> dict[str, list[float] | None]:
    """95% CI of each type's cost over ``n_boot`` resamples of the frames (the slice's own draws,
    `slice_rng`, as its mAP@0.5 CI)."""
    boot = {t: np.full(n_boot, np.nan) for t in ERROR_TYPES}
    for lo, counts in resample_counts(frames.size, n_boot, slice_rng(seed, key)):
        costs = _costs(cache, frames, counts)
        for t in ERROR_TYPES:
            boot[t][lo : lo + counts.shape[0]] = costs[t]
    return {t: _percentiles(v) for t, v in boot.items()}


def _percentiles(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values.size else None


def gt_visibility(cache: MatchCache, gt_frames: Sequence[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Per COCO ground-truth id, BDD's ``occluded`` and ``truncated`` flags (None when the boxes
    cannot be lined up with the cache's, e.g. odd records the checks dropped)."""
    n = cache.errors.gt_frame.size
    flags = {a: np.zeros(n, dtype=bool) for a in VISIBILITY}
    keep = label_index_map(gt_frames)
    gid = 0
    for frame in sorted(gt_frames, key=lambda f: f["name"]):
        labels = frame.get("labels") or []
        for j in keep[frame["name"]]:
            gid += 1
            if gid >= n:
                return None
            attributes = labels[j].get("attributes") or {}
            for a in VISIBILITY:
                flags[a][gid] = attributes.get(a) is True
    return flags if gid == n - 1 else None


def recall_by_height(cache: MatchCache, in_slice: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """Recall at IoU 0.5 (found by COCOeval's matching, any score) per box-height bucket.

    Args:
        in_slice: ``[N]`` bool, the frames of the slice.
        edges: bucket edges in pixels, ascending: ``[32, 64]`` gives 0-32, 32-64, 64+.
    """
    em = cache.errors
    boxes = em.gt_regular & in_slice[em.gt_frame]
    bounds = [0.0, *[float(e) for e in edges], None]
    bucket = np.searchsorted(np.asarray(edges, dtype=float), em.gt_height, side="right")
    out = []
    for b in range(len(bounds) - 1):
        mask = boxes & (bucket == b)
        lo, hi = bounds[b], bounds[b + 1]
        out.append(_recall_row({"bucket": f"{lo:g}-{hi:g}" if hi is not None else f"{lo:g}+",
                                "lo": lo, "hi": hi}, mask, em.gt_found))
    return out


def recall_by_visibility(cache: MatchCache, in_slice: np.ndarray, flags: dict[str, np.ndarray] | None
                         ) -> list[dict[str, Any]]:
    """Recall at IoU 0.5 for boxes with and without each of BDD's ``occluded`` / ``truncated`` flags."""
    if flags is None:
        return []
    em = cache.errors
    boxes = em.gt_regular & in_slice[em.gt_frame]
    return [_recall_row({"attribute": a, "value": v}, boxes & (flags[a] == v), em.gt_found)
            for a in VISIBILITY for v in (True, False)]


def _recall_row(row: dict[str, Any], mask: np.ndarray, found: np.ndarray) -> dict[str, Any]:
    n, k = int(mask.sum()), int((mask & found).sum())
    return {**row, "n_gt": n, "n_found": k, "recall": k / n if n else None}


def error_document(
    cache: MatchCache,
    gt_frames: Sequence[dict[str, Any]],
    slices: Sequence[tuple[str, dict[str, str], Sequence[str]]],
    *,
    worst: dict[str, str] | None,
    height_edges: Sequence[float],
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """The ``errors.json`` document of an eval run (its shape: docs/architecture.md, "Error decomposition").

    Args:
        cache: the run's match cache, built with ``errors=True``.
        gt_frames: the eval ground truth (for the occluded / truncated flags).
        slices: ``(grouping, key, frame names)`` per slice, the overall one with grouping ``overall``.
        worst: the worst slice's key; it and the overall row get bootstrap CIs.
        height_edges: box-height bucket edges in pixels.
        n_boot: resamples for the CIs (0: none).
        seed: the bootstrap seed (each slice draws as its mAP@0.5 CI does).
    """
    flags = gt_visibility(cache, gt_frames)
    rows = []
    for grouping, key, names in slices:
        frames = np.unique(cache.frame_indices(list(names)))
        in_slice = np.zeros(cache.n_frames, dtype=bool)
        in_slice[frames] = True
        row: dict[str, Any] = {"grouping": grouping, "key": dict(key), "n_frames": int(frames.size),
                               **slice_errors(cache, frames), "ci95": None}
        if n_boot > 0 and (grouping == "overall" or (worst is not None and dict(key) == dict(worst)
                                                     and grouping == "slice")):
            row["ci95"] = bootstrap_errors(cache, frames, dict(key), n_boot=n_boot, seed=seed)
        row["recall_by_height"] = recall_by_height(cache, in_slice, height_edges)
        row["recall_by_visibility"] = recall_by_visibility(cache, in_slice, flags)
        rows.append(row)
    return {"method": METHOD, "types": list(ERROR_TYPES), "height_edges": [float(e) for e in height_edges],
            "n_boot": n_boot, "worst": dict(worst) if worst else None, "slices": rows}


def box_errors(cache: MatchCache, gt_frames: Sequence[dict[str, Any]], pred_frames: Sequence[dict[str, Any]]
               ) -> dict[str, dict[str, list[str | None]]]:
    """Each box's error type, by frame and label position in the files the cache was built from.

    Predictions: ``tp``, an error type, or None (not scored: beyond 100 of its class, matched to a
    crowd or ignored box, or a category outside the task). Ground truth: ``tp`` (found), ``miss``,
    ``loc`` / ``cls`` (found only by a detection with that error, which fixing it would match), or
    None (crowd or ignored boxes, labels without a box).
    """
    em = cache.errors
    out: dict[str, dict[str, list[str | None]]] = {
        f["name"]: {"pred": [None] * len(f.get("labels") or []), "gt": [None] * len(f.get("labels") or [])}
        for f in gt_frames}
    gid = 0
    keep = label_index_map(gt_frames)
    for frame in sorted(gt_frames, key=lambda f: f["name"]):
        for j in keep[frame["name"]]:
            gid += 1
            if gid < em.gt_frame.size and em.gt_regular[gid]:
                out[frame["name"]]["gt"][j] = "tp" if em.gt_found[gid] else (
                    "miss" if em.gt_missed[gid] else _DET_NAMES.get(int(em.gt_kind[gid])))
    did = 0
    keep = label_index_map(pred_frames)
    for frame in sorted(pred_frames, key=lambda f: f["name"]):
        slot = out.setdefault(frame["name"], {"pred": [], "gt": []})
        slot["pred"] = [None] * len(frame.get("labels") or [])
        for j in keep[frame["name"]]:
            did += 1
            if did < em.kind.size and em.scored[did]:
                slot["pred"][j] = "tp" if em.det_tp[did] else _DET_NAMES.get(int(em.kind[did]))
    return out


def paired_error_deltas(
    cache0: MatchCache,
    caches1: Sequence[MatchCache],
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    key: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Each error type's cost at iteration 1 (mean over training seeds) minus iteration 0, on ``names``.

    The CI draws the frames once per resample for both iterations and, with several seeds,
    the seeds with replacement, with the generators `paired.paired_bootstrap_many` uses
    for the same key (so the draws are those of the mAP@0.5 delta).

    Returns:
        ``{"n_seeds", "levels", "iter0", "iter1", "delta", "ci95"}``, each of the last four a
        dict by error type (``ci95`` values are ``[lo, hi]`` or None).
    """
    key = dict(key or {})
    frames = np.unique(cache0.frame_indices(list(names)))
    once = np.ones((1, frames.size), dtype=np.int64)
    c0 = _costs(cache0, frames, once)
    c1 = [_costs(c, frames, once) for c in caches1]
    iter0 = {t: _num(c0[t][0]) for t in ERROR_TYPES}
    iter1 = {t: _num(float(np.mean([c[t][0] for c in c1]))) for t in ERROR_TYPES}
    delta = {t: None if iter0[t] is None or iter1[t] is None else iter1[t] - iter0[t] for t in ERROR_TYPES}
    s = len(caches1)
    boot = {t: np.full(n_boot, np.nan) for t in ERROR_TYPES}
    rng_frames = slice_rng(seed, key)
    rng_seeds = np.random.default_rng([seed, key_tag(key), 1])
    for lo, counts in resample_counts(frames.size, n_boot, rng_frames) if n_boot > 0 and frames.size else ():
        b = counts.shape[0]
        a = _costs(cache0, frames, counts)
        per_seed = [_costs(c, frames, counts) for c in caches1]
        w = np.ones((s, b)) if s == 1 else rng_seeds.multinomial(s, np.full(s, 1.0 / s), size=b).T
        for t in ERROR_TYPES:
            m = np.stack([p[t] for p in per_seed])
            boot[t][lo : lo + b] = (w * m).sum(axis=0) / s - a[t]
    return {"n_seeds": s, "levels": "seeds+frames" if s > 1 else "frames", "iter0": iter0, "iter1": iter1,
            "delta": delta, "ci95": {t: _percentiles(v) for t, v in boot.items()}}
