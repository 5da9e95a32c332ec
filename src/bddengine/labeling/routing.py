"""Pure functions of auto-labeling: the accept / review / drop pyramid, label quality
against hidden ground truth and the precision/recall sweep (label sources and the
bill are in `bddengine.labeling.sources`).

A box is a dict ``{"category", "score", "box2d": {"x1", "y1", "x2", "y2"}}`` in pixels of
the original image; a ground-truth box also carries ``"ignored"`` (crowd regions and
ignored categories). Matching follows the official BDD100K detection protocol at one
IoU threshold: greedy by score, class-matched, each ground-truth box matched at most
once; a prediction left unmatched that lies inside an ignored region of its class
(intersection over the prediction's own area >= the IoU threshold, COCO's crowd rule)
is neither a true nor a false positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bddengine.bdd.categories import CLASSES

ACCEPT, REVIEW, DROP = "accept", "review", "drop"
ROUTES: tuple[str, ...] = (ACCEPT, REVIEW, DROP)
TP, FP, IGNORED = "tp", "fp", "ignored"
"""Match states of a prediction."""

Box = dict[str, Any]


# --- the pyramid ---------------------------------------------------------------------------------


def class_thresholds(
    category: str, *, accept: float, drop: float, per_class: Mapping[str, Sequence[float]]
) -> tuple[float, float]:
    """The ``(drop, accept)`` thresholds of one class: its override, else the global pair."""
    if category in per_class:
        lo, hi = per_class[category]
        return float(lo), float(hi)
    return drop, accept


def route_box(
    score: float, category: str, *, accept: float, drop: float,
    per_class: Mapping[str, Sequence[float]] | None = None,
) -> str:
    """Where one box goes: ``accept`` (score >= accept), ``review`` (drop <= score < accept)
    or ``drop`` (score < drop), with per-class ``[drop, accept]`` overrides."""
    lo, hi = class_thresholds(category, accept=accept, drop=drop, per_class=per_class or {})
    if score >= hi:
        return ACCEPT
    if score >= lo:
        return REVIEW
    return DROP


def route_frames(
    frames: Mapping[str, list[Box]], *, accept: float, drop: float,
    per_class: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, list[Box]]:
    """Copy of every frame's boxes with an ``id`` and a ``route`` added to each."""
    return {
        name: [{"id": str(i), **box, "route": route_box(box["score"], box["category"], accept=accept,
                                                       drop=drop, per_class=per_class)}
               for i, box in enumerate(boxes)]
        for name, boxes in frames.items()
    }


def route_counts(routed: Mapping[str, list[Box]]) -> dict[str, int]:
    """Boxes per route over all frames."""
    counts = dict.fromkeys(ROUTES, 0)
    for boxes in routed.values():
        for box in boxes:
            counts[box["route"]] += 1
    return counts


# --- matching and quality ------------------------------------------------------------------------


def _xyxy(box: Box) -> tuple[float, float, float, float]:
    b = box["box2d"]
    return float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"])


