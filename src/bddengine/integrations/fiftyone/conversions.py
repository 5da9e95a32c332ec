"""Pure conversions from run-folder tables to FiftyOne documents.

`match_eval_boxes` marks each box TP / FP / FN with the evaluator's own matching
(`bddengine.evaluation.coco.match_boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


def slice_tags(weather: str, timeofday: str, scene: str) -> list[str]:
    """Tags that make every slice one click away in the App."""
    return [f"weather:{weather}", f"timeofday:{timeofday}", f"scene:{scene}"]


def detections_by_frame(boxes: pd.DataFrame, sizes: dict[str, tuple[int, int]]) -> dict[str, list[dict]]:
    """Boxes grouped per frame, in FiftyOne's relative ``[x, y, w, h]`` form.

    The BDD ``label_id`` is kept (when the boxes have one) so eval marks find their box.
    A box without an id has no ``label_id``: its missing value (NaN in the str column) would
    otherwise reach FiftyOne as a float among strings, a field of mixed types it refuses.
    """
    out: dict[str, list[dict]] = {}
    cols = [boxes[c].to_numpy() for c in ("name", "category", "x1", "y1", "x2", "y2", "ignored")]
    ids: Any = [None] * len(boxes)
    if "label_id" in boxes:
        ids = boxes["label_id"].astype(str).to_numpy(dtype=object)
        ids[boxes["label_id"].isna().to_numpy()] = None
    for name, cat, x1, y1, x2, y2, ignored, label_id in zip(*cols, ids, strict=True):
        w, h = sizes[name]
        det = {"label": cat, "bounding_box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h],
               "iscrowd": bool(ignored)}
        if label_id is not None:
            det["label_id"] = label_id
        out.setdefault(name, []).append(det)
    return out


def relative_box(box2d: dict[str, float], width: int, height: int) -> list[float]:
    """A BDD ``box2d`` (pixels) as FiftyOne's relative ``[x, y, w, h]``."""
    x1, y1 = float(box2d["x1"]), float(box2d["y1"])
    return [x1 / width, y1 / height, (float(box2d["x2"]) - x1) / width, (float(box2d["y2"]) - y1) / height]


def detection_doc(label: str, bounding_box: list[float], **attributes: Any) -> dict[str, Any]:
    """One box as the document FiftyOne stores for a ``fo.Detection`` (None attributes left out).

    Building ``fo.Detection`` objects costs FiftyOne a validated mongoengine document
    per box; with tens of thousands of boxes that is most of a mirror's time. The
    documents are written with `set_label_docs`, and FiftyOne reads them back as
    ordinary ``Detection`` labels (tests/test_fiftyone_mirror.py compares the two routes).
    """
    from bson import ObjectId

    doc = {"_id": ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [], "label": str(label),
           "bounding_box": [float(v) for v in bounding_box]}
    doc.update({k: v for k, v in attributes.items() if v is not None})
    return doc


def detections_doc(detections: list[dict[str, Any]]) -> dict[str, Any]:
    """A frame's boxes (`detection_doc` each) as the document of a ``fo.Detections`` label."""
    return {"_cls": "Detections", "detections": detections}


