"""What each arm cost, and what it cost per +0.01 mAP@0.5 on the worst slice.

Cost of an arm = what humans were paid for its mined frames (every frame of a ``human``
arm; the audit and review frames of a ``pyramid`` arm; none for ``auto``) + compute
(the machine labeler's wall time and the arm's iteration-1 training, the mean over its
seeds, at ``autolabel.usd_per_gpu_hour``). Cost per +0.01 mAP@0.5 divides that by the
worst-slice delta in hundredths; its CI maps the delta's paired-bootstrap CI through the
same division. An arm whose delta CI includes 0 gets none: it has not been shown to buy
any mAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bddengine.report.data import ReportData, arm_source, cost_of, worst_delta_rows
from bddengine.report.tables import NA, fmt_ci, fmt_delta, fmt_usd, is_num, md_table

POINT = 0.01
"""The mAP@0.5 step the cost is quoted per."""


@dataclass
class ArmCost:
    """One arm's bill and its price per worst-slice point."""

    arm: str
    source: str | None
    frames_to_humans: int | None
    usd_human: float | None
    usd_human_range: tuple[float, float] | None
    usd_label_compute: float
    usd_train_compute: float
    delta: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    ci_excludes_0: bool = False
    per_point: float | None = None
    per_point_ci: tuple[float, float] | None = None
    per_point_note: str = ""

    @property
    def usd_total(self) -> float | None:
        """Human + compute; None when the human part is unknown."""
        if self.usd_human is None:
            return None
        return round(self.usd_human + self.usd_label_compute + self.usd_train_compute, 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record for result.json."""
        return {"arm": self.arm, "label_source": self.source, "frames_to_humans": self.frames_to_humans,
                "usd_human": self.usd_human, "usd_human_range": list(self.usd_human_range or []) or None,
                "usd_label_compute": self.usd_label_compute, "usd_train_compute": self.usd_train_compute,
                "usd_total": self.usd_total, "worst_slice_delta": self.delta, "worst_slice_ci95": list(self.ci),
                "usd_per_point": self.per_point,
                "usd_per_point_ci95": list(self.per_point_ci) if self.per_point_ci else None,
                "per_point_note": self.per_point_note, "point": POINT}


def per_point(total: float | None, delta: float | None, lo: float | None, hi: float | None,
              excludes_0: bool) -> tuple[float | None, tuple[float, float] | None, str]:
    """Cost per +``POINT`` mAP and its CI, or None with the reason.

    Args:
        total: the arm's cost in dollars.
        delta: the worst-slice delta (seed mean).
        lo: lower end of the delta's 95% CI.
        hi: upper end of the delta's 95% CI.
        excludes_0: whether that CI excludes 0.
    """
    if total is None:
        return None, None, "cost unknown"
    if not is_num(delta) or not is_num(lo) or not is_num(hi):
        return None, None, "no delta"
    if not excludes_0:
        return None, None, "CI includes 0"
    if delta <= 0 or lo <= 0:
        return None, None, "Δ < 0"
    return total / (delta / POINT), (total / (hi / POINT), total / (lo / POINT)), ""


def arm_costs(d: ReportData) -> dict[str, ArmCost]:
    """Every retrained or label-only arm with an autolabel run: its bill and price per worst-slice point."""
    rate = d.cfg.autolabel.usd_per_gpu_hour
    worst = {r["arm"]: r for r in worst_delta_rows(d)}
    out: dict[str, ArmCost] = {}
    for arm, f in d.arms.items():
        c = cost_of(f)
        if f.mine_only or c is None:
            continue
        walls = [w for ref in d.runs.arms[arm].train.values() if is_num(w := d.result(ref).get("wall_time_s"))]
        train_usd = round(sum(walls) / len(walls) / 3600 * rate, 4) if walls and arm in d.arms_compared else 0.0
        human = c.get("usd_human", c.get("usd_human_all") if c.get("human_labeler") else None)
        rng = c.get("usd_human_range") or (c.get("usd_human_all_range") if c.get("human_labeler") else None)
        ac = ArmCost(arm, arm_source(f), c.get("frames_to_humans"), human if is_num(human) else None,
                     tuple(rng) if isinstance(rng, (list, tuple)) and len(rng) == 2 else None,
                     float(c.get("usd_compute") or 0.0), train_usd)
        r = worst.get(arm)
        if r is not None:
            ac.delta, ac.ci, ac.ci_excludes_0 = r["delta"], (r["ci_lo"], r["ci_hi"]), bool(r["ci_excludes_0"])
            ac.per_point, ac.per_point_ci, ac.per_point_note = per_point(
                ac.usd_total, r["delta"], r["ci_lo"], r["ci_hi"], bool(r["ci_excludes_0"]))
        elif f.added_nothing:
            ac.per_point_note = "added nothing"
        else:
            ac.per_point_note = "no iteration-1 eval"
        out[arm] = ac
    return out


def per_point_cell(c: ArmCost) -> str:
    """``$1.23 [$0.80, $2.10]`` or the reason there is none."""
    if c.per_point is None or c.per_point_ci is None:
        return f"— ({c.per_point_note})" if c.per_point_note else NA
    return f"{fmt_usd(c.per_point)} [{fmt_usd(c.per_point_ci[0])}, {fmt_usd(c.per_point_ci[1])}]"


def cost_cell(c: ArmCost) -> str:
    """``$50.21`` (humans + compute)."""
    return NA if c.usd_total is None else fmt_usd(c.usd_total)


def cost_markdown(d: ReportData, costs: dict[str, ArmCost]) -> str:
    """One row per arm: label source, frames humans labeled, what it cost, the worst-slice Δ and the cost per
    +0.01 mAP@0.5."""
    rows = []
    for c in costs.values():
        delta = (f"{fmt_delta(c.delta)} {fmt_ci(*c.ci)}" if is_num(c.delta)
                 else ("added nothing" if d.arms[c.arm].added_nothing else NA))
        rows.append([c.arm, c.source or NA, NA if c.frames_to_humans is None else str(c.frames_to_humans),
                     cost_cell(c), delta, per_point_cell(c)])
    legend = (f"Cost: {fmt_usd(d.cfg.autolabel.usd_per_frame)} per human frame + labeler and iteration-1 "
              f"training compute at {fmt_usd(d.cfg.autolabel.usd_per_gpu_hour)}/GPU-hour of wall time. Per "
              f"+{POINT}: cost ÷ (Δ / {POINT}), CI from Δ's; none where that CI includes 0.")
    return md_table(["arm", "labels", "human frames", "cost", "worst-slice Δ [95% CI]",
                     f"cost per +{POINT} mAP@0.5 [95% CI]"], rows, align="llrrrr") + "\n\n" + legend
