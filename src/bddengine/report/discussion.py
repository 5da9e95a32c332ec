"""The discussion sections: the turn at 100M frames, its limitations, how to reproduce it."""

from __future__ import annotations

from pathlib import Path

from bddengine.report.data import (
    ReportData,
    arm_commands,
    arm_labeler,
    arm_source,
    cost_of,
    mined_k,
    wall_time,
    worst_delta_rows,
)
from bddengine.report.headline import worst_rows
from bddengine.report.tables import (
    NA,
    fmt_bytes,
    fmt_ci,
    fmt_delta,
    fmt_int,
    fmt_map,
    fmt_seconds,
    fmt_usd,
    is_num,
    md_table,
    plural,
)
from bddengine.vectors import is_exact

TARGET_FRAMES = 100_000_000
"""The scale of the discussion: 1000x BDD100K's 100k frames."""


def scale_discussion(d: ReportData, *, table_only: bool = False) -> str:
    """What the turn costs at 100M frames, extrapolated from this run's wall times.

    ``table_only``: just the per-stage table of measured and extrapolated wall times.
    """
    c = d.result(d.runs.collect).get("metrics") or {}
    n = c.get("n_frames")
    if not is_num(n) or n <= 0:
        return "The collect run's frame count is missing, so nothing can be extrapolated."
    factor = TARGET_FRAMES / n
    emb = d.result(d.runs.embed)
    em = emb.get("metrics") or {}
    dim = em.get("embedding_dim") or emb.get("embedding_dim")
    dtype_bytes = 2 if (em.get("dtype") or emb.get("dtype")) == "float16" else 4
    rows = []
    main = [("collect", d.runs.collect), ("embed", d.runs.embed), ("split", d.runs.split),
            ("train iter 0", d.runs.train0), ("eval iter 0", d.runs.eval0)]
    for arm, f in d.arms.items():
        if arm in d.arms_compared or f.mine_run:
            refs = d.runs.arms[arm]
            main += [(f"mine ({arm})", refs.mine), (f"autolabel ({arm})", refs.autolabel)]
            if refs.train:
                main.append((f"train iter 1 ({arm})", refs.train[min(refs.train)]))
            break  # one arm shows the per-arm cost
    total = 0.0
    for label, ref in main:
        w = wall_time(d, ref)
        if w is None:
            continue
        total += w
        rows.append([label, fmt_seconds(w), fmt_seconds(w * factor)])
    rows.append(["**one turn, one arm**", f"**{fmt_seconds(total)}**", f"**{fmt_seconds(total * factor)}**"])
    device = (d.result(d.runs.train0).get("metrics") or {}).get("device", NA)
    if table_only:
        return md_table(["stage", "this run", f"×{factor:,.0f} (100M frames)"], rows)
    lines = [
        f"100M frames (1000× BDD100K) is {factor:,.0f}× this run's {fmt_int(n)}. Linear on the same hardware "
        f"({device}), one turn of one arm takes {fmt_seconds(total)} here, {fmt_seconds(total * factor)} at 100M "
        f"(per stage: appendix G). What changes:",
        "",
    ]
    if is_num(dim):
        gb = TARGET_FRAMES * dim * dtype_bytes / 1e9
        lines.append(
            f"- **Index.** {fmt_int(dim)}-d {('float16' if dtype_bytes == 2 else 'float32')} embeddings of 100M "
            f"frames take {gb:,.0f} GB. Above `mine.exact_max_pool` ({fmt_int(d.cfg.mine.exact_max_pool)} frames) "
            f"mining uses an approximate `{d.cfg.mine.approximate_index}` index; at 100M the vectors need "
            f"product quantisation and a sharded index." + _search_note(d))
    emb_w = wall_time(d, d.runs.embed)
    rate = em.get("frames_per_s")
    if not is_num(rate) and emb_w and is_num(em.get("n_frames")):
        rate = em["n_frames"] / emb_w
    if is_num(rate) and rate > 0:
        lines.append(
            f"- **Compute.** Embedding ran at {rate:,.0f} frames/s ({em.get('device', NA)}): "
            f"{fmt_seconds(TARGET_FRAMES / rate)} for 100M frames, a batch job on many GPUs, cached by content hash.")
    k = mined_k(d)
    a = d.cfg.autolabel
    if k:
        k_big = k * factor
        text = (f"- **Labeling cost.** A label budget that grows with the pool ({fmt_int(k)} → {fmt_int(k_big)} "
                f"frames per arm) costs {fmt_usd(k_big * a.usd_per_frame)} by hand at {fmt_usd(a.usd_per_frame)} "
                f"per frame; labeling all 100M frames would cost {fmt_usd(TARGET_FRAMES * a.usd_per_frame)}.")
        for arm, f in d.arms.items():
            c = cost_of(f)
            if not c or c.get("human_labeler") or not c.get("n_frames") or not is_num(c.get("usd_human")):
                continue
            per_frame = (c["usd_human"] + float(c.get("usd_compute") or 0)) / c["n_frames"]
            text += (f" {arm} paid {fmt_usd(per_frame)} per mined frame ({fmt_usd(per_frame * k_big)} grown)"
                     + ("" if c.get("saving_claimed") else ", no saving claimed") + ".")
        text += " Mining and review keep the bill proportional to the failures, not the fleet."
        lines.append(text)
    w = d.worst or {}
    ci = w.get("ci95") or [None, None]
    if is_num(ci[0]) and is_num(ci[1]) and ci[1] > ci[0] and w.get("n_frames"):
        width = ci[1] - ci[0]
        need = w["n_frames"] * (width / 0.02) ** 2
        lines.append(
            f"- **Evaluation.** The worst slice's 95% CI is {width:.3f} wide on {fmt_int(w['n_frames'])} frames; "
            f"0.02 wide needs about {fmt_int(need)} frames of it (width ∝ 1/√n): the eval pool must grow per "
            f"slice.")
    return "\n".join(lines)


