"""Stage ``split``: train, val, slice-balanced eval and mining pools, held out by video.

load config -> resolve the collect and embed runs (they must match) -> assign pools
(eval, val, train, mining; whole videos) -> drop near-duplicates across train/eval
and mining/eval -> check the hold-out independently -> write the pool tables, the
eval ground truth, the YOLO dataset, the split table and chart -> result.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bddengine.bdd.categories import CLASSES, IGNORED_NAMES, column_name
from bddengine.config import EngineConfig, SplitConfig, config_dict, fingerprint
from bddengine.curation.pools import (
    EXCLUDED,
    INCLUDE_SMALL,
    POOLS,
    SLICE,
    NearDuplicates,
    PoolAssignment,
    assign_pools,
    check_video_holdout,
    drop_eval_near_duplicates,
    drop_mining_near_duplicates,
    split_table,
)
from bddengine.errors import StageInputError
from bddengine.figures import plot_split_distribution
from bddengine.integrations.yolo_export import check_export, export_split, write_dataset_yaml
from bddengine.runs import RunLookupError, RunRef, StageRun, resolve_input
from bddengine.runs.layout import COLLECT, EMBED, SPLIT
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged

LABEL_COLUMNS: tuple[str, ...] = (*(column_name(c) for c in CLASSES), "n_ignored", "n_boxes", "labeled")
"""Manifest columns that reveal labels: left out of the mining pool, whose labels are hidden."""
MAX_PAIRS_IN_JSON = 200

def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Split the collected frames into train, val, eval and mining pools.

    Args:
        cfg: the engine config (``split``, ``seed``, ``runs_dir``).
        force: re-run even when an identical split run exists.
        progress: show a progress bar while writing the YOLO dataset.

    Raises:
        StageInputError: no collect or embed run, the embed run belongs to
            another collect run, the embeddings do not match the manifest, a
            labeled pool comes out empty, or the near-duplicate check would
            empty the eval or mining pool (embeddings that cannot tell frames
            apart, e.g. random-init weights).
    """
    s = cfg.split
    collect, embed = resolve_inputs(cfg.runs_dir)
    fp = fingerprint(config_dict(s), cfg.seed, collect.name, collect.result().get("fingerprint"),
                     embed.name, embed.result().get("fingerprint"))
    job = Job("split", fp, cfg.seed, _outcome, inputs={"collect": str(collect.path), "embed": str(embed.path)},
              mirror=True)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    manifest, boxes, embeddings = load_inputs(collect, embed)
    plan = plan_pools(manifest, embeddings, s, seed=cfg.seed, collect=collect, embed=embed)
    return execute(cfg, job, lambda run: write_split(run, s, manifest, boxes, plan, progress=progress))


@dataclass
class PoolPlan:
    """The pools a split writes, and how the near-duplicate check changed them.

    Attributes:
        assignment: every manifest row's pool (and why a row is excluded).
        pools: pool name -> its frames table.
        holdout: the independent video hold-out check (``ok`` and what overlaps).
        eval_rows_before, mining_rows_before: the eval and mining rows before near-duplicates were dropped.
        eval_dups: eval frames near train/val frames (the reference rows are train then val).
        mining_dups: mining frames near eval frames.
    """

    assignment: PoolAssignment
    pools: dict[str, pd.DataFrame] = field(repr=False)
    holdout: dict[str, Any]
    eval_rows_before: np.ndarray = field(repr=False)
    mining_rows_before: np.ndarray = field(repr=False)
    eval_dups: NearDuplicates = field(repr=False)
    mining_dups: NearDuplicates = field(repr=False)


