"""Curation: how the collected frames spread over the slices and pools."""

from __future__ import annotations

from typing import Any

from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.report.data import (
    ReportData,
)
from bddengine.report.tables import (
    fmt_int,
    fmt_pct,
    fmt_value,
    key_label,
)


def curation(d: ReportData) -> str:
    """Most common and rarest slices, the long tail, and the pools."""
    idx = d.slice_index or {}
    slices = sorted(idx.get("slices") or [], key=lambda s: (-s.get("n_frames", 0), key_label(s)))
    total = idx.get("n_frames") or sum(s.get("n_frames", 0) for s in slices)
    if not slices:
        return ("The collect run's `slice_index.json` is missing, so the slice counts cannot be shown: "
                f"re-run `bddengine collect --force --config {d.config_source}`.")

    def item(s: dict[str, Any]) -> str:
        return f"{key_label(s)} ({fmt_int(s['n_frames'])}, {fmt_pct(s['n_frames'] / total)})"

    small = [s for s in slices if s.get("n_frames", 0) < 50]
    lines = [
        f"The collect run holds {fmt_int(total)} frames in {fmt_int(len(slices))} weather × time of day × "
        f"scene slices. Most common: {'; '.join(item(s) for s in slices[:3])}. Rarest: "
        f"{'; '.join(item(s) for s in slices[::-1][:3])}. Under 50 frames: {len(small)} of {len(slices)} slices "
        f"({fmt_pct(sum(s['n_frames'] for s in small) / total)} of the frames)."
        + (" Shares by weather, time of day and scene: appendix C." if idx.get("marginals") else ""),
    ]
    split = d.result(d.runs.split).get("metrics") or {}
    pools = split.get("n_frames") or {}
    if pools:
        videos = split.get("n_videos") or {}
        eval_slices = split.get("eval_slices") or []
        lines.append(
            "Pools (frames / videos): " + "; ".join(f"{k} {fmt_int(v)} / {fmt_int(videos.get(k))}"
                                                      for k, v in pools.items()) + ". "
            f"The eval pool is balanced over {len(eval_slices)} slices "
            f"({fmt_int(split.get('eval_short_slices'))} of them had fewer frames than planned); whole videos "
            f"go to one pool only (hold-out check passed: {fmt_value(split.get('holdout_ok'))}).")
    return "\n".join(lines)


def curation_marginals(d: ReportData) -> str:
    """The collect run's share of frames per weather, time of day and scene value."""
    marginals = (d.slice_index or {}).get("marginals") or {}
    lines = []
    for attr in FRAME_ATTRIBUTES:
        counts = {r[attr]: r.get("n_frames", 0) for r in marginals.get(attr) or [] if attr in r}
        if counts:
            n = sum(counts.values())
            lines.append(f"- By {attr}: " + ", ".join(f"{k} {fmt_pct(v / n, 0)}" for k, v in counts.items()) + ".")
    return "\n".join(lines) or "The collect run's slice index has no marginal counts."
