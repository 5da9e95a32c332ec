"""AP@0.5 with each of TIDE's error types fixed, for any weighting of the eval frames.

The match cache (`bddengine.evaluation.cache`) holds each detection's official match
state; `bddengine.evaluation.errors` sorts the false positives and missed boxes into
TIDE's types. Here the two meet: each type is fixed with tidecv's oracle and AP@0.5 is
re-scored with the same accumulation as the official number.
"""

from __future__ import annotations

import numpy as np

from bddengine.evaluation.ap import average_precision
from bddengine.evaluation.cache import IGNORED, TP, MatchCache
from bddengine.evaluation.errors import BKG, BOTH, CLS, DUPE, LOC, VARIANTS, ErrorMatches


def _class_variants(cache: MatchCache, em: ErrorMatches, frames: np.ndarray
                    ) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """Per variant (base, each type fixed, fp, fn) and class with GT in ``frames``:
    ``(is_tp, local frame, n_gt per frame, detections per frame)`` at IoU 0.5, in accumulate order."""
    n = frames.size
    per_class = []
    for matches in cache.classes:
        pos = matches.positions(frames)
        state = matches.state[0, pos]
        keep = state != IGNORED
        pos = pos[keep]
        ids = matches.det_id[pos]
        per_class.append({
            "tp": state[keep] == TP, "frame": np.searchsorted(frames, matches.frame[pos]),
            "score": matches.score[pos], "id": ids, "kind": em.kind[ids], "best": em.best[ids],
            "to": em.fix_class[ids],
        })
    out: dict[str, list] = {v: [] for v in VARIANTS}
    for k, c in enumerate(per_class):
        n_gt = cache.n_gt[k, frames]
        if not n_gt.any():
            continue
        tp, frame, kind = c["tp"], c["frame"], c["kind"]

        def entry(mask: np.ndarray, is_tp: np.ndarray, gt: np.ndarray = n_gt, fr: np.ndarray = frame):
            return is_tp[mask], fr[mask], gt, np.bincount(fr[mask], minlength=n)

        everything = np.ones(tp.size, dtype=bool)
        out["base"].append(entry(everything, tp))
        for code, name in ((BOTH, "both"), (DUPE, "dupe"), (BKG, "bkg")):
            out[name].append(entry(kind != code, tp))
        loc = kind == LOC
        out["loc"].append(entry(~loc | c["best"], tp | loc))
        out["miss"].append(entry(everything, tp, n_gt - em.n_miss[k, frames]))
        out["fp"].append(entry(tp, tp))
        out["fn"].append(entry(everything, tp, em.n_found[k, frames]))
        # cls: this class's cls errors leave; the best ones of every class whose box is of class k arrive
        stay = kind != CLS
        arrive = [(o["score"][m], o["frame"][m], o["id"][m]) for o in per_class
                  for m in [(o["kind"] == CLS) & o["best"] & (o["to"] == k)] if m.any()]
        score = np.concatenate([c["score"][stay], *[a[0] for a in arrive]])
        fr = np.concatenate([frame[stay], *[a[1] for a in arrive]])
        ids = np.concatenate([c["id"][stay], *[a[2] for a in arrive]])
        is_tp = np.concatenate([tp[stay], *[np.ones(a[0].size, dtype=bool) for a in arrive]])
        order = np.lexsort((ids, fr, -score))  # accumulate order: score, then frame, then the frame's own order
        out["cls"].append(entry(np.ones(order.size, dtype=bool), is_tp[order], n_gt, fr[order]))
    return out


def variant_maps(cache: MatchCache, em: ErrorMatches, frames: np.ndarray, weights: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """mAP@0.5 of each variant (base, each type fixed, fp, fn) for each row of ``weights``.

    Args:
        frames: sorted unique frame indices.
        weights: ``[B, frames.size]`` counts (0/1 for subsets, draws for a resample).

    Returns:
        variant -> ``[B]`` mAP@0.5 over the classes with GT in the weighted frames
        (NaN without any). A class whose GT a fix removes entirely scores 0 when it keeps
        detections and leaves the mean otherwise (tidecv's ``is_empty``).
    """
    lists = _class_variants(cache, em, frames)
    b = weights.shape[0]
    base_ap = np.stack([average_precision(x[0], x[1], weights, x[2])[0] for x in lists["base"]]) \
        if lists["base"] else np.full((0, b), np.nan)
    has_gt = np.isfinite(base_ap)
    out = {}
    for v, per_class in lists.items():
        if not per_class:
            out[v] = np.full(b, np.nan)
            continue
        if v == "base":
            ap = base_ap
        else:
            ap = np.stack([average_precision(x[0], x[1], weights, x[2])[0] for x in per_class])
            n_det = np.stack([weights @ x[3] for x in per_class])
            ap = np.where(has_gt & np.isnan(ap) & (n_det > 0), 0.0, ap)
            ap = np.where(has_gt, ap, np.nan)
        valid = np.isfinite(ap)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[v] = np.where(valid.any(axis=0), np.where(valid, ap, 0.0).sum(axis=0) / valid.sum(axis=0), np.nan)
    return out
