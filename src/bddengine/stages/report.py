"""Stage ``report``: the case study of one flywheel turn, from its run folders.

find the runs (iter-0 eval outwards, every arm's mine / autolabel / iter-1 runs) ->
score iteration 0 and each arm's iteration 1 on the same eval frames, paired
bootstrap CI per slice -> headline table -> figures and architecture diagram ->
fill the template -> check no placeholder is left -> HTML and PDF -> result.json ->
publish ``case_study/`` and ``figures/`` next to the runs folder (swapped in whole).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.progress import Progress

import bddengine
from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.config import (
    ConfigError,
    EngineConfig,
    config_dict,
    default_contrasts,
    fingerprint,
    load_config,
    parse_arm_spec,
)
from bddengine.errors import StageInputError
from bddengine.evaluation import MatchCache, UnknownFrameError, build_match_cache, slice_keys
from bddengine.evaluation.error_slices import error_document, paired_error_deltas, slice_sets
from bddengine.labeling.sources import added_nothing
from bddengine.mining.strategies import strategy_spec
from bddengine.publishing import publish_trees
from bddengine.report.architecture import build_graph, render
from bddengine.report.casestudy import (
    WORD_BUDGET,
    architecture_numbers,
    build_appendix,
    build_sections,
    count_words,
    fill_template,
    find_placeholders,
    headline_full,
    summary_numbers,
)
from bddengine.report.casestudy.failure_mode import best_arm, slice_row
from bddengine.report.data import ArmFacts, ReportData
from bddengine.report.export import to_html, to_pdf
from bddengine.report.figures import (
    copy_figure,
    plot_error_costs,
    plot_learning_curve,
    plot_saliency,
    plot_slice_delta,
    plot_turn_profile,
)
from bddengine.report.headline import (
    SliceSpec,
    compute_contrasts,
    compute_headline,
    headline_records,
    headline_slices,
)
from bddengine.report.inputs import FlywheelRuns, discover_runs, mining_of, read_json
from bddengine.report.tables import (
    fmt_ci,
    fmt_delta,
    fmt_map,
    key_label,
)
from bddengine.report.turn_inputs import lineage_scores
from bddengine.report.turn_scores import TurnsFacts, analyse_turns, score_turns
from bddengine.runs import RunRef, StageRun
from bddengine.runs.layout import (
    AUTOLABEL,
    CASE_STUDY_DIR,
    COLLECT,
    EVAL,
    FIGURES_DIR,
    MINE,
    REPORT,
    SPLIT,
    TRAIN,
    Artifact,
)
from bddengine.runs.lineages import lineage_steps
from bddengine.runs.turn_profile import read_turn_profile
from bddengine.stages import STAGES, StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged
from bddengine.weights_trust import check_weights

CASE_STUDY, FIGURES = CASE_STUDY_DIR, FIGURES_DIR
MARKDOWN = Path(REPORT.case_study.file).name
TEMPLATE = "case_study_template.md"


def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Write the case study and publish it to ``<out_dir>/case_study`` and ``<out_dir>/figures``.

    Args:
        cfg: the engine config (``report`` section, ``eval.min_eval_frames``, ``flywheel.arms``, ``seed``).
        force: rebuild even when an identical report run exists.
        progress: show progress bars.

    Raises:
        StageInputError: no iteration-0 eval, a missing eval file, an unreadable template, or
            a placeholder left in the filled case study.
    """
    r = cfg.report
    runs = discover_runs(cfg.runs_dir, base_seed=cfg.seed, expected_arms=list(cfg.flywheel.arms),
                         mine_only=list(cfg.flywheel.mine_only))
    if runs is None:
        raise StageInputError(
            f"no complete iteration-0 eval run under {cfg.runs_dir}: the report needs at least iteration 0; "
            f"run `bddengine eval --iter 0` (after collect, embed, split and `train --iter 0`), or "
            f"`bddengine flywheel`, with the same --config first")
    template_path = resolve_template(r.template)
    template = template_path.read_text()
    out_dir = Path(r.out_dir) if r.out_dir is not None else cfg.runs_dir.parent
    profile = read_turn_profile(cfg.runs_dir, runs.eval0.name)
    # where inference ran never changes a number: compute is left out, as the stages leave it out
    settings = {k: v for k, v in config_dict(cfg).items() if k != "compute"}
    read = runs.ordered() + [ref for ref in lineage_runs(cfg) if ref not in runs.ordered()]
    fp = fingerprint(settings, hashlib.sha256(template.encode()).hexdigest(),
                     [(ref.name, ref.result().get("fingerprint")) for ref in read],
                     _profile_key(profile))
    job = Job("report", fp, cfg.seed, partial(_outcome, out_dir=out_dir),
              inputs={ref.name: str(ref.path) for ref in runs.ordered()})
    out = unchanged(cfg, job, force=force)
    if out is None:
        out = execute(cfg, job, lambda run: write_report(
            run, cfg, runs, template, template_path, out_dir=out_dir, profile=profile, progress=progress))
    publish(out.location, out_dir)
    return out