def set_label_docs(fo, ds, field_name: str, docs: dict[str, dict[str, Any]]) -> None:
    """Set a ``Detections`` field from raw label documents, keyed by ``frame_name``.

    Declares the field first (FiftyOne cannot infer a label type from a document),
    then writes every document in one bulk update without building label objects;
    the boxes' own attributes (``label_id``, eval marks, routes) are declared by the
    sync's ``add_dynamic_sample_fields``.
    """
    if not ds.has_field(field_name):
        ds.add_sample_field(field_name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    if docs:
        ds.set_values(field_name, docs, key_field="frame_name", validate=False, expand_schema=False)


@dataclass
class FrameMatch:
    """The boxes of one eval frame, marked by bddengine's (official COCOeval) matching at IoU 0.5.

    Attributes:
        gt: GT label id -> ``tp`` (found by a prediction scoring at least the
            threshold), ``fn``, or ``ignored`` (crowd / ignored-category region).
        pred: one entry per prediction of the frame, in ``preds.json`` order:
            ``tp``, ``fp``, ``ignored`` (matched an ignored region), or None (not
            scored: outside the task, or past COCO's 100 detections per class).
        tp: predictions scoring at least the threshold that are TP.
        fp: predictions scoring at least the threshold that are FP.
        fn: GT boxes (not ignored) minus ``tp``.
    """

    gt: dict[str, str] = field(default_factory=dict)
    pred: list[str | None] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0


def match_eval_boxes(
    gt_frames: list[dict[str, Any]], pred_frames: list[dict[str, Any]], *, score_threshold: float
) -> dict[str, FrameMatch]:
    """Mark every GT and predicted box TP / FP / FN exactly as bddengine's evaluator matches them.

    Reuses the evaluator's matching (`bddengine.evaluation.coco.match_boxes`: IoU 0.5,
    classwise, crowd and ignored boxes as ignore regions) and maps COCO's annotation
    ids back to the BDD boxes. Per-frame counts follow
    `bddengine.evaluation.per_frame_metrics` at ``score_threshold``, so the App's
    numbers equal ``worst_slice.json``'s.

    Args:
        gt_frames: BDD ground-truth frames (``eval_gt.json``).
        pred_frames: BDD prediction frames (``preds.json``).
        score_threshold: predictions below it count neither as TP nor FP (the eval
            run's ``eval.failure_score``).

    Returns:
        frame name -> `FrameMatch`, for every GT frame.
    """
    from bddengine.bdd.categories import map_category
    from bddengine.evaluation.coco import frames_to_coco, match_boxes

    pair = frames_to_coco(gt_frames, pred_frames)
    # the annotation ids frames_to_coco gives: frames sorted by name, labels in order, from 1
    gt_key: list[tuple[str, str]] = []
    for frame in sorted(gt_frames, key=lambda f: f["name"]):
        for i, label in enumerate(frame.get("labels") or []):
            if map_category(label.get("category", "")) is not None and label.get("box2d") is not None:
                gt_key.append((frame["name"], str(label.get("id", i))))
    dt_key: list[tuple[str, int]] = []
    for frame in sorted(pred_frames, key=lambda f: f["name"]):
        for i, label in enumerate(frame.get("labels") or []):
            if map_category(label.get("category", "")) is not None:
                dt_key.append((frame["name"], i))
    out = {f["name"]: FrameMatch() for f in gt_frames}
    for f in pred_frames:
        out[f["name"]].pred = [None] * len(f.get("labels") or [])
    dt_score = {i + 1: float(a["score"]) for i, a in enumerate(pair.dt.dataset["annotations"])}
    ev = match_boxes(pair, marks_only=True)  # one area range ("all") and one threshold (0.5)
    for e in ev.evalImgs:
        if e is None:
            continue
        for d, dt_id in enumerate(e["dtIds"]):
            name, idx = dt_key[dt_id - 1]
            state = "ignored" if e["dtIgnore"][0, d] else ("tp" if e["dtMatches"][0, d] > 0 else "fp")
            out[name].pred[idx] = state
            if dt_score[dt_id] >= score_threshold and state != "ignored":
                setattr(out[name], state, getattr(out[name], state) + 1)
        for g, gt_id in enumerate(e["gtIds"]):
            name, label_id = gt_key[gt_id - 1]
            if e["gtIgnore"][g]:
                out[name].gt[label_id] = "ignored"
                continue
            matched = int(e["gtMatches"][0, g])
            found = matched > 0 and dt_score[matched] >= score_threshold
            out[name].gt[label_id] = "tp" if found else "fn"
            out[name].fn += 0 if found else 1
    return out