def plan_pools(
    manifest: pd.DataFrame, embeddings: np.ndarray, s: SplitConfig, *, seed: int, collect: RunRef, embed: RunRef
) -> PoolPlan:
    """Assign whole videos to the pools, drop near-duplicates of eval frames, and check the hold-out.

    Raises:
        StageInputError: a labeled pool comes out empty, or the near-duplicate check would
            empty the eval or mining pool or take more than ``split.near_dup_max_share`` of eval.
        RuntimeError: the hold-out check finds a video in two pools (a bug, not a data problem).
    """
    assignment = assign_pools(
        manifest,
        eval_size=s.eval_size,
        eval_top_slices=s.eval_top_slices,
        eval_include=s.eval_include,
        eval_include_min=s.eval_include_min,
        val_size=s.val_size,
        train_size=s.train_size,
        min_per_bucket=s.min_per_bucket,
        seed=seed,
    )
    for pool in ("eval", "val", "train"):
        if not len(assignment.indices(pool)):
            raise StageInputError(
                f"the {pool} pool is empty: the collect run {collect.name} has "
                f"{int(manifest['labeled'].sum())} labeled frames; raise collect.labeled_target "
                "or lower split.eval_size / val_size / train_size"
            )
    threshold = math.inf if s.near_dup_threshold is None else s.near_dup_threshold  # inf: check off
    eval_rows_before = assignment.indices("eval")
    eval_dups = drop_eval_near_duplicates(assignment, manifest, embeddings, threshold)
    mining_rows_before = assignment.indices("mining")
    mining_dups = drop_mining_near_duplicates(assignment, embeddings, threshold)
    for pool, before, dups in (("eval", eval_rows_before, eval_dups), ("mining", mining_rows_before, mining_dups)):
        if len(before) and not len(assignment.indices(pool)):
            raise StageInputError(
                f"every {pool} frame has a near-duplicate above split.near_dup_threshold="
                f"{s.near_dup_threshold} (median nearest cosine "
                f"{float(np.median(dups.best_similarity)):.3f}): the embeddings of {embed.name} do not "
                "tell frames apart (random-init weights?); embed with pretrained weights or raise "
                "the threshold"
            )
    check_near_dup_share(len(eval_rows_before), int(eval_dups.query_rows().size), threshold=s.near_dup_threshold,
                         max_share=s.near_dup_max_share, embed=embed, similarity=eval_dups.best_similarity)
    pools = pool_tables(manifest, assignment)
    holdout = check_video_holdout(pools)
    if not holdout["ok"]:  # a bug, not a data problem: never write a leaking split
        raise RuntimeError(f"split: video hold-out violated: {holdout}")
    return PoolPlan(assignment, pools, holdout, eval_rows_before, mining_rows_before, eval_dups, mining_dups)


def write_split(
    run: StageRun, s: SplitConfig, manifest: pd.DataFrame, boxes: pd.DataFrame, plan: PoolPlan, *, progress: bool
) -> Commit:
    """Write the pool tables, the eval ground truth, the leakage check, the split table and chart, and the YOLO dataset.

    Raises:
        RuntimeError: the YOLO export is broken (a bug).
    """
    assignment, pools = plan.assignment, plan.pools
    for pool, table in pools.items():
        SPLIT.pool(pool).write(run, table)
    excluded = manifest.iloc[assignment.indices(EXCLUDED)][["name", "video", *SLICE]]
    excluded = excluded.assign(reason=assignment.reason[assignment.indices(EXCLUDED)].astype(str))
    SPLIT.excluded.write(run, excluded)
    SPLIT.eval_gt.write(run, eval_ground_truth(pools["eval"], boxes))
    ref_rows = np.concatenate([assignment.indices("train"), assignment.indices("val")])
    train_val_names = manifest["name"].to_numpy()[ref_rows]  # reference rows of eval_dups
    leakage = {
        **plan.holdout,
        "near_duplicates": {
            "threshold": s.near_dup_threshold,
            "train_val_vs_eval": _pairs_json(
                plan.eval_dups, manifest["name"].to_numpy()[plan.eval_rows_before], train_val_names),
            "mining_vs_eval": _pairs_json(
                plan.mining_dups, manifest["name"].to_numpy()[plan.mining_rows_before],
                pools["eval"]["name"].to_numpy(), keep_pairs=False),
        },
    }
    SPLIT.leakage_check.write(run, leakage)
    table = split_table(manifest, assignment.pool)
    table.to_csv(SPLIT.split_table.at(run), index=False)
    eval_keys = [q.key for q in assignment.eval_quotas]
    plot_split_distribution(table, SPLIT.split_distribution.at(run), eval_slices=eval_keys)

    yolo = SPLIT.yolo_dir(run)
    export = {}
    for split in ("train", "val"):
        export[split] = export_split(pools[split], boxes, yolo, split,
                                     progress=_progress(f"YOLO export: {split}", progress))
        problems = check_export(yolo, split)
        if problems:
            raise RuntimeError(f"YOLO export of {split} is broken: {problems[:5]}")
    write_dataset_yaml(yolo)
    metrics = split_metrics(assignment, plan.holdout, plan.eval_dups, plan.mining_dups, export, pools)
    return Commit(
        outputs=SPLIT.outputs(),
        metrics=metrics | {"near_dup_threshold": s.near_dup_threshold,
                           "requested": {"train": s.train_size, "val": s.val_size, "eval": s.eval_size}},
    )


