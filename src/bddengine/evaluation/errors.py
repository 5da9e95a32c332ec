"""Which kind of error costs a set of frames its AP@0.5: the TIDE decomposition.

TIDE (Bolya et al., "TIDE: A General Toolbox for Identifying Object Detection
Errors", ECCV 2020) sorts every false positive at IoU 0.5 into one error type and
every ground-truth box found by no detection into "missed", then asks, for each
type alone, how much AP@0.5 an oracle that fixes it would give back. The rules
here are those of the reference implementation, ``tidecv`` 1.0.1
(``quantify.py``, ``errors/main_errors.py``), with foreground IoU 0.5 and
background IoU 0.1. A false positive is checked, in this order, for:

- ``loc``: IoU in [0.1, 0.5] with a box of its own class (the best one);
- ``cls``: IoU >= 0.5 with a box of another class;
- ``dupe``: IoU >= 0.5 with a box of its class that a higher-scoring detection took;
- ``bkg``: IoU <= 0.1 with every box (or a frame without any);
- ``both``: anything else (wrong class and poorly localized).

A ground-truth box matched by nothing is ``miss``, unless a ``loc`` or ``cls``
error points at it (fixing that error finds it). The oracle fixes are tidecv's:
``loc`` / ``cls`` turn the highest-scoring error on each free box into a true
positive (of that box's class for ``cls``) and drop the others; ``dupe``,
``bkg`` and ``both`` drop the detections; ``miss`` removes the missed boxes from
the count of ground truth. Each type is fixed alone, from the original, and its
cost is ``max(AP_fixed - AP, 0)`` as tidecv reports it.

Where this differs from tidecv, on purpose, so the base is the official number:
the true/false positive state of each detection is COCOeval's (the match cache:
ids per class, 100 detections per class and frame, crowd and ignored boxes as
COCO treats them; tidecv keeps 100 per frame over all classes and classifies
detections inside crowd regions too), and the mean runs over the classes with
ground truth, as the official mAP does (tidecv also averages in a 0 for a class
with detections but no ground truth). On data without crowd boxes, with at most
100 detections per frame, without tied scores and with ground truth for every
predicted class, the two agree to float rounding (tests/test_errors.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from bddengine.bdd.categories import CLASSES, map_category

POS_IOU, BG_IOU = 0.5, 0.1
"""tidecv's foreground and background IoU thresholds."""
ERROR_TYPES: tuple[str, ...] = ("cls", "loc", "both", "dupe", "bkg", "miss")
"""The six main error types, in tidecv's order."""
SPECIAL_TYPES: tuple[str, ...] = ("fp", "fn")
"""tidecv's special errors: perfect precision (every FP scored below every TP) and perfect recall."""
NONE, CLS, LOC, BOTH, DUPE, BKG = -1, 0, 1, 2, 3, 4
"""Per-detection codes: NONE for a true positive, an ignored or an unscored detection."""
_DET_TYPES = ("cls", "loc", "both", "dupe", "bkg")
VARIANTS = ("base", *ERROR_TYPES, *SPECIAL_TYPES)


@dataclass
class ErrorMatches:
    """TIDE's view of one evaluation, next to the match cache.

    Detection arrays are indexed by the COCO detection id (index 0 unused); ground-truth
    arrays by the COCO ground-truth id.

    Attributes:
        kind: ``[M + 1]`` error code of each detection at IoU 0.5 (`NONE` for a true
            positive, a detection matched to a crowd or ignored box, or one not scored).
        best: ``[M + 1]`` the detection is the one a ``loc`` / ``cls`` fix turns into a
            true positive (the highest-scoring error on a free box).
        fix_class: ``[M + 1]`` the class index it becomes when fixed (the box's class).
        scored: ``[M + 1]`` the detection is scored (in the top 100 of its class and frame).
        det_tp: ``[M + 1]`` a true positive at IoU 0.5.
        det_frame: ``[M + 1]`` the detection's frame index.
        gt_frame, gt_class, gt_height: ``[G + 1]`` per ground-truth box.
        gt_regular: ``[G + 1]`` scored (not a crowd or ignored box).
        gt_found: ``[G + 1]`` matched by a detection at IoU 0.5 (COCOeval, any score).
        gt_kind: ``[G + 1]`` for a box not found: `LOC` / `CLS` when such an error
            points at it, else a miss (`NONE` with ``gt_missed``).
        gt_missed: ``[G + 1]`` TIDE's missed boxes.
        n_miss: ``[K, N]`` missed boxes per class and frame.
        n_found: ``[K, N]`` found boxes per class and frame.
    """

    kind: np.ndarray
    best: np.ndarray
    fix_class: np.ndarray
    scored: np.ndarray
    det_tp: np.ndarray
    det_frame: np.ndarray
    gt_frame: np.ndarray
    gt_class: np.ndarray
    gt_height: np.ndarray
    gt_regular: np.ndarray
    gt_found: np.ndarray
    gt_kind: np.ndarray
    gt_missed: np.ndarray
    n_miss: np.ndarray
    n_found: np.ndarray


