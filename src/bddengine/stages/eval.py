"""Stage ``eval``: run the detector once over the eval pool, score it per slice.

resolve split + train run -> predict the eval pool once (BDD-format preds.json) ->
match predictions once (official BDD100K protocol) -> per-slice mAP@0.5 with
bootstrap CIs for every weather x timeofday x scene slice and every marginal ->
worst slice and its failure frames -> each slice's TIDE error decomposition and
recall by box height / occlusion (CIs for the worst slice and overall) -> tables,
charts, thumbnails -> result.json.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES, map_category
from bddengine.config import EngineConfig, EvalConfig, config_dict, fingerprint
from bddengine.evaluation import (
    ERROR_TYPES,
    MatchCache,
    build_match_cache,
    evaluate_overall,
    evaluate_slices,
    per_frame_metrics,
    slice_keys,
)
from bddengine.evaluation.error_slices import box_errors, error_document, slice_sets
from bddengine.inference import Backend
from bddengine.integrations.ultralytics import log_lines, predict_frames, resolve_device
from bddengine.runs import RunRef, StageRun, resolve_input
from bddengine.runs.layout import EVAL, SPLIT, TRAIN
from bddengine.runs.lineage import upstream
from bddengine.runs.lineages import train_tag
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged
from bddengine.weights_trust import check_weights

GROUPINGS: tuple[tuple[str, ...], ...] = (FRAME_ATTRIBUTES,) + tuple((a,) for a in FRAME_ATTRIBUTES)
"""The full weather x timeofday x scene slices, then each marginal."""


def run(
    cfg: EngineConfig,
    *,
    iter: int = 0,
    arm: str | None = None,
    seed: int | None = None,
    force: bool = False,
    source: str | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Evaluate one iteration's detector on the eval pool.

    Args:
        cfg: the engine config (``eval`` section, ``seed``).
        iter: the training iteration to evaluate.
        arm: for iter > 0, the arm (mining strategy) of that training.
        seed: the training seed, when not the config's (see ``train --seed``).
        force: re-evaluate even when an identical run exists.
        source: explicit train run (``--from``).
        progress: show progress bars.
    """
    e = cfg.eval
    tag = train_tag(iter, arm, seed, cfg.seed)
    train = resolve_input(cfg.runs_dir, "train", explicit=source, iter=iter, tag=tag,
                          hint=f"bddengine train --iter {iter}" + (f" --arm {arm}" if arm else "")
                          + (f" --seed {seed}" if seed is not None else ""))
    split = upstream(train, "split")
    gt_path = SPLIT.eval_gt.require(split, "bddengine split --force")
    pool_path = SPLIT.eval_pool.require(split, "bddengine split --force")
    imgsz = e.imgsz or cfg.train.imgsz
    fp = fingerprint(config_dict(e), imgsz, cfg.seed, train.name, str(split.path))
    inputs = {"train": str(train.path), "split": str(split.path), "eval_gt": str(gt_path)}
    job = Job("eval", fp, cfg.seed, _outcome, iter=iter, tag=tag, inputs=inputs, mirror=True, ultralytics_log=True)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    device = resolve_device(e.device, "eval.device")  # before the run folder: a bad device writes nothing
    gt = json.loads(gt_path.read_text())
    pool = pd.read_parquet(pool_path)
    weights = TRAIN.best_weights.at(train)
    check_weights(weights, f"eval --from {train.name} (its best.pt)", runs_dir=cfg.runs_dir)
    return execute(cfg, job, lambda run: evaluate(
        run, e, weights, gt, pool, iter=iter, imgsz=imgsz, device=device, seed=cfg.seed,
        backend=cfg.compute.runner(), progress=progress))


