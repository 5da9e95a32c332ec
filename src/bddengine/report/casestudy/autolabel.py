"""The case study's text: every section built from numbers read out of run folders.

`build_sections` turns a `ReportData` (what the stage read, `report.data`) into one
markdown block per template field (sections 1-7 here, the discussion, limitations and
reproduction notes in `report.discussion`); `fill_template` puts them in place;
`find_placeholders` is the guard the stage and the tests run on the result. Nothing
here reads a file: a number that a run did not record is reported as missing, with
the command that produces it.

The case study is meant to be skimmed in five minutes (about four pages, at most
`WORD_BUDGET` words): the headline is on page 1, each section keeps what a reader
needs to judge the turn, and the tables of every run, slice and class go to the
appendix (`build_appendix`, ``case_study_appendix.md``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.report.costs import arm_costs, cost_markdown
from bddengine.report.data import (
    ArmFacts,
    ReportData,
    arm_commands,
    arm_source,
    cost_of,
    labeler,
    mined_k,
    worst_delta_rows,
    worst_label,
)
from bddengine.report.discussion import limitations, reproduction, reproduction_short, scale_discussion
from bddengine.report.headline import GROUP_ORDER
from bddengine.report.inputs import mining_of
from bddengine.report.tables import (
    NA,
    contrast_markdown,
    fmt_bytes,
    fmt_ci,
    fmt_delta,
    fmt_int,
    fmt_map,
    fmt_pct,
    fmt_seconds,
    fmt_usd,
    fmt_value,
    headline_markdown,
    is_num,
    key_label,
    levels_cell,
    md_table,
    plural,
)
from bddengine.runs import RunRef
from bddengine.runs.layout import REPORT
from bddengine.stages import STAGES

_PLACEHOLDERS = (
    re.compile(r"\{\{[^{}]*\}\}"),
    re.compile(r"\bTODO\b"),
    re.compile(r"\bTBD\b"),
    re.compile(r"\be\.g\.", re.IGNORECASE),
    re.compile(r"lorem", re.IGNORECASE),
)
_FIELD = re.compile(r"\{\{\s*([a-z0-9_]+)\s*\}\}")
WORD_BUDGET = 2000
"""Words of ``case_study_v1.md`` (about four pages); the per-run tables live in the appendix."""
APPENDIX = Path(REPORT.appendix.file).name
MAIN_SLICES = 4
"""Iteration-0 slices listed in the main text (the worst first); all of them are in the appendix."""
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)


def find_placeholders(text: str) -> list[str]:
    """Every leftover placeholder: ``{{field}}``, TODO, TBD, "e.g." or lorem ipsum.

    Returns:
        One ``line N: 'match'`` string per occurrence (empty when the text is clean).
    """
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for pattern in _PLACEHOLDERS:
            out += [f"line {n}: {m.group(0)!r}" for m in pattern.finditer(line)]
    return out


def count_words(text: str) -> int:
    """Words of a markdown text as a reader sees them: table rules, image links and code fences left out."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    words = [w for w in text.split() if re.search(r"[0-9A-Za-z]", w)]
    return len(words)


def template_fields(template: str) -> list[str]:
    """The ``{{field}}`` names a template uses, in order."""
    return list(dict.fromkeys(_FIELD.findall(_COMMENT.sub("", template))))


def fill_template(template: str, sections: dict[str, str]) -> str:
    """Replace each ``{{field}}`` with its section; unknown fields stay (and are caught)."""
    body = _COMMENT.sub("", template)
    filled = _FIELD.sub(lambda m: sections.get(m.group(1), m.group(0)), body)
    return re.sub(r"\n{3,}", "\n\n", filled).strip() + "\n"


def build_sections(d: ReportData) -> dict[str, str]:
    """Every template field's markdown."""
    return {
        "title": f"Case study: {d.cfg.name}, one turn of the data flywheel",
        "generated": _generated(d),
        "summary": summary(d),
        "problem_statement": problem_statement(d),
        "architecture_figure": figure(d, "architecture", "Pipeline architecture"),
        "architecture_notes": architecture_notes(d),
        "stage_table": stage_table(d),
        "curation": curation(d),
        "slice_distribution_figure": figure(d, "slice_distribution", "Frames per slice"),
        "iter0": iteration0(d),
        "worst_slice": worst_slice(d),
        "worst_slice_failures_figure": figure(d, "worst_slice_failures", "Worst-slice failure frames"),
        "failure_reasons": failure_reasons(d),
        "mining": mining(d),
        "mined_frames_figure": figure(d, "mined_frames_grid", "Mined frames"),
        "autolabel": autolabel(d),
        "autolabel_pr_figure": figure(d, "autolabel_pr", "Auto-label precision and recall"),
        "cost": cost(d),
        "headline": headline(d),
        "slice_delta_figure": figure(d, "slice_delta", "Per-slice delta"),
        "scale_discussion": scale_discussion(d),
        "limitations": limitations(d),
        "reproduction": reproduction_short(d),
    }


