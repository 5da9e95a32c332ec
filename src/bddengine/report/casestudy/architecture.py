"""Architecture: where the diagram comes from, the stage registry table and the diagram's numbers."""

from __future__ import annotations

from pathlib import Path

from bddengine.report.data import (
    ReportData,
    arm_labeler,
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
    is_num,
    md_table,
    plural,
)


def architecture_notes(d: ReportData) -> str:
    """Where the diagram comes from; the per-stage table of run folders is in the appendix."""
    return (f"Each box names the stage that makes it (`bddengine.stages.STAGES`); its numbers are this run's. "
            f"Drawn by {d.architecture_renderer}; Graphviz source: `figures/architecture.dot`. What each stage "
            f"reads and writes, and which run folders played it: appendix A.")


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
    """Short lines of this run's numbers for each node of the diagram (`report.architecture.FLOW`)."""
    out: dict[str, list[str]] = {}
    prov = d.provenance or {}
    files = prov.get("label_files") or {}
    out["bdd100k"] = ["images + box labels",
                      plural(len(files), "label file") + " hashed" if files else f"{Path(str(d.cfg.data.root)).name}/"]
    c = d.result(d.runs.collect).get("metrics") or {}
    if c:
        out["collect"] = [f"{fmt_int(c.get('n_frames'))} frames", f"{fmt_int(c.get('n_labeled'))} labeled",
                          f"{fmt_int(c.get('n_slices'))} slices"]
    emb = d.result(d.runs.embed)
    em = emb.get("metrics") or {}
    if em:
        out["embed"] = [f"{fmt_int(em.get('n_frames'))} × {fmt_int(em.get('embedding_dim'))}-d",
                        f"{(emb.get('model') or {}).get('arch', NA)}"]
    pools = (d.result(d.runs.split).get("metrics") or {}).get("n_frames") or {}
    if pools:
        out["pools"] = [f"{k} {fmt_int(v)}" for k, v in pools.items() if k in ("train", "eval", "mining")]
    t0 = d.result(d.runs.train0).get("metrics") or {}
    if t0:
        out["iter0"] = [f"{plural(t0.get('epochs'), 'epoch')}", f"{fmt_int(t0.get('n_train_images'))} images"]
    o = d.overall0
    out["table0"] = [f"mAP@0.5 {fmt_map(o.get('map50'))}", f"{fmt_int(o.get('n_frames'))} eval frames"]
    out["worst"] = [worst_label(d), f"mAP@0.5 {fmt_map(d.worst.get('map50'))}"] if d.worst else ["none"]
    k = mined_k(d)
    n_mined = sum(1 for f in d.arms.values() if f.mined)
    out["mined"] = [f"k = {k}", plural(n_mined, "arm")] if k else ["no mine run"]
    labeled = [f for f in d.arms.values() if f.autolabel_run]
    who = list(dict.fromkeys(w for f in labeled if (w := arm_labeler(f))))
    out["labels"] = [", ".join(who) or d.cfg.autolabel.labeler, plural(len(labeled), "arm")] if labeled \
        else ["no autolabel run"]
    trained = [a for a, f in d.arms.items() if f.seeds]
    if trained:
        n_seeds = max(len(d.arms[a].seeds) for a in trained)
        out["iter1"] = [plural(len(trained), "arm"), f"× {plural(n_seeds, 'seed')}"]
    rows = worst_delta_rows(d)
    if rows:
        best = max(rows, key=lambda r: r["delta"] if is_num(r["delta"]) else float("-inf"))
        out["table1"] = [f"best: {best['arm']}", f"worst slice {fmt_map(best['map50_iter1'])}"]
        out["delta"] = [f"{best['arm']} {fmt_delta(best['delta'])}", fmt_ci(best["ci_lo"], best["ci_hi"])]
    else:
        out["table1"] = out["delta"] = ["iteration 0 only"]
    return out