def evaluate(
    run: StageRun, e: EvalConfig, weights: Path, gt: list[dict], pool: pd.DataFrame, *, iter: int, imgsz: int,
    device: str, seed: int, backend: str | Backend, progress: bool,
) -> Commit:
    """Predict the eval pool once, score it per slice, and write the tables, charts and failures.

    Args:
        run: the run being built.
        e: the ``eval`` section.
        weights: the detector's weights.
        gt: the eval pool's BDD-format ground truth.
        pool: the eval pool's table (``name``, ``path`` and the slice attributes).
        iter: the iteration (for the chart's title).
        imgsz, device, backend: how the detector runs.
        seed: the bootstrap's seed.
        progress: show progress bars.
    """
    preds = predict_frames(weights, pool["path"].tolist(), pool["name"].tolist(),
                           imgsz=imgsz, conf=e.conf, iou=e.nms_iou, max_det=e.max_det,
                           batch=e.batch, device=device, backend=backend, progress=progress)
    EVAL.preds.write(run, preds)
    cache = build_match_cache(gt, preds, errors=True)
    overall = evaluate_overall(cache)
    table = slice_table(cache, gt, n_boot=e.n_boot, seed=seed, progress=progress)
    worst = pick_worst(table, e.min_eval_frames)
    errors = error_document(cache, gt, slice_sets(gt, GROUPINGS), worst=worst["key"] if worst else None,
                            height_edges=e.height_buckets, n_boot=e.n_boot, seed=seed)
    EVAL.errors.write(run, errors)
    EVAL.box_errors.write(run, box_errors(cache, gt, preds))
    frames = worst_slice_frames(gt, worst) if worst else []
    per_frame = per_frame_metrics(cache, frames, score_threshold=e.failure_score)
    failures = failure_frames(per_frame, gt, recall_below=e.failure_recall)
    write_tables(run.dir, table)
    EVAL.worst_slice.write(run, {"slice": worst, "min_eval_frames": e.min_eval_frames, "per_frame": per_frame})
    EVAL.failures.write(run, failures)
    EVAL.overall.write(run, overall)
    from bddengine.figures import plot_failures, plot_slice_map

    plot_slice_map(table, EVAL.slice_chart.at(run), worst=worst,
                   min_frames=e.min_eval_frames, title=f"iter {iter} per-slice mAP@0.5")
    by_name = {f["name"]: f for f in gt}
    pool_paths = dict(zip(pool["name"], pool["path"], strict=True))
    pred_by_name = {f["name"]: f for f in preds}
    plot_failures(
        [(pool_paths[f["name"]], by_name[f["name"]], pred_by_name.get(f["name"], {}), f)
         for f in failures[:12]],
        EVAL.failure_thumbnails.at(run), score_threshold=e.failure_score,
        title=_slice_name(worst) if worst else "no slice qualifies",
    )
    return Commit(
        outputs=EVAL.outputs(),
        metrics={
            "n_frames": overall["n_frames"],
            "map50": overall["map50"],
            "map": overall["map"],
            "ap50_per_class": overall["ap50_per_class"],
            "n_slices": int((table["grouping"] == "slice").sum()),
            "worst_slice": worst,
            "worst_slice_errors": worst_errors(errors),
            "n_failure_frames": len(failures),
            "n_predictions": sum(len(f.get("labels", [])) for f in preds),
        },
    )