def write_report(
    run: StageRun, cfg: EngineConfig, runs: FlywheelRuns, template: str, template_path: Path, *, out_dir: Path,
    profile: dict[str, Any] | None, progress: bool,
) -> Commit:
    """Score the turn, write the headline, figures and architecture diagram, and fill the case study.

    Raises:
        StageInputError: a placeholder is left in the filled case study.
    """
    r = cfg.report
    case_dir, fig_dir = REPORT.case_study_dir(run), REPORT.figures_dir(run)
    case_dir.mkdir()
    fig_dir.mkdir()
    data = gather(cfg, runs, out_dir=out_dir, progress=progress)
    data.turn_profile = profile
    write_headline(case_dir, data)
    if data.turns is not None:
        REPORT.turns_json.write(case_dir.parent, data.turns.to_json())
    data.figures, data.figure_sources = write_figures(fig_dir, data, runs)
    write_saliency(fig_dir, cfg, data, runs)
    title = f"bddengine: one turn of the data flywheel ({cfg.name})"
    graph = build_graph(STAGES, architecture_numbers(data), synthetic=cfg.data.synthetic)
    data.architecture_renderer = render(graph, REPORT.architecture_dot.at(run), REPORT.architecture_png.at(run),
                                        title=title)
    data.figures["architecture"] = f"../{REPORT.architecture_png.file}"
    REPORT.config.at(run).write_text(data.config_yaml)
    markdown = fill_template(template, build_sections(data))
    left = find_placeholders(markdown)
    if left:
        raise StageInputError(
            f"{MARKDOWN}: {len(left)} placeholder(s) left after filling {template_path}: {', '.join(left[:8])}; "
            f"a template field has no section builder or a result file lacks the number")
    REPORT.case_study.at(run).write_text(markdown)
    appendix = build_appendix(data)
    REPORT.appendix.at(run).write_text(appendix)
    outputs = REPORT.outputs(REPORT.case_study, REPORT.appendix, REPORT.headline_csv, REPORT.headline_json,
                             REPORT.headline_md, REPORT.config, REPORT.architecture_dot)
    if data.turns is not None:
        outputs |= REPORT.outputs(REPORT.turns_json)
    page_title = f"Case study: {cfg.name}"
    if r.html:
        REPORT.html.at(run).write_text(to_html(markdown, case_dir, title=page_title))
        REPORT.appendix_html.at(run).write_text(to_html(appendix, case_dir, title=f"{page_title}, appendix"))
        outputs |= REPORT.outputs(REPORT.html, REPORT.appendix_html)
    if r.pdf:
        to_pdf(markdown, case_dir, REPORT.pdf.at(run), title=page_title)
        to_pdf(appendix, case_dir, REPORT.appendix_pdf.at(run), title=f"{page_title}, appendix")
        outputs |= REPORT.outputs(REPORT.pdf, REPORT.appendix_pdf)
    for name in sorted(p.name for p in fig_dir.glob("*.png")):
        outputs[f"figure_{Path(name).stem}"] = f"{FIGURES}/{name}"
    metrics = summary_numbers(data)
    metrics.update({
        "n_headline_rows": len(data.headline),
        "n_slices": int(data.headline.loc[data.headline["grouping"] == "slice", "slice"].nunique()),
        "n_boot": r.n_boot,
        "architecture_renderer": data.architecture_renderer,
        "figures_missing": sorted(k for k, v in data.figures.items() if not v),
        "case_study_words": count_words(markdown),
        "case_study_word_budget": WORD_BUDGET,
        "appendix_words": count_words(appendix),
        "published_to": str(out_dir),
    })
    if data.turns is not None:
        metrics["turns"] = data.turns.key_numbers()
    return Commit(outputs=outputs, metrics=metrics)


