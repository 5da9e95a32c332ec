"""Cost: the label bill of each arm, and a saving only where it was earned."""

from __future__ import annotations

from typing import Any

from bddengine.report.data import (
    ReportData,
    cost_of,
    mined_k,
)
from bddengine.report.tables import (
    fmt_int,
    fmt_seconds,
    fmt_usd,
    fmt_value,
    is_num,
    md_table,
)

COST_ROWS: tuple[tuple[str, str], ...] = (
    ("source", "label source"),
    ("n_frames", "mined frames"),
    ("frames_to_humans", "frames labeled by humans"),
    ("audit_frames", "  of which audit (calibration)"),
    ("review_frames", "  of which review queue"),
    ("frames_machine_labeled", "frames labeled by the machine"),
    ("boxes_auto_accepted", "machine boxes trained on"),
    ("labeler_wall_s", "labeler wall time"),
    ("usd_human", "paid to humans"),
    ("usd_human_range", "  (quoted price range)"),
    ("usd_compute", "labeler compute"),
    ("usd_human_all", "all frames by hand"),
    ("usd_saved", "saved (only at target precision)"),
)


def _cost_value(key: str, v: Any) -> str:
    if key.startswith("usd") and isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{fmt_usd(v[0])} to {fmt_usd(v[1])}"
    if key.startswith("usd"):
        return fmt_usd(v)
    if key.endswith("_s"):
        return fmt_seconds(v)
    return fmt_value(v)


def cost(d: ReportData) -> str:
    """The label bill of each arm, from the autolabel runs' cost tables; savings only where earned."""
    costs = {a: c for a, f in d.arms.items() if (c := cost_of(f)) is not None}
    lines = []
    if costs:
        lines += ["- " + saving_sentence(arm, c) for arm, c in costs.items()]
        lines.append("\nEvery auto-label measure per arm, the calibrated thresholds, accepted boxes per class and "
                     "the per-arm bill (who labeled how many frames, at which price): appendix D.")
    k = mined_k(d)
    if k and not costs:
        a = d.cfg.autolabel
        lo, hi = a.usd_per_frame_range
        lines.append(
            f"No autolabel run recorded a cost table. At the configured human price, labeling the {k} mined "
            f"frames of one arm costs {fmt_usd(k * a.usd_per_frame)} (quoted range {fmt_usd(k * lo)} to "
            f"{fmt_usd(k * hi)}; `autolabel.usd_per_frame`).")
    if not lines:
        return "No mine or autolabel run was found, so there is no label bill to show."
    return "\n".join(lines).strip()


def cost_table_full(d: ReportData) -> str:
    """Every arm's bill, row by row, from the autolabel runs' cost tables."""
    costs = {a: c for a, f in d.arms.items() if (c := cost_of(f)) is not None}
    if not costs:
        return "No autolabel run recorded a cost table."
    keys = [k for k, _ in COST_ROWS if any(k in c for c in costs.values())]
    labels = dict(COST_ROWS)
    return md_table(["", *costs], [[labels.get(k, k.replace("_", " ")),
                                    *[_cost_value(k, c.get(k)) for c in costs.values()]]
                                   for k in dict.fromkeys(keys)])


def saving_sentence(arm: str, c: dict[str, Any]) -> str:
    """What humans were paid for one arm and whether a saving is claimed (only at the target precision)."""
    by_hand, paid = c.get("usd_human_all"), c.get("usd_human")
    if c.get("human_labeler"):
        return f"{arm}: humans labeled every mined frame: {fmt_usd(by_hand)}, the by-hand price."
    if not is_num(paid):  # a cost table of an older shape: its numbers as they are, no claim
        return f"{arm}: no human cost recorded; no saving is claimed."
    text = (f"{arm}: humans labeled {fmt_int(c.get('frames_to_humans'))} of {fmt_int(c.get('n_frames'))} frames "
            f"({fmt_usd(paid)} of the {fmt_usd(by_hand)} by-hand price) plus {fmt_usd(c.get('usd_compute'))} of "
            f"labeler compute")
    if c.get("saving_claimed") and is_num(c.get("usd_saved")):
        return text + f": {fmt_usd(c['usd_saved'])} saved ({c.get('saving_note')})."
    why = str(c.get("saving_note") or "not measured").removeprefix("not claimed: ")
    return text + f"; no saving is claimed ({why})."