def slice_table(cache: MatchCache, gt: list[dict], *, n_boot: int, seed: int,
                progress: bool = False) -> pd.DataFrame:
    """Every full slice and every marginal, one row each, plus the overall row.

    Columns: grouping (``slice``, ``weather``, ``timeofday``, ``scene`` or
    ``overall``), the three attributes (``*`` where a marginal does not fix one),
    n_frames, map50, map, ci_lo, ci_hi, ``ap50/<class>`` and ``recall/<class>``.
    Sorted ascending by mAP@0.5 within each grouping; full slices first.
    """
    from rich.progress import Progress

    rows = []
    keys = {attrs: slice_keys(gt, attrs) for attrs in GROUPINGS}
    with Progress(disable=not progress, transient=True) as bar:  # one bar: every grouping's frames
        task = bar.add_task("scoring slices", total=sum(len(k) for k in keys.values()))
        results = {attrs: evaluate_slices(cache, k, n_boot=n_boot, seed=seed,
                                          advance=lambda n: bar.advance(task, n)) for attrs, k in keys.items()}
    for attrs, grouped in results.items():
        grouping = "slice" if len(attrs) > 1 else attrs[0]
        for r in grouped:
            rows.append(_row(grouping, r.key, r.n_frames, r.map50, r.map, r.ci95,
                             r.ap50_per_class, r.recall_per_class))
    all_frames = {f["name"]: {"all": "all"} for f in gt}
    (total,) = evaluate_slices(cache, all_frames, n_boot=n_boot, seed=seed)
    rows.append(_row("overall", {}, total.n_frames, total.map50, total.map, total.ci95,
                     total.ap50_per_class, total.recall_per_class))
    table = pd.DataFrame(rows)
    order = {"slice": 0, "weather": 1, "timeofday": 2, "scene": 3, "overall": 4}
    table["_g"] = table["grouping"].map(order)
    table["_m"] = table["map50"].fillna(float("inf"))
    return table.sort_values(["_g", "_m", "n_frames"], kind="mergesort").drop(columns=["_g", "_m"]) \
        .reset_index(drop=True)


