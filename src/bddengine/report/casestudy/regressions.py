"""What the turn broke: every slice an arm lowered beyond noise, named in the summary and section 6.

A regression is a headline row (iteration 1 - iteration 0 of one arm on one slice) whose
paired-bootstrap CI lies below 0, on a slice that is not fragile (`curves.regression_alerts`,
the same rule the many-turns alerts use). Where an arm-vs-control contrast on that slice
excludes 0, the sentence also says which arm did better there.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bddengine.report.curves import Estimate, SliceChange, regression_alerts
from bddengine.report.tables import fmt_ci, fmt_delta, is_num


def headline_falls(headline: pd.DataFrame, *, iteration: int = 1) -> list[SliceChange]:
    """The headline's regressions: rows with an arm, a CI below 0 and a slice that is not fragile."""
    changes = []
    for _, r in headline.iterrows():
        if not isinstance(r.get("arm"), str) or not is_num(r.get("delta")):
            continue
        lo, hi = r.get("ci_lo"), r.get("ci_hi")
        est = Estimate(float(r["delta"]), float(lo) if is_num(lo) else None, float(hi) if is_num(hi) else None)
        changes.append(SliceChange(r["arm"], iteration, str(r["slice"]), est, bool(r["fragile"])))
    return regression_alerts(changes)


def rival(contrasts: pd.DataFrame | None, fall: SliceChange) -> dict[str, Any] | None:
    """The arm that beat ``fall.arm`` on its slice (a contrast whose CI excludes 0), with the difference."""
    if contrasts is None or contrasts.empty:
        return None
    for _, c in contrasts[contrasts["slice"] == fall.slice].iterrows():
        if not bool(c["ci_excludes_0"]) or not is_num(c["diff"]):
            continue
        if c["arm"] == fall.arm and c["diff"] < 0:
            return {"winner": c["control"], "diff": -c["diff"], "ci": (-c["ci_hi"], -c["ci_lo"])}
        if c["control"] == fall.arm and c["diff"] > 0:
            return {"winner": c["arm"], "diff": c["diff"], "ci": (c["ci_lo"], c["ci_hi"])}
    return None


def fall_phrase(fall: SliceChange, contrasts: pd.DataFrame | None, *, numbers: bool) -> str:
    """``prototype-human on clear / night / city street, -0.031 [-0.107, -0.002]`` (``numbers``: the fall and
    its CI, for the summary) or ``prototype-human on clear / night / city street (random-human beat it there)``."""
    text = f"{fall.arm} on {fall.slice}"
    if numbers:
        return f"{text}, {fmt_delta(fall.delta.value)} {fmt_ci(fall.delta.lo, fall.delta.hi)}"
    r = rival(contrasts, fall)
    return text + (f" ({r['winner']} beat it there)" if r is not None else "")


def regression_sentence(headline: pd.DataFrame, contrasts: pd.DataFrame | None, *, numbers: bool = False) -> str:
    """Every significant regression of the turn in one sentence; empty when there is none.

    The summary's line gives each fall with its CI (``numbers``); section 6's, after the count of
    deltas whose CI excludes 0, names the falls and the arm that beat each there. A turn without
    a regression reads as before: the headline table's legend already says what bold means.
    """
    if "arm" not in headline:
        return ""
    falls = headline_falls(headline)
    if not falls:
        return ""
    return (f"Regression{'s' if len(falls) > 1 else ''}: "
            + "; ".join(fall_phrase(f, contrasts, numbers=numbers) for f in falls) + ".")


def regression_records(headline: pd.DataFrame, contrasts: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The regressions for result.json."""
    out = []
    for f in headline_falls(headline):
        r = rival(contrasts, f)
        out.append({"arm": f.arm, "slice": f.slice, "delta": f.delta.value, "ci95": [f.delta.lo, f.delta.hi],
                    "beaten_by": None if r is None else {"arm": r["winner"], "diff": float(r["diff"]),
                                                         "ci95": [float(r["ci"][0]), float(r["ci"][1])]}})
    return out
