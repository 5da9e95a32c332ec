"""BDD100K frames to COCO, scored by pycocotools exactly as the official evaluator does.

The official BDD100K detection score is scalabel's ``evaluate_det``: frames are
sorted by name and numbered from 1, the 10 classes get category ids 1..10 in
`CLASSES` order, a box ``x1, y1, x2, y2`` becomes the COCO box
``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]`` (scalabel's ``box2d_to_bbox`` counts the
end pixel) with ``area = w * h``, and crowd or ignored boxes become ``iscrowd``
regions. pycocotools' COCOeval then matches (`MatchingCOCOeval`: the same
matching, faster) and accumulates, and every reported
number is the mean of the entries of its precision or recall array that are not
-1 (scalabel's ``get_score``), so a class without ground truth drops out of
every mean.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from bddengine.bdd.categories import CLASSES, map_category

IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 720
PARAMS = Params(iouType="bbox")
IOU_THRS: np.ndarray = PARAMS.iouThrs
"""The 10 IoU thresholds 0.50:0.05:0.95, as pycocotools builds them."""
REC_THRS: np.ndarray = PARAMS.recThrs
"""The 101 recall points 0:0.01:1, as pycocotools builds them."""
AREA_ALL = PARAMS.areaRngLbl.index("all")
MAX_DETS = PARAMS.maxDets[-1]

# metric -> (array, IoU threshold or None for all, area range label, max detections),
# the rows of scalabel's DetResult.
METRICS: dict[str, tuple[str, float | None, str, int]] = {
    "AP": ("precision", None, "all", 100),
    "AP50": ("precision", 0.5, "all", 100),
    "AP75": ("precision", 0.75, "all", 100),
    "APs": ("precision", None, "small", 100),
    "APm": ("precision", None, "medium", 100),
    "APl": ("precision", None, "large", 100),
    "AR1": ("recall", None, "all", 1),
    "AR10": ("recall", None, "all", 10),
    "AR100": ("recall", None, "all", 100),
    "ARs": ("recall", None, "small", 100),
    "ARm": ("recall", None, "medium", 100),
    "ARl": ("recall", None, "large", 100),
}


class UnknownFrameError(ValueError):
    """A prediction names a frame that the ground truth does not have."""


@dataclass
class CocoPair:
    """Ground truth and predictions as pycocotools objects, plus what was left out.

    Attributes:
        gt: the ground-truth COCO (image id i + 1 is ``names[i]``).
        dt: the predictions as a COCO result set on the same images.
        names: the frame names, sorted; their order is the image id order.
        n_pred_dropped: predictions whose category is not a detection class.
    """

    gt: COCO
    dt: COCO
    names: list[str]
    n_pred_dropped: int


def coco_bbox(box2d: dict[str, Any]) -> list[float]:
    """The COCO ``[x, y, w, h]`` of a BDD ``box2d``, end pixel included as scalabel does."""
    x1, y1 = float(box2d["x1"]), float(box2d["y1"])
    return [x1, y1, float(box2d["x2"]) - x1 + 1, float(box2d["y2"]) - y1 + 1]


def frames_to_coco(gt_frames: list[dict[str, Any]], pred_frames: list[dict[str, Any]]) -> CocoPair:
    """Convert BDD ground-truth and prediction frames into a pycocotools pair.

    Args:
        gt_frames: BDD frames (``name``, ``labels`` with ``category``, ``box2d``,
            ``attributes``). Labels without ``box2d`` or with a category outside
            the detection task are skipped; legacy names are mapped; ignored
            categories and ``crowd`` (or ``ignored``) boxes become crowd regions.
        pred_frames: BDD frames whose labels also carry ``score``. Categories go
            through the same mapping; the ones outside the task are dropped.

    Returns:
        The pair, on the GT frames sorted by name.

    Raises:
        ValueError: a GT frame name repeats, or a prediction lacks a score or box.
        UnknownFrameError: a prediction frame is not in the ground truth (the
            message names it).
    """
    names = sorted(frame["name"] for frame in gt_frames)
    image_id = {name: i + 1 for i, name in enumerate(names)}
    if len(image_id) != len(names):
        dup = next(a for a, b in zip(names, names[1:], strict=False) if a == b)
        raise ValueError(f"ground truth lists frame {dup!r} more than once; each frame must appear once.")
    images = [
        {"id": i + 1, "file_name": name, "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT}
        for i, name in enumerate(names)
    ]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]

    gt_anns: list[dict[str, Any]] = []
    for frame in sorted(gt_frames, key=lambda f: f["name"]):
        for label in frame.get("labels") or []:
            mapped = map_category(label.get("category", ""))
            if mapped is None or label.get("box2d") is None:
                continue
            class_name, ignored = mapped
            attributes = label.get("attributes") or {}
            crowd = ignored or bool(attributes.get("crowd")) or bool(attributes.get("ignored"))
            bbox = coco_bbox(label["box2d"])
            gt_anns.append({
                "id": len(gt_anns) + 1,  # ids start at 1: COCOeval treats a match id of 0 as no match
                "image_id": image_id[frame["name"]],
                "category_id": CLASSES.index(class_name) + 1,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": int(crowd),
                "ignore": 0,
            })

    unknown = sorted({f["name"] for f in pred_frames if f["name"] not in image_id})
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UnknownFrameError(
            f"prediction frame {unknown[0]!r}{more} is not in the ground truth; "
            "score predictions against the label file they were made for."
        )
    dt_anns: list[dict[str, Any]] = []
    dropped = 0
    for frame in sorted(pred_frames, key=lambda f: f["name"]):
        for label in frame.get("labels") or []:
            mapped = map_category(label.get("category", ""))
            if mapped is None:
                dropped += 1
                continue
            if label.get("score") is None or label.get("box2d") is None:
                raise ValueError(
                    f"prediction in frame {frame['name']!r} (category {label.get('category')!r}) "
                    "has no score or no box2d; every prediction needs both."
                )
            bbox = coco_bbox(label["box2d"])
            # the fields COCO.loadRes would add: area from the box, ids from 1, no crowd
            dt_anns.append({
                "id": len(dt_anns) + 1,
                "image_id": image_id[frame["name"]],
                "category_id": CLASSES.index(mapped[0]) + 1,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "score": float(label["score"]),
                "iscrowd": 0,
            })

    with quiet():
        gt = _coco({"images": images, "categories": categories, "annotations": gt_anns})
        dt = _coco({"images": images, "categories": categories, "annotations": dt_anns})
    return CocoPair(gt=gt, dt=dt, names=names, n_pred_dropped=dropped)


class MatchingCOCOeval(COCOeval):
    """pycocotools' COCOeval whose per-image matching skips what cannot match.

    ``evaluateImg`` gives the same result, array for array and dtype for dtype
    (tests/test_evaluation.py compares every ``evalImgs`` entry with pycocotools'),
    but a detection whose IoU with every ground-truth box is under the lowest
    threshold (most of a detector's low-score tail) skips the greedy loop, and the
    others are matched at all ten thresholds at once. About 1.4x faster on 600
    frames with 40,000 predictions. ``accumulate`` and ``summarize`` are pycocotools'.
    """

    def evaluateImg(self, imgId, catId, aRng, maxDet):  # noqa: N802, N803 - pycocotools' names
        p = self.params
        if not p.useCats:
            return super().evaluateImg(imgId, catId, aRng, maxDet)
        gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        if len(gt) == 0 and len(dt) == 0:
            return None
        ious = self.ious[imgId, catId]
        if (len(ious) and not np.isfinite(ious).all()) or any(d["score"] != d["score"] for d in dt):
            # a NaN IoU (an infinite coordinate) or a NaN score: pycocotools' own loop gives
            # NaN its quirks (it ranks a NaN score last, and takes a NaN IoU as a match)
            return super().evaluateImg(imgId, catId, aRng, maxDet)
        lo, hi = aRng[0], aRng[1]
        for g in gt:
            g["_ignore"] = 1 if (g["ignore"] or g["area"] < lo or g["area"] > hi) else 0
        gtind = sorted(range(len(gt)), key=lambda i: gt[i]["_ignore"])  # ignored last; stable, as mergesort
        gt = [gt[i] for i in gtind]
        dt = sorted(dt, key=lambda d: -d["score"])[:maxDet]  # highest score first; stable, as mergesort
        ious = ious[:, gtind] if len(ious) > 0 else ious
        n_thr, n_gt, n_dt = len(p.iouThrs), len(gt), len(dt)
        gtm, dtm, dtIg = np.zeros((n_thr, n_gt)), np.zeros((n_thr, n_dt)), np.zeros((n_thr, n_dt))  # noqa: N806
        gtIg = np.array([g["_ignore"] for g in gt])  # noqa: N806
        if len(ious) != 0:
            thr = np.minimum(np.asarray(p.iouThrs, dtype=float), 1 - 1e-10)[:, None]
            crowd = np.array([bool(g["iscrowd"]) for g in gt])
            regular = gtIg == 0
            gt_ids = np.array([g["id"] for g in gt], dtype=float)
            rows = np.arange(n_thr)
            for d in np.flatnonzero((ious >= thr.min()).any(axis=1)).tolist():
                iou = ious[d]
                # free (unmatched, or a crowd region) and over each threshold: [T, G]
                ok = ~((gtm > 0) & ~crowd) & (iou >= thr)
                if not ok.any():
                    continue
                # pycocotools keeps the last box of the highest IoU, a regular box before an ignored one
                m = _last_best(iou, ok & regular, rows)
                if (m < 0).any():
                    m = np.where(m >= 0, m, _last_best(iou, ok & ~regular, rows))
                hit = np.flatnonzero(m >= 0)
                dtIg[hit, d] = gtIg[m[hit]]
                dtm[hit, d] = gt_ids[m[hit]]
                gtm[hit, m[hit]] = dt[d]["id"]
        # unmatched detections outside the area range are ignored
        a = np.array([d["area"] < lo or d["area"] > hi for d in dt]).reshape((1, n_dt))
        dtIg = np.logical_or(dtIg, np.logical_and(dtm == 0, np.repeat(a, n_thr, 0)))  # noqa: N806
        return {"image_id": imgId, "category_id": catId, "aRng": aRng, "maxDet": maxDet,
                "dtIds": [d["id"] for d in dt], "gtIds": [g["id"] for g in gt], "dtMatches": dtm,
                "gtMatches": gtm, "dtScores": [d["score"] for d in dt], "gtIgnore": gtIg, "dtIgnore": dtIg}


def _last_best(iou: np.ndarray, allowed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per threshold row, the last column of the highest ``iou`` where ``allowed`` (-1: none)."""
    vals = np.where(allowed, iou, -1.0)
    last = iou.size - 1 - np.argmax(vals[:, ::-1], axis=1)
    return np.where(vals[rows, last] >= 0, last, -1)


def match_boxes(pair: CocoPair, *, marks_only: bool = False) -> COCOeval:
    """Run COCOeval ``evaluate`` on all frames and all 10 classes: the one box matching of the protocol.

    Args:
        pair: the ground truth and predictions.
        marks_only: match at IoU 0.5 over all areas only, which is all that per-box
            TP / FP / FN marks need. COCOeval matches each threshold and area range on
            its own, so those marks equal the full run's; the result cannot be
            accumulated into the protocol's metrics.
    """
    with quiet():
        ev = MatchingCOCOeval(pair.gt, pair.dt, "bbox")
        ev.params.imgIds = list(range(1, len(pair.names) + 1))
        ev.params.catIds = list(range(1, len(CLASSES) + 1))
        if marks_only:
            ev.params.iouThrs = np.array([0.5])
            ev.params.areaRng = [ev.params.areaRng[AREA_ALL]]
            ev.params.areaRngLbl = [ev.params.areaRngLbl[AREA_ALL]]
        ev.evaluate()
    return ev


def run_cocoeval(pair: CocoPair) -> COCOeval:
    """`match_boxes`, then COCOeval ``accumulate``."""
    ev = match_boxes(pair)
    with quiet():
        ev.accumulate()
    return ev


def official_scores(ev: COCOeval) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    """The official summary and per-class table from an accumulated COCOeval.

    Args:
        ev: a COCOeval after ``accumulate``.

    Returns:
        ``(summary, table)``: ``summary[metric]`` over all classes and
        ``table[class][metric]``, each a fraction in 0-1, None where no entry of
        the array is valid (no ground truth in that area range).
    """
    p = ev.params
    summary: dict[str, float | None] = {}
    table: dict[str, dict[str, float | None]] = {name: {} for name in CLASSES}
    for metric, (kind, iou, area, max_det) in METRICS.items():
        s = ev.eval[kind]
        if iou is not None:
            s = s[np.flatnonzero(np.isclose(p.iouThrs, iou))]
        a, m = p.areaRngLbl.index(area), list(p.maxDets).index(max_det)
        # precision is [T, R, K, A, M], recall [T, K, A, M]: select A and M, keep K last
        s = s[..., a, m]
        summary[metric] = _valid_mean(s)
        for k, name in enumerate(CLASSES):
            table[name][metric] = _valid_mean(s[..., k])
    return summary, table


def _valid_mean(s: np.ndarray) -> float | None:
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else None


def _coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow pycocotools' progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
