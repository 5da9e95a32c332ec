"""Label sources of an arm: who labels which mined frame, the pyramid's calibration, and the bill.

An arm's label source (``config.LABEL_SOURCES``) decides which labels of its mined frames
iteration N+1 trains on, at the same frame budget:

- ``human``: the human stand-in labels every mined frame (its hidden ground truth);
- ``auto``: the machine labeler's accepted boxes only;
- ``pyramid``: the human stand-in first labels ``audit`` frames, which calibrate per-class
  accept / drop thresholds (`calibrate`); the machine's accepted boxes are kept on the other
  frames, a frame with a box to review goes to the human stand-in, dropped boxes are gone.

The machine labeler never sees hidden ground truth: the autolabel stage builds it from
weights alone; only the functions here that stand in for humans read ``gt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.labeling.routing import (
    ACCEPT,
    DROP,
    REVIEW,
    TP,
    gt_counts,
    label_quality,
    match_frames,
    pr_sweep,
    route_frames,
)

Box = dict[str, Any]
HUMAN, MACHINE, NONE = "human", "machine", "none"
"""Who labeled a frame that reached training (``none``: not trained on)."""


def added_nothing(autolabel_metrics: Mapping[str, Any]) -> bool:
    """True when an autolabel run's ``result.json`` metrics give iteration N+1 no labeled box to train on."""
    return not autolabel_metrics.get("n_train_boxes")


def choose_audit(names: Sequence[str], n: int, seed: int) -> list[str]:
    """The audit frames: ``n`` of ``names`` drawn with ``seed`` (all of them when fewer), in input order."""
    if n >= len(names):
        return list(names)
    picked = set(np.random.default_rng(seed).choice(len(names), size=n, replace=False).tolist())
    return [name for i, name in enumerate(names) if i in picked]