def lineage_runs(cfg: EngineConfig) -> list[RunRef]:
    """The eval and autolabel runs of every lineage past iteration 1 (none with one turn)."""
    if cfg.flywheel.turns <= 1:
        return []
    out: dict[str, RunRef] = {}
    for step in lineage_steps(cfg):
        if step.iter >= 2:
            for ref in (*step.autolabel_runs, step.eval_run):
                out.setdefault(ref.name, ref)
    return list(out.values())


def many_turn_facts(cfg: EngineConfig, gt: list[dict[str, Any]], cache0: MatchCache, slices: list[SliceSpec],
                    worst_key: dict[str, str] | None, *, progress: bool) -> TurnsFacts | None:
    """The many-turns numbers (`report.turn_scores`); None with one turn or before any lineage reached turn 2."""
    if cfg.flywheel.turns <= 1:
        return None
    steps = lineage_steps(cfg)
    key = cfg.flywheel.target_slice or worst_key
    if key is None or not any(s.iter >= 2 for s in steps):
        return None
    target = next((s for s in slices if s.grouping == "slice" and s.key == key), None)
    if target is None:
        names = sorted(n for n, k in slice_keys(gt, list(FRAME_ATTRIBUTES)).items() if k == key)
        if not names:
            return None
        target = SliceSpec("slice", dict(key), names)
    scores, notes = lineage_scores(steps, gt, cache0, usd_per_gpu_hour=cfg.autolabel.usd_per_gpu_hour)
    arms = list(dict.fromkeys(s.arm for s in scores))
    baseline = "random-human" if "random-human" in arms else next((a for a in arms if mining_of(a) == "random"), None)
    points, changes = score_turns(scores, target, slices, baseline=baseline, n_boot=cfg.report.n_boot, seed=cfg.seed,
                                  fragile_min_gt=cfg.report.fragile_min_gt, progress=progress)
    return analyse_turns(points, changes, target=target, lift=cfg.flywheel.target_lift, baseline=baseline,
                         notes=notes)


def _profile_key(profile: dict[str, Any] | None) -> list[tuple] | None:
    """What of the turn profile the report shows: a new turn over the same runs rebuilds the report."""
    if profile is None:
        return None
    return [(s.get("step"), s.get("run"), s.get("skipped"), round(float(s.get("wall_s") or 0)))
            for s in profile.get("steps", []) if s.get("stage") != "report"]


def resolve_template(path: Path | None) -> Path:
    """The template file: ``report.template``, else ``case_study_template.md`` here or at the repo root."""
    candidates = [Path(path)] if path is not None else [
        Path(TEMPLATE), Path(bddengine.__file__).resolve().parents[2] / TEMPLATE]
    for c in candidates:
        if c.is_file():
            return c
    raise StageInputError(
        f"case-study template not found (looked at {', '.join(str(c) for c in candidates)}): set "
        f"report.template to its path, or run from the repository root")


