"""Mining: frames mined per arm, their worst-slice precision against the base rate, and the lift."""

from __future__ import annotations

from typing import Any

from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.report.data import (
    ReportData,
)
from bddengine.report.inputs import mining_of
from bddengine.report.tables import (
    NA,
    fmt_int,
    fmt_pct,
    is_num,
    md_table,
)


def _matches_worst(frame: dict[str, Any], worst_key: dict[str, str] | None) -> bool | None:
    if "matches_slice" in frame:
        return bool(frame["matches_slice"])
    if worst_key and all(a in frame for a in FRAME_ATTRIBUTES):
        return {a: frame[a] for a in FRAME_ATTRIBUTES} == worst_key
    return None


def mining_rows(d: ReportData) -> list[dict[str, Any]]:
    """Per arm with a mine run: frames mined, worst-slice precision against the base rate, lift.

    The mine stage's own ``mining_precision.json`` numbers are used when present; otherwise
    precision is counted from ``mined.json`` and the base rate from the split's mining pool.
    """
    base = (d.mining_pool_in_worst / d.mining_pool_n) if d.mining_pool_n else None
    worst_key = d.worst["key"] if d.worst else None
    out = []
    for arm, f in d.arms.items():
        if not f.mined:
            continue
        frames = f.mined.get("frames") or []
        known = [h for h in (_matches_worst(fr, worst_key) for fr in frames) if h is not None]
        p = f.mining_numbers or {}
        precision = p.get("slice_precision", (sum(known) / len(known)) if known else None)
        base_rate = p.get("slice_base_rate", base)
        lift = p.get("slice_lift", (precision / base_rate) if is_num(precision) and base_rate else None)
        out.append({
            "arm": arm, "strategy": f.mined.get("strategy"), "embedding": f.mined.get("embedding"),
            "k": len(frames), "in_slice": sum(known) if known else None, "precision": precision,
            "base_rate": base_rate, "lift": lift, "failed_precision": p.get("failed_class_precision"),
            "failed_base_rate": p.get("failed_class_base_rate"), "failed_lift": p.get("failed_class_lift"),
            "failed_classes": p.get("failed_classes") or f.mined.get("failed_classes") or [],
        })
    return out


def _lift(x: Any) -> str:
    return f"{x:.1f}×" if is_num(x) else NA


def mining(d: ReportData) -> str:
    """Mining precision per arm against the base rate of the mining pool."""
    rows = mining_rows(d)
    lines = []
    if d.mining_pool_n:
        lines.append(
            f"Base rate: {fmt_int(d.mining_pool_in_worst)} of the {fmt_int(d.mining_pool_n)} mining-pool frames "
            f"({fmt_pct(d.mining_pool_in_worst / d.mining_pool_n)}) are in the worst slice, what random mining hits "
            f"on average. Precision: the share of mined frames in the worst slice (k-NN never sees attributes); "
            f"lift: precision over the base rate.")
    if rows:
        failed = next((r["failed_classes"] for r in rows if r["failed_classes"]), [])
        with_failed = any(is_num(r["failed_precision"]) for r in rows) and not all(
            is_num(r["failed_lift"]) and abs(r["failed_lift"] - 1) < 1e-9 for r in rows)  # every frame has them
        headers = ["arm", "strategy", "embedding", "frames mined", "in worst slice", "precision", "base rate",
                   "lift"]
        if with_failed:
            headers += ["failed-class precision", "its base rate", "its lift"]
        table = []
        by_run: dict[Any, list[str]] = {}
        for r in rows:
            by_run.setdefault(d.arms[r["arm"]].mine_run or r["arm"], []).append(r["arm"])
        seen = set()
        for r in rows:
            run = d.arms[r["arm"]].mine_run or r["arm"]
            if run in seen:  # label sources of one mining arm share its mine run: one row
                continue
            seen.add(run)
            sharing = by_run[run]
            name = (mining_of(r["arm"]) + f" ({', '.join(sharing)})" if len(sharing) > 1 else r["arm"]) \
                + (" (mining only)" if d.arms[r["arm"]].mine_only else "")
            row = [name, r["strategy"] or NA, r["embedding"] or NA, fmt_int(r["k"]), fmt_int(r["in_slice"]),
                   fmt_pct(r["precision"]), fmt_pct(r["base_rate"]), _lift(r["lift"])]
            if with_failed:
                row += [fmt_pct(r["failed_precision"]), fmt_pct(r["failed_base_rate"]), _lift(r["failed_lift"])]
            table.append(row)
        lines += ["", md_table(headers, table, align="lll" + "r" * (len(headers) - 3))]
        if with_failed and failed:
            lines.append(f"\nFailed-class precision: the share of mined frames holding a (hidden GT) box of a class "
                         f"the detector failed on in the worst slice ({', '.join(failed)}).")
    for a, f in d.arms.items():
        if f.mined:
            continue
        strategy = a.removesuffix("-detector")
        lines.append(f"\n- Arm **{a}**: no mine run was found; run "
                     f"`bddengine mine --strategy {strategy}"
                     f"{' --embedding detector' if a.endswith('-detector') else ''} --config {d.config_source}`.")
    only = [a for a, f in d.arms.items() if f.mine_only]
    if only:
        lines.append(f"\n{', '.join(only)}: mined for this comparison only (`flywheel.mine_only`), not retrained.")
    if not rows and not d.arms:
        lines.append("No retraining arm is configured (`flywheel.arms` is empty).")
    return "\n".join(lines).strip()
