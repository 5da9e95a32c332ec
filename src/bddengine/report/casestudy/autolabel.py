"""Auto-labeling: label quality, routing and calibration per arm, and quality per class."""

from __future__ import annotations

from typing import Any

from bddengine.report.data import (
    ArmFacts,
    ReportData,
    arm_source,
    labeler,
)
from bddengine.report.tables import (
    NA,
    fmt_int,
    fmt_map,
    fmt_pct,
    fmt_value,
    is_num,
    md_table,
)


def _overall(q: dict[str, Any], block: str, key: str) -> Any:
    return ((q.get(block) or {}).get("overall") or {}).get(key)


def _routes(m: dict[str, Any]) -> str:
    n = m.get("n_boxes")
    if isinstance(n, dict) and n:
        return " / ".join(fmt_int(n.get(k)) for k in ("accept", "review", "drop"))
    return NA


def _skippable(q: dict[str, Any]) -> str:
    s = q.get("skippable")
    if isinstance(s, dict) and is_num(s.get("recall")):
        return (f"{fmt_pct(s['recall'])} of GT boxes at score ≥ {s.get('threshold', 0):.2f} "
                f"(precision {fmt_map(s.get('precision'))})")
    note = q.get("skippable_note")
    return str(note).split(":")[0] if note else NA


AUTOLABEL_ROWS: tuple[tuple[str, Any], ...] = (
    ("label source", lambda q, m: m.get("label_source") or q.get("label_source") or NA),
    ("labeler", lambda q, m: q.get("labeler") or m.get("labeler") or NA),
    ("frames labeled by humans / machine", lambda q, m: f"{fmt_int(m.get('n_human_frames'))} / "
                                                        f"{fmt_int(m.get('n_machine_frames'))}"),
    ("machine boxes accepted / review / dropped", lambda q, m: _routes(m)),
    ("accepted machine boxes: precision", lambda q, m: fmt_map(_overall(q, "accepted", "precision")
                                                               if q else m.get("precision"))),
    ("accepted machine boxes: recall", lambda q, m: fmt_map(_overall(q, "accepted", "recall")
                                                            if q else m.get("recall"))),
    ("training labels: precision / recall", lambda q, m: f"{fmt_map(_overall(q, 'training_labels', 'precision'))} / "
                                                         f"{fmt_map(_overall(q, 'training_labels', 'recall'))}"),
    ("skippable human work", lambda q, m: _skippable(q)),
)


def calibration_markdown(d: ReportData) -> str:
    """The pyramid's calibrated thresholds, and per slice (worst vs the rest) what they did."""
    lines = []
    for arm, f in d.arms.items():
        q = f.quality or {}
        per_slice = q.get("per_slice") or []
        if arm_source(f) not in ("pyramid", "auto") or not per_slice:
            continue
        cal = q.get("calibration") or {}
        if cal.get("per_class"):
            parts = []
            for c, t in cal["per_class"].items():
                if t.get("accept") is None:
                    parts.append(f"{c}: no auto-accept ({t.get('reason')})")
                else:
                    parts.append(f"{c}: accept ≥ {t['accept']:.3f}, drop < {t['drop']:.3f} "
                                 f"({t['n_boxes']} audit boxes)")
            lines.append(f"**{arm}**: thresholds from {len(cal.get('audit_frames') or [])} human-labeled audit "
                         f"frames at target precision {cal.get('target_precision')}: " + "; ".join(parts) + ".")
        else:
            t = q.get("thresholds") or {}
            lines.append(f"**{arm}**: configured thresholds (accept ≥ {t.get('accept')}, drop < {t.get('drop')}), "
                         "no audit.")
        rows = [[r["group"], fmt_int(r["n_frames"]), fmt_map(r["accepted_precision"]), fmt_map(r["accepted_recall"]),
                 fmt_pct(r["review_share"]), fmt_pct(r["drop_share"]), fmt_pct(r["human_frame_share"])]
                for r in per_slice]
        lines += ["", md_table(["frames of", "frames", "accepted P", "accepted R", "boxes to review",
                                "boxes dropped", "frames to humans"], rows, align="lrrrrrr"), ""]
    if lines:
        lines.append("P / R: accepted machine boxes against the hidden ground truth at IoU 0.5, audit frames left out.")
    return "\n".join(lines).strip()


