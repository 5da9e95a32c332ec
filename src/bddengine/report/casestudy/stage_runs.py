"""The runs read: what each produced, its wall time and disk, and where the turn's time went."""

from __future__ import annotations

import re
from typing import Any

from bddengine.report.casestudy.shared import figure
from bddengine.report.data import (
    ArmFacts,
    ReportData,
)
from bddengine.report.tables import (
    NA,
    fmt_bytes,
    fmt_int,
    fmt_map,
    fmt_pct,
    fmt_seconds,
    fmt_value,
    is_num,
    md_table,
    plural,
)
from bddengine.runs import RunRef


def _input_names(result: dict[str, Any]) -> str:
    """The input runs of a run (or, for a first stage, what its inputs are called)."""
    inputs = {k: str(v).rstrip("/").split("/")[-1] for k, v in (result.get("inputs") or {}).items()}
    runs = [name for name in inputs.values() if re_run_name(name)]
    if runs:
        return ", ".join(dict.fromkeys(runs))
    return ", ".join(k.replace("_", " ") for k in inputs) or "none recorded"


def re_run_name(name: str) -> bool:
    """Looks like a run folder name (``05_eval_iter0``)."""
    return bool(re.match(r"^\d{2,}_[a-z]+", name))


def stage_output(ref: RunRef, result: dict[str, Any], facts: ArmFacts | None = None) -> str:
    """One line of what a run produced, from its metrics."""
    m = result.get("metrics") or {}
    if ref.stage == "collect":
        return (f"{fmt_int(m.get('n_frames'))} frames ({fmt_int(m.get('n_labeled'))} labeled, "
                f"{fmt_int(m.get('n_unlabeled'))} unlabeled), {fmt_int(m.get('n_boxes_labeled'))} boxes, "
                f"{fmt_int(m.get('n_slices'))} slices")
    if ref.stage == "embed":
        model = result.get("model") or {}
        init = "random init" if m.get("random_init") else (model.get("pretrained") or "pretrained")
        fps = m.get("frames_per_s")
        return (f"{fmt_int(m.get('n_frames'))} × {fmt_int(m.get('embedding_dim'))}-d vectors "
                f"({model.get('arch', NA)}, {init}), {f'{fps:,.1f}' if is_num(fps) else NA} frames/s")
    if ref.stage == "split":
        n = m.get("n_frames") or {}
        return " · ".join(f"{k} {fmt_int(v)}" for k, v in n.items()) or NA
    if ref.stage == "train":
        extra = m.get("n_autolabel_images")
        more = f" ({fmt_int(extra)} of them auto-labeled)" if is_num(extra) and extra else ""
        return (f"{plural(m.get('epochs'), 'epoch')} on {fmt_int(m.get('n_train_images'))} images{more} "
                f"({m.get('device', NA)})")
    if ref.stage == "eval":
        return (f"mAP@0.5 {fmt_map(m.get('map50'))} on {fmt_int(m.get('n_frames'))} frames, "
                f"{fmt_int(m.get('n_predictions'))} predictions")
    if ref.stage == "mine" and facts is not None and facts.mined:
        frames = facts.mined.get("frames") or []
        return (f"{len(frames)} frames mined ({facts.mined.get('strategy', NA)}, "
                f"{facts.mined.get('embedding', NA)} embedding)")
    return _generic_metrics(m)


def _generic_metrics(m: dict[str, Any], limit: int = 4) -> str:
    parts = [f"{k.replace('_', ' ')} {fmt_value(v)}" for k, v in m.items()
             if isinstance(v, (int, float, str)) and not isinstance(v, bool)][:limit]
    return ", ".join(parts) or "see its result.json"


def stage_rows(d: ReportData) -> tuple[list[list[str]], float, float]:
    """One row per run read (input, output, wall time, disk), with the totals."""
    rows = []
    total_s = total_b = 0.0
    facts_by_run = {f.mine_run: f for f in d.arms.values() if f.mine_run}
    for ref in d.runs.ordered():
        res = d.result(ref)
        wall, disk = res.get("wall_time_s"), res.get("disk_bytes")
        total_s += wall if is_num(wall) else 0
        total_b += disk if is_num(disk) else 0
        rows.append([f"**{ref.name}**", _input_names(res), stage_output(ref, res, facts_by_run.get(ref.name)),
                     fmt_seconds(wall), fmt_bytes(disk)])
    return rows, total_s, total_b


def stage_table(d: ReportData) -> str:
    """How many runs, how long and how much disk, and where the turn's time went."""
    rows, total_s, total_b = stage_rows(d)
    return (f"{len(rows)} run folders: {fmt_seconds(total_s)} of stage wall time, {fmt_bytes(total_b)} on disk "
            f"(per run: appendix B). " + turn_profile(d))


def stage_table_full(d: ReportData) -> str:
    """Input, output, wall time and disk of every run read."""
    rows, total_s, total_b = stage_rows(d)
    rows.append([f"**all {len(rows)} runs**", "", "", f"**{fmt_seconds(total_s)}**", f"**{fmt_bytes(total_b)}**"])
    note = ("One row per run folder (`<NN>_<stage>[_iter<k>][_<arm>]`). Wall time is each stage's own "
            "`wall_time_s` (the work inside the run, not process start-up); disk is the run folder's size when it "
            "was committed (`disk_bytes`).")
    return (md_table(["run", "input", "output", "wall time", "disk"], rows, align="lllrr") + "\n\n" + note + "\n\n"
            + figure(d, "turn_profile", "Wall time per step of the turn"))


def turn_profile(d: ReportData) -> str:
    """Where the turn's time went, from ``turn_profile.json``: the share of each kind of stage (the chart is in
    the appendix, with the table of every run)."""
    p = d.turn_profile
    if not p or not p.get("steps"):
        return (f"No `turn_profile.json` of this turn is in `{d.runs.runs_dir}` (`bddengine flywheel` writes it; "
                "stages run one by one have only their own wall times).")
    steps = p["steps"]
    total = sum(float(s["wall_s"]) for s in steps)
    by_stage: dict[str, float] = {}
    for s in steps:
        by_stage[s["stage"]] = by_stage.get(s["stage"], 0.0) + float(s["wall_s"])
    shares = ", ".join(f"{stage} {fmt_pct(secs / total, 0)}" for stage, secs in
                       sorted(by_stage.items(), key=lambda kv: -kv[1])) if total > 0 else "n/a"
    peak = max((s for s in steps if is_num(s.get("peak_rss_mb"))), key=lambda s: s["peak_rss_mb"], default=None)
    skipped = [s["step"] for s in steps if s.get("skipped")]
    cpu = sum(float(s["cpu_s"]) for s in steps)
    lines = [f"The flywheel's `turn_profile.json`: {len(steps)} steps, {fmt_seconds(total)} wall, {fmt_seconds(cpu)} "
             f"CPU. By stage: {shares}."]
    if peak is not None:
        lines.append(f"Peak memory {peak['peak_rss_mb']:,.0f} MB, in `{peak['step']}`.")
    if skipped:
        lines.append(f"{len(skipped)} step(s) were up to date and not re-run ({', '.join(skipped[:6])}"
                     f"{', ...' if len(skipped) > 6 else ''}): their time is the check, not the work.")
    if not any(s["stage"] == "report" for s in steps):
        lines.append("The report step itself is not included: the file was read while it ran.")
    return " ".join(lines) + " Chart: appendix B."