def _search_note(d: ReportData) -> str:
    """What this run's k-NN search did, from the mine runs' metrics."""
    for arm in d.runs.arms.values():
        m = d.result(arm.mine).get("metrics") or {}
        if m.get("index_type") and is_num(m.get("search_s")):
            no_index = is_exact(m["index_type"]) and not m.get("index_build_s")  # exact search builds none
            how = (f"exactly (`{m['index_type']}`, no index built)" if no_index
                   else f"with a `{m['index_type']}` index")
            text = f" This run searched {fmt_int(m.get('n_eligible'))} frames {how} in {m['search_s']:.3f} s"
            if is_num(m.get("recall_at_k")):
                text += f" (recall@k {m['recall_at_k']:.3f} against exact search)"
            return text + "."
    return ""


def more_training_sentence(d: ReportData, init: str) -> str:
    """Whether iteration 1 also trained longer than iteration 0, from ``train.next_iter_init``.

    ``init``: what iteration 0 started from (its train run's recorded ``init_weights``)."""
    if d.cfg.train.next_iter_init == "previous":
        return ("Iteration 1 fine-tunes iteration 0, so part of any delta is more training; the random arms "
                "(same extra frames and epochs) are the comparison that matters.")
    return (f"Iteration 1 restarts from `{Path(init).name}` (`train.next_iter_init: model`), so the delta is not "
            f"extra training.")