def gather(cfg: EngineConfig, runs: FlywheelRuns, *, out_dir: Path, progress: bool) -> ReportData:
    """Read every file the report needs and compute the headline table."""
    eval0 = runs.eval0
    split_dir = runs.split.path if runs.split is not None else None
    recorded_gt = cfg.runs_dir / str(eval0.result()["inputs"].get("eval_gt", ""))  # relative, or absolute (older)
    gt_path = SPLIT.eval_gt.at(split_dir) if split_dir else recorded_gt
    preds_path = EVAL.preds.at(eval0)
    for p, todo in ((gt_path, "bddengine split --force"), (preds_path, "bddengine eval --iter 0 --force")):
        if not p.is_file():
            raise StageInputError(f"{p} missing: re-run `{todo}` (the report scores the eval pool from it)")
    gt = json.loads(gt_path.read_text())
    evals = [(arm, seed, ev) for arm, refs in runs.arms.items() for seed, ev in sorted(refs.eval.items())]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("matching predictions (iteration 0 and every iteration-1 eval)", total=1 + len(evals))
        cache0 = build_match_cache(gt, json.loads(preds_path.read_text()), errors=True)
        bar.advance(task)
        arm_caches: dict[str, dict[int, MatchCache]] = {}
        notes: dict[str, list[str]] = {}
        for arm, seed, ev in evals:
            cache, note = _iter1_cache(gt, ev)
            if cache is not None:
                arm_caches.setdefault(arm, {})[seed] = cache
            if note:
                notes.setdefault(arm, []).append(note)
            bar.advance(task)
    worst_doc = read_json(EVAL.worst_slice.at(eval0)) or {}
    worst = worst_doc.get("slice") or (eval0.result().get("metrics") or {}).get("worst_slice")
    # the threshold the eval stage picked the worst slice with (the config's when it did not record one)
    min_frames = int(worst_doc.get("min_eval_frames") or cfg.eval.min_eval_frames)

    facts: dict[str, ArmFacts] = {}
    for arm, refs in runs.arms.items():
        f = ArmFacts(arm, refs.missing(), notes=[*refs.notes, *notes.get(arm, [])], mine_only=refs.mine_only)
        if refs.mine is not None:
            f.mine_run = refs.mine.name
            f.mined = read_json(MINE.mined.at(refs.mine))
            numbers = read_json(MINE.mining_precision.at(refs.mine))
            f.mining_numbers = numbers if isinstance(numbers, dict) else None
        if refs.autolabel is not None:
            f.autolabel_run = refs.autolabel.name
            q = read_json(AUTOLABEL.quality.at(refs.autolabel))
            f.quality = q if isinstance(q, dict) else None
            f.autolabel_metrics = refs.autolabel.result().get("metrics") or {}
        f.added_nothing = refs.autolabel is not None and added_nothing(f.autolabel_metrics or {})
        if f.added_nothing and arm_caches.pop(arm, None):
            f.notes.append(f"{refs.autolabel.name} added no labeled box, so the arm's iteration-1 runs retrained "
                           "on iteration 0's data: left out, never shown as a result")
        f.seeds = sorted(arm_caches.get(arm, {}))
        facts[arm] = f
    arms_compared = [a for a in runs.arms if arm_caches.get(a)]

    key = worst["key"] if worst else None
    slices = headline_slices(gt, min_frames=min_frames, marginals=cfg.report.marginals, keep=key)
    compared = {a: arm_caches[a] for a in arms_compared}
    table = compute_headline(cache0, compared, slices, n_boot=cfg.report.n_boot, seed=cfg.seed, worst_key=key,
                             fragile_min_gt=cfg.report.fragile_min_gt, progress=progress)
    pairs = cfg.report.contrasts if cfg.report.contrasts is not None else \
        default_contrasts(list(cfg.flywheel.arms), cfg.autolabel.labeler)
    contrasts = compute_contrasts(cache0, compared, list(pairs), slices, n_boot=cfg.report.n_boot, seed=cfg.seed,
                                  worst_key=key, fragile_min_gt=cfg.report.fragile_min_gt)

    errors0, error_deltas = error_facts(cfg, eval0, cache0, gt, compared, key)
    turns = many_turn_facts(cfg, gt, cache0, slices, key, progress=progress)

    pool_n = pool_in = None
    if split_dir and SPLIT.mining_pool.exists(split_dir) and key:
        pool = SPLIT.mining_pool.read(split_dir, columns=list(FRAME_ATTRIBUTES))
        pool_n = len(pool)
        pool_in = int((pool[list(FRAME_ATTRIBUTES)] == pd.Series(key)).all(axis=1).sum())

    cfg_yaml = yaml.safe_dump(config_dict(cfg), sort_keys=False)
    return ReportData(
        cfg=cfg,
        runs=runs,
        stages=STAGES,
        results={ref.name: ref.result() for ref in runs.ordered()},
        slice_index=read_json(COLLECT.slice_index_json.at(runs.collect)) if runs.collect else None,
        eval0_table=read_json(EVAL.slice_table_json.at(eval0)) or [],
        worst=worst,
        failures=read_json(EVAL.failures.at(eval0)) or [],
        headline=table,
        arms_compared=arms_compared,
        arms=facts,
        mining_pool_n=pool_n,
        mining_pool_in_worst=pool_in,
        figures={},
        figure_sources={},
        architecture_renderer="",
        config_yaml=cfg_yaml,
        config_sha256=hashlib.sha256(cfg_yaml.encode()).hexdigest(),
        config_source=config_source(cfg, out_dir),
        provenance=read_json(COLLECT.data_provenance.at(runs.collect)) if runs.collect else None,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_boot=cfg.report.n_boot,
        min_frames=min_frames,
        contrasts=contrasts,
        errors=errors0,
        error_deltas=error_deltas,
        turns=turns,
    )


