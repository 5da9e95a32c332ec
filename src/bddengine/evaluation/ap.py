"""COCOeval.accumulate's AP, for any weighted set of frames, from cached matches.

COCO matches detections to ground truth per image, so the matches of a frame do
not depend on which other frames are scored. What does depend on the set is the
accumulation: sort the detections of all chosen frames by score, count true and
false positives cumulatively, take the precision envelope and read it at 101
recall points. `average_precision` does that with the same float operations as
pycocotools, for many frame weightings at once (a bootstrap resample is a
weighting: a frame drawn twice counts twice).

Two reductions keep it fast and do not change a single bit of the result:

- Detections matched to a crowd or ignored region are left out: they add a point
  equal to the one before it, which neither the envelope nor the recall lookup
  can see.
- Consecutive true positives (and consecutive false positives) are merged into
  one run, and everything after the last true positive is cut. Inside a run of
  true positives precision only rises, so the envelope there equals its value at
  the run's end; a run of false positives keeps recall flat and precision below
  the point before it, so the first point reaching a recall level (what
  ``searchsorted(..., side="left")`` picks) is never inside one, except at recall
  0 where every envelope value is the global maximum anyway.
"""

from __future__ import annotations

import numpy as np

from bddengine.evaluation.coco import REC_THRS

_EPS = np.spacing(1)
_CHUNK_ELEMENTS = 1 << 22  # rows x detections per block: bounds the memory of a bootstrap


def average_precision(
    is_tp: np.ndarray, frame: np.ndarray, weights: np.ndarray, n_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AP and recall of one class at one IoU threshold, for each row of weights.

    Args:
        is_tp: bool ``[D]``, the class's scored (not ignored) detections of the
            frames in COCOeval.accumulate order (score descending, stable over
            frame order then the frame's own order): True for a match.
        frame: int ``[D]``, the column of ``weights`` each detection's frame is.
        weights: int ``[B, F]``, how many times each frame counts in each of B
            samples (0/1 for a plain subset, bootstrap counts for a resample).
        n_gt: int ``[F]``, each frame's ground-truth boxes that are not ignored.

    Returns:
        ``(ap, recall)``, each ``[B]``: the 101-point interpolated AP and the
        final recall, NaN for a sample without ground truth of this class.
    """
    weights = np.asarray(weights)
    n_samples = weights.shape[0]
    gt_total = weights @ np.asarray(n_gt, dtype=np.int64)
    ap = np.full(n_samples, np.nan)
    recall = np.full(n_samples, np.nan)
    has_gt = gt_total > 0
    hits = np.flatnonzero(is_tp)
    if hits.size == 0:
        ap[has_gt] = 0.0
        recall[has_gt] = 0.0
        return ap, recall

    is_tp, frame = is_tp[: hits[-1] + 1], frame[: hits[-1] + 1]
    starts = np.flatnonzero(np.r_[True, is_tp[1:] != is_tp[:-1]])
    run_is_tp = is_tp[starts]
    n_runs, n_rec = starts.size, REC_THRS.size

    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(frame.size, 1))
    for lo in range(0, n_samples, rows_per_chunk):
        rows = slice(lo, min(lo + rows_per_chunk, n_samples))
        block = weights[rows]
        b = block.shape[0]
        run_weight = np.add.reduceat(block[:, frame], starts, axis=1)
        tp = np.cumsum(np.where(run_is_tp, run_weight, 0), axis=1).astype(float)
        fp = np.cumsum(np.where(run_is_tp, 0, run_weight), axis=1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rc = tp / gt_total[rows, None]
        pr = tp / (fp + tp + _EPS)
        envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        # First run with rc >= thr, for every threshold, without a per-row loop:
        # level[j] = number of thresholds <= rc[j] (non-decreasing along a row), so the
        # first j with rc[j] >= thr_r is the number of runs with level <= r.
        level = np.searchsorted(REC_THRS, rc, side="right")
        offsets = (np.arange(b) * (n_rec + 1))[:, None]
        hist = np.bincount((level + offsets).ravel(), minlength=b * (n_rec + 1)).reshape(b, n_rec + 1)
        first = np.cumsum(hist, axis=1)[:, :n_rec]
        q = np.take_along_axis(envelope, np.minimum(first, n_runs - 1), axis=1)
        q[first >= n_runs] = 0.0
        ap[rows] = q.mean(axis=1)
        recall[rows] = rc[:, -1]
    ap[~has_gt] = np.nan
    recall[~has_gt] = np.nan
    return ap, recall