def _inter(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _area(a: tuple[float, ...]) -> float:
    return max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    pa, pb = _xyxy(a), _xyxy(b)
    inter = _inter(pa, pb)
    union = _area(pa) + _area(pb) - inter
    if union <= 0:  # two empty boxes: the same point or line is a perfect match
        return 1.0 if pa == pb else 0.0
    return inter / union


def match_frame(preds: Sequence[Box], gts: Sequence[Box], *, iou_thr: float = 0.5) -> list[str]:
    """Match one frame's predictions to its ground truth.

    Args:
        preds: the frame's predictions (``category``, ``score``, ``box2d``).
        gts: the frame's ground truth (``category``, ``box2d``, ``ignored``).
        iou_thr: the IoU a match needs.

    Returns:
        One state per prediction, in input order: `TP`, `FP` or `IGNORED` (unmatched, but
        inside an ignored region of its class).
    """
    states = [FP] * len(preds)
    order = sorted(range(len(preds)), key=lambda i: -float(preds[i]["score"]))
    taken: set[int] = set()
    for i in order:
        p = preds[i]
        box = _xyxy(p)
        best, best_j = iou_thr, -1
        for j, g in enumerate(gts):
            if j in taken or g.get("ignored") or g["category"] != p["category"]:
                continue
            v = iou(p, g)
            if v >= best:
                best, best_j = v, j
        if best_j >= 0:
            taken.add(best_j)
            states[i] = TP
            continue
        area = _area(box)
        for g in gts:
            if g.get("ignored") and g["category"] == p["category"] and area > 0 \
                    and _inter(box, _xyxy(g)) / area >= iou_thr:
                states[i] = IGNORED
                break
    return states


def match_frames(
    preds: Mapping[str, list[Box]], gts: Mapping[str, list[Box]], *, iou_thr: float = 0.5
) -> dict[str, list[str]]:
    """`match_frame` for every frame of ``gts`` (a frame without predictions gets [])."""
    return {name: match_frame(preds.get(name, []), gts[name], iou_thr=iou_thr) for name in gts}


def gt_counts(gts: Mapping[str, list[Box]]) -> dict[str, int]:
    """Non-ignored ground-truth boxes per class (every class of `CLASSES`)."""
    counts = dict.fromkeys(CLASSES, 0)
    for boxes in gts.values():
        for g in boxes:
            if not g.get("ignored"):
                counts[g["category"]] = counts.get(g["category"], 0) + 1
    return counts


def _pr(tp: int, fp: int, n_gt: int) -> dict[str, Any]:
    return {
        "tp": tp, "fp": fp, "fn": n_gt - tp, "n_gt": n_gt,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / n_gt if n_gt else None,
    }


def label_quality(
    preds: Mapping[str, list[Box]], states: Mapping[str, list[str]], n_gt: Mapping[str, int],
    *, route: str | None = ACCEPT,
) -> dict[str, Any]:
    """Per-class and overall (micro) precision / recall of the labels on one route.

    Args:
        preds: routed boxes per frame (each with ``route``), aligned with ``states``.
        states: match states from `match_frames`; frames without an entry (no hidden
            ground truth) are left out.
        n_gt: non-ignored ground-truth boxes per class (`gt_counts`).
        route: which boxes count as the labels (None: all of them).

    Returns:
        ``{"per_class": {class: {tp, fp, fn, n_gt, n_ignored, precision, recall}},
        "overall": {...}}``; precision is None without labels, recall None without GT.
    """
    counts: dict[str, dict[str, int]] = {TP: {}, FP: {}, IGNORED: {}}
    for name, boxes in preds.items():
        if name not in states:  # no hidden ground truth: cannot be scored
            continue
        for box, state in zip(boxes, states[name], strict=True):
            if route is not None and box.get("route") != route:
                continue
            counts[state][box["category"]] = counts[state].get(box["category"], 0) + 1
    tp, fp, ign = counts[TP], counts[FP], counts[IGNORED]
    per_class = {c: {**_pr(tp.get(c, 0), fp.get(c, 0), n_gt.get(c, 0)), "n_ignored": ign.get(c, 0)}
                 for c in n_gt}
    overall = {**_pr(sum(tp.values()), sum(fp.values()), sum(n_gt.values())),
               "n_ignored": sum(ign.values())}
    return {"per_class": per_class, "overall": overall}


def pr_sweep(scores: Sequence[float], states: Sequence[str], n_gt: int) -> dict[str, list[float]]:
    """Precision and recall of the boxes scoring at least each threshold.

    The thresholds are the distinct scores, highest first; ignored predictions count
    neither way. Greedy matching by score makes a threshold's matches those of the
    full matching restricted to the boxes above it, so one matching serves every
    threshold.

    Args:
        scores: every box's score.
        states: every box's match state (`TP`, `FP`, `IGNORED`).
        n_gt: the non-ignored ground-truth boxes.

    Returns:
        ``{"threshold": [...], "precision": [...], "recall": [...]}``; recall is
        non-decreasing along the list (None entries where there is no GT).
    """
    s = np.asarray(scores, dtype=np.float64)
    st = np.asarray(states, dtype=object)
    keep = st != IGNORED
    s, is_tp = s[keep], (st[keep] == TP)
    if s.size == 0:
        return {"threshold": [], "precision": [], "recall": []}
    order = np.argsort(-s, kind="stable")
    s, is_tp = s[order], is_tp[order]
    ctp = np.cumsum(is_tp)
    n = np.arange(1, s.size + 1)
    last = np.r_[s[1:] != s[:-1], True]  # the last box of each distinct score
    precision = ctp[last] / n[last]
    recall = ctp[last] / n_gt if n_gt else [None] * int(last.sum())
    return {
        "threshold": s[last].tolist(),
        "precision": [float(p) for p in precision],
        "recall": [None if r is None else float(r) for r in recall],
    }


def sweep_all(
    preds: Mapping[str, list[Box]], states: Mapping[str, list[str]], n_gt: Mapping[str, int]
) -> dict[str, dict[str, list[float]]]:
    """`pr_sweep` per class (those with boxes or GT) and ``"overall"`` over all boxes."""
    scores: dict[str, list[float]] = {}
    sts: dict[str, list[str]] = {}
    for name, boxes in preds.items():
        if name not in states:  # no hidden ground truth: cannot be scored
            continue
        for box, state in zip(boxes, states[name], strict=True):
            scores.setdefault(box["category"], []).append(float(box["score"]))
            sts.setdefault(box["category"], []).append(state)
    out = {c: pr_sweep(scores.get(c, []), sts.get(c, []), n_gt.get(c, 0))
           for c in CLASSES if scores.get(c) or n_gt.get(c)}
    out["overall"] = pr_sweep([v for c in scores for v in scores[c]], [v for c in sts for v in sts[c]],
                              sum(n_gt.values()))
    return out


def skippable_share(sweep: Mapping[str, list[float]], target_precision: float) -> dict[str, float] | None:
    """Share of GT boxes recovered at the lowest threshold whose precision reaches the target.

    That share of human box-drawing could be skipped at that precision. None when no
    threshold reaches the target (or there is no GT).
    """
    best = None
    for t, p, r in zip(sweep["threshold"], sweep["precision"], sweep["recall"], strict=True):
        if r is not None and p >= target_precision and (best is None or t < best["threshold"]):
            best = {"threshold": t, "precision": p, "recall": r}
    return best