def error_facts(cfg: EngineConfig, eval0: RunRef, cache0: MatchCache, gt: list[dict[str, Any]],
                arm_caches: dict[str, dict[int, MatchCache]], worst_key: dict[str, str] | None
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Iteration 0's error decomposition (its eval run's ``errors.json``, or computed from its
    predictions for a run made before it had one) and each arm's change on the worst slice."""
    from bddengine.stages.eval import GROUPINGS

    doc = read_json(EVAL.errors.at(eval0))
    if not isinstance(doc, dict) or "slices" not in doc:
        doc = error_document(cache0, gt, slice_sets(gt, GROUPINGS), worst=worst_key,
                             height_edges=cfg.eval.height_buckets, n_boot=cfg.eval.n_boot, seed=cfg.seed)
    if worst_key is None:
        return doc, []
    names = [n for n, k in slice_keys(gt, list(worst_key)).items() if k == worst_key]
    deltas = [{"arm": arm, **paired_error_deltas(cache0, [caches[s] for s in sorted(caches)], names,
                                                 n_boot=cfg.report.n_boot, seed=cfg.seed, key=worst_key)}
              for arm, caches in arm_caches.items()]
    return doc, deltas


def _iter1_cache(gt: list[dict[str, Any]], ev: RunRef) -> tuple[MatchCache | None, str | None]:
    """An iteration-1 eval's matches against the iteration-0 eval's ground truth, or why not."""
    preds = read_json(EVAL.preds.at(ev))
    if not isinstance(preds, list):
        return None, f"{ev.name}/{EVAL.preds.file} is missing or unreadable: left out"
    try:
        return build_match_cache(gt, preds, errors=True), None
    except UnknownFrameError as exc:
        return None, f"{ev.name} scored other frames than the iteration-0 eval ({exc}): left out"


def config_source(cfg: EngineConfig, out_dir: Path) -> str:
    """``configs/<name>.yaml`` when that file gives exactly this config, else the saved copy."""
    candidate = Path("configs") / f"{cfg.name}.yaml"
    if candidate.is_file():
        try:
            if load_config(candidate) == cfg:
                return str(candidate)
        except ConfigError:
            pass
    return str(REPORT.config.at(out_dir))