@dataclass
class ClassThresholds:
    """One class's calibrated thresholds and what the audit frames showed."""

    accept: float | None
    """Lowest score whose boxes reach the target precision on the audit; None: unreachable (no auto-accept)."""
    drop: float
    n_boxes: int
    n_gt: int
    precision_at_accept: float | None = None
    recall_at_accept: float | None = None
    reason: str = ""

    def pair(self) -> tuple[float, float]:
        """``(drop, accept)`` for routing; an unreachable accept never accepts."""
        return self.drop, math.inf if self.accept is None else self.accept

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record."""
        return {"accept": self.accept, "drop": self.drop, "n_boxes": self.n_boxes, "n_gt": self.n_gt,
                "precision_at_accept": self.precision_at_accept, "recall_at_accept": self.recall_at_accept,
                "reason": self.reason}


def calibrate(
    boxes: Mapping[str, list[Box]], gt: Mapping[str, list[Box]], *, target_precision: float,
    drop_keep_recall: float, min_boxes: int, default_drop: float,
) -> dict[str, ClassThresholds]:
    """Per-class thresholds from the audit frames' machine boxes and their human labels.

    Accept: the lowest score threshold at which the class's boxes scoring at least it reach
    ``target_precision`` (greedy class-matched IoU 0.5 matching, as everywhere). Drop: the
    highest score that keeps ``drop_keep_recall`` of the class's correct boxes above it
    (``default_drop`` when the audit has no correct box), never above the accept threshold.
    A class with fewer than ``min_boxes`` machine boxes on the audit, or whose precision never
    reaches the target, gets no accept threshold: its boxes go to review or drop.

    Args:
        boxes: machine boxes of the audit frames (``category``, ``score``, ``box2d``).
        gt: the audit frames' human labels (non-ignored and ignored boxes).
        target_precision: precision the accepted boxes must reach.
        drop_keep_recall: share of correct boxes the drop threshold keeps.
        min_boxes: boxes a class needs on the audit to be calibrated.
        default_drop: the drop threshold of a class without a correct audit box.

    Returns:
        class -> `ClassThresholds`, for every class with machine boxes or ground truth on the audit.
    """
    states = match_frames({n: boxes.get(n, []) for n in gt}, gt)
    n_gt = gt_counts(gt)
    scores: dict[str, list[float]] = {}
    sts: dict[str, list[str]] = {}
    for name in gt:
        for box, state in zip(boxes.get(name, []), states[name], strict=True):
            scores.setdefault(box["category"], []).append(float(box["score"]))
            sts.setdefault(box["category"], []).append(state)
    out: dict[str, ClassThresholds] = {}
    for c in sorted(set(scores) | {k for k, v in n_gt.items() if v}):
        s, st = scores.get(c, []), sts.get(c, [])
        tp_scores = sorted((v for v, x in zip(s, st, strict=True) if x == TP), reverse=True)
        drop = default_drop
        if tp_scores:
            keep = max(1, math.ceil(drop_keep_recall * len(tp_scores)))
            drop = float(tp_scores[keep - 1])
        if len(s) < min_boxes:
            out[c] = ClassThresholds(None, drop, len(s), n_gt.get(c, 0),
                                     reason=f"{len(s)} audit box(es) < audit_min_boxes {min_boxes}")
            continue
        sweep = pr_sweep(s, st, n_gt.get(c, 0))
        ok = [(t, p, r) for t, p, r in zip(sweep["threshold"], sweep["precision"], sweep["recall"], strict=True)
              if p >= target_precision]
        if not ok:
            best = max(sweep["precision"], default=0.0)
            out[c] = ClassThresholds(None, drop, len(s), n_gt.get(c, 0),
                                     reason=f"precision never reaches {target_precision} (best {best:.3f})")
            continue
        t, p, r = min(ok, key=lambda x: x[0])
        out[c] = ClassThresholds(float(t), min(drop, float(t)), len(s), n_gt.get(c, 0),
                                 precision_at_accept=float(p), recall_at_accept=r)
    return out


def route_calibrated(raw: Mapping[str, list[Box]], thresholds: Mapping[str, ClassThresholds], *,
                     accept: float, drop: float) -> dict[str, list[Box]]:
    """Route boxes with the calibrated per-class pairs; a class the audit never saw gets no
    auto-accept (its boxes score into review or drop by the global ``drop``)."""
    per_class = {c: t.pair() for c, t in thresholds.items()}
    seen = {b["category"] for boxes in raw.values() for b in boxes}
    per_class.update({c: (drop, math.inf) for c in seen if c not in per_class})
    return route_frames(raw, accept=accept, drop=drop, per_class=per_class)


@dataclass
class LabelPlan:
    """Who labels each mined frame and the labels iteration N+1 trains on."""

    source: str
    labels: dict[str, list[Box]]
    """Training boxes per frame that reaches training (human frames may be empty)."""
    by: dict[str, str]
    """Every mined frame -> `HUMAN`, `MACHINE` or `NONE` (not trained on)."""
    audit: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    no_gt: list[str] = field(default_factory=list)
    """Frames the human stand-in was asked for but has no hidden label of (not trained on)."""

    @property
    def human_frames(self) -> list[str]:
        """Frames labeled by humans (charged)."""
        return [n for n, who in self.by.items() if who == HUMAN]


def human_boxes(gt_boxes: Sequence[Box]) -> list[Box]:
    """What the human stand-in draws on a frame: its hidden boxes, ignored regions left out (not training targets)."""
    return [{"category": g["category"], "score": 1.0, "box2d": dict(g["box2d"])}
            for g in gt_boxes if not g.get("ignored")]


def _human(gt: Mapping[str, list[Box]], name: str) -> list[Box]:
    return [{**b, "route": ACCEPT} for b in human_boxes(gt[name])]


def plan_labels(source: str, names: Sequence[str], routed: Mapping[str, list[Box]],
                gt: Mapping[str, list[Box]], *, audit: Sequence[str] = ()) -> LabelPlan:
    """Decide each mined frame's training labels.

    Args:
        source: ``human``, ``auto`` or ``pyramid``.
        names: the mined frames, in mined order.
        routed: machine boxes with their ``route`` (ignored for ``human``).
        gt: the human stand-in's labels, for the frames it has them for.
        audit: the pyramid's audit frames (labeled by humans whatever the machine said).
    """
    plan = LabelPlan(source, {}, {}, audit=[n for n in audit if n in gt])
    audit_set = set(plan.audit)
    for name in names:
        boxes = routed.get(name, [])
        if source == "human" or name in audit_set:
            ask = True
        elif source == "pyramid" and any(b["route"] == REVIEW for b in boxes):
            plan.review.append(name)
            ask = True
        else:
            ask = False
        if ask:
            if name in gt:
                plan.labels[name], plan.by[name] = _human(gt, name), HUMAN
            else:
                plan.no_gt.append(name)
                plan.by[name] = NONE
            continue
        accepted = [b for b in boxes if b["route"] == ACCEPT]
        if accepted:
            plan.labels[name], plan.by[name] = accepted, MACHINE
        else:
            plan.by[name] = NONE
    return plan


def _key(frame: Mapping[str, Any]) -> dict[str, str]:
    return {a: str(frame.get(a)) for a in FRAME_ATTRIBUTES}


def slice_quality(frames: Sequence[Mapping[str, Any]], routed: Mapping[str, list[Box]],
                  gt: Mapping[str, list[Box]], plan: LabelPlan, worst: Mapping[str, str] | None,
                  *, exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Machine-label quality and routing shares of the worst slice vs the rest.

    Args:
        frames: mined frames with their attributes.
        routed: machine boxes with routes (empty for a human arm).
        gt: hidden ground truth of the frames that have it (scoring only).
        plan: the label plan (who labeled what).
        worst: the worst slice's attributes (None: one group, ``all``).
        exclude: frames left out of the machine-quality numbers (the audit: calibration data).

    Returns:
        One row per group (``worst slice``, ``rest``; groups without frames left out):
        frames, accepted-box precision / recall on the scored frames outside ``exclude``,
        the share of machine boxes routed to accept / review / drop, and the share of frames
        labeled by humans.
    """
    skip = set(exclude)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in frames:
        g = "all" if worst is None else ("worst slice" if _key(f) == dict(worst) else "rest")
        groups.setdefault(g, []).append(f)
    rows = []
    for g in ("worst slice", "rest", "all"):
        fs = groups.get(g)
        if not fs:
            continue
        scored = {f["name"]: gt[f["name"]] for f in fs if f["name"] in gt and f["name"] not in skip}
        preds = {n: routed.get(n, []) for n in scored}
        q = label_quality(preds, match_frames(preds, scored), gt_counts(scored), route=ACCEPT)["overall"]
        routes = [b["route"] for f in fs for b in routed.get(f["name"], [])]
        n_boxes = len(routes)
        rows.append({
            "group": g, "n_frames": len(fs), "n_frames_scored": len(scored), "n_gt_boxes": q["n_gt"],
            "n_machine_boxes": n_boxes,
            "accepted_precision": q["precision"], "accepted_recall": q["recall"],
            **{f"{r}_share": (routes.count(r) / n_boxes if n_boxes else None) for r in (ACCEPT, REVIEW, DROP)},
            "human_frame_share": sum(plan.by.get(f["name"]) == HUMAN for f in fs) / len(fs),
        })
    return rows


