"""Iteration 0: the detector's scores overall, per class, per slice and per attribute value."""

from __future__ import annotations

from typing import Any

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.report.data import (
    ReportData,
)
from bddengine.report.headline import GROUP_ORDER
from bddengine.report.tables import (
    fmt_ci,
    fmt_int,
    fmt_map,
    is_num,
    key_label,
    md_table,
)

MAIN_SLICES = 3
"""Iteration-0 slices listed in the main text (the worst first); all of them are in the appendix."""


def _slice_rows(rows: list[dict[str, Any]], min_frames: int, worst_key: dict[str, str] | None) -> list[list[str]]:
    out = []
    for r in rows:
        key = {a: r.get(a) for a in FRAME_ATTRIBUTES}
        label = key_label(key) if r.get("grouping") == "slice" else f"{r['grouping']}: {r.get(r['grouping'])}"
        if worst_key and key == worst_key:
            label = f"**{label}** (worst)"
        elif r.get("grouping") == "slice" and r.get("n_frames", 0) < min_frames:
            label += f" (< {min_frames} frames)"
        out.append([label, fmt_int(r.get("n_frames")), fmt_map(r.get("map50")),
                    fmt_ci(r.get("ci_lo"), r.get("ci_hi"), signed=False), fmt_map(r.get("map"))])
    return out


def iteration0(d: ReportData) -> str:
    """Overall, per class, per slice and per marginal scores of the iteration-0 detector."""
    o = d.overall0
    res = d.result(d.runs.eval0)
    m = res.get("metrics") or {}
    lines = [
        f"Overall mAP@0.5 (BDD100K protocol): **{fmt_map(o.get('map50'))}** (95% bootstrap CI "
        f"{fmt_ci(o.get('ci_lo'), o.get('ci_hi'), signed=False)}), mAP@0.5:0.95 {fmt_map(o.get('map'))}, on "
        f"{fmt_int(o.get('n_frames'))} eval frames with {fmt_int(m.get('n_predictions'))} predictions "
        f"(`{d.runs.eval0.name}`).",
        "",
    ]
    scored = [c for c in CLASSES if is_num(o.get(f"ap50/{c}"))]
    if scored:
        weakest = min(scored, key=lambda c: o[f"ap50/{c}"])
        lines.append(f"{len(scored)} classes have ground truth in the eval pool; the weakest is {weakest} (AP@0.5 "
                     f"{fmt_map(o[f'ap50/{weakest}'])}; every class: appendix C).")
    slices = _sorted_slices(d)
    worst_key = d.worst["key"] if d.worst else None
    shown = slices[:MAIN_SLICES]
    if shown:
        rows = _slice_rows(shown, d.min_frames, worst_key)
        lines += ["", f"The {len(shown)} lowest of {len(slices)} slices by mAP@0.5: "
                  + "; ".join(f"{r[0]} {r[2]} {r[3]} on {r[1]} frames" for r in rows)
                  + f" (the worst is chosen among slices with at least {d.min_frames} frames; every slice and "
                    "marginal: appendix C)."]
    return "\n".join(lines)


def _sorted_slices(d: ReportData) -> list[dict[str, Any]]:
    slices = [r for r in d.eval0_table if r.get("grouping") == "slice"]
    slices.sort(key=lambda r: (r.get("map50") is None, r.get("map50") or 0, -r.get("n_frames", 0)))
    return slices


def iteration0_slices(d: ReportData) -> str:
    """Every iteration-0 slice and marginal score."""
    worst_key = d.worst["key"] if d.worst else None
    lines = [md_table(["slice", "frames", "mAP@0.5", "95% CI", "mAP@0.5:0.95"],
                      _slice_rows(_sorted_slices(d), d.min_frames, worst_key))]
    marg = [r for r in d.eval0_table if r.get("grouping") in ("weather", "timeofday", "scene")]
    marg.sort(key=lambda r: (GROUP_ORDER[r["grouping"]], r.get("map50") is None, r.get("map50") or 0))
    if marg:
        lines += ["", "Per marginal (every frame with that attribute value):", "",
                  md_table(["marginal", "frames", "mAP@0.5", "95% CI", "mAP@0.5:0.95"],
                           _slice_rows(marg, d.min_frames, None))]
    return "\n".join(lines)


def iteration0_classes(d: ReportData) -> str:
    """AP@0.5 and recall of every class with ground truth in the eval pool, and the classes without."""
    o = d.overall0
    rows = [[c, fmt_map(o.get(f"ap50/{c}")), fmt_map(o.get(f"recall/{c}"))] for c in CLASSES
            if is_num(o.get(f"ap50/{c}"))]
    absent = [c for c in CLASSES if not is_num(o.get(f"ap50/{c}"))]
    text = md_table(["class", "AP@0.5", "recall@0.5"], rows) if rows else "No class has ground truth in the eval pool."
    return text + (f"\n\nClasses without ground truth in the eval pool (not scored): {', '.join(absent)}."
                   if absent else "")