def _row(grouping: str, key: dict, n: int, map50, map_, ci, ap50: dict, recall: dict) -> dict:
    row: dict[str, Any] = {"grouping": grouping}
    for a in FRAME_ATTRIBUTES:
        row[a] = key.get(a, "*")
    row.update({"n_frames": n, "map50": map50, "map": map_,
                "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None})
    row.update({f"ap50/{c}": ap50.get(c) for c in CLASSES})
    row.update({f"recall/{c}": recall.get(c) for c in CLASSES})
    return row


def worst_errors(doc: dict[str, Any]) -> dict[str, float | None] | None:
    """The worst slice's AP@0.5 cost per error type (None without a worst slice)."""
    row = next((r for r in doc["slices"] if r["grouping"] == "slice" and r["key"] == doc["worst"]), None)
    return row["dap"] if row else None


def pick_worst(table: pd.DataFrame, min_frames: int) -> dict[str, Any] | None:
    """argmin mAP@0.5 over full slices with at least ``min_frames`` frames."""
    cands = table[(table["grouping"] == "slice") & (table["n_frames"] >= min_frames)
                  & table["map50"].notna()]
    if cands.empty:
        return None
    row = cands.loc[cands["map50"].idxmin()]
    return {
        "key": {a: row[a] for a in FRAME_ATTRIBUTES},
        "n_frames": int(row["n_frames"]),
        "map50": float(row["map50"]),
        "ci95": [row["ci_lo"], row["ci_hi"]] if pd.notna(row["ci_lo"]) else None,
    }


def worst_slice_frames(gt: list[dict], worst: dict[str, Any]) -> list[str]:
    """Names of the eval frames in the worst slice."""
    keys = slice_keys(gt, FRAME_ATTRIBUTES)
    return [name for name, key in keys.items() if key == worst["key"]]


def scored_classes(labels: list[dict]) -> Counter:
    """Boxes per class that the protocol scores: ignored categories and crowd regions left out,
    legacy names mapped (so the counts add up to the frame's ``n_gt``)."""
    out: Counter = Counter()
    for lab in labels:
        mapped = map_category(str(lab.get("category")))
        attrs = lab.get("attributes") if isinstance(lab.get("attributes"), dict) else {}
        if mapped is None or mapped[1] or attrs.get("crowd") is True or attrs.get("ignored") is True:
            continue
        out[mapped[0]] += 1
    return out


def failure_frames(per_frame: dict[str, dict], gt: list[dict], *, recall_below: float) -> list[dict]:
    """Frames with AP@0.5 of 0 or recall under ``recall_below``, with their reasons.

    Sorted worst first (lowest AP, then lowest recall).
    """
    gt_classes = {f["name"]: scored_classes(f.get("labels") or []) for f in gt}
    out = []
    for name, m in per_frame.items():
        if m["ap50"] is None:
            continue
        reasons = []
        if m["ap50"] == 0:
            reasons.append("AP@0.5 is 0: no ground-truth box found at IoU 0.5")
        if m["recall"] is not None and m["recall"] < recall_below:
            reasons.append(f"recall {m['recall']:.2f} < {recall_below}: missed {m['fn']} of {m['n_gt']} boxes")
        if not reasons:
            continue
        if m["fp"]:
            reasons.append(f"{m['fp']} false positive(s) above the score threshold")
        if m["n_pred"] == 0:
            reasons.append("no detection above the score threshold")
        out.append({"name": name, **m, "reasons": reasons,
                    "gt_classes": dict(gt_classes.get(name, {}))})
    return sorted(out, key=lambda f: (f["ap50"], f["recall"] if f["recall"] is not None else 1.0))


def write_tables(out_dir: Path, table: pd.DataFrame) -> None:
    """The slice table as CSV, JSON records and markdown (the markdown keeps the headline columns)."""
    table.to_csv(EVAL.slice_table_csv.at(out_dir), index=False)
    EVAL.slice_table_json.at(out_dir).write_text(table.to_json(orient="records", indent=2))
    cols = ["grouping", *FRAME_ATTRIBUTES, "n_frames", "map50", "ci_lo", "ci_hi", "map"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table[cols].itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    EVAL.slice_table_md.at(out_dir).write_text("\n".join(lines) + "\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if pd.isna(v) else f"{v:.3f}"
    return str(v)


def _slice_name(s: dict[str, Any]) -> str:
    return " / ".join(s["key"][a] for a in FRAME_ATTRIBUTES)


def _costs_line(costs: dict[str, float | None] | None) -> str:
    """``miss 0.104, loc 0.031, bkg 0.018, ...``: the worst slice's error costs, largest first."""
    if not costs:
        return "n/a"
    ranked = sorted((t for t in ERROR_TYPES if costs.get(t) is not None), key=lambda t: -costs[t])
    return ", ".join(f"{t} {costs[t]:.3f}" for t in ranked) or "n/a"


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    w = m["worst_slice"]
    worst = (f"{_slice_name(w)}: mAP@0.5 {w['map50']:.3f} (95% CI {w['ci95'][0]:.3f}-{w['ci95'][1]:.3f}, "
             f"{w['n_frames']} frames)" if w and w.get("ci95") else str(w))
    return StageOutcome(
        stage="eval",
        location=ref.path,
        skipped=skipped,
        wrote=[f"{EVAL.preds.at(ref)}, slice_table.{{csv,json,md}}, {EVAL.worst_slice.file}, {EVAL.failures.file}, "
               f"{EVAL.errors.file}, {EVAL.box_errors.file}"],
        numbers={
            "iteration": res["iter"],
            "arm": res["tag"] or "-",
            "eval frames": m["n_frames"],
            "overall mAP@0.5 (BDD100K protocol)": f"{m['map50']:.4f}" if m["map50"] is not None else "n/a",
            "overall mAP@0.5:0.95": f"{m['map']:.4f}" if m["map"] is not None else "n/a",
            "slices scored": m["n_slices"],
            "worst slice": worst,
            "AP@0.5 each error costs it (TIDE)": _costs_line(m.get("worst_slice_errors")),
            "failure frames in it": m["n_failure_frames"],
            "wall time (s)": res["wall_time_s"],
        },
        look_at=[str(EVAL.slice_chart.at(ref)), str(EVAL.failure_thumbnails.at(ref)),
                 str(EVAL.slice_table_md.at(ref)), *log_lines(ref)],
        safe_to_delete=f"{ref.path} (then `bddengine eval --iter {res['iter']}` re-scores)",
    )