def write_headline(case_dir: Path, data: ReportData) -> None:
    """The headline table: CSV (long: one row per slice and arm), JSON, markdown (wide)."""
    t = data.headline
    t.to_csv(REPORT.headline_csv.at(case_dir.parent), index=False)
    doc = {
        "n_boot": data.n_boot,
        "seed": data.cfg.seed,
        "min_eval_frames": data.min_frames,
        "iter0_eval": data.runs.eval0.name,
        "iter1_evals": {a: {str(s): ev.name for s, ev in data.runs.arms[a].eval.items()}
                        for a in data.arms_compared},
        "arms": data.arms_compared,
        "arms_missing": {a: data.arms[a].missing or data.arms[a].notes for a in data.arms_missing},
        "arms_mine_only": [a for a, f in data.arms.items() if f.mine_only],
        "worst_slice": data.worst,
        "rows": headline_records(t),
        "contrasts": headline_records(data.contrasts) if data.contrasts is not None else [],
    }
    REPORT.headline_json.write(case_dir.parent, doc)
    REPORT.errors_json.write(case_dir.parent, {
        "iter0_eval": data.runs.eval0.name, "worst_slice": data.worst, "iter0": data.errors,
        "deltas": data.error_deltas, "n_boot": data.n_boot, "seed": data.cfg.seed})
    md = headline_full(data)  # the same tables as the appendix's "every slice" section
    REPORT.headline_md.at(case_dir.parent).write_text(md + "\n")


def targeted(arm: str) -> bool:
    """Whether an arm mines with a strategy whose entry says ``targeted`` (False for a tag no strategy parses)."""
    try:
        spec = strategy_spec(parse_arm_spec(arm).strategy)
    except ValueError:
        return False
    return spec is not None and spec.targeted


def write_figures(fig_dir: Path, data: ReportData, runs: FlywheelRuns) -> tuple[dict[str, str | None], dict[str, str]]:
    """Copy the stages' figures and draw the delta chart.

    Returns:
        name -> link relative to case_study/ (None when no run wrote it), and
        name -> the run file it was copied from.
    """
    links: dict[str, str | None] = {}
    sources: dict[str, str] = {}

    def take(figure: Artifact, ref: RunRef | None) -> bool:
        file = Path(figure.file).name
        if ref is None or not copy_figure(figure.at(ref), fig_dir / file):
            return False
        links[Path(file).stem] = f"../{FIGURES}/{file}"
        sources[Path(file).stem] = f"{ref.name}/{figure.file}"
        return True

    taken = (COLLECT.slice_distribution, EVAL.failure_thumbnails, MINE.grid, AUTOLABEL.pr_chart)
    take(COLLECT.slice_distribution, runs.collect)
    take(EVAL.failure_thumbnails, runs.eval0)
    def machine(arm: str) -> bool:  # a human arm's PR chart is the hidden GT against itself
        ref = runs.arms[arm].autolabel
        return ref is not None and (ref.result().get("metrics") or {}).get("label_source", "auto") != "human"

    protos = sorted(runs.arms, key=lambda a: not targeted(a))
    for figure, stage in ((MINE.grid, "mine"), (AUTOLABEL.pr_chart, "autolabel")):
        order = sorted(protos, key=lambda a: not machine(a)) if stage == "autolabel" else protos
        for arm in order:  # a targeted arm's figure when it has one (for the PR chart: machine labels first)
            if arm in runs.arms and take(figure, getattr(runs.arms[arm], stage)):
                break
    for figure in taken:
        links.setdefault(Path(figure.file).stem, None)
    plot_slice_delta(data.headline, data.arms_compared, REPORT.slice_delta.at(fig_dir.parent), n_boot=data.n_boot)
    links["slice_delta"] = f"../{REPORT.slice_delta.file}"
    links["turn_profile"] = None
    if data.turn_profile and data.turn_profile.get("steps"):
        plot_turn_profile(data.turn_profile, REPORT.turn_profile.at(fig_dir.parent))
        links["turn_profile"] = f"../{REPORT.turn_profile.file}"
    if data.turns is not None:
        plot_learning_curve(data.turns.points, REPORT.learning_curve.at(fig_dir.parent), goal=data.turns.goal,
                            target=data.turns.target)
        links["learning_curve"] = f"../{REPORT.learning_curve.file}"
    links["error_costs"] = None
    worst_row = slice_row(data.errors, data.worst["key"]) if data.worst else None
    if worst_row is not None:
        plot_error_costs(worst_row, slice_row(data.errors, None), REPORT.error_costs.at(fig_dir.parent),
                         label="worst slice")
        links["error_costs"] = f"../{REPORT.error_costs.file}"
        sources["error_costs"] = f"{runs.eval0.name}/{EVAL.errors.file}"
    return links, sources


