"""Why the worst slice fails, and which error the turn removed: sentences read off the TIDE numbers.

`failure_hypothesis` writes the worst-slice analysis's hypothesis (section 5) from the worst
slice's row of the iteration-0 ``errors.json`` (the AP@0.5 each error type costs, recall by box
height and by occlusion / truncation); `error_change` writes what the turn fixed (section 6)
from each arm's change in those costs (`ReportData.error_deltas`). Every verdict is a rule stated in the
sentence itself, so it holds for any config: a turn that changed nothing, a slice whose
AP is lost to misses, one whose AP is lost to false positives.
"""

from __future__ import annotations

from typing import Any

from bddengine.report.data import ReportData, worst_delta_rows, worst_label
from bddengine.report.tables import fmt_ci, fmt_delta, fmt_int, fmt_map, fmt_pct, is_num, md_table

ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")
"""TIDE's six error types, in its order (`bddengine.evaluation.errors.ERROR_TYPES`)."""
ERROR_NAMES = {
    "cls": "class confusion (right box, wrong class)",
    "loc": "poor localisation (right class, IoU 0.1-0.5)",
    "both": "wrong class and poor box",
    "dupe": "duplicate detections",
    "bkg": "background false positives",
    "miss": "missed objects",
}
MIN_BOXES = 10
"""A box-height or visibility group with fewer ground-truth boxes is too small to compare recall on."""
MINOR_SHARE = 0.1
"""An error type costing less than this share of the largest cost is called minimal."""
BOUND_RATIO = 2.0
"""Recall-bound when perfect recall would add at least this many times what perfect precision would (and back)."""


def slice_row(doc: dict[str, Any] | None, key: dict[str, str] | None) -> dict[str, Any] | None:
    """The ``errors.json`` row of a slice (``key=None``: the overall row)."""
    for r in (doc or {}).get("slices") or []:
        if (key is None and r.get("grouping") == "overall") or (key is not None and r.get("grouping") == "slice"
                                                                 and r.get("key") == key):
            return r
    return None


def _ci(row: dict[str, Any], t: str) -> str:
    ci = (row.get("ci95") or {}).get(t)
    return f", 95% CI {fmt_ci(ci[0], ci[1], signed=False)}" if ci and is_num(ci[0]) and is_num(ci[1]) else ""


def _ranked(row: dict[str, Any]) -> list[tuple[str, float]]:
    dap = row.get("dap") or {}
    return sorted(((t, float(dap[t])) for t in ERROR_TYPES if is_num(dap.get(t))), key=lambda x: -x[1])


def failure_hypothesis(row: dict[str, Any] | None, overall: dict[str, Any] | None) -> str:
    """Section 5's hypothesis: which error costs the slice most, recall or precision, class confusion,
    the box heights and visibility where recall is lowest. Empty without a decomposition."""
    ranked = _ranked(row or {})
    if not ranked:
        return ""
    assert row is not None
    top, top_cost = ranked[0]
    out = []
    undefined = [t for t in ERROR_TYPES if not is_num((row.get("dap") or {}).get(t))]
    if undefined:
        out.append(f"The cost of {', '.join(undefined)} is not defined on this slice (n/a in errors.json: "
                   f"re-scoring with that error fixed leaves no AP to compare).")
    if round(top_cost, 3) == 0:
        out.append(f"No {'other ' if undefined else ''}error type costs the slice any AP@0.5: fixing any one of "
                   f"them alone adds less than 0.0005.")
    else:
        second = ranked[1] if len(ranked) > 1 else None
        lead = (f"**Failure mode: {ERROR_NAMES[top]}.** Of the error types, {top} costs the slice most: fixing it "
                f"alone (TIDE's oracle) would raise its AP@0.5 from {fmt_map(row.get('map50'))} by "
                f"{fmt_map(top_cost)}{_ci(row, top)}")
        if second is not None:
            lead += f", against {fmt_map(second[1])} for {second[0]}, the next"
            if _overlap(row, top, second[0]):
                lead += " (the two CIs overlap, so the order of these two is not settled)"
        out.append(lead + ".")
    out.append(_bound(row))
    cls = dict(ranked).get("cls")
    if is_num(cls) and top_cost > 0 and round(top_cost, 3) > 0:
        if top == "cls":
            out.append("Class confusion is the largest cost.")
        elif cls < MINOR_SHARE * top_cost:
            out.append(f"Class confusion is minimal: it costs {fmt_map(cls)}{_ci(row, 'cls')}, under a tenth of "
                       f"what {top} costs.")
        else:
            out.append(f"Class confusion matters: it costs {fmt_map(cls)}{_ci(row, 'cls')}, "
                       f"{fmt_pct(cls / top_cost, 0)} of what {top} costs.")
    out += [s for s in (_by_height(row, overall), _by_visibility(row)) if s]
    return " ".join(s for s in out if s)