def arm_cost(plan: LabelPlan, gt: Mapping[str, list[Box]], *, n_frames: int, labeler_wall_s: float,
             usd_per_frame: float, usd_per_frame_range: Sequence[float], usd_per_box: float,
             usd_per_gpu_hour: float, machine_precision: float | None, machine_tp: int,
             target_precision: float) -> dict[str, Any]:
    """What labeling one arm's mined frames cost, and what it saved against labeling them all by hand.

    Human cost: every frame the human stand-in labeled (audit, review, or all of them) at the
    per-frame price (quoted range beside it) plus the per-box price of its boxes. Compute: the
    machine labeler's wall time at ``usd_per_gpu_hour`` (0 for a human arm). A saving against
    labeling every mined frame by hand is claimed only when the machine's accepted boxes reached
    ``target_precision`` with at least one correct box; otherwise the note says why not.
    """
    def boxes_of(names: Sequence[str]) -> int:
        return sum(1 for n in names for g in gt.get(n, []) if not g.get("ignored"))

    lo, hi = usd_per_frame_range
    humans = plan.human_frames
    every = [n for n in gt]
    n_all_boxes = boxes_of(every)
    n_h_boxes = boxes_of(humans)
    machine = plan.source != "human"
    compute = round(labeler_wall_s / 3600 * usd_per_gpu_hour, 4) if machine else 0.0

    def price(frames: int, boxes: int, per_frame: float) -> float:
        return round(frames * per_frame + boxes * usd_per_box, 2)

    human_all = price(n_frames, n_all_boxes, usd_per_frame)
    human = price(len(humans), n_h_boxes, usd_per_frame)
    total = round(human + compute, 4)
    if not machine:
        claimed, note = False, "human labels of every mined frame: nothing to save"
    elif machine_tp <= 0 or machine_precision is None:
        claimed, note = False, "not claimed: the machine's accepted boxes recovered no ground-truth box"
    elif machine_precision < target_precision:
        claimed, note = False, (f"not claimed: the machine's accepted boxes have precision {machine_precision:.3f} "
                                f"< target {target_precision}")
    else:
        claimed, note = True, (f"{n_frames - len(humans)} of {n_frames} frames not sent to humans; accepted boxes at "
                               f"precision {machine_precision:.3f} >= {target_precision}")
    return {
        "source": plan.source,
        "n_frames": n_frames,
        "n_gt_boxes": n_all_boxes,
        "frames_to_humans": len(humans),
        "boxes_to_humans": n_h_boxes,
        "audit_frames": len(plan.audit),
        "review_frames": len(plan.review),
        "frames_machine_labeled": sum(1 for who in plan.by.values() if who == MACHINE),
        "boxes_auto_accepted": sum(len(b) for n, b in plan.labels.items() if plan.by.get(n) == MACHINE),
        "labeler_wall_s": round(labeler_wall_s, 3),
        "usd_human_all": human_all,
        "usd_human_all_range": [price(n_frames, n_all_boxes, lo), price(n_frames, n_all_boxes, hi)],
        "usd_human": human,
        "usd_human_range": [price(len(humans), n_h_boxes, lo), price(len(humans), n_h_boxes, hi)],
        "usd_compute": compute,
        "usd_total": total,
        "usd_saved": round(human_all - human - compute, 2) if claimed else None,
        "saving_claimed": claimed,
        "saving_note": note,
        "human_labeler": not machine,
    }