def label_limitation(d: ReportData) -> str:
    """What the labels of the arms that ran were, and what that leaves out."""
    by_source: dict[str, list[str]] = {}
    for a, f in d.arms.items():
        if (src := arm_source(f)) is not None and not f.mine_only and not f.added_nothing:
            by_source.setdefault(src, []).append(a)
    empty = [a for a, f in d.arms.items() if f.added_nothing]
    if empty and not by_source:
        return (f"**No labels trained on.** {', '.join(empty)} added no labeled box, so iteration 1 never trained "
                "on any label of this turn.")
    if not by_source:
        return (f"**No labels measured.** No autolabel run was found, so the quality of the labels that "
                f"iteration 1 would train on (labeler `{d.cfg.autolabel.labeler}`) is unknown.")
    parts = []
    if "human" in by_source:
        parts.append(f"{', '.join(by_source['human'])}: human labels played by the hidden ground truth, exact as "
                     "no vendor is")
    machine = [a for s in ("pyramid", "auto") for a in by_source.get(s, [])]
    if machine:
        names = ", ".join(f"{a} ({arm_labeler(d.arms[a]) or NA})" for a in machine)
        parts.append(f"{names}: machine labels, whose errors (section 6) are part of the delta")
    if "pyramid" in by_source:
        audits = {a: (d.arms[a].autolabel_metrics or {}).get("n_audit_frames") for a in by_source["pyramid"]}
        parts.append("pyramid thresholds come from "
                     + ", ".join(f"{fmt_int(n)} audit frames ({a})" for a, n in audits.items())
                     + ": coarse for a class with few audit boxes")
    if "auto" in by_source:
        parts.append("auto arms drop their review boxes uncorrected")
    if empty:
        parts.append(f"{', '.join(empty)} added nothing and was not retrained")
    return "**Label sources.** " + "; ".join(parts) + "."


