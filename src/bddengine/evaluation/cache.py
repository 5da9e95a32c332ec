"""The match cache: COCOeval's per-image matching, run once, kept as compact arrays.

`build_match_cache` runs the official evaluation once over all frames (which
also gives the official overall scores), then keeps, per class, every scored
detection's frame, score and match state at each IoU threshold, in
COCOeval.accumulate's order. Any subset or resample of frames is then scored by
`average_precision` without matching again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bddengine.bdd.categories import CLASSES
from bddengine.bdd.validate import UNKNOWN_CATEGORY, check_frames
from bddengine.evaluation.coco import AREA_ALL, METRICS, CocoPair, frames_to_coco, official_scores, run_cocoeval

if TYPE_CHECKING:
    from bddengine.evaluation.errors import ErrorMatches

FP, TP, IGNORED = 0, 1, 2
"""Match states of a detection at one IoU threshold."""


@dataclass
class ClassMatches:
    """One class's scored detections over all frames, in accumulate order.

    Attributes:
        frame: ``[D]`` frame index (into `MatchCache.names`).
        score: ``[D]`` confidence.
        state: ``[T, D]`` int8 `FP`, `TP` or `IGNORED` (matched to a crowd or
            ignored box) at each IoU threshold.
        by_frame: ``[D]`` positions sorted by frame, stable, so each frame's
            detections stay in score order.
        frame_ptr: ``[N + 1]``: frame i's detections are
            ``by_frame[frame_ptr[i]:frame_ptr[i + 1]]``.
        det_id: ``[D]`` the COCO detection id (`bddengine.evaluation.errors` reads
            its error type by it).
    """

    frame: np.ndarray
    score: np.ndarray
    state: np.ndarray
    by_frame: np.ndarray
    frame_ptr: np.ndarray
    det_id: np.ndarray | None = None

    def positions(self, frames: np.ndarray) -> np.ndarray:
        """Positions of the detections of ``frames`` (sorted frame indices), in accumulate order."""
        lo = self.frame_ptr[frames]
        lengths = self.frame_ptr[frames + 1] - lo
        # the ranges lo[i] : lo[i] + lengths[i], concatenated without a Python loop
        shift = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
        return np.sort(self.by_frame[np.arange(shift.size) + shift])


@dataclass
class MatchCache:
    """Everything needed to score any set of frames, built once.

    Attributes:
        names: the GT frame names, sorted (frame index i is ``names[i]``).
        index: frame name -> frame index.
        n_gt: ``[K, N]`` int, per class and frame, GT boxes that are not
            ignored (crowd, ignored category) at area range "all".
        n_gt_ignored: ``[K, N]`` int, the ignored ones.
        n_gt_any: ``[K, N]`` int, every GT box of the class, however it is scored.
        n_pred: ``[N]`` int, each frame's predictions of the task's classes with a box:
            a set of frames without any is scored as the official evaluator's empty result.
        classes: one `ClassMatches` per class, in `CLASSES` order.
        summary: the official overall scores (AP, AP50, ... ARl) in 0-1.
        table: the official per-class scores, ``table[class][metric]``.
        n_pred_dropped: predictions of categories outside the task.
        errors: TIDE's error types of every detection and box (`build_match_cache`
            with ``errors=True``), else None.
    """

    names: list[str]
    index: dict[str, int]
    n_gt: np.ndarray
    n_gt_ignored: np.ndarray
    n_gt_any: np.ndarray
    n_pred: np.ndarray
    classes: list[ClassMatches]
    summary: dict[str, float | None]
    table: dict[str, dict[str, float | None]]
    n_pred_dropped: int = 0
    errors: ErrorMatches | None = None

    @property
    def n_frames(self) -> int:
        """Number of GT frames."""
        return len(self.names)

    def frame_indices(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """Frame indices of ``names``.

        Raises:
            KeyError: a name is not a GT frame (the message names it).
        """
        try:
            return np.array([self.index[name] for name in names], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"frame {err.args[0]!r} is not in the ground truth of this evaluation") from None


def empty_scores(pair: CocoPair) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    """The official scores when there is no prediction at all (scalabel's ``DetResult.empty``).

    Every metric is 0.0 for each class with any GT box (crowd and ignored ones
    included) and over all classes when there is one; None (NaN there) otherwise.
    """
    with_gt = {ann["category_id"] for ann in pair.gt.anns.values()}
    table = {name: dict.fromkeys(METRICS, 0.0 if k + 1 in with_gt else None) for k, name in enumerate(CLASSES)}
    summary = dict.fromkeys(METRICS, 0.0 if with_gt else None)
    return summary, table


def build_match_cache(
    gt_frames: list[dict[str, Any]], pred_frames: list[dict[str, Any]], *, checked: bool = False,
    errors: bool = False,
) -> MatchCache:
    """Match predictions to ground truth once (official COCOeval) and cache the result.

    Args:
        gt_frames: BDD ground-truth frames.
        pred_frames: BDD prediction frames (labels with ``score``); every frame
            name must be a GT frame, GT frames without predictions are fine.
        checked: the frames already went through `check_frames` (as ``score``
            does); otherwise they go through it here, so every cache reads
            numbers, flags and odd boxes by the one set of rules that ``score`` uses.
        errors: also sort every detection and box into TIDE's error types
            (`bddengine.evaluation.errors`); the official numbers are the same either way.

    Returns:
        The cache, with the official overall scores already computed.

    Raises:
        UnknownFrameError: a prediction frame is not in the ground truth.
        LabelFileError: a value the official evaluator cannot read, or a frame listed twice.
    """
    n_dropped = 0
    if not checked:
        gt_frames = check_frames(gt_frames, file="ground truth", predictions=False, attributes=()).frames
        pred = check_frames(pred_frames, file="predictions", predictions=True, attributes=())
        pred_frames, n_dropped = pred.frames, pred.malformed.counts[UNKNOWN_CATEGORY]
    pair = frames_to_coco(gt_frames, pred_frames)
    ev = run_cocoeval(pair)
    summary, table = official_scores(ev) if pair.dt.anns else empty_scores(pair)

    n_frames, n_classes, n_areas = len(pair.names), len(CLASSES), len(ev.params.areaRng)
    n_thr = len(ev.params.iouThrs)
    n_gt = np.zeros((n_classes, n_frames), dtype=np.int64)
    n_gt_ignored = np.zeros((n_classes, n_frames), dtype=np.int64)
    n_gt_any = np.zeros((n_classes, n_frames), dtype=np.int64)
    for ann in pair.gt.anns.values():
        n_gt_any[ann["category_id"] - 1, ann["image_id"] - 1] += 1
    error_matches = None
    if errors:
        from bddengine.evaluation.errors import classify_errors  # it reads this module's match states

        error_matches = classify_errors(pair, ev)
    n_pred = np.bincount([ann["image_id"] - 1 for ann in pair.dt.anns.values()], minlength=n_frames)
    classes: list[ClassMatches] = []
    for k in range(n_classes):
        frames, scores, states, ids = [], [], [], []
        base = k * n_areas * n_frames + AREA_ALL * n_frames  # evalImgs is [K, A, I] flattened
        for i in range(n_frames):
            e = ev.evalImgs[base + i]
            if e is None:
                continue
            gt_ignore = np.asarray(e["gtIgnore"], dtype=bool)
            n_gt[k, i] = np.count_nonzero(~gt_ignore)
            n_gt_ignored[k, i] = gt_ignore.size - n_gt[k, i]
            d = len(e["dtScores"])
            if d == 0:
                continue
            state = np.where(np.asarray(e["dtIgnore"], dtype=bool), IGNORED,
                             np.where(e["dtMatches"] > 0, TP, FP)).astype(np.int8)
            frames.append(np.full(d, i, dtype=np.int32))
            scores.append(np.asarray(e["dtScores"], dtype=float))
            states.append(state)
            ids.append(np.asarray(e["dtIds"], dtype=np.int64))
        if frames:
            frame = np.concatenate(frames)
            score = np.concatenate(scores)
            state = np.concatenate(states, axis=1)
            det_id = np.concatenate(ids)
        else:
            frame, score, det_id = np.zeros(0, dtype=np.int32), np.zeros(0), np.zeros(0, dtype=np.int64)
            state = np.zeros((n_thr, 0), dtype=np.int8)
        # the order accumulate sorts the concatenation of all frames into
        order = np.argsort(-score, kind="mergesort")
        frame, score, state, det_id = frame[order], score[order], state[:, order], det_id[order]
        by_frame = np.argsort(frame, kind="stable").astype(np.int32)
        frame_ptr = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=n_frames))])
        classes.append(ClassMatches(frame=frame, score=score, state=state,
                                    by_frame=by_frame, frame_ptr=frame_ptr, det_id=det_id))
    return MatchCache(
        names=pair.names,
        index={name: i for i, name in enumerate(pair.names)},
        n_gt=n_gt,
        n_gt_ignored=n_gt_ignored,
        n_gt_any=n_gt_any,
        n_pred=n_pred.astype(np.int64),
        classes=classes,
        summary=summary,
        table=table,
        n_pred_dropped=pair.n_pred_dropped + n_dropped,
        errors=error_matches,
    )
