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
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.progress import Progress

import bddengine
from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.config import ConfigError, EngineConfig, config_dict, fingerprint, load_config
from bddengine.evaluation import MatchCache, UnknownFrameError, build_match_cache
from bddengine.flywheel import read_turn_profile
from bddengine.report.architecture import build_graph, render
from bddengine.report.casestudy import (
    architecture_numbers,
    build_sections,
    fill_template,
    find_placeholders,
    summary_numbers,
)
from bddengine.report.data import ArmFacts, ReportData
from bddengine.report.export import to_html, to_pdf
from bddengine.report.figures import copy_figure, plot_slice_delta, plot_turn_profile
from bddengine.report.headline import compute_headline, headline_records, headline_slices
from bddengine.report.inputs import FlywheelRuns, discover_runs, read_json
from bddengine.report.tables import fmt_ci, fmt_delta, fmt_int, fmt_map, headline_markdown, key_label, md_table
from bddengine.runs import RunRef, StageRun, find_same_run, write_json
from bddengine.stages import STAGES, StageInputError, StageOutcome

CASE_STUDY = "case_study"
FIGURES = "figures"
MARKDOWN = "case_study_v1.md"
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
    fp = fingerprint(config_dict(cfg), hashlib.sha256(template.encode()).hexdigest(),
                     [(ref.name, ref.result().get("fingerprint")) for ref in runs.ordered()],
                     _profile_key(profile))
    same = None if force else find_same_run(cfg.runs_dir, "report", fp)
    if same is not None:
        publish(same.path, out_dir)
        return _outcome(same, out_dir, skipped=True)

    inputs = {ref.name: str(ref.path) for ref in runs.ordered()}
    with StageRun(cfg.runs_dir, "report", config_dict(cfg), cfg.seed, fp, inputs=inputs) as run:
        case_dir, fig_dir = run.dir / CASE_STUDY, run.dir / FIGURES
        case_dir.mkdir()
        fig_dir.mkdir()
        data = gather(cfg, runs, out_dir=out_dir, progress=progress)
        data.turn_profile = profile
        write_headline(case_dir, data)
        data.figures, data.figure_sources = write_figures(fig_dir, data, runs)
        title = f"bddengine: one turn of the data flywheel ({cfg.name})"
        graph = build_graph(STAGES, architecture_numbers(data), include_synth=cfg.data.synthetic)
        data.architecture_renderer = render(graph, fig_dir / "architecture.dot", fig_dir / "architecture.png",
                                            title=title)
        data.figures["architecture"] = f"../{FIGURES}/architecture.png"
        (case_dir / "config.yaml").write_text(data.config_yaml)
        markdown = fill_template(template, build_sections(data))
        left = find_placeholders(markdown)
        if left:
            raise StageInputError(
                f"{MARKDOWN}: {len(left)} placeholder(s) left after filling {template_path}: {', '.join(left[:8])}; "
                f"a template field has no section builder or a result file lacks the number")
        (case_dir / MARKDOWN).write_text(markdown)
        outputs = {"case_study": f"{CASE_STUDY}/{MARKDOWN}", "headline_csv": f"{CASE_STUDY}/headline.csv",
                   "headline_json": f"{CASE_STUDY}/headline.json", "headline_md": f"{CASE_STUDY}/headline.md",
                   "config": f"{CASE_STUDY}/config.yaml", "architecture_dot": f"{FIGURES}/architecture.dot"}
        page_title = f"Case study: {cfg.name}"
        if r.html:
            (case_dir / "case_study_v1.html").write_text(to_html(markdown, case_dir, title=page_title))
            outputs["html"] = f"{CASE_STUDY}/case_study_v1.html"
        if r.pdf:
            to_pdf(markdown, case_dir, case_dir / "case_study_v1.pdf", title=page_title)
            outputs["pdf"] = f"{CASE_STUDY}/case_study_v1.pdf"
        for name in sorted(p.name for p in fig_dir.glob("*.png")):
            outputs[f"figure_{Path(name).stem}"] = f"{FIGURES}/{name}"
        metrics = summary_numbers(data)
        metrics.update({
            "n_headline_rows": len(data.headline),
            "n_slices": int(data.headline.loc[data.headline["grouping"] == "slice", "slice"].nunique()),
            "n_boot": r.n_boot,
            "architecture_renderer": data.architecture_renderer,
            "figures_missing": sorted(k for k, v in data.figures.items() if not v),
            "published_to": str(out_dir),
        })
        ref = run.commit(outputs=outputs, metrics=metrics)
    publish(ref.path, out_dir)
    return _outcome(ref, out_dir, skipped=False)


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
    gt_path = split_dir / "eval_gt.json" if split_dir else Path(str(eval0.result()["inputs"].get("eval_gt", "")))
    preds_path = eval0.path / "preds.json"
    for p, todo in ((gt_path, "bddengine split --force"), (preds_path, "bddengine eval --iter 0 --force")):
        if not p.is_file():
            raise StageInputError(f"{p} missing: re-run `{todo}` (the report scores the eval pool from it)")
    gt = json.loads(gt_path.read_text())
    evals = [(arm, seed, ev) for arm, refs in runs.arms.items() for seed, ev in sorted(refs.eval.items())]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("matching predictions (iteration 0 and every iteration-1 eval)", total=1 + len(evals))
        cache0 = build_match_cache(gt, json.loads(preds_path.read_text()))
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
    worst_doc = read_json(eval0.path / "worst_slice.json") or {}
    worst = worst_doc.get("slice") or (eval0.result().get("metrics") or {}).get("worst_slice")
    # the threshold the eval stage picked the worst slice with (the config's when it did not record one)
    min_frames = int(worst_doc.get("min_eval_frames") or cfg.eval.min_eval_frames)

    facts: dict[str, ArmFacts] = {}
    for arm, refs in runs.arms.items():
        f = ArmFacts(arm, refs.missing(), notes=[*refs.notes, *notes.get(arm, [])], mine_only=refs.mine_only)
        if refs.mine is not None:
            f.mine_run = refs.mine.name
            f.mined = read_json(refs.mine.path / "mined.json")
            numbers = read_json(refs.mine.path / "mining_precision.json")
            f.mining_numbers = numbers if isinstance(numbers, dict) else None
        if refs.autolabel is not None:
            f.autolabel_run = refs.autolabel.name
            q = read_json(refs.autolabel.path / "quality.json")
            f.quality = q if isinstance(q, dict) else None
            f.autolabel_metrics = refs.autolabel.result().get("metrics") or {}
        f.seeds = sorted(arm_caches.get(arm, {}))
        facts[arm] = f
    arms_compared = [a for a in runs.arms if arm_caches.get(a)]

    key = worst["key"] if worst else None
    slices = headline_slices(gt, min_frames=min_frames, marginals=cfg.report.marginals, keep=key)
    table = compute_headline(cache0, {a: arm_caches[a] for a in arms_compared}, slices, n_boot=cfg.report.n_boot,
                             seed=cfg.seed, worst_key=key, progress=progress)

    pool_n = pool_in = None
    if split_dir and (split_dir / "mining_pool.parquet").is_file() and key:
        pool = pd.read_parquet(split_dir / "mining_pool.parquet", columns=list(FRAME_ATTRIBUTES))
        pool_n = len(pool)
        pool_in = int((pool[list(FRAME_ATTRIBUTES)] == pd.Series(key)).all(axis=1).sum())

    cfg_yaml = yaml.safe_dump(config_dict(cfg), sort_keys=False)
    return ReportData(
        cfg=cfg,
        runs=runs,
        results={ref.name: ref.result() for ref in runs.ordered()},
        slice_index=read_json(runs.collect.path / "slice_index.json") if runs.collect else None,
        eval0_table=read_json(eval0.path / "slice_table.json") or [],
        worst=worst,
        failures=read_json(eval0.path / "failures.json") or [],
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
        provenance=read_json(runs.collect.path / "data_provenance.json") if runs.collect else None,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_boot=cfg.report.n_boot,
        min_frames=min_frames,
    )