def check_near_dup_share(n_eval: int, n_dropped: int, *, threshold: float | None, max_share: float,
                         embed: RunRef, similarity: np.ndarray) -> None:
    """Stop when the near-duplicate check took more than ``max_share`` of the eval pool.

    Embeddings that crowd frames together (random-init or mismatched weights) mark most
    eval frames as near-duplicates; the split would succeed with a handful of eval
    frames and every later number would rest on them.

    Raises:
        StageInputError: naming the threshold, the share, the embed run and its model.
    """
    if not n_eval or n_dropped <= max_share * n_eval:
        return
    model = embed.result().get("model") or {}
    weights = ("random init" if model.get("random_init") else f"weights {model.get('pretrained')}") \
        if model else "model not recorded"
    what = f"{model.get('family', '?')} {model.get('arch', '?')}, {weights}" if model else weights
    median = f", median nearest cosine {float(np.median(similarity)):.3f}" if similarity.size else ""
    raise StageInputError(
        f"the near-duplicate check dropped {n_dropped} of {n_eval} eval frames ({n_dropped / n_eval:.0%}"
        f"{median}) as near-duplicates of train/val frames at cosine above split.near_dup_threshold="
        f"{threshold}, more than split.near_dup_max_share={max_share:g}; the embeddings of {embed.name} "
        f"({what}) put these frames too close together to tell them apart. Embed with pretrained "
        "weights (embed.pretrained) and re-run `bddengine embed` and `bddengine split`, or raise "
        "split.near_dup_threshold (null turns the check off; the video hold-out stays), or raise "
        "split.near_dup_max_share if the data really holds this many repeated frames")


def resolve_inputs(runs_dir: Path) -> tuple[RunRef, RunRef]:
    """The newest collect and embed runs, checked to belong together.

    Raises:
        StageInputError: either run is missing, or the embed run embedded another
            collect run (the message names both and says what to run).
    """
    try:
        collect = resolve_input(runs_dir, "collect")
        embed = resolve_input(runs_dir, "embed")
    except RunLookupError as exc:
        raise StageInputError(str(exc)) from None
    embedded = embed.result().get("inputs", {}).get("collect")
    if not embedded or Path(embedded).name != collect.name:
        raise StageInputError(
            f"the newest embed run {embed.name} embedded collect run {embedded!r}, but the newest "
            f"collect run is {collect.name}: run `bddengine embed` (same --config) so the "
            "embeddings match the frames"
        )
    return collect, embed