def autolabel(d: ReportData) -> str:
    """Auto-label quality per arm, from each autolabel run's quality.json."""
    have = {a: f for a, f in d.arms.items() if f.quality is not None or f.autolabel_metrics}
    if not have:
        return ("No autolabel run was found for any arm, so there is no auto-label quality to report: run "
                "`bddengine autolabel --arm <arm>` for each arm after mining.")
    lines = []
    if all("accepted" in (f.quality or {}) for f in have.values()):
        t = (d.cfg.autolabel.accept, d.cfg.autolabel.drop)
        thresholds = next(((f.quality or {}).get("thresholds") for f in have.values()), None) or {}
        lines += [
            f"Machine boxes are accepted, sent to review or dropped by score (configured: accept ≥ "
            f"{thresholds.get('accept', t[0])}, drop < {thresholds.get('drop', t[1])}; a pyramid's calibrated "
            f"thresholds in appendix D), scored against the mined frames' hidden ground truth (IoU "
            f"{next(iter(have.values())).quality.get('iou_threshold', 0.5)}). Precision / recall of the "
            "accepted machine boxes, then of every training label the arm added:", ""]
        lines += [f"- **{a}** ({_row(f, 'label source')}, {_row(f, 'labeler')}): "
                  f"{_row(f, 'accepted machine boxes: precision')} / {_row(f, 'accepted machine boxes: recall')}; "
                  f"{_row(f, 'training labels: precision / recall')}" for a, f in have.items()]
    else:
        lines += _generic_quality(d, have)
    missing = [a for a, f in d.arms.items() if a not in have and not f.mine_only]
    if missing:
        lines.append(f"\nNo autolabel run for: {', '.join(missing)}.")
    return "\n".join(lines).strip()


def _row(f: ArmFacts, label: str) -> str:
    fn = dict(AUTOLABEL_ROWS)[label]
    return fn(f.quality or {}, f.autolabel_metrics or {})


def autolabel_table(d: ReportData) -> str:
    """Appendix D: every auto-label measure per arm (the main text keeps precision and recall)."""
    have = {a: f for a, f in d.arms.items() if f.quality is not None or f.autolabel_metrics}
    if not have or not all("accepted" in (f.quality or {}) for f in have.values()):
        return ""
    return md_table(["measure", *have], [[label, *[fn(f.quality or {}, f.autolabel_metrics or {})
                                                   for f in have.values()]] for label, fn in AUTOLABEL_ROWS])


def _per_class_rows(f: ArmFacts) -> list[list[str]]:
    per_class = ((f.quality or {}).get("accepted") or {}).get("per_class") or {}
    return [[c, fmt_int(v.get("n_gt")), fmt_int(v.get("tp")), fmt_int(v.get("fp")), fmt_int(v.get("fn")),
             fmt_map(v.get("precision")), fmt_map(v.get("recall"))]
            for c, v in per_class.items() if v.get("n_gt") or v.get("tp") or v.get("fp")]


def autolabel_per_class(d: ReportData) -> str:
    """Accepted boxes per class, one table per arm with an autolabel quality file."""
    lines = []
    for arm, f in d.arms.items():
        rows = _per_class_rows(f)
        if rows:
            lines += [f"**{arm}** (`{f.autolabel_run}`):", "",
                      md_table(["class", "GT boxes", "TP", "FP", "FN", "precision", "recall"], rows), ""]
    return "\n".join(lines).strip() or "No autolabel run recorded per-class quality."


def _generic_quality(d: ReportData, have: dict[str, ArmFacts]) -> list[str]:
    """A quality.json of another shape: its numbers as they are."""
    scalars = {a: {k: v for k, v in {**(f.autolabel_metrics or {}), **(f.quality or {})}.items()
                   if is_num(v)} for a, f in have.items()}
    keys = list(dict.fromkeys(k for s in scalars.values() for k in s))
    if not keys:
        return ["The autolabel runs recorded no numbers this report can read."]
    return [f"Numbers recorded by the autolabel runs (labeler: `{labeler(d)}`):", "",
            md_table(["measure", *have], [[k.replace("_", " "), *[fmt_value(scalars[a].get(k)) for a in have]]
                                          for k in keys])]