def _overlap(row: dict[str, Any], a: str, b: str) -> bool:
    ci = row.get("ci95") or {}
    ca, cb = ci.get(a), ci.get(b)
    return bool(ca and cb and all(is_num(x) for x in (*ca, *cb)) and ca[0] <= cb[1])


def _bound(row: dict[str, Any]) -> str:
    special = row.get("special") or {}
    fn, fp = special.get("fn"), special.get("fp")
    if not (is_num(fn) and is_num(fp)):
        return ""
    gains = f"perfect recall would add {fmt_map(fn)} AP@0.5, perfect precision {fmt_map(fp)}"
    if round(max(fn, fp), 3) == 0:
        return f"Neither recall nor precision limits it ({gains})."
    if fn >= BOUND_RATIO * fp:
        return f"The issue is recall, not precision: {gains}."
    if fp >= BOUND_RATIO * fn:
        return f"The issue is precision, not recall: {gains}."
    return f"Recall and precision both limit it ({gains}, within a factor {BOUND_RATIO:g} of each other)."


def _by_height(row: dict[str, Any], overall: dict[str, Any] | None) -> str:
    buckets = [b for b in row.get("recall_by_height") or [] if (b.get("n_gt") or 0) >= MIN_BOXES
               and is_num(b.get("recall"))]
    if not buckets:
        return (f"No box-height bucket of the slice holds {MIN_BOXES} ground-truth boxes, so recall is not "
                f"compared by size.")
    low = min(buckets, key=lambda b: b["recall"])
    text = (f"Recall at IoU 0.5 is lowest for boxes {_px(low)} tall: it finds {fmt_pct(low['recall'], 0)} of "
            f"{fmt_int(low['n_gt'])} (misses {fmt_pct(1 - low['recall'], 0)})")
    same = next((b for b in (overall or {}).get("recall_by_height") or [] if b.get("bucket") == low["bucket"]
                 and is_num(b.get("recall"))), None)
    if same is not None and overall is not row:
        text += f"; the whole eval pool finds {fmt_pct(same['recall'], 0)} of such boxes"
    high = max(buckets, key=lambda b: b["recall"])
    if high is not low:
        text += f", and the slice finds {fmt_pct(high['recall'], 0)} of boxes {_px(high)} tall"
    return text + "."


def _px(b: dict[str, Any]) -> str:
    return f"{b['lo']:g}+ px" if b.get("hi") is None else f"{b['lo']:g}-{b['hi']:g} px"


def _by_visibility(row: dict[str, Any]) -> str:
    groups = {(v.get("attribute"), v.get("value")): v for v in row.get("recall_by_visibility") or []}
    parts = []
    for attr in ("occluded", "truncated"):
        yes, no = groups.get((attr, True)), groups.get((attr, False))
        if not (yes and no and is_num(yes.get("recall")) and is_num(no.get("recall"))):
            continue
        if min(yes.get("n_gt") or 0, no.get("n_gt") or 0) < MIN_BOXES:
            parts.append(f"too few {attr} or non-{attr} boxes to compare (under {MIN_BOXES})")
            continue
        parts.append(f"{fmt_pct(yes['recall'], 0)} of {fmt_int(yes['n_gt'])} {attr} boxes against "
                     f"{fmt_pct(no['recall'], 0)} of {fmt_int(no['n_gt'])} others")
    return ("Found at IoU 0.5: " + "; ".join(parts) + ".") if parts else ""


def best_arm(d: ReportData) -> str | None:
    """The arm with the largest worst-slice gain in mAP@0.5 that has an error decomposition."""
    have = {e.get("arm") for e in d.error_deltas}
    rows = [r for r in worst_delta_rows(d) if r["arm"] in have and is_num(r["delta"])]
    if rows:
        return max(rows, key=lambda r: r["delta"])["arm"]
    return d.error_deltas[0]["arm"] if d.error_deltas else None