def _iter1_cache(gt: list[dict[str, Any]], ev: RunRef) -> tuple[MatchCache | None, str | None]:
    """An iteration-1 eval's matches against the iteration-0 eval's ground truth, or why not."""
    preds = read_json(ev.path / "preds.json")
    if not isinstance(preds, list):
        return None, f"{ev.name}/preds.json is missing or unreadable: left out"
    try:
        return build_match_cache(gt, preds), None
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
    return str(out_dir / CASE_STUDY / "config.yaml")


def write_headline(case_dir: Path, data: ReportData) -> None:
    """headline.csv (long: one row per slice and arm), headline.json, headline.md (wide)."""
    t = data.headline
    t.to_csv(case_dir / "headline.csv", index=False)
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
    }
    write_json(case_dir / "headline.json", doc)
    if data.arms_compared:
        md = headline_markdown(t, data.arms_compared, n_boot=data.n_boot, seed=data.cfg.seed)
    else:
        rows = [[r["slice"] + (" (worst)" if r["worst"] else ""), fmt_int(r["n_frames"]), fmt_map(r["map50_iter0"])]
                for _, r in t.iterrows()]
        md = "No arm has an iteration-1 eval yet: iteration-0 mAP@0.5 only.\n\n" + md_table(
            ["slice", "frames", "iter 0"], rows)
    (case_dir / "headline.md").write_text(md + "\n")