# --- small shared pieces -----------------------------------------------------------------


FIGURE_SOURCES = {
    "architecture": "the report (architecture.png)",
    "slice_distribution": "the collect run (slice_distribution.png)",
    "worst_slice_failures": "the iteration-0 eval run (worst_slice_failures.png)",
    "mined_frames_grid": "a mine run (mined_frames_grid.png)",
    "autolabel_pr": "an autolabel run (autolabel_pr.png)",
    "slice_delta": "the report (slice_delta.png)",
    "turn_profile": "the flywheel's turn_profile.json",
}


def figure(d: ReportData, name: str, alt: str) -> str:
    """A markdown image, or a plain sentence saying which run did not write it."""
    link = d.figures.get(name)
    if link:
        source = d.figure_sources.get(name)
        return f"![{alt}]({link})" + (f"\n\n*From `{source}`.*" if source else "")
    return f"*Figure not available: {FIGURE_SOURCES.get(name, name)} was not found.*"


def _generated(d: ReportData) -> str:
    return (f"Generated by `bddengine report` on {d.generated_at} from the run folders under "
            f"`{d.runs.runs_dir}` (iteration-0 eval: `{d.runs.eval0.name}`). Every number below is read from "
            f"those folders' result files.")


# --- sections ------------------------------------------------------------------------------


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
    missing = d.arms_missing
    if missing:
        lines.append(f"- Missing arm(s): {', '.join(missing)} (see section 7).")
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
                                    fragile_min_gt=d.cfg.report.fragile_min_gt)]
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


def problem_statement(d: ReportData) -> str:
    """What the turn tries to show, with this run's numbers."""
    c = d.result(d.runs.collect).get("metrics", {})
    split = d.result(d.runs.split).get("metrics", {})
    train = d.result(d.runs.train0)
    n_train = (split.get("n_frames") or {}).get("train")
    if d.cfg.data.synthetic:
        data = (f"the synthetic driving world written by `bddengine synth` in the BDD100K det_20 layout "
                f"({fmt_int(c.get('n_frames'))} frames collected; rendered scenes, not camera images)")
    else:
        data = (f"BDD100K det_20 ({fmt_int(c.get('n_frames'))} frames collected: {fmt_int(c.get('n_labeled'))} "
                f"labeled, {fmt_int(c.get('n_unlabeled'))} for the mining pool)")
    k = mined_k(d)
    arms = [a for a, f in d.arms.items() if not f.mine_only]
    only = [a for a, f in d.arms.items() if f.mine_only]
    text = [
        "A detector with a good overall score can still fail in one condition (night, rain, fog). The data "
        "flywheel finds the worst slice, mines unlabeled frames like its failures, labels them, retrains, and "
        "checks whether that slice improved.",
        "",
        f"This turn runs on {data}. Iteration 0 trains "
        f"`{(train.get('inputs') or {}).get('init_weights', d.cfg.train.model)}` for "
        f"{plural((train.get('metrics') or {}).get('epochs'), 'epoch')} on {fmt_int(n_train)} frames, scored per "
        f"weather × time of day × scene slice (official BDD100K protocol).",
    ]
    if k is not None:
        text.append(
            f"Each retraining arm spends the same label budget of {k} frames from the mining pool of "
            f"{fmt_int((split.get('n_frames') or {}).get('mining'))} unlabeled frames: the arms are "
            f"{', '.join(arms)}" + (f" ({', '.join(only)} is only mined, for comparison)" if only else "") + ".")
    else:
        text.append(f"The retraining arms asked for are {', '.join(arms) or 'none'}; none has mined frames yet.")
    text += [
        "",
        "Does the worst slice's mAP@0.5 rise beyond the noise, more with targeted mining than at random, and what "
        "do machine labels cost or save on it against human ones?",
    ]
    return "\n".join(text)


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
    for s in STAGES:
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
    return md_table(["run", "input", "output", "wall time", "disk"], rows, align="lllrr") + "\n\n" + note