SALIENCY_FRAMES = 3
"""Failure frames in the saliency figure: a few, so the report stays seconds on a CPU and each row stays
legible beside the error-cost chart on a printed page."""


def write_saliency(fig_dir: Path, cfg: EngineConfig, data: ReportData, runs: FlywheelRuns) -> None:
    """EigenCAM heat maps of iteration 0 and the best arm's iteration 1 on the worst slice's failure frames.

    Not drawn (and the reason kept in ``data.figure_notes``) without a worst slice, failure frames, an
    iteration-1 arm, the frames' images, the weights, or the ``grad-cam`` package.
    """
    data.figures["gradcam_worst_slice"] = None
    why = saliency_inputs(cfg, data, runs)
    if isinstance(why, str):
        data.figure_notes["gradcam_worst_slice"] = why
        return
    arm, train1, weights, images = why
    try:
        from bddengine.integrations.ultralytics import eigencam_maps

        imgsz = cfg.eval.imgsz or cfg.train.imgsz
        maps = [eigencam_maps(w, list(images.values()), imgsz=imgsz) for w in weights]
    except ImportError as exc:
        data.figure_notes["gradcam_worst_slice"] = f"grad-cam is not installed ({exc}): pip install grad-cam"
        return
    plot_saliency([(n, a, b) for n, a, b in zip(images, *maps, strict=True)], REPORT.gradcam.at(fig_dir.parent),
                  left=f"iteration 0 ({runs.train0.name})", right=f"iteration 1, {arm}")
    data.figures["gradcam_worst_slice"] = f"../{REPORT.gradcam.file}"
    data.figure_sources["gradcam_worst_slice"] = f"{runs.train0.name} and {train1}, best.pt"


def saliency_inputs(cfg: EngineConfig, data: ReportData, runs: FlywheelRuns
                    ) -> str | tuple[str, str, list[Path], dict[str, Path]]:
    """(best arm, its iteration-1 train run, [iteration-0 weights, its iteration-1 weights],
    failure frame -> image), or why not."""
    if not data.worst or not data.failures:
        return "the worst slice has no failure frames" if data.worst else "no slice qualified as the worst slice"
    arm = best_arm(data)
    if arm is None or runs.train0 is None:
        return "no arm has an iteration-1 eval, so there is no second model to set beside iteration 0"
    trains = runs.arms[arm].train
    if not trains:
        return f"arm {arm} has no iteration-1 train run"
    train1 = trains.get(cfg.seed) or trains[min(trains)]
    weights = [TRAIN.best_weights.at(runs.train0), TRAIN.best_weights.at(train1)]
    absent = [ref.name for w, ref in zip(weights, (runs.train0, train1), strict=True) if not w.is_file()]
    if absent:
        return (f"the weights ({TRAIN.best_weights.file}) of {' and '.join(absent)} are missing (deleted, or the "
                f"runs were copied without them)")
    for w, ref in zip(weights, (runs.train0, train1), strict=True):
        try:
            check_weights(w, f"report saliency ({ref.name}'s best.pt)", runs_dir=cfg.runs_dir)
        except StageInputError as exc:
            return f"bddengine would not load {w}: {exc}"
    paths: dict[str, str] = {}
    if runs.split is not None and SPLIT.eval_pool.exists(runs.split):
        pool = SPLIT.eval_pool.read(runs.split, columns=["name", "path"])
        paths = dict(zip(pool["name"], pool["path"], strict=True))
    images = {f["name"]: Path(paths[f["name"]]) for f in data.failures
              if f["name"] in paths and Path(paths[f["name"]]).is_file()}
    if not images:
        return "the failure frames' images are not on this machine (the split's eval pool names them)"
    return arm, train1.name, weights, dict(list(images.items())[:SALIENCY_FRAMES])