def classify_errors(pair: Any, ev: Any) -> ErrorMatches:
    """Sort every detection and ground-truth box of a matched evaluation into TIDE's types.

    Args:
        pair: the `CocoPair` the evaluation ran on.
        ev: its COCOeval after ``evaluate`` (the match cache's), with IoU 0.5 first
            and area range "all" among its ranges.
    """
    from bddengine.evaluation.coco import AREA_ALL

    n_frames, n_classes = len(pair.names), len(CLASSES)
    n_dt, n_gt = len(pair.dt.anns), len(pair.gt.anns)
    scored = np.zeros(n_dt + 1, dtype=bool)
    det_tp = np.zeros(n_dt + 1, dtype=bool)
    det_ignored = np.zeros(n_dt + 1, dtype=bool)
    gt_found = np.zeros(n_gt + 1, dtype=bool)
    n_areas = len(ev.params.areaRng)
    area = AREA_ALL if n_areas > 1 else 0
    for k in range(n_classes):
        base = k * n_areas * n_frames + area * n_frames
        for i in range(n_frames):
            e = ev.evalImgs[base + i]
            if e is None:
                continue
            ids = np.asarray(e["dtIds"], dtype=np.int64)
            scored[ids] = True
            det_tp[ids] = (np.asarray(e["dtMatches"])[0] > 0) & ~np.asarray(e["dtIgnore"], dtype=bool)[0]
            det_ignored[ids] = np.asarray(e["dtIgnore"], dtype=bool)[0]
            g = np.asarray(e["gtIds"], dtype=np.int64)
            gt_found[g] = np.asarray(e["gtMatches"])[0] > 0

    kind = np.full(n_dt + 1, NONE, dtype=np.int8)
    best = np.zeros(n_dt + 1, dtype=bool)
    fix_class = np.full(n_dt + 1, -1, dtype=np.int8)
    gt_frame = np.zeros(n_gt + 1, dtype=np.int64)
    gt_class = np.zeros(n_gt + 1, dtype=np.int64)
    gt_height = np.zeros(n_gt + 1)
    gt_regular = np.zeros(n_gt + 1, dtype=bool)
    gt_kind = np.full(n_gt + 1, NONE, dtype=np.int8)
    det_frame = np.zeros(n_dt + 1, dtype=np.int64)
    for ann in pair.dt.anns.values():
        det_frame[ann["id"]] = ann["image_id"] - 1
    for ann in pair.gt.anns.values():
        gid = ann["id"]
        gt_frame[gid], gt_class[gid] = ann["image_id"] - 1, ann["category_id"] - 1
        gt_height[gid], gt_regular[gid] = ann["bbox"][3], not ann["iscrowd"]
    gt_found &= gt_regular

    for i in range(n_frames):
        dts = [d for d in pair.dt.imgToAnns.get(i + 1, []) if scored[d["id"]] and not det_ignored[d["id"]]]
        if not dts:
            continue
        dts = sorted(dts, key=lambda d: -d["score"])  # tidecv's order: score descending, stable
        gts = [g for g in pair.gt.imgToAnns.get(i + 1, []) if not g["iscrowd"]]
        _classify_frame(dts, gts, kind, best, fix_class, det_tp, gt_found, gt_kind)

    gt_missed = gt_regular & ~gt_found & (gt_kind == NONE)
    n_miss = np.zeros((n_classes, n_frames), dtype=np.int64)
    n_found = np.zeros((n_classes, n_frames), dtype=np.int64)
    np.add.at(n_miss, (gt_class[gt_missed], gt_frame[gt_missed]), 1)
    np.add.at(n_found, (gt_class[gt_found], gt_frame[gt_found]), 1)
    return ErrorMatches(kind=kind, best=best, fix_class=fix_class, scored=scored, det_tp=det_tp, det_frame=det_frame,
                        gt_frame=gt_frame, gt_class=gt_class, gt_height=gt_height, gt_regular=gt_regular,
                        gt_found=gt_found, gt_kind=gt_kind, gt_missed=gt_missed, n_miss=n_miss, n_found=n_found)


