"""The worst slice against the whole eval pool, and why its frames fail."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.report.data import (
    ReportData,
    worst_label,
)
from bddengine.report.tables import (
    fmt_ci,
    fmt_int,
    fmt_map,
    fmt_pct,
    is_num,
    md_table,
)


def _worst_row(d: ReportData) -> dict[str, Any]:
    if not d.worst:
        return {}
    return next((r for r in d.eval0_table if r.get("grouping") == "slice"
                 and {a: r.get(a) for a in FRAME_ATTRIBUTES} == d.worst["key"]), {})


def worst_slice(d: ReportData) -> str:
    """The worst slice and how it compares with the whole eval pool, per class."""
    if not d.worst:
        return (f"No slice of the eval pool has at least {d.min_frames} frames (`eval.min_eval_frames`), so "
                f"no worst slice was picked and nothing was mined for one.")
    w, o, row = d.worst, d.overall0, _worst_row(d)
    ci = w.get("ci95") or [None, None]
    text = [
        f"Worst slice: **{worst_label(d)}** ({fmt_int(w.get('n_frames'))} eval frames, mAP@0.5 "
        f"{fmt_map(w.get('map50'))}, 95% CI {fmt_ci(ci[0], ci[1], signed=False)}) against "
        f"{fmt_map(o.get('map50'))} for the whole eval pool.",
    ]
    per_class = [f"{c} {fmt_map(row.get(f'ap50/{c}'))} vs {fmt_map(o.get(f'ap50/{c}'))} "
                 f"({fmt_map(row.get(f'recall/{c}'))})" for c in CLASSES if is_num(row.get(f"ap50/{c}"))]
    if per_class:
        text.append("Per class, AP@0.5 on the worst slice vs the whole pool (recall on the slice): "
                    + "; ".join(per_class) + ".")
    return " ".join(text)


def reason_kind(reason: str) -> str:
    """Group a failure reason string of the eval stage into its kind."""
    if reason.startswith("AP@0.5 is 0"):
        return "AP@0.5 is 0 (no ground-truth box found at IoU 0.5)"
    if reason.startswith("recall"):
        return "recall below the failure threshold"
    if "false positive" in reason:
        return "false positives above the score threshold"
    if reason.startswith("no detection"):
        return "no detection above the score threshold"
    return reason


def failure_reasons(d: ReportData, *, table: bool = False) -> str:
    """Counts of the eval stage's failure reasons in the worst slice (the table of reasons: ``table=True``)."""
    if not d.worst:
        return ""
    n = d.worst.get("n_frames") or 0
    if not d.failures:
        return (f"None of the worst slice's {fmt_int(n)} frames is a failure frame (AP@0.5 of 0 or recall below "
                f"{d.cfg.eval.failure_recall} at score {d.cfg.eval.failure_score}).")
    kinds = Counter(reason_kind(r) for f in d.failures for r in set(f.get("reasons") or []))
    rows = [[k, fmt_int(v), fmt_pct(v / len(d.failures), 0)] for k, v in kinds.most_common()]
    gt = Counter()
    missed = sum(f.get("fn") or 0 for f in d.failures)
    boxes = sum(f.get("n_gt") or 0 for f in d.failures)
    for f in d.failures:
        gt.update(f.get("gt_classes") or {})
    opening = (f"{len(d.failures)} of the worst slice's {fmt_int(n)} eval frames are failure frames (AP@0.5 of "
               f"0, or recall below {d.cfg.eval.failure_recall} at score ≥ {d.cfg.eval.failure_score})")
    if not table:
        return (f"{opening}; most often: {rows[0][0]} ({rows[0][1]} frames; every reason: appendix C). They miss "
                f"{fmt_int(missed)} of their {fmt_int(boxes)} ground-truth boxes.")
    lines = [
        f"{opening}, for these reasons:",
        "",
        md_table(["reason", "frames", "share of failure frames"], rows),
        "",
        f"They miss {fmt_int(missed)} of their {fmt_int(boxes)} ground-truth boxes; the boxes they hold by class: "
        + ", ".join(f"{c} {v}" for c, v in gt.most_common()) + ".",
    ]
    return "\n".join(lines)