def turn_profile(d: ReportData) -> str:
    """Where the turn's time went, from ``turn_profile.json``: the share of each kind of stage, and the chart."""
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
    return " ".join(lines) + "\n\n" + figure(d, "turn_profile", "Wall time per step of the turn")


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
        f"scene slices.",
        "",
        f"- Most common slices: {'; '.join(item(s) for s in slices[:3])}.",
        f"- Rarest slices: {'; '.join(item(s) for s in slices[::-1][:3])}.",
        f"- Slices under 50 frames: {len(small)} of {len(slices)} "
        f"({fmt_pct(sum(s['n_frames'] for s in small) / total)} of the frames).",
    ]
    if idx.get("marginals"):
        lines.append("- Shares by weather, time of day and scene: appendix C.")
    split = d.result(d.runs.split).get("metrics") or {}
    pools = split.get("n_frames") or {}
    if pools:
        lines += ["", md_table(["pool", "frames", "videos"],
                               [[k, fmt_int(v), fmt_int((split.get("n_videos") or {}).get(k))]
                                for k, v in pools.items()])]
        eval_slices = split.get("eval_slices") or []
        lines.append(
            f"\nThe eval pool is balanced over {len(eval_slices)} slices "
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


def _slice_rows(rows: list[dict[str, Any]], min_frames: int, worst_key: dict[str, str] | None) -> list[list[str]]:
    out = []
    for r in rows:
        key = {a: r.get(a) for a in FRAME_ATTRIBUTES}
        label = key_label(key) if r.get("grouping") == "slice" else f"{r['grouping']}: {r.get(r['grouping'])}"
        if worst_key and key == worst_key:
            label = f"**{label}** (worst)"
        elif r.get("grouping") == "slice" and r.get("n_frames", 0) < min_frames:
            label += f" (< {min_frames} frames)"
        out.append([label, fmt_int(r.get("n_frames")), fmt_map(r.get("map50")),
                    fmt_ci(r.get("ci_lo"), r.get("ci_hi"), signed=False), fmt_map(r.get("map"))])
    return out


def iteration0(d: ReportData) -> str:
    """Overall, per class, per slice and per marginal scores of the iteration-0 detector."""
    o = d.overall0
    res = d.result(d.runs.eval0)
    m = res.get("metrics") or {}
    lines = [
        f"Overall mAP@0.5 (BDD100K protocol): **{fmt_map(o.get('map50'))}** (95% bootstrap CI "
        f"{fmt_ci(o.get('ci_lo'), o.get('ci_hi'), signed=False)}), mAP@0.5:0.95 {fmt_map(o.get('map'))}, on "
        f"{fmt_int(o.get('n_frames'))} eval frames with {fmt_int(m.get('n_predictions'))} predictions "
        f"(`{d.runs.eval0.name}`).",
        "",
    ]
    class_rows = [[c, fmt_map(o.get(f"ap50/{c}")), fmt_map(o.get(f"recall/{c}"))]
                  for c in CLASSES if is_num(o.get(f"ap50/{c}"))]
    absent = [c for c in CLASSES if not is_num(o.get(f"ap50/{c}"))]
    if class_rows:
        lines += [md_table(["class", "AP@0.5", "recall@0.5"], class_rows)]
        if absent:
            lines.append(f"\nClasses without ground truth in the eval pool (not scored): {', '.join(absent)}.")
    slices = _sorted_slices(d)
    worst_key = d.worst["key"] if d.worst else None
    shown = slices[:MAIN_SLICES]
    lines += ["", f"The {len(shown)} lowest of {len(slices)} slices (the worst is chosen among those with at least "
                  f"{d.min_frames} frames; every slice and marginal: appendix C):", "",
              md_table(["slice", "frames", "mAP@0.5", "95% CI", "mAP@0.5:0.95"],
                       _slice_rows(shown, d.min_frames, worst_key))]
    return "\n".join(lines)


def _sorted_slices(d: ReportData) -> list[dict[str, Any]]:
    slices = [r for r in d.eval0_table if r.get("grouping") == "slice"]
    slices.sort(key=lambda r: (r.get("map50") is None, r.get("map50") or 0, -r.get("n_frames", 0)))
    return slices


def iteration0_slices(d: ReportData) -> str:
    """Every iteration-0 slice and marginal score."""
    worst_key = d.worst["key"] if d.worst else None
    lines = [md_table(["slice", "frames", "mAP@0.5", "95% CI", "mAP@0.5:0.95"],
                      _slice_rows(_sorted_slices(d), d.min_frames, worst_key))]
    marg = [r for r in d.eval0_table if r.get("grouping") in ("weather", "timeofday", "scene")]
    marg.sort(key=lambda r: (GROUP_ORDER[r["grouping"]], r.get("map50") is None, r.get("map50") or 0))
    if marg:
        lines += ["", "Per marginal (every frame with that attribute value):", "",
                  md_table(["marginal", "frames", "mAP@0.5", "95% CI", "mAP@0.5:0.95"],
                           _slice_rows(marg, d.min_frames, None))]
    return "\n".join(lines)


def _worst_row(d: ReportData) -> dict[str, Any]:
    if not d.worst:
        return {}
    return next((r for r in d.eval0_table if r.get("grouping") == "slice"
                 and {a: r.get(a) for a in FRAME_ATTRIBUTES} == d.worst["key"]), {})


def worst_slice(d: ReportData) -> str:
    """The worst slice and how it compares with the whole eval pool, per class."""
    if not d.worst:
        return (f"No slice of the eval pool has at least {d.min_frames} frames (`eval.min_eval_frames`), so "
                f"no worst slice was picked and nothing was mined for one.")
    w, o, row = d.worst, d.overall0, _worst_row(d)
    ci = w.get("ci95") or [None, None]
    text = [
        f"Worst slice: **{worst_label(d)}** ({fmt_int(w.get('n_frames'))} eval frames, mAP@0.5 "
        f"{fmt_map(w.get('map50'))}, 95% CI {fmt_ci(ci[0], ci[1], signed=False)}) against "
        f"{fmt_map(o.get('map50'))} for the whole eval pool.",
    ]
    rows = [[c, fmt_map(row.get(f"ap50/{c}")), fmt_map(o.get(f"ap50/{c}")), fmt_map(row.get(f"recall/{c}"))]
            for c in CLASSES if is_num(row.get(f"ap50/{c}"))]
    if rows:
        text += ["", md_table(["class", "AP@0.5 worst slice", "AP@0.5 overall", "recall worst slice"], rows)]
    return "\n".join(text)


def reason_kind(reason: str) -> str:
    """Group a failure reason string of the eval stage into its kind."""
    if reason.startswith("AP@0.5 is 0"):
        return "AP@0.5 is 0 (no ground-truth box found at IoU 0.5)"
    if reason.startswith("recall"):
        return "recall below the failure threshold"
    if "false positive" in reason:
        return "false positives above the score threshold"
    if reason.startswith("no detection"):
        return "no detection above the score threshold"
    return reason


def failure_reasons(d: ReportData) -> str:
    """Counts of the eval stage's failure reasons in the worst slice."""
    if not d.worst:
        return ""
    n = d.worst.get("n_frames") or 0
    if not d.failures:
        return (f"None of the worst slice's {fmt_int(n)} frames is a failure frame (AP@0.5 of 0 or recall below "
                f"{d.cfg.eval.failure_recall} at score {d.cfg.eval.failure_score}).")
    kinds = Counter(reason_kind(r) for f in d.failures for r in set(f.get("reasons") or []))
    rows = [[k, fmt_int(v), fmt_pct(v / len(d.failures), 0)] for k, v in kinds.most_common()]
    gt = Counter()
    missed = sum(f.get("fn") or 0 for f in d.failures)
    boxes = sum(f.get("n_gt") or 0 for f in d.failures)
    for f in d.failures:
        gt.update(f.get("gt_classes") or {})
    lines = [
        f"{len(d.failures)} of the worst slice's {fmt_int(n)} eval frames are failure frames (AP@0.5 of 0, or "
        f"recall below {d.cfg.eval.failure_recall} at score ≥ {d.cfg.eval.failure_score}), for these reasons:",
        "",
        md_table(["reason", "frames", "share of failure frames"], rows),
        "",
        f"They miss {fmt_int(missed)} of their {fmt_int(boxes)} ground-truth boxes; the boxes they hold by class: "
        + ", ".join(f"{c} {v}" for c, v in gt.most_common()) + ".",
    ]
    return "\n".join(lines)


def _matches_worst(frame: dict[str, Any], worst_key: dict[str, str] | None) -> bool | None:
    if "matches_slice" in frame:
        return bool(frame["matches_slice"])
    if worst_key and all(a in frame for a in FRAME_ATTRIBUTES):
        return {a: frame[a] for a in FRAME_ATTRIBUTES} == worst_key
    return None


def mining_rows(d: ReportData) -> list[dict[str, Any]]:
    """Per arm with a mine run: frames mined, worst-slice precision against the base rate, lift.

    The mine stage's own ``mining_precision.json`` numbers are used when present; otherwise
    precision is counted from ``mined.json`` and the base rate from the split's mining pool.
    """
    base = (d.mining_pool_in_worst / d.mining_pool_n) if d.mining_pool_n else None
    worst_key = d.worst["key"] if d.worst else None
    out = []
    for arm, f in d.arms.items():
        if not f.mined:
            continue
        frames = f.mined.get("frames") or []
        known = [h for h in (_matches_worst(fr, worst_key) for fr in frames) if h is not None]
        p = f.mining_numbers or {}
        precision = p.get("slice_precision", (sum(known) / len(known)) if known else None)
        base_rate = p.get("slice_base_rate", base)
        lift = p.get("slice_lift", (precision / base_rate) if is_num(precision) and base_rate else None)
        out.append({
            "arm": arm, "strategy": f.mined.get("strategy"), "embedding": f.mined.get("embedding"),
            "k": len(frames), "in_slice": sum(known) if known else None, "precision": precision,
            "base_rate": base_rate, "lift": lift, "failed_precision": p.get("failed_class_precision"),
            "failed_base_rate": p.get("failed_class_base_rate"), "failed_lift": p.get("failed_class_lift"),
            "failed_classes": p.get("failed_classes") or f.mined.get("failed_classes") or [],
        })
    return out


def _lift(x: Any) -> str:
    return f"{x:.1f}×" if is_num(x) else NA


def mining(d: ReportData) -> str:
    """Mining precision per arm against the base rate of the mining pool."""
    rows = mining_rows(d)
    lines = []
    if d.mining_pool_n:
        lines.append(
            f"Base rate: {fmt_int(d.mining_pool_in_worst)} of the {fmt_int(d.mining_pool_n)} mining-pool frames "
            f"({fmt_pct(d.mining_pool_in_worst / d.mining_pool_n)}) are in the worst slice, what random mining hits "
            f"on average. Precision: the share of mined frames in the worst slice (k-NN never sees attributes); "
            f"lift: precision over the base rate.")
    if rows:
        failed = next((r["failed_classes"] for r in rows if r["failed_classes"]), [])
        with_failed = any(is_num(r["failed_precision"]) for r in rows) and not all(
            is_num(r["failed_lift"]) and abs(r["failed_lift"] - 1) < 1e-9 for r in rows)  # every frame has them
        headers = ["arm", "strategy", "embedding", "frames mined", "in worst slice", "precision", "base rate",
                   "lift"]
        if with_failed:
            headers += ["failed-class precision", "its base rate", "its lift"]
        table = []
        by_run: dict[Any, list[str]] = {}
        for r in rows:
            by_run.setdefault(d.arms[r["arm"]].mine_run or r["arm"], []).append(r["arm"])
        seen = set()
        for r in rows:
            run = d.arms[r["arm"]].mine_run or r["arm"]
            if run in seen:  # label sources of one mining arm share its mine run: one row
                continue
            seen.add(run)
            sharing = by_run[run]
            name = (mining_of(r["arm"]) + f" ({', '.join(sharing)})" if len(sharing) > 1 else r["arm"]) \
                + (" (mining only)" if d.arms[r["arm"]].mine_only else "")
            row = [name, r["strategy"] or NA, r["embedding"] or NA, fmt_int(r["k"]), fmt_int(r["in_slice"]),
                   fmt_pct(r["precision"]), fmt_pct(r["base_rate"]), _lift(r["lift"])]
            if with_failed:
                row += [fmt_pct(r["failed_precision"]), fmt_pct(r["failed_base_rate"]), _lift(r["failed_lift"])]
            table.append(row)
        lines += ["", md_table(headers, table, align="lll" + "r" * (len(headers) - 3))]
        if with_failed and failed:
            lines.append(f"\nFailed-class precision: the share of mined frames holding a (hidden GT) box of a class "
                         f"the detector failed on in the worst slice ({', '.join(failed)}).")
    for a, f in d.arms.items():
        if f.mined:
            continue
        strategy = a.removesuffix("-detector")
        lines.append(f"\n- Arm **{a}**: no mine run was found; run "
                     f"`bddengine mine --strategy {strategy}"
                     f"{' --embedding detector' if a.endswith('-detector') else ''} --config {d.config_source}`.")
    only = [a for a, f in d.arms.items() if f.mine_only]
    if only:
        lines.append(f"\n{', '.join(only)}: mined for this comparison only (`flywheel.mine_only`), not retrained.")
    if not rows and not d.arms:
        lines.append("No retraining arm is configured (`flywheel.arms` is empty).")
    return "\n".join(lines).strip()


def _overall(q: dict[str, Any], block: str, key: str) -> Any:
    return ((q.get(block) or {}).get("overall") or {}).get(key)


def _routes(m: dict[str, Any]) -> str:
    n = m.get("n_boxes")
    if isinstance(n, dict) and n:
        return " / ".join(fmt_int(n.get(k)) for k in ("accept", "review", "drop"))
    return NA


def _skippable(q: dict[str, Any]) -> str:
    s = q.get("skippable")
    if isinstance(s, dict) and is_num(s.get("recall")):
        return (f"{fmt_pct(s['recall'])} of GT boxes at score ≥ {s.get('threshold', 0):.2f} "
                f"(precision {fmt_map(s.get('precision'))})")
    note = q.get("skippable_note")
    return str(note).split(":")[0] if note else NA


AUTOLABEL_ROWS: tuple[tuple[str, Any], ...] = (
    ("label source", lambda q, m: m.get("label_source") or q.get("label_source") or NA),
    ("labeler", lambda q, m: q.get("labeler") or m.get("labeler") or NA),
    ("frames labeled by humans / machine", lambda q, m: f"{fmt_int(m.get('n_human_frames'))} / "
                                                        f"{fmt_int(m.get('n_machine_frames'))}"),
    ("machine boxes accepted / review / dropped", lambda q, m: _routes(m)),
    ("accepted machine boxes: precision", lambda q, m: fmt_map(_overall(q, "accepted", "precision")
                                                               if q else m.get("precision"))),
    ("accepted machine boxes: recall", lambda q, m: fmt_map(_overall(q, "accepted", "recall")
                                                            if q else m.get("recall"))),
    ("training labels: precision / recall", lambda q, m: f"{fmt_map(_overall(q, 'training_labels', 'precision'))} / "
                                                         f"{fmt_map(_overall(q, 'training_labels', 'recall'))}"),
    ("skippable human work", lambda q, m: _skippable(q)),
)


def calibration_markdown(d: ReportData) -> str:
    """The pyramid's calibrated thresholds, and per slice (worst vs the rest) what they did."""
    lines = []
    for arm, f in d.arms.items():
        q = f.quality or {}
        per_slice = q.get("per_slice") or []
        if arm_source(f) not in ("pyramid", "auto") or not per_slice:
            continue
        cal = q.get("calibration") or {}
        if cal.get("per_class"):
            parts = []
            for c, t in cal["per_class"].items():
                if t.get("accept") is None:
                    parts.append(f"{c}: no auto-accept ({t.get('reason')})")
                else:
                    parts.append(f"{c}: accept ≥ {t['accept']:.3f}, drop < {t['drop']:.3f} "
                                 f"({t['n_boxes']} audit boxes)")
            lines.append(f"**{arm}**: thresholds from {len(cal.get('audit_frames') or [])} human-labeled audit "
                         f"frames at target precision {cal.get('target_precision')}: " + "; ".join(parts) + ".")
        else:
            t = q.get("thresholds") or {}
            lines.append(f"**{arm}**: configured thresholds (accept ≥ {t.get('accept')}, drop < {t.get('drop')}), "
                         "no audit.")
        rows = [[r["group"], fmt_int(r["n_frames"]), fmt_map(r["accepted_precision"]), fmt_map(r["accepted_recall"]),
                 fmt_pct(r["review_share"]), fmt_pct(r["drop_share"]), fmt_pct(r["human_frame_share"])]
                for r in per_slice]
        lines += ["", md_table(["frames of", "frames", "accepted P", "accepted R", "boxes to review",
                                "boxes dropped", "frames to humans"], rows, align="lrrrrrr"), ""]
    if lines:
        lines.append("P / R: accepted machine boxes against the hidden ground truth at IoU 0.5, audit frames left out.")
    return "\n".join(lines).strip()


def autolabel(d: ReportData) -> str:
    """Auto-label quality per arm, from each autolabel run's quality.json."""
    have = {a: f for a, f in d.arms.items() if f.quality is not None or f.autolabel_metrics}
    if not have:
        return ("No autolabel run was found for any arm, so there is no auto-label quality to report: run "
                "`bddengine autolabel --arm <arm>` for each arm after mining.")
    lines = []
    if all("accepted" in (f.quality or {}) for f in have.values()):
        t = (d.cfg.autolabel.accept, d.cfg.autolabel.drop)
        thresholds = next(((f.quality or {}).get("thresholds") for f in have.values()), None) or {}
        lines += [
            f"Machine boxes are accepted, sent to review or dropped by score (configured: accept ≥ "
            f"{thresholds.get('accept', t[0])}, drop < {thresholds.get('drop', t[1])}; a pyramid's calibrated "
            f"thresholds below), scored against the mined frames' hidden ground truth (IoU "
            f"{next(iter(have.values())).quality.get('iou_threshold', 0.5)}).", "",
            md_table(["measure", *have], [[label, *[fn(f.quality or {}, f.autolabel_metrics or {})
                                                    for f in have.values()]] for label, fn in AUTOLABEL_ROWS])]
        cal = calibration_markdown(d)
        if cal:
            lines += ["", cal]
        if any(_per_class_rows(f) for f in have.values()):
            lines.append("\nAccepted boxes per class and arm: appendix D.")
    else:
        lines += _generic_quality(d, have)
    missing = [a for a, f in d.arms.items() if a not in have and not f.mine_only]
    if missing:
        lines.append(f"\nNo autolabel run for: {', '.join(missing)}.")
    return "\n".join(lines).strip()


def _per_class_rows(f: ArmFacts) -> list[list[str]]:
    per_class = ((f.quality or {}).get("accepted") or {}).get("per_class") or {}
    return [[c, fmt_int(v.get("n_gt")), fmt_int(v.get("tp")), fmt_int(v.get("fp")), fmt_int(v.get("fn")),
             fmt_map(v.get("precision")), fmt_map(v.get("recall"))]
            for c, v in per_class.items() if v.get("n_gt") or v.get("tp") or v.get("fp")]


def autolabel_per_class(d: ReportData) -> str:
    """Accepted boxes per class, one table per arm with an autolabel quality file."""
    lines = []
    for arm, f in d.arms.items():
        rows = _per_class_rows(f)
        if rows:
            lines += [f"**{arm}** (`{f.autolabel_run}`):", "",
                      md_table(["class", "GT boxes", "TP", "FP", "FN", "precision", "recall"], rows), ""]
    return "\n".join(lines).strip() or "No autolabel run recorded per-class quality."


def _generic_quality(d: ReportData, have: dict[str, ArmFacts]) -> list[str]:
    """A quality.json of another shape: its numbers as they are."""
    scalars = {a: {k: v for k, v in {**(f.autolabel_metrics or {}), **(f.quality or {})}.items()
                   if is_num(v)} for a, f in have.items()}
    keys = list(dict.fromkeys(k for s in scalars.values() for k in s))
    if not keys:
        return ["The autolabel runs recorded no numbers this report can read."]
    return [f"Numbers recorded by the autolabel runs (labeler: `{labeler(d)}`):", "",
            md_table(["measure", *have], [[k.replace("_", " "), *[fmt_value(scalars[a].get(k)) for a in have]]
                                          for k in keys])]


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
        lines.append("\nThe per-arm bill (who labeled how many frames, at which price): appendix D.")
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


def headline(d: ReportData) -> str:
    """What the turn did to the worst slice, arm against control, and what is missing.

    The per-arm table of the worst slice and overall is in the summary; every slice's
    rows are in the appendix.
    """
    lines = []
    if d.arms_compared:
        c = d.contrasts
        if c is not None and not c.empty:
            lines += ["", "Arm against control (difference of the two deltas; iteration 0 cancels out):", "",
                      contrast_markdown(c, only="worst")]
        sig = d.headline[d.headline["ci_excludes_0"].astype(bool) & (d.headline["grouping"] == "slice")]
        firm = sig[~sig["fragile"].astype(bool)]
        n_tests = int(((d.headline["grouping"] == "slice") & d.headline["arm"].notna()).sum())
        lines.append(f"\nOf all {n_tests} (slice, arm) deltas, {len(sig)} have a CI excluding 0 "
                     f"({int((sig['delta'] > 0).sum())} up, {int((sig['delta'] < 0).sum())} down; "
                     f"{len(firm)} on slices not fragile). Every slice: appendix E.")
    else:
        lines.append("**No arm has an iteration-1 eval, so no delta can be computed yet.** Iteration-0 mAP@0.5 "
                     "per slice is in section 5.")
    lines += source_comparison(d)
    for arm in d.arms_empty:
        lines.append(f"\n**{arm} added nothing**: `{d.arms[arm].autolabel_run}` gave iteration 1 no labeled box, "
                     f"so the flywheel did not retrain it; it has no delta.")
    for arm, f in d.arms.items():
        if arm in d.arms_compared or f.mine_only or f.added_nothing:
            continue
        todo = ", ".join(f.missing) or "usable iteration-1 eval"
        cmds = arm_commands(arm, [], d.cfg.seed, d.config_source)
        done = {"mine": f.mine_run is not None, "autolabel": f.autolabel_run is not None}
        cmds = [c for c in cmds if not any(c.startswith(f"bddengine {k} ") and v for k, v in done.items())]
        lines += [f"\n**Arm {arm} is missing**: no {todo} run. To add it:", "", "```bash", *cmds, "```"]
    for f in d.arms.values():
        for note in f.notes:
            lines.append(f"\n- Note: {note}.")
    return "\n".join(lines).strip()


def source_comparison(d: ReportData) -> list[str]:
    """Human vs pyramid vs auto labels on the worst slice, and what the data supports.

    Built from the contrasts whose control is a ``human`` arm of the same mining arm
    (`config.default_contrasts`); says "X beats Y" only when the CI excludes 0.
    """
    c = _worst_contrasts(d)
    if c.empty:
        return []
    sources = {a: arm_source(f) for a, f in d.arms.items()}
    costs = arm_costs(d)
    out = []
    for _, r in c.iterrows():
        a, h = r["arm"], r["control"]
        if sources.get(h) != "human" or sources.get(a) not in ("auto", "pyramid") or mining_of(a) != mining_of(h):
            continue
        ca, ch = costs.get(a), costs.get(h)
        price = ""
        if ca and ch and ca.usd_total is not None and ch.usd_total:
            price = f" It cost {fmt_usd(ca.usd_total)}, {fmt_pct(ca.usd_total / ch.usd_total, 0)} of {h}'s."
        ci = fmt_ci(r["ci_lo"], r["ci_hi"])
        if not bool(r["ci_excludes_0"]):
            verdict = (f"the data cannot tell {sources[a]} from human labels on the worst slice "
                       f"({fmt_delta(r['diff'])}, CI {ci}; a loss of {fmt_delta(r['ci_lo'])} is not ruled out).")
        elif r["diff"] > 0:
            verdict = f"{sources[a]} labels beat human labels on the worst slice by {fmt_delta(r['diff'])} (CI {ci})."
        else:
            verdict = (f"human labels beat {sources[a]} labels on the worst slice by {fmt_delta(-r['diff'])} (CI "
                       f"{ci}): at this labeler's quality, the saving costs mAP.")
        out.append(f"\n**Label source, {a} vs {h}:** {verdict}{price}")
    return out


def headline_full(d: ReportData) -> str:
    """Every slice's headline rows and every arm-vs-control row."""
    if not d.arms_compared:
        rows = [[r["slice"] + (" (worst)" if r["worst"] else ""), fmt_int(r["n_frames"]), fmt_map(r["map50_iter0"])]
                for _, r in d.headline.iterrows()]
        return "No arm has an iteration-1 eval: iteration-0 mAP@0.5 only.\n\n" + md_table(
            ["slice", "frames", "iter 0"], rows)
    lines = [headline_markdown(d.headline, d.arms_compared, n_boot=d.n_boot, seed=d.cfg.seed,
                               fragile_min_gt=d.cfg.report.fragile_min_gt)]
    if d.contrasts is not None and not d.contrasts.empty:
        lines += ["", "Arm against control, every slice:", "", contrast_markdown(d.contrasts)]
    return "\n".join(lines)


def build_appendix(d: ReportData) -> str:
    """``case_study_appendix.md``: the tables of every run, slice and class the main text summarises."""
    parts = [
        f"# Appendix to the case study: {d.cfg.name}",
        _generated(d),
        "## A. Stages and their run folders",
        stage_registry_table(d),
        "## B. Numbers per run",
        stage_table_full(d),
        "## C. Curation and iteration 0, every slice",
        "Frames collected, by attribute:",
        curation_marginals(d),
        "Iteration-0 mAP@0.5 per slice:",
        iteration0_slices(d),
        "## D. Auto-label quality per class, and the bill per arm",
        autolabel_per_class(d),
        cost_table_full(d),
        "## E. Headline, every slice",
        headline_full(d),
        "## F. Reproduction",
        reproduction(d),
        "## G. The turn at 100M frames, per stage",
        scale_discussion(d, table_only=True),
    ]
    return "\n\n".join(parts).strip() + "\n"


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
    }


def _f(x: Any) -> float | None:
    return float(x) if is_num(x) else None
