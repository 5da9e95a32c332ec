"""Architecture: where the diagram comes from, the stage registry table and the diagram's numbers."""

from __future__ import annotations

from bddengine.report.data import (
    ReportData,
    labeler,
    mined_k,
    worst_delta_rows,
    worst_label,
)
from bddengine.report.tables import (
    NA,
    fmt_ci,
    fmt_delta,
    fmt_int,
    fmt_map,
    md_table,
    plural,
)


def architecture_notes(d: ReportData) -> str:
    """Where the diagram comes from; the per-stage table of run folders is in the appendix."""
    return (f"Stages and their inputs come from the stage registry (`bddengine.stages.STAGES`); the numbers in "
            f"the diagram are this run's. Diagram drawn by {d.architecture_renderer}; its Graphviz source is "
            f"`figures/architecture.dot`. What each stage reads and writes, and which run folders played it: "
            f"appendix A.")


def stage_registry_table(d: ReportData) -> str:
    """What each stage reads and writes, and which run folder played it."""
    used: dict[str, list[str]] = {}
    for ref in d.runs.ordered():
        used.setdefault(ref.stage, []).append(ref.name)
    rows = []
    for s in d.stages:
        if s.name == "synth" and not d.cfg.data.synthetic:
            continue
        runs = used.get(s.name, [])
        if s.name == "synth":
            shown = f"`{d.cfg.data.root}`"
        elif s.name == "report":
            shown = "this report"
        else:
            shown = ", ".join(f"`{r}`" for r in runs)
        rows.append([f"**{s.name}**", ", ".join(s.reads) or "nothing", s.writes, shown or "missing"])
    return md_table(["stage", "reads", "writes", "run folders"], rows, align="llll")


def architecture_numbers(d: ReportData) -> dict[str, list[str]]:
    """Short lines of this run's numbers for each stage's artifact in the diagram."""
    out: dict[str, list[str]] = {}
    c = d.result(d.runs.collect).get("metrics") or {}
    if c:
        out["synth"] = [f"{fmt_int(c.get('n_frames'))} frames collected from it"] if d.cfg.data.synthetic else []
        out["collect"] = [f"{fmt_int(c.get('n_frames'))} frames: {fmt_int(c.get('n_labeled'))} labeled + "
                          f"{fmt_int(c.get('n_unlabeled'))} unlabeled", f"{fmt_int(c.get('n_slices'))} slices"]
    emb = d.result(d.runs.embed)
    em = emb.get("metrics") or {}
    if em:
        model = emb.get("model") or {}
        init = "random init" if em.get("random_init") else model.get("pretrained")
        out["embed"] = [f"{fmt_int(em.get('n_frames'))} × {fmt_int(em.get('embedding_dim'))}-d vectors",
                        f"{model.get('arch', NA)}, {init}"]
    pools = (d.result(d.runs.split).get("metrics") or {}).get("n_frames") or {}
    if pools:
        out["split"] = [" · ".join(f"{k} {fmt_int(v)}" for k, v in pools.items() if k != "excluded")]
    t0 = d.result(d.runs.train0).get("metrics") or {}
    arms_trained = [a for a, f in d.runs.arms.items() if f.train]
    out["train"] = [f"iter 0: {plural(t0.get('epochs'), 'epoch')} on {fmt_int(t0.get('n_train_images'))} images"]
    if arms_trained:
        n_seeds = max(len(d.runs.arms[a].train) for a in arms_trained)
        out["train"].append(f"iter 1: {len(arms_trained)} arm(s) × {n_seeds} seed(s)")
    o = d.overall0
    out["eval"] = [f"iter 0 mAP@0.5 {fmt_map(o.get('map50'))} on {fmt_int(o.get('n_frames'))} frames"]
    if d.worst:
        out["eval"].append(f"worst: {worst_label(d)} {fmt_map(d.worst.get('map50'))}")
    k = mined_k(d)
    mined = [a for a, f in d.arms.items() if f.mined]
    out["mine"] = [f"k = {k} per arm", f"arms: {', '.join(mined)}"] if k else ["no mine run yet"]
    labeled = [a for a, f in d.arms.items() if f.autolabel_run]
    out["autolabel"] = [f"{len(labeled)} arm(s) auto-labeled ({labeler(d)})"] if labeled else ["no autolabel run yet"]
    rows = worst_delta_rows(d)
    out["report"] = [f"worst slice Δ {r['arm']} {fmt_delta(r['delta'])} {fmt_ci(r['ci_lo'], r['ci_hi'])}"
                     for r in rows[:4]] or ["iteration 0 only"]
    return out