def publish(run_dir: Path, out_dir: Path) -> list[Path]:
    """Publish the run's ``case_study`` and ``figures`` into ``out_dir``.

    Only files the last publish put there are replaced or removed; a user's own files
    stay (`bddengine.publishing.publish_trees`). Each file is renamed into place whole.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    return publish_trees([(run_dir / name, out_dir / name) for name in (CASE_STUDY, FIGURES)])


def _outcome(ref: RunRef, out_dir: Path, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    numbers: dict[str, Any] = {"iteration-0 mAP@0.5": f"{m['iter0_map50']:.4f}" if m.get("iter0_map50") is not None
                               else "n/a"}
    worst = m.get("worst_slice")
    numbers["worst slice"] = key_label(worst["key"]) if worst else "none (no slice has enough eval frames)"
    for arm, d in (m.get("worst_slice_delta") or {}).items():
        verdict = "CI excludes 0" if d["ci_excludes_0"] else "CI includes 0"
        seeds = f", {d['n_seeds']} seeds" if d["n_seeds"] > 1 else ""
        numbers[f"worst slice Δ {arm}"] = f"{fmt_delta(d['delta'])} {fmt_ci(*d['ci95'])} ({verdict}{seeds})"
    for name, c in (m.get("worst_slice_contrasts") or {}).items():
        numbers[f"worst slice {name}"] = f"{fmt_delta(c['diff'])} {fmt_ci(*c['ci95'])} ({c['verdict']})"
    t = m.get("turns") or {}
    for arm, a in (t.get("arms") or {}).items():
        if a["frames_to_goal"] is None:
            reach = f"goal not reached in {t['turns']} turns"
        elif a.get("goal_by_iter") == 0:
            reach = "goal met at iteration 0"
        else:
            reach = f"goal reached at {a['frames_to_goal']:.0f} frames"
        stop = (f"stop from turn {a['stop_from']} ({', '.join(a['stop_reasons'])}"
                + ("" if a.get("stop_holds_at_last_turn", True) else f"; no longer at turn {a['turn']}") + ")"
                if a["stop_from"] else "keep labeling")
        numbers[f"turns {arm}"] = f"target {fmt_map(a['target_map50'])} at turn {a['turn']}; {reach}; {stop}"
    if t:
        numbers["regression alerts"] = str(t.get("n_alerts", 0))
    if m.get("case_study_words") is not None:
        over = m["case_study_words"] > m.get("case_study_word_budget", WORD_BUDGET)
        numbers["case study"] = (f"{m['case_study_words']:,} words"
                                 + (f" (over the {m['case_study_word_budget']:,}-word budget)" if over else "")
                                 + f"; appendix {m.get('appendix_words', 0):,} words")
    if not m.get("worst_slice_delta"):
        numbers["iteration 1"] = "no arm has an iteration-1 eval yet: the report covers iteration 0 only"
    if m.get("arms_missing"):
        numbers["arms missing"] = ", ".join(m["arms_missing"])
    numbers["architecture drawn by"] = m.get("architecture_renderer")
    case = out_dir / CASE_STUDY
    return StageOutcome(
        stage="report",
        location=ref.path,
        skipped=skipped,
        wrote=[f"{ref.path}/", f"{case}/ ({MARKDOWN}, .html, .pdf, {Path(REPORT.appendix.file).stem}.*, "
                            f"headline.csv/json/md)",
               f"{out_dir / FIGURES}/"],
        numbers=numbers,
        look_at=[str(REPORT.case_study.at(out_dir)), str(REPORT.html.at(out_dir)), str(REPORT.pdf.at(out_dir)),
                 str(REPORT.slice_delta.at(out_dir))]
        + ([str(REPORT.learning_curve.at(out_dir))] if m.get("turns") else []),
        safe_to_delete=f"{ref.path}, {case} and {out_dir / FIGURES} (then `bddengine report` rebuilds them "
                       f"from the run folders in seconds)",
    )