def write_figures(fig_dir: Path, data: ReportData, runs: FlywheelRuns) -> tuple[dict[str, str | None], dict[str, str]]:
    """Copy the stages' figures and draw the delta chart.

    Returns:
        name -> link relative to case_study/ (None when no run wrote it), and
        name -> the run file it was copied from.
    """
    links: dict[str, str | None] = {}
    sources: dict[str, str] = {}

    def take(name: str, ref: RunRef | None) -> bool:
        if ref is None or not copy_figure(ref.path / f"{name}.png", fig_dir / f"{name}.png"):
            return False
        links[name] = f"../{FIGURES}/{name}.png"
        sources[name] = f"{ref.name}/{name}.png"
        return True

    take("slice_distribution", runs.collect)
    take("worst_slice_failures", runs.eval0)
    order = ["prototype", *[a for a in runs.arms if a != "prototype"]]
    for name, stage in (("mined_frames_grid", "mine"), ("autolabel_pr", "autolabel")):
        for arm in order:  # the prototype arm's figure when it has one
            if arm in runs.arms and take(name, getattr(runs.arms[arm], stage)):
                break
    for name in ("slice_distribution", "worst_slice_failures", "mined_frames_grid", "autolabel_pr"):
        links.setdefault(name, None)
    plot_slice_delta(data.headline, data.arms_compared, fig_dir / "slice_delta.png", n_boot=data.n_boot)
    links["slice_delta"] = f"../{FIGURES}/slice_delta.png"
    links["turn_profile"] = None
    if data.turn_profile and data.turn_profile.get("steps"):
        plot_turn_profile(data.turn_profile, fig_dir / "turn_profile.png")
        links["turn_profile"] = f"../{FIGURES}/turn_profile.png"
    return links, sources


def publish(run_dir: Path, out_dir: Path) -> list[Path]:
    """Replace ``out_dir/case_study`` and ``out_dir/figures`` with the run's copies.

    Each folder is copied under a hidden temporary name first and then renamed into
    place, so a reader never sees a half-written folder.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for name in (CASE_STUDY, FIGURES):
        token = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        tmp, old, target = out_dir / f".tmp_{name}_{token}", out_dir / f".old_{name}_{token}", out_dir / name
        shutil.copytree(run_dir / name, tmp)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        done.append(target)
    return done


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
        wrote=[f"{ref.path}/", f"{case}/ (case_study_v1.md, .html, .pdf, headline.csv/json/md)",
               f"{out_dir / FIGURES}/"],
        numbers=numbers,
        look_at=[f"{case}/case_study_v1.md", f"{case}/case_study_v1.html", f"{case}/case_study_v1.pdf",
                 f"{out_dir / FIGURES}/slice_delta.png"],
        safe_to_delete=f"{ref.path}, {case} and {out_dir / FIGURES} (then `bddengine report` rebuilds them "
                       f"from the run folders in seconds)",
    )