def limitations(d: ReportData) -> str:
    """At least six limitations, each with the number from this run that makes it concrete."""
    items = []
    w = d.worst or {}
    ci = w.get("ci95") or [None, None]
    if d.worst:
        width = (ci[1] - ci[0]) if (is_num(ci[0]) and is_num(ci[1])) else None
        items.append(
            f"**Small worst slice.** {fmt_int(w.get('n_frames'))} eval frames; its iteration-0 mAP@0.5 of "
            f"{fmt_map(w.get('map50'))} has a 95% CI of {fmt_ci(ci[0], ci[1], signed=False)}"
            + (f" ({width:.3f} wide)" if width is not None else "") + "; the minimum of many noisy estimates "
            "is partly worst by chance.")
    else:
        items.append(f"**No worst slice.** No slice reached {d.min_frames} eval frames, so the turn had no target.")
    seeds = {a: len(f.seeds) for a, f in d.arms.items() if a in d.arms_compared}
    if seeds and max(seeds.values()) > 1:
        spread = worst_rows(d.headline)
        parts = [f"{r['arm']} {fmt_delta(r['delta_min'])} … {fmt_delta(r['delta_max'])}"
                 for _, r in spread.iterrows() if int(r["n_seeds"]) > 1]
        items.append(
            f"**Few seeds.** Seeds per arm: {', '.join(f'{a} {n}' for a, n in seeds.items())}; worst-slice per-seed "
            f"deltas span {'; '.join(parts)}. So few seeds estimate training variance coarsely, and iteration 0 "
            f"was trained once.")
    else:
        items.append(
            f"**One training seed per arm** ({', '.join(seeds) or 'no arm trained'}). The CIs cover the eval "
            f"frames only, not training randomness, which can move a slice's mAP as much as a small delta; "
            f"`flywheel.seeds: 3` measures it.")
    rows = worst_delta_rows(d)
    if rows:
        widths = [r["ci_hi"] - r["ci_lo"] for r in rows if is_num(r["ci_lo"]) and is_num(r["ci_hi"])]
        n_zero = sum(not bool(r["ci_excludes_0"]) for r in rows)
        items.append(
            "**Uncertainty of the headline delta.** The worst-slice Δ CIs are up to "
            + (f"{max(widths):.3f}" if widths else NA) + f" wide; {n_zero} of {len(rows)} include 0"
            + (" (those arms are not shown to help)" if n_zero else "")
            + ". Arms are ranked only by the arm-vs-control CIs (section 6).")
        thin = [r for r in rows if bool(r.get("fragile"))]
        if thin:
            items.append(
                f"**Fragile worst slice.** {thin[0]['fragile_classes']}: fewer than {d.cfg.report.fragile_min_gt} "
                f"GT boxes there, so its mAP and Δ rest on a handful of boxes.")
    else:
        items.append("**No iteration 1.** No arm has an iteration-1 eval, so this report cannot say whether the "
                     "flywheel helped; it documents iteration 0 only.")
    n_tests = int(((d.headline["grouping"] == "slice") & d.headline["arm"].notna()).sum())
    if n_tests:
        n_sig = int((d.headline["ci_excludes_0"].astype(bool) & (d.headline["grouping"] == "slice")).sum())
        items.append(
            f"**Many comparisons.** Of {n_tests} (slice, arm) deltas, about {0.05 * n_tests:.1f} would exclude 0 "
            f"by chance ({n_sig} do); only the worst slice was the target.")
    if d.cfg.data.synthetic:
        items.append(
            "**Synthetic data.** The frames come from `bddengine synth`, not BDD100K cameras: absolute mAP and "
            "gains do not transfer to real data; the pipeline, protocol and statistics do.")
    else:
        n = (d.result(d.runs.collect).get("metrics") or {}).get("n_frames")
        items.append(f"**A subset of BDD100K.** {fmt_int(n)} collected frames out of 100k; rare slices hold "
                     f"few frames.")
    emb = d.result(d.runs.embed)
    em = emb.get("metrics") or {}
    model = emb.get("model") or {}
    if em.get("random_init") or emb.get("random_init") or (model and model.get("pretrained") is None):
        items.append(
            f"**Random-init embeddings.** A randomly initialised {model.get('arch', 'encoder')} "
            f"(`pretrained: null`) carries colour and layout, not semantics: k-NN mining matches looks more than "
            f"scenes (mining precision is measured, not assumed).")
    else:
        items.append(f"**Embedding choice.** Mining used {model.get('arch', NA)} ({model.get('pretrained', NA)}) "
                     f"embeddings only; other encoders were not compared.")
    t0 = d.result(d.runs.train0)
    ep0 = (t0.get("metrics") or {}).get("epochs")
    ep1 = sorted({(d.results.get(r.name, {}).get("metrics") or {}).get("epochs")
                  for arm in d.runs.arms.values() for r in arm.train.values()} - {None})
    init = (t0.get("inputs") or {}).get("init_weights", d.cfg.train.model)
    scratch = str(init).endswith(".yaml")
    items.append(
        f"**Short training.** Iteration 0: {plural(ep0, 'epoch')} "
        f"{'from scratch (' + str(init) + ')' if scratch else 'from ' + str(init)}"
        + (f"; iteration 1: {' / '.join(str(e) for e in ep1)} epoch{'' if ep1 == [1] else 's'}"
           if ep1 else "")
        + ". " + more_training_sentence(d, str(init)))
    items.append(label_limitation(d))
    missing = d.arms_missing
    if missing:
        items.append(f"**Missing arms.** {', '.join(missing)} had no usable iteration-1 eval; the comparison is "
                     f"between {', '.join(d.arms_compared) or 'no arms'} only.")
    return "\n".join(f"{i}. {text}" for i, text in enumerate(items, 1))


