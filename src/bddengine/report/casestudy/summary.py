"""Summary: the few numbers a reader should leave with, and the headline on the worst slice.

`summary_numbers` gives the same key numbers to the report run's ``result.json``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bddengine.report.casestudy.regressions import regression_records, regression_sentence
from bddengine.report.costs import arm_costs, cost_markdown
from bddengine.report.data import (
    ReportData,
    worst_delta_rows,
    worst_label,
)
from bddengine.report.tables import (
    fmt_ci,
    fmt_delta,
    fmt_int,
    fmt_map,
    headline_markdown,
    is_num,
    levels_cell,
)


def summary(d: ReportData) -> str:
    """The few numbers a reader should leave with, and the headline on the worst slice."""
    o = d.overall0
    lines = [
        f"- Iteration 0: mAP@0.5 {fmt_map(o.get('map50'))} overall (95% CI "
        f"{fmt_ci(o.get('ci_lo'), o.get('ci_hi'), signed=False)}, {fmt_int(o.get('n_frames'))} eval frames, "
        f"BDD100K detection protocol).",
    ]
    if d.worst:
        lines.append(f"- Worst slice: {worst_label(d)}, mAP@0.5 {fmt_map(d.worst.get('map50'))} on "
                     f"{fmt_int(d.worst.get('n_frames'))} eval frames.")
    else:
        lines.append(f"- No slice has at least {d.min_frames} eval frames, so no worst slice was picked.")
    if not worst_delta_rows(d):
        lines.append("- Iteration 1: no arm has an iteration-1 eval yet, so there is no delta to report.")
    for _, r in _worst_contrasts(d).iterrows():
        lines.append(f"- {contrast_sentence(r)}")
    if falls := regression_sentence(d.headline, d.contrasts, numbers=True):
        lines.append(f"- {falls}")
    missing = d.arms_missing
    if missing:
        lines.append(f"- Missing arm(s): {', '.join(missing)} (see section 6).")
    for arm in d.arms_empty:
        lines.append(f"- {arm} added nothing: its labels gave iteration 1 no box, so it was not retrained and "
                     f"has no delta.")
    for arm in unchanged_arms(d):
        lines.append(f"- {arm} changed nothing: iteration 1 scored exactly what iteration 0 scored on every slice "
                     f"(Δ = 0 everywhere), so this turn has no result for it.")
    if d.arms_compared:
        top = d.headline[d.headline["worst"].astype(bool) | (d.headline["grouping"] == "overall")]
        lines += ["", "**Headline** (worst slice and overall; all slices: appendix E):", "",
                  headline_markdown(top, d.arms_compared, n_boot=d.n_boot, seed=d.cfg.seed,
                                    fragile_min_gt=d.cfg.report.fragile_min_gt, per_seed=False)]
    costs = arm_costs(d)
    if costs:
        lines += ["", "**Labels and cost per arm** (worst slice):", "", cost_markdown(d, costs)]
    return "\n".join(lines)


def unchanged_arms(d: ReportData) -> list[str]:
    """Compared arms whose iteration 1 scored exactly as iteration 0 on every row of the headline."""
    t = d.headline
    out = []
    for arm in d.arms_compared:
        rows = t[t["arm"] == arm]
        deltas = pd.to_numeric(rows["delta"], errors="coerce")
        if len(rows) and deltas.notna().all() and (deltas.abs() < 1e-12).all():
            out.append(arm)
    return out


def _worst_contrasts(d: ReportData) -> pd.DataFrame:
    c = d.contrasts
    if c is None or c.empty:
        return pd.DataFrame(columns=c.columns if c is not None else [])
    return c[c["worst"].astype(bool)]


def contrast_sentence(r: Any) -> str:
    """One arm-vs-control row in words; "beats" only when the CI of the difference excludes 0."""
    ci = fmt_ci(r["ci_lo"], r["ci_hi"])
    what = (f"{r['arm']} − {r['control']} on {r['slice']}: {fmt_delta(r['diff'])} mAP@0.5 (95% CI {ci}, "
            f"{levels_cell(r['ci_levels'], max(int(r['n_seeds_arm']), int(r['n_seeds_control'])))})")
    if not bool(r["ci_excludes_0"]):
        return f"{what}: the run cannot tell {r['arm']} and {r['control']} apart."
    return f"{what}: {r['verdict']}" + (" (on a fragile slice)." if bool(r["fragile"]) else ".")


def summary_numbers(d: ReportData) -> dict[str, Any]:
    """Key numbers for result.json metrics."""
    rows = worst_delta_rows(d)
    return {
        "iter0_map50": d.overall0.get("map50"),
        "worst_slice": d.worst,
        "arms_compared": d.arms_compared,
        "arms_missing": d.arms_missing,
        "arms_mine_only": [a for a, f in d.arms.items() if f.mine_only],
        "arms_added_nothing": d.arms_empty,
        "arm_costs": {a: c.to_dict() for a, c in arm_costs(d).items()},
        "worst_slice_delta": {r["arm"]: {"delta": _f(r["delta"]), "ci95": [_f(r["ci_lo"]), _f(r["ci_hi"])],
                                         "ci_excludes_0": bool(r["ci_excludes_0"]), "n_seeds": int(r["n_seeds"]),
                                         "ci_levels": r["ci_levels"], "fragile": bool(r["fragile"])}
                              for r in rows},
        "worst_slice_contrasts": {f"{r['arm']} - {r['control']}": {
            "diff": _f(r["diff"]), "ci95": [_f(r["ci_lo"]), _f(r["ci_hi"])],
            "ci_excludes_0": bool(r["ci_excludes_0"]), "ci_levels": r["ci_levels"], "verdict": r["verdict"]}
            for _, r in _worst_contrasts(d).iterrows()},
        "regressions": regression_records(d.headline, d.contrasts),
    }


def _f(x: Any) -> float | None:
    return float(x) if is_num(x) else None