def load_inputs(collect: RunRef, embed: RunRef) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Read the manifest, the boxes and the embeddings, checking that rows line up.

    Returns:
        The manifest (with an ``embedding_row`` column), the boxes, and the
        embeddings as float32.

    Raises:
        StageInputError: a file is missing, or the embedding rows do not match
            the manifest rows.
    """
    for artifact in (COLLECT.manifest, COLLECT.boxes):
        artifact.require(collect, "bddengine collect")
    emb_path = EMBED.embeddings.require(embed, "bddengine embed")
    manifest, boxes = COLLECT.manifest.read(collect), COLLECT.boxes.read(collect)
    embeddings = np.load(emb_path, mmap_mode="r")
    if embeddings.ndim != 2 or embeddings.shape[0] != len(manifest):
        raise StageInputError(
            f"{emb_path} has shape {embeddings.shape} but {collect.name}/{COLLECT.manifest.file} has "
            f"{len(manifest)} rows (one embedding per manifest row expected): re-run `bddengine embed`"
        )
    manifest = manifest.assign(embedding_row=np.arange(len(manifest), dtype=np.int64))
    return manifest, boxes, np.asarray(embeddings, dtype=np.float32)


def pool_tables(manifest: pd.DataFrame, assignment: PoolAssignment) -> dict[str, pd.DataFrame]:
    """One frames table per pool; the mining pool without the columns that reveal labels."""
    tables = {}
    for pool in POOLS:
        table = manifest.iloc[assignment.indices(pool)].reset_index(drop=True)
        if pool == "mining":
            table = table.drop(columns=[c for c in LABEL_COLUMNS if c in table.columns])
        tables[pool] = table
    return tables


def eval_ground_truth(eval_pool: pd.DataFrame, boxes: pd.DataFrame) -> list[dict[str, Any]]:
    """The eval pool's ground truth as BDD det_20 frames, for the BDD evaluator.

    Ignored categories keep their raw name ("other person", ...) so the
    evaluator treats them as ignore regions; other boxes use the mapped class
    (legacy names such as "van" become "car"); crowd boxes keep ``crowd: true``.
    Coordinates are the original pixels, unclipped.
    """
    wanted = boxes[boxes["name"].isin(set(eval_pool["name"]))]
    by_frame = {n: g for n, g in wanted.groupby("name", sort=False)}
    frames = []
    for row in eval_pool.itertuples(index=False):
        labels = []
        group = by_frame.get(row.name)
        if group is not None:
            for j, b in enumerate(group.itertuples(index=False)):
                ignored_category = b.raw_category in IGNORED_NAMES
                labels.append({
                    "id": str(b.label_id) if pd.notna(b.label_id) else f"{row.name}-{j}",
                    "category": b.raw_category if ignored_category else b.category,
                    "attributes": {
                        "crowd": bool(b.ignored) and not ignored_category,
                        "occluded": bool(b.occluded),
                        "truncated": bool(b.truncated),
                    },
                    "box2d": {"x1": float(b.x1), "y1": float(b.y1), "x2": float(b.x2), "y2": float(b.y2)},
                })
        frames.append({
            "name": row.name,
            "attributes": {"weather": row.weather, "timeofday": row.timeofday, "scene": row.scene},
            "labels": labels,
        })
    return frames


def split_metrics(
    assignment: PoolAssignment,
    holdout: dict[str, Any],
    eval_dups: NearDuplicates,
    mining_dups: NearDuplicates,
    export: dict[str, Any],
    pools: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    """The numbers result.json and the summary report."""
    counts = assignment.counts()
    quotas = assignment.eval_quotas
    return {
        "n_frames": {**counts},
        "n_videos": holdout["videos_per_pool"],
        "n_mining_with_gt": int(pools["mining"]["has_gt"].sum()),
        "excluded_by_reason": assignment.excluded_by_reason(),
        "holdout_ok": holdout["ok"],
        "n_overlapping_videos": holdout["n_overlapping_videos"],
        "near_dup_pairs_train_val_eval": eval_dups.n_pairs,
        "near_dup_eval_dropped": int(eval_dups.query_rows().size),
        "near_dup_pairs_mining_eval": mining_dups.n_pairs,
        "near_dup_mining_dropped": int(mining_dups.query_rows().size),
        "eval_slices": [q.to_dict() for q in quotas],
        "eval_short_slices": sum(1 for q in quotas if q.allocated < q.planned),
        "eval_include": include_matches(assignment),
        "train_allocation": [a.to_dict() for a in assignment.train_allocation],
        "val_allocation": [a.to_dict() for a in assignment.val_allocation],
        "yolo": {split: stats.to_dict() for split, stats in export.items()},
    }


def include_matches(assignment: PoolAssignment) -> list[dict[str, Any]]:
    """Each ``eval_include`` pattern's matches, with the eval frames every slice it added kept."""
    final = {q.key: q.final for q in assignment.eval_quotas}
    out = []
    for entry in assignment.include_report:
        slices = [r | ({"eval_frames": final.get(tuple(r[a] for a in SLICE), 0)} if r["status"] != INCLUDE_SMALL
                       else {}) for r in entry["slices"]]  # type: ignore[union-attr]
        out.append(entry | {"slices": slices})
    return out


def _pairs_json(
    dups: NearDuplicates, query_names: np.ndarray, ref_names: np.ndarray, *, keep_pairs: bool = True
) -> dict[str, Any]:
    """Counts, and the most similar pairs (at most `MAX_PAIRS_IN_JSON`)."""
    out: dict[str, Any] = {"n_pairs": dups.n_pairs, "n_frames_dropped": int(dups.query_rows().size)}
    order = np.argsort(-dups.similarity, kind="stable")[:MAX_PAIRS_IN_JSON]
    pairs = [
        {"dropped": str(query_names[dups.query[i]]), "near": str(ref_names[dups.reference[i]]),
         "cosine": round(float(dups.similarity[i]), 4)}
        for i in order
    ]
    out["pairs" if keep_pairs else "examples"] = pairs
    if dups.best_similarity.size:
        out["max_cosine"] = round(float(np.max(dups.best_similarity)), 4)
        out["median_nearest_cosine"] = round(float(np.median(dups.best_similarity)), 4)
    return out