def _classify_frame(dts: list[dict], gts: list[dict], kind: np.ndarray, best: np.ndarray, fix_class: np.ndarray,
                    det_tp: np.ndarray, gt_found: np.ndarray, gt_kind: np.ndarray) -> None:
    """tidecv's ``TIDERun._eval_image`` error tests for one frame's detections (score order)."""
    if not gts:
        for d in dts:
            if not det_tp[d["id"]]:
                kind[d["id"]] = BKG
        return
    iou = np.asarray(mask_utils.iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], [0] * len(gts)))
    same = np.array([d["category_id"] for d in dts])[:, None] == np.array([g["category_id"] for g in gts])[None, :]
    used = np.array([gt_found[g["id"]] for g in gts])[None, :]
    cls_iou, noncls_iou, used_cls = iou * same, iou * ~same, iou * same * used
    best_score: dict[int, float] = {}
    best_det: dict[int, int] = {}
    targets: list[tuple[int, int]] = []
    for j, d in enumerate(dts):
        did = d["id"]
        if det_tp[did]:
            continue
        g = int(cls_iou[j].argmax())
        if BG_IOU <= cls_iou[j, g] <= POS_IOU:
            kind[did], fix_class[did] = LOC, gts[g]["category_id"] - 1
        else:
            g = int(noncls_iou[j].argmax())
            if noncls_iou[j, g] >= POS_IOU:
                kind[did], fix_class[did] = CLS, gts[g]["category_id"] - 1
            elif used_cls[j].max() >= POS_IOU:
                kind[did] = DUPE
                continue
            elif iou[j].max() <= BG_IOU:
                kind[did] = BKG
                continue
            else:
                kind[did] = BOTH
                continue
        if used[0, g]:
            continue  # its box is already found: the fix drops it
        targets.append((did, g))
        if best_score.get(g, -1.0) < d["score"]:  # tidecv's BestGTMatch: the first highest score wins
            best_score[g], best_det[g] = d["score"], did
    for did, g in targets:
        if best_det[g] == did:
            best[did] = True
        gt_kind[gts[g]["id"]] = max(gt_kind[gts[g]["id"]], kind[best_det[g]])


def error_costs(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each type's AP cost ``max(fixed - base, 0)`` (tidecv's main errors) and the special ones (unclamped)."""
    base = maps["base"]
    out = {t: np.maximum(maps[t] - base, 0.0) for t in ERROR_TYPES}
    out.update({t: maps[t] - base for t in SPECIAL_TYPES})
    return out


def error_counts(em: ErrorMatches, frames: np.ndarray) -> dict[str, int]:
    """How many detections of each type, and missed boxes, the frames hold."""
    in_frames = np.zeros(em.n_miss.shape[1], dtype=bool)
    in_frames[frames] = True
    det_in = in_frames[em.det_frame]
    counts = {name: int(((em.kind == code) & det_in).sum()) for code, name in enumerate(_DET_TYPES)}
    return {t: counts.get(t, int(em.n_miss[:, frames].sum())) for t in ERROR_TYPES}


def label_index_map(frames: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """For each frame, the positions in its ``labels`` of the labels the COCO conversion keeps
    (a mapped category and a box), in order: COCO annotation j of the frame is label ``map[j]``."""
    out = {}
    for frame in frames:
        keep = []
        for j, label in enumerate(frame.get("labels") or []):
            if isinstance(label, dict) and isinstance(label.get("category"), str) \
                    and map_category(label["category"]) is not None and label.get("box2d") is not None:
                keep.append(j)
        out[frame["name"]] = keep
    return out