def removed(entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Error types whose cost fell (CI below 0), largest fall first, and those whose cost grew (CI above 0)."""
    delta, ci = entry.get("delta") or {}, entry.get("ci95") or {}
    # a change that rounds to 0.000 is no change, whatever side of 0 its (equally tiny) CI lies on
    firm = [t for t in ERROR_TYPES if is_num(delta.get(t)) and round(abs(delta[t]), 3) > 0 and ci.get(t)
            and all(is_num(x) for x in ci[t])]
    down = sorted((t for t in firm if ci[t][1] < 0), key=lambda t: delta[t])
    up = sorted((t for t in firm if ci[t][0] > 0), key=lambda t: -delta[t])
    return down, up


def _change(entry: dict[str, Any], t: str) -> str:
    ci = (entry.get("ci95") or {}).get(t)
    ci_text = f", 95% CI {fmt_ci(ci[0], ci[1])}" if ci and all(is_num(x) for x in ci) else ", no CI"
    return (f"{t} {fmt_map((entry.get('iter0') or {}).get(t))} → {fmt_map((entry.get('iter1') or {}).get(t))} "
            f"({fmt_delta((entry.get('delta') or {}).get(t))}{ci_text})")


def arm_verdict(entry: dict[str, Any]) -> str:
    """One arm's change in the worst slice's error costs, as a clause."""
    down, up = removed(entry)
    delta = entry.get("delta") or {}
    if not down and not up:
        moved = [t for t in ERROR_TYPES if is_num(delta.get(t))]
        if not moved:
            return "no error decomposition at iteration 1"
        t = max(moved, key=lambda t: abs(delta[t]))
        if round(abs(delta[t]), 3) == 0:
            return "no error type's cost changed (every change rounds to 0.000)"
        return ("no error type's cost changed beyond noise (every 95% CI includes 0; largest change "
                f"{_change(entry, t)})")
    parts = []
    if down:
        parts.append(f"removed part of the cost of {ERROR_NAMES[down[0]]}: {_change(entry, down[0])}")
        if down[1:]:
            parts.append(f"also lowered (CI below 0): {', '.join(down[1:])}")
    else:
        parts.append("no error type's cost fell beyond noise (every CI of a fall includes 0)")
    if up:
        parts.append(f"the cost of {ERROR_NAMES[up[0]]} grew: {_change(entry, up[0])}"
                     + (f"; also raised (CI above 0): {', '.join(up[1:])}" if up[1:] else ""))
    return "; ".join(parts)


def short_verdict(entry: dict[str, Any]) -> str:
    """One arm's change as a few words: the largest fall beyond noise, else the largest rise, else none."""
    down, up = removed(entry)
    delta, ci = entry.get("delta") or {}, entry.get("ci95") or {}
    if down:
        t = down[0]
        return f"{t} fell {fmt_delta(delta[t])} {fmt_ci(*ci[t])}"
    if up:
        t = up[0]
        return f"nothing fell beyond noise, {t} rose {fmt_delta(delta[t])} {fmt_ci(*ci[t])}"
    return "no change beyond noise"


def error_change(d: ReportData) -> str:
    """Section 6: which error the best arm removed on the worst slice, then the other arms in a line each."""
    arm = best_arm(d)
    if arm is None:
        return ""
    by_arm = {e["arm"]: e for e in d.error_deltas}
    e = by_arm[arm]
    seeds = e.get("n_seeds") or 1
    lines = [f"**What the turn fixed on {worst_label(d)}.** The AP@0.5 each error type costs the slice, iteration 0 "
             f"→ iteration 1 (CIs resample {'seeds × frames' if seeds > 1 else 'frames'}). {arm}, the arm with "
             f"the largest gain there: {arm_verdict(e)}."]
    others = [a for a in by_arm if a != arm]
    if others:
        lines.append("Other arms (every change: appendix E): " + "; ".join(
            f"{a}: {short_verdict(by_arm[a])}" for a in others) + ".")
    return " ".join(lines)


def error_delta_table(d: ReportData) -> str:
    """Appendix: every arm's change in each error type's cost on the worst slice, with its CI."""
    if not d.error_deltas:
        return "No arm has an iteration-1 eval, so no change in error costs."
    rows = []
    for e in d.error_deltas:
        ci = e.get("ci95") or {}
        rows.append([e["arm"]] + [f"{fmt_delta((e.get('delta') or {}).get(t))} "
                                  f"{fmt_ci(*ci[t]) if ci.get(t) else ''}".strip() for t in ERROR_TYPES])
    return md_table(["arm", *ERROR_TYPES], rows)