def _progress(description: str, enabled: bool):
    if not enabled:
        return None
    from rich.progress import track

    return lambda rows: track(list(rows), description=description, transient=True)


def _short_pools(n: dict[str, int], requested: dict[str, int]) -> dict[str, str]:
    """A summary line for every pool smaller than its configured size (none when all are met)."""
    short = [f"{pool} {n[pool]:,} of {want:,} (split.{pool}_size)"
             for pool, want in requested.items() if n.get(pool, 0) < want]
    if not short:
        return {}
    return {"short of the requested size": "; ".join(short) + ": the collect run has too few labeled "
            "frames in reach (raise collect.labeled_target or lower the size)"}


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    path, result = ref.path, ref.result()
    m = result["metrics"]
    n, v = m["n_frames"], m["n_videos"]
    slices = m["eval_slices"]
    finals = [q["final"] for q in slices]
    short = [q for q in slices if q["allocated"] < q["planned"]]
    balance = f"{len(slices)} slices x {min(finals, default=0)}-{max(finals, default=0)} frames"
    if short:
        balance += f" ({len(short)} short slice(s) gave all they had; the rest was redistributed)"
    yolo = m["yolo"]
    excluded = ", ".join(f"{k}: {c}" for k, c in m["excluded_by_reason"].items()) or "none"
    return StageOutcome(
        stage="split",
        location=path,
        skipped=skipped,
        wrote=[
            f"{path}/" + ", ".join(SPLIT.pool(p).file for p in POOLS)
            + f", {SPLIT.excluded.file}, {SPLIT.eval_gt.file}",
            f"{SPLIT.yolo_dataset.at(path)} (+ images/, labels/ for train and val)",
            f"{path}/{SPLIT.leakage_check.file}, {SPLIT.split_table.file}, {SPLIT.split_distribution.file}",
        ],
        numbers={
            "pools (frames)": " / ".join(f"{p} {n[p]:,}" for p in POOLS) + f" (excluded {n[EXCLUDED]:,})",
            "videos per pool": " / ".join(f"{p} {v[p]:,}" for p in POOLS),
            "mining frames with hidden GT": f"{m['n_mining_with_gt']:,}",
            "video hold-out": "ok: no video in two pools" if m["holdout_ok"]
            else f"LEAK: {m['n_overlapping_videos']} videos",
            "near-duplicate threshold": m["near_dup_threshold"] if m["near_dup_threshold"] is not None
            else "off (split.near_dup_threshold: null); the video hold-out still applies",
            "near-duplicates (train/val vs eval)": f"{m['near_dup_pairs_train_val_eval']} pairs, "
            f"{m['near_dup_eval_dropped']} eval frames dropped",
            "near-duplicates (mining vs eval)": f"{m['near_dup_pairs_mining_eval']} pairs, "
            f"{m['near_dup_mining_dropped']} mining frames dropped",
            "eval balance": balance,
            **_short_pools(n, m.get("requested", {})),
            **{f"eval_include {i}": entry["summary"] for i, entry in enumerate(m.get("eval_include", []), 1)},
            "excluded": excluded,
            "YOLO targets": f"train {yolo['train']['n_boxes']:,} boxes on {yolo['train']['n_images']:,} "
            f"images, val {yolo['val']['n_boxes']:,} on {yolo['val']['n_images']:,} "
            f"({yolo['train']['n_ignored'] + yolo['val']['n_ignored']} ignored/crowd left out)",
            "wall time (s)": result["wall_time_s"],
        },
        look_at=[
            f"{SPLIT.split_distribution.at(path)} (each slice's share per pool)",
            str(SPLIT.split_table.at(path)),
            f"{SPLIT.leakage_check.at(path)} (hold-out and near-duplicates)",
            str(SPLIT.yolo_dataset.at(path)),
        ],
        safe_to_delete=f"{path} (train, eval and mine read it: delete them with it)",
    )