def reproduction(d: ReportData) -> str:
    """Config, seeds, versions, data hashes and the exact commands."""
    config = d.config_source
    lines = [
        f"**Config.** `{config}` (SHA-256 of the resolved config below: `{d.config_sha256}`).",
        "",
        "```yaml",
        d.config_yaml.rstrip(),
        "```",
        "",
    ]
    seeds = [f"config seed {d.cfg.seed} (splits, sampling, bootstrap)"]
    for arm, f in d.arms.items():
        if f.seeds:
            seeds.append(f"{arm}: training seeds {', '.join(str(s) for s in f.seeds)}")
    seeds.append(f"eval bootstrap {d.cfg.eval.n_boot} resamples; report paired bootstrap {d.n_boot} resamples, "
                 f"seeded with {d.cfg.seed} and the slice")
    lines += ["**Seeds.** " + "; ".join(seeds) + ".", ""]
    versions = d.result(d.runs.eval0).get("versions") or {}
    if versions:
        lines += ["**Package versions** (from `" + d.runs.eval0.name + "/result.json`):", "",
                  md_table(["package", "version"], [[k, v] for k, v in versions.items()], align="ll")]
        differ = sorted({r.name for r in d.runs.ordered() if d.result(r).get("versions") not in (None, versions)})
        lines.append("\nEvery run recorded the same versions." if not differ else
                     f"\nRuns with other versions: {', '.join(differ)}.")
        lines.append("")
    prov = d.provenance or {}
    files = prov.get("label_files") or {}
    if files:
        lines += ["**Label files** (from the collect run's `data_provenance.json`):", "",
                  md_table(["split", "path", "SHA-256", "size"],
                           [[s, f"`{v.get('path', NA)}`", f"`{v.get('sha256', NA)}`", fmt_bytes(v.get("bytes"))]
                            for s, v in files.items()], align="lllr"), ""]
    else:
        lines += ["**Label files:** the collect run has no `data_provenance.json`.", ""]
    weights = weights_files(d)
    if weights:
        lines += ["**Weights files** (SHA-256; files a run wrote as that run recorded them):", "",
                  md_table(["run", "", "file", "SHA-256"], weights, align="llll"), ""]
    else:
        lines += ["**Weights files:** no run read or wrote a weights file (random-init models from YAML).", ""]
    lines += ["**Commands**, in order:", "", "```bash", *commands(d), "```", "",
              f"or in one go: `bddengine flywheel --config {config}` (runs the stages in registry order; an "
              f"unchanged stage is recognised by its fingerprint and skipped)."]
    return "\n".join(lines)


def reproduction_short(d: ReportData) -> str:
    """The command and the config that rebuild the turn; the full notes are in the appendix."""
    return (f"`bddengine flywheel --config {d.config_source}` rebuilds every run this report read (config "
            f"SHA-256 `{d.config_sha256[:16]}…`, seed {d.cfg.seed}; the rest: appendix F).")


def commands(d: ReportData) -> list[str]:
    """The commands that rebuild every run this report read."""
    c = d.config_source
    out = []
    if d.cfg.data.synthetic:
        out.append(f"bddengine synth --config {c}")
    out += [f"bddengine collect --config {c}", f"bddengine embed --config {c}", f"bddengine split --config {c}",
            f"bddengine train --iter 0 --config {c}", f"bddengine eval --iter 0 --config {c}"]
    for arm, f in d.arms.items():
        if not (f.mine_run or f.seeds):
            continue
        cmds = arm_commands(arm, f.seeds, d.cfg.seed, c)
        if f.mine_only:  # mined for the comparison only: never labeled or retrained
            cmds = cmds[:1]
        elif f.added_nothing or not f.seeds:  # labeled (perhaps), never retrained
            cmds = cmds[:2] if f.autolabel_run else cmds[:1]
        out += [x for x in cmds if x not in out]  # label sources of one mining arm share its mine run
    out.append(f"bddengine report --config {c}")
    return out


def weights_files(d: ReportData) -> list[list[str]]:
    """Every weights file a run read or wrote, with its SHA-256: ``[run, role, path, sha256]``.

    Files a run wrote carry the digest it recorded; files it read are hashed now, and a
    file no longer there is said to be missing.
    """
    from bddengine.weights_trust import SHA_KEY, sha256_file

    rows = []
    digests: dict[Path, str] = {}  # one file read by several runs is hashed once
    for ref in d.runs.ordered():
        res = d.result(ref)
        for role, value in (res.get("inputs") or {}).items():
            if not isinstance(value, str) or not value.endswith((".pt", ".pth", ".bin", ".safetensors", ".ts")):
                continue
            path = Path(value) if Path(value).is_absolute() else d.runs.runs_dir / value
            if path not in digests:
                digests[path] = sha256_file(path) if path.is_file() else "missing now"
            digest = digests[path]
            rows.append([ref.name, f"read ({role})", f"`{value}`", f"`{digest}`"])
        for rel, digest in (res.get(SHA_KEY) or {}).items():
            rows.append([ref.name, "wrote", f"`{rel}`", f"`{digest}`"])
    return rows
