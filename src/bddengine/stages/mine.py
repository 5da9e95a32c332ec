"""Stage ``mine``: pick ``k`` unlabeled frames like the worst slice's failures.

resolve the eval run of iteration N -> its train and split runs -> the split's embed
and collect runs -> fingerprint (no-op when unchanged) -> the worst slice, its
failure frames and failed classes -> exclusions (videos held by train/val/eval,
near-duplicates of eval frames, as metadata filters) -> vectors (curate-stage
embeddings, or the detector's pooled backbone features, reused across arms) ->
strategy (prototype k-NN through a registered vector index, random, random-slice)
-> mined.json, mining precision against the mining pool's base rate (hidden ground
truth), thumbnail grid -> result.json.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bddengine.bdd.categories import FRAME_ATTRIBUTES
from bddengine.config import EngineConfig, EvalConfig, MineConfig, arm_name, config_dict, fingerprint, parse_arm
from bddengine.curation.pools import POOLS
from bddengine.errors import StageInputError
from bddengine.evaluation import build_match_cache, per_frame_metrics
from bddengine.figures import plot_mined_grid
from bddengine.inference import FrameSource
from bddengine.integrations.ultralytics import embed_with_detector, load_detector, log_lines, resolve_device
from bddengine.mining.core import (
    REASON_NEAR_DUP,
    exclusion_filters,
    exclusion_metadata,
    failed_classes,
    failure_prototype,
    gt_classes_by_frame,
    l2_normalize,
    lift,
    pool_nearest_similarity,
    precision_block,
    slice_mask,
)
from bddengine.mining.strategies import STRATEGIES, Ranking, strategy_spec
from bddengine.runs import RunRef, StageRun, list_runs, resolve_input
from bddengine.runs.layout import AUTOLABEL, COLLECT, EMBED, EVAL, MINE, SPLIT, TRAIN
from bddengine.runs.lineage import upstream
from bddengine.runs.lineages import lineage_tag, train_tag, trained_labels
from bddengine.stages import StageOutcome
from bddengine.stages.eval import failure_frames
from bddengine.stages.job import Commit, Job, execute, unchanged
from bddengine.vectors import KeepRows, NotIn, SearchPlan, is_exact, keep_mask

GRID_MAX = 100
REASON_LABELED = "labeled earlier in the lineage"
LANCEDB = "lancedb"
"""The registered index whose table embed writes and mine searches in place."""


@dataclass
class MineInputs:
    """Everything the stage reads, loaded and checked.

    Attributes:
        eval, train, split, embed, collect: the input runs.
        worst: the worst slice's key (weather, timeofday, scene).
        slice_row: the worst slice's row of the eval's slice table.
        failure_names: the worst slice's failure frames (eval pool names).
        pools: pool name -> its table.
        embeddings: the embed run's vectors (memory-mapped).
        boxes: the collect run's boxes (hidden ground truth of the mining pool).
    """

    eval: RunRef
    train: RunRef
    split: RunRef
    embed: RunRef
    collect: RunRef
    worst: dict[str, str]
    slice_row: dict[str, Any]
    failure_names: list[str]
    pools: dict[str, pd.DataFrame] = field(repr=False)
    embeddings: np.ndarray = field(repr=False)
    boxes: pd.DataFrame = field(repr=False)


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
    """Mine ``mine.k`` frames of the mining pool for iteration ``iter``'s worst slice (or the target slice).

    Without ``arm`` the mining arm is ``mine.strategy`` with ``mine.embedding`` and the model
    is iteration ``iter``'s (turn 1: the shared iteration-0 model). With ``arm`` (iteration 1
    on) it mines for one lineage (``arm``, ``seed``): with that lineage's iteration-``iter``
    model, for turn 1's target slice, leaving out every frame the lineage labeled before.

    Args:
        cfg: the engine config (``mine``, ``seed``, ``flywheel.target_slice``, ``eval.imgsz``/``train.imgsz``
            for detector embeddings).
        iter: the iteration whose evaluation is mined for.
        arm: the lineage's arm (``prototype-pyramid``); its strategy and embedding replace ``mine``'s.
        seed: the lineage's training seed (default ``cfg.seed``).
        force: re-mine even when an identical run exists.
        source: explicit eval run (``--from``).
        progress: show a progress bar while embedding frames with the detector.

    Raises:
        RunLookupError: no eval run of this iteration (and lineage).
        StageInputError: an input run or file is missing, no slice qualified as the
            worst, the target slice has too few eval frames, the mining pool is empty
            (or every frame is excluded), or the embeddings do not match the pools.
    """
    ev, tag, seed, lineage = resolve_eval(cfg, iter=iter, arm=arm, seed=seed, source=source)
    m = arm_config(cfg.mine, arm)
    iter = ev.iter if ev.iter is not None else iter  # --from names the iteration
    train, split, embed, collect = upstream_runs(ev)
    imgsz = cfg.eval.imgsz or cfg.train.imgsz
    fp = fingerprint(mine_settings(m), seed, iter, *(_id(r) for r in (ev, train, split, embed, collect)),
                     imgsz if m.embedding == "detector" else None,
                     *([] if lineage.target is None else [lineage.fingerprint(cfg.eval)]))
    job = Job("mine", fp, seed, _outcome, iter=iter, tag=tag, mirror=True, ultralytics_log=True,
              inputs={r.stage: str(r.path) for r in (ev, train, split, embed, collect)})
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    inp = aim(load_inputs(ev, train, split, embed, collect), lineage.target, cfg.eval)
    pool = eligible_frames(inp, m.near_dup_threshold, labeled=lineage.labeled)
    proto_rows, proto_source = prototype_frames(pool.eval_pool, inp.failure_names, inp.worst)
    return execute(cfg, job, lambda run: mine_frames(
        run, cfg.model_copy(update={"mine": m, "seed": seed}), inp, pool, proto_rows, proto_source,
        arm=arm_name(m.strategy, m.embedding), iter=iter, imgsz=imgsz, progress=progress, lineage=lineage))


@dataclass(frozen=True)
class Lineage:
    """What mining for one lineage adds to a plain mine run.

    Attributes:
        arm, seed: the lineage (None for a turn-1 mine run, shared by the arm's seeds).
        target: the slice to mine for (None: the eval's own worst slice).
        labeled: every frame the lineage labeled before (excluded from mining).
        label_runs: the autolabel runs those frames come from, oldest first.
    """

    arm: str | None = None
    seed: int | None = None
    target: dict[str, str] | None = None
    labeled: frozenset[str] = frozenset()
    label_runs: tuple[str, ...] = ()

    def fingerprint(self, e: EvalConfig) -> dict[str, Any]:
        """What the mined frames depend on beyond a plain mine run's inputs."""
        return {"target": self.target, "labeled": self.label_runs, "failure_score": e.failure_score,
                "failure_recall": e.failure_recall}

    def record(self) -> dict[str, Any]:
        """``result.json``'s ``lineage`` field."""
        return {"arm": self.arm, "seed": self.seed, "target_slice": self.target, "labeled_runs": list(self.label_runs),
                "n_labeled_frames": len(self.labeled)}


def arm_config(m: MineConfig, arm: str | None) -> MineConfig:
    """``mine`` with a lineage arm's strategy and embedding (unchanged without an arm)."""
    if arm is None:
        return m
    strategy, embedding = parse_arm(arm)
    return m.model_copy(update={"strategy": strategy, "embedding": embedding})


def resolve_eval(
    cfg: EngineConfig, *, iter: int, arm: str | None, seed: int | None, source: str | None,
) -> tuple[RunRef, str, int, Lineage]:
    """The eval run to mine with, the mine run's tag and seed, and the lineage it mines for.

    Raises:
        StageInputError: ``--arm``/``--seed`` at iteration 0, or an unknown arm.
        RunLookupError: no such eval run.
    """
    target = dict(cfg.flywheel.target_slice) if cfg.flywheel.target_slice else None
    if arm is None:
        if seed is not None:
            raise StageInputError("mine --seed names a lineage's model: give --arm with it (iteration 1 on)")
        ev = resolve_input(cfg.runs_dir, "eval", explicit=source, iter=iter, tag=None,
                           hint=f"bddengine eval --iter {iter}")
        return ev, arm_name(cfg.mine.strategy, cfg.mine.embedding), cfg.seed, Lineage(target=target)
    if iter < 1:
        raise StageInputError(f"mine --iter {iter} --arm {arm}: a lineage mines with its own model from iteration "
                              "1 on; iteration 0 is shared, so mine it with --strategy/--embedding")
    try:
        parse_arm(arm)
    except ValueError as exc:
        raise StageInputError(f"--arm {exc}") from None
    seed = cfg.seed if seed is None else seed
    tag = train_tag(iter, arm, seed, cfg.seed)
    hint = f"bddengine eval --iter {iter} --arm {arm}" + (f" --seed {seed}" if seed != cfg.seed else "")
    ev = resolve_input(cfg.runs_dir, "eval", explicit=source, iter=iter, tag=tag, hint=hint)
    labels = trained_labels(upstream(ev, "train"))
    if not labels:
        raise StageInputError(f"{ev.name}'s model was trained on no autolabel run, so it is no lineage's "
                              f"iteration {iter}: re-run `bddengine train --iter {iter} --arm {arm}` (same --config)")
    first = upstream(labels[0], "mine")
    target = mined_worst_slice(MINE.mined.read(first)) or target
    labeled = frozenset(f["name"] for run in labels for f in AUTOLABEL.autolabels.read(run))
    return ev, lineage_tag(arm, seed), seed, Lineage(arm, seed, target, labeled, tuple(r.name for r in labels))


def mined_worst_slice(mined: dict[str, Any]) -> dict[str, str] | None:
    """The slice a mine run mined for, as recorded in its ``mined.json``."""
    worst = mined.get("worst_slice")
    return {a: str(worst[a]) for a in FRAME_ATTRIBUTES} if isinstance(worst, dict) else None


def aim(inp: MineInputs, target: dict[str, str] | None, e: EvalConfig) -> MineInputs:
    """``inp`` mining for ``target``: its row of the eval's slice table and the model's failures on it.

    The failures are scored as eval scores its worst slice's (per-frame AP@0.5 and recall at
    ``eval.failure_score``), from the eval run's predictions.

    Raises:
        StageInputError: the target slice has fewer than ``eval.min_eval_frames`` eval frames.
    """
    if target is None:
        return inp
    table = json.loads(EVAL.slice_table_json.require(inp.eval, "bddengine eval --force").read_text())
    rows = [r for r in table if r.get("grouping") == "slice" and all(str(r.get(a)) == target[a] for a in target)]
    n = int(rows[0]["n_frames"]) if rows else 0
    if n < e.min_eval_frames:
        raise StageInputError(
            f"flywheel.target_slice {' / '.join(target.values())}: {n} frames in the eval pool of "
            f"{inp.split.name}, fewer than eval.min_eval_frames={e.min_eval_frames}, so its mAP@0.5 cannot be "
            "measured turn after turn: pick a slice with more eval frames (see the slice table of "
            f"{inp.eval.name}) or set flywheel.target_slice: null for iteration 0's worst slice")
    gt = [f for f in json.loads(SPLIT.eval_gt.require(inp.split, "bddengine split --force").read_text())
          if all(str((f.get("attributes") or {}).get(a)) == v for a, v in target.items())]
    names = {f["name"] for f in gt}
    preds = [f for f in EVAL.preds.read(inp.eval) if f["name"] in names]
    per_frame = per_frame_metrics(build_match_cache(gt, preds), sorted(names), score_threshold=e.failure_score)
    failures = failure_frames(per_frame, gt, recall_below=e.failure_recall)
    return replace(inp, worst=dict(target), slice_row=rows[0], failure_names=[f["name"] for f in failures])


def mine_settings(m: MineConfig) -> dict[str, Any]:
    """The mine config the fingerprint holds: the LanceDB keys only when that index is chosen.

    So runs made before those keys existed stay no-ops under the default index.
    """
    d = config_dict(m)
    if m.approximate_index != LANCEDB:
        d.pop("lance"), d.pop("recall_floor")
    return d


@dataclass
class EligibleFrames:
    """The mining pool after the exclusions.

    Attributes:
        mining: the whole mining pool.
        eval_pool: the eval pool (the prototype's frames come from it).
        eligible: the mining frames no exclusion removed.
        masks: exclusion reason -> the mining frames it removes (counted per reason).
        excluded: the mining frames any exclusion removes.
        threshold: ``mine.near_dup_threshold``.
    """

    mining: pd.DataFrame = field(repr=False)
    eval_pool: pd.DataFrame = field(repr=False)
    eligible: pd.DataFrame = field(repr=False)
    masks: dict[str, np.ndarray] = field(repr=False)
    excluded: np.ndarray = field(repr=False)
    threshold: float | None


def eligible_frames(inp: MineInputs, threshold: float | None, *, labeled: frozenset[str] = frozenset()
                    ) -> EligibleFrames:
    """Exclude the mining frames whose videos train, val or eval hold, near-duplicates of eval frames and
    the frames ``labeled`` (a lineage's earlier turns).

    Raises:
        StageInputError: every mining frame is excluded.
    """
    mining = inp.pools["mining"].reset_index(drop=True)
    eval_pool = inp.pools["eval"].reset_index(drop=True)
    eval_sim = None
    if threshold is not None:  # on the curate-stage vectors, whatever the arm's embedding
        eval_sim = pool_nearest_similarity(inp.embeddings, mining["embedding_row"].to_numpy(),
                                           l2_normalize(inp.embeddings[eval_pool["embedding_row"].to_numpy()]))
    held = {p: set(inp.pools[p]["video"].astype(str)) for p in ("train", "val", "eval")}
    where = exclusion_filters(held, threshold)
    meta = exclusion_metadata(mining, eval_sim)
    if labeled:
        where[REASON_LABELED] = NotIn("name", labeled)
        meta["name"] = mining["name"].astype(str).to_numpy()
    masks = {reason: ~f.keeps(meta) for reason, f in where.items()}  # counted per reason in result.json
    excluded = ~keep_mask(meta, list(where.values()), len(meta))
    eligible = mining[~excluded].reset_index(drop=True)
    if eligible.empty:
        raise StageInputError(
            f"every one of the {len(mining)} frames of {inp.split.name}/{SPLIT.mining_pool.file} is excluded "
            f"({_counts(masks)}): lower mine.near_dup_threshold (or set it to null), or re-run "
            "`bddengine split` with a larger collect.unlabeled_target"
        )
    return EligibleFrames(mining, eval_pool, eligible, masks, excluded, threshold)


def mine_frames(
    run: StageRun, cfg: EngineConfig, inp: MineInputs, pool: EligibleFrames, proto_rows: np.ndarray,
    proto_source: str, *, arm: str, iter: int, imgsz: int, progress: bool, lineage: Lineage | None = None,
) -> Commit:
    """Rank the eligible frames against the failure prototype, keep ``mine.k``, and score them.

    Writes mined.json, the prototype, the mining precision against the pool's base rate
    (hidden ground truth), the thumbnail grid and, for detector embeddings, the vectors.
    """
    m = cfg.mine
    eligible, mining = pool.eligible, pool.mining
    detector: dict[str, Any] | None = None
    strategy = STRATEGIES[m.strategy].strategy
    picked = strategy.candidates(eligible, inp.worst, m.k, cfg.seed)
    candidates = eligible if picked is None else eligible.iloc[picked]
    # the LanceDB table answers k-NN of the embed vectors itself: only the prototype's frames are read here
    in_table = m.approximate_index == LANCEDB and picked is None and m.embedding == "embed"
    need = pd.concat([pool.eval_pool.iloc[proto_rows], *([] if in_table else [candidates])], ignore_index=True)
    if m.embedding == "embed":
        vectors = l2_normalize(inp.embeddings[need["embedding_row"].to_numpy()])
    else:
        vectors, detector = detector_vectors(cfg, inp.train, need, imgsz=imgsz, progress=progress)
        MINE.detector_embeddings.write(run, vectors)
        MINE.detector_embedding_names.write(run, need["name"].tolist())
    n_proto = len(proto_rows)
    prototype = failure_prototype(vectors[:n_proto])
    MINE.prototype.write(run, prototype)
    if in_table:
        ranking = lance_ranking(inp.embed, pool, prototype, m)
    else:
        ranking = strategy.rank(vectors[n_proto:], prototype, m.k,
                                plan=SearchPlan(m.exact_max_pool, m.approximate_index, cfg.seed))
    similarity, search = ranking.similarity, ranking.search
    mined = candidates.iloc[ranking.order].reset_index(drop=True)
    failed = failed_classes(inp.slice_row)
    doc = mined_document(mined, similarity, arm=arm, strategy=m.strategy, embedding=m.embedding,
                         iter=iter, k=m.k, worst=inp.worst, failed=failed)
    MINE.mined.write(run, doc)
    gt = gt_classes_by_frame(inp.boxes[inp.boxes["name"].isin(mining["name"])])
    blocks = {"mined": precision_block(mined, inp.worst, gt, failed),
              "base_rate": precision_block(mining, inp.worst, gt, failed),
              "base_rate_eligible": precision_block(eligible, inp.worst, gt, failed)}
    lifts = lift(blocks["mined"], blocks["base_rate"])
    precision = {  # headline numbers first (flat), then every share per block
        "n_mined": len(mined), "k": m.k,
        "slice_precision": blocks["mined"]["slice_match"],
        "slice_base_rate": blocks["base_rate"]["slice_match"], "slice_lift": lifts["slice_match"],
        "failed_class_precision": blocks["mined"]["has_failed_class"],
        "failed_class_base_rate": blocks["base_rate"]["has_failed_class"],
        "failed_class_lift": lifts["has_failed_class"],
        "n_mined_attributes_unknown": blocks["mined"]["n_attributes_unknown"],
        "n_pool_attributes_unknown": blocks["base_rate"]["n_attributes_unknown"],
        "worst_slice": inp.worst, "failed_classes": failed, **blocks, "lift": lifts,
    }
    MINE.mining_precision.write(run, precision)
    plot_mined_grid(doc["frames"][:GRID_MAX], MINE.grid.at(run),
                    title=f"iter {iter} {arm}: top {min(len(mined), GRID_MAX)} of {len(mined)} mined; "
                    f"green = {' / '.join(inp.worst[a] for a in FRAME_ATTRIBUTES)}, red = other slice")
    outputs = MINE.outputs(MINE.mined, MINE.mining_precision, MINE.prototype, MINE.grid)
    if detector is not None:
        outputs |= MINE.outputs(MINE.detector_embeddings, MINE.detector_embedding_names)
    return Commit(
        outputs=outputs,
        metrics={
            "n_mined": len(mined),
            "k": m.k,
            "short_of_k": len(mined) < m.k,
            "worst_slice": inp.worst,
            "worst_slice_map50": inp.slice_row.get("map50"),
            "failed_classes": failed,
            "prototype_source": proto_source,
            "n_prototype_frames": n_proto,
            "precision": _shares(blocks["mined"]),
            "base_rate": _shares(blocks["base_rate"]),
            "base_rate_eligible": _shares(blocks["base_rate_eligible"]),
            "lift": precision["lift"],
            "n_mining_pool": len(mining),
            "n_eligible": len(eligible),
            "n_slice_eligible": int(slice_mask(eligible, inp.worst).sum()),
            "excluded": _counts(pool.masks) | {"any": int(pool.excluded.sum())},
            "near_dup_threshold": pool.threshold,
            "mean_similarity": float(np.mean(similarity[: len(mined)])) if len(mined) else None,
            **search,
        },
        extra={"arm": arm, "strategy": m.strategy, "embedding": m.embedding, "detector": detector}
        | ({"lineage": lineage.record()} if lineage is not None and lineage.arm is not None else {}),
    )


def lance_ranking(embed: RunRef, pool: EligibleFrames, prototype: np.ndarray, m: MineConfig) -> Ranking:
    """k-NN of the prototype in the LanceDB table at the version the embed run committed.

    The exclusions travel as one row set (`KeepRows`): the table rows of the eligible
    frames, so the index returns exactly the frames the exact path may return (held-out
    videos, near-duplicates of eval frames, frames outside the mining pool and a
    lineage's labeled frames are all out) without a SQL list of millions of names. The
    answer is checked against an exact scan of the same rows; below
    ``mine.recall_floor`` the exact answer is taken and the run says so.

    Raises:
        StageInputError: the embed run wrote no table, its version is gone, or the
            table does not hold the mining pool's frames.
    """
    from bddengine.vectors.lance import ROW, LanceIndex, LanceSettings

    rec = embed.result().get("lance")
    if not rec:
        raise StageInputError(
            f"{embed.path} wrote no LanceDB table, and mine.approximate_index is lancedb: run `bddengine embed` "
            "with this config (it reuses the cached vectors and writes the table), then split, eval and mine again")
    settings = LanceSettings(uri=rec["uri"], table=rec["table"], nprobes=m.lance.nprobes,
                             refine_factor=m.lance.refine_factor, recall_sample_rows=m.lance.recall_sample_rows)
    try:
        index = LanceIndex.at_version(settings, int(rec["version"]))
    except ValueError as exc:
        raise StageInputError(f"{exc}. {embed.name} recorded it; re-run `bddengine embed --force` and the stages "
                              "after it (a version is gone only when someone removed its tag)") from None
    names = index.column("name").astype(str)  # position = row number
    eligible = pool.eligible["name"].astype(str).to_numpy()
    missing = np.setdiff1d(eligible, names)
    if len(missing):
        raise StageInputError(f"LanceDB table {rec['uri']} [{rec['table']}] v{rec['version']} lacks {len(missing)} "
                              f"mining frames (e.g. {missing[:3].tolist()}): re-run `bddengine embed --force`")
    where = [KeepRows(ROW, np.isin(names, eligible))]
    k = min(m.k, len(pool.eligible))
    t0 = time.perf_counter()
    hits = index.search(prototype[None, :], k, where=where)
    search_s = time.perf_counter() - t0
    indexed, every, exact = index.has_index(), None, None
    recall, exact_s = 1.0, 0.0
    if indexed:  # without an index the search above was the exact scan itself
        t0 = time.perf_counter()
        check = index.recall_of(hits, prototype[None, :], k, where=where)
        exact_s = time.perf_counter() - t0
        recall, every, exact = check.recall, check.every, check.exact
    fallback = recall < m.recall_floor
    if fallback:
        hits = exact if exact is not None else index.exact_search(prototype[None, :], k, where=where)
    position = {n: i for i, n in enumerate(pool.eligible["name"].astype(str))}
    order = np.array([position[names[i]] for i in hits.ids[0]], dtype=np.int64)
    search = {"index_type": LANCEDB, "index_build_s": 0.0, "search_s": round(search_s, 4), "recall_at_k": recall,
              "n_recall_queries": 1,
              "lance": {"uri": rec["uri"], "table": rec["table"], "version": int(rec["version"]),
                        "rows": len(index), "indexed": indexed, "nprobes": m.lance.nprobes,
                        "refine_factor": m.lance.refine_factor, "recall_floor": m.recall_floor,
                        "fallback_to_exact": fallback, "exact_search_s": round(exact_s, 4),
                        "recall_sample_every": every}}
    return Ranking(order, hits.scores[0].astype(float), search)


def upstream_runs(ev: RunRef) -> tuple[RunRef, RunRef, RunRef, RunRef]:
    """The train and split runs an eval run read, and the embed and collect runs of that split.

    Raises:
        StageInputError: a run named in a ``result.json`` is gone.
    """
    train, split = upstream(ev, "train"), upstream(ev, "split")
    return train, split, upstream(split, "embed"), upstream(split, "collect")


def _id(ref: RunRef) -> tuple[str, str | None]:
    return ref.name, ref.result().get("fingerprint")


def load_inputs(ev: RunRef, train: RunRef, split: RunRef, embed: RunRef, collect: RunRef) -> MineInputs:
    """Read and check the eval's worst slice, the pools, the embeddings and the hidden boxes.

    Raises:
        StageInputError: a file is missing, the worst slice is null, the mining pool
            is empty, or the pools index rows the embeddings do not have.
    """
    redo_eval = f"bddengine eval --iter {ev.iter} --force"
    files = {
        "worst": EVAL.worst_slice.require(ev, redo_eval),
        "failures": EVAL.failures.require(ev, redo_eval),
        "table": EVAL.slice_table_json.require(ev, redo_eval),
        **{p: SPLIT.pool(p).require(split, "bddengine split --force") for p in POOLS},
        "embeddings": EMBED.embeddings.require(embed, "bddengine embed --force"),
        "boxes": COLLECT.boxes.require(collect, "bddengine collect --force"),
    }
    emb_path = files["embeddings"]
    worst_doc = json.loads(files["worst"].read_text())
    worst = worst_doc.get("slice")
    if not worst:
        raise StageInputError(
            f"{files['worst']}: no worst slice (\"slice\": null): no slice of the eval pool has "
            f"eval.min_eval_frames={worst_doc.get('min_eval_frames', 'N')} frames or more. "
            "Lower eval.min_eval_frames or raise split.eval_size, then re-run `bddengine split` and the "
            "stages after it"
        )
    key = {a: str(worst["key"][a]) for a in FRAME_ATTRIBUTES}
    table = json.loads(files["table"].read_text())
    rows = [r for r in table if r.get("grouping") == "slice" and all(str(r.get(a)) == key[a] for a in key)]
    if not rows:
        raise StageInputError(f"{files['table']} has no row for the worst slice {key}: re-run "
                              f"`bddengine eval --iter {ev.iter} --force`")
    pools = {p: pd.read_parquet(files[p]) for p in POOLS}
    if pools["mining"].empty:
        raise StageInputError(
            f"{files['mining']} is empty: nothing to mine. Raise collect.unlabeled_target, then re-run "
            "`bddengine collect`, `embed` and `split`"
        )
    embeddings = np.load(emb_path, mmap_mode="r")
    for p, pool in pools.items():
        if "embedding_row" not in pool:
            raise StageInputError(f"{files[p]} has no embedding_row column: re-run `bddengine split --force`")
        top = int(pool["embedding_row"].max()) if len(pool) else -1
        if embeddings.ndim != 2 or top >= embeddings.shape[0]:
            raise StageInputError(
                f"{emb_path} has shape {embeddings.shape} but {files[p]} indexes row {top}: the "
                f"embeddings are not the ones {split.name} was made with; re-run `bddengine split --force`"
            )
    failures = json.loads(files["failures"].read_text())
    names = [f["name"] for f in failures]
    unknown = sorted(set(names) - set(pools["eval"]["name"]))
    if unknown:
        raise StageInputError(f"{files['failures']} names frames not in {files['eval']} "
                              f"(e.g. {unknown[:3]}): re-run `bddengine eval --iter {ev.iter} --force`")
    return MineInputs(ev, train, split, embed, collect, key, rows[0], names, pools, embeddings,
                      pd.read_parquet(files["boxes"]))


def prototype_frames(eval_pool: pd.DataFrame, failure_names: list[str], worst: dict[str, str]) -> tuple[
        np.ndarray, str]:
    """Eval-pool rows the prototype is built from, and a sentence saying which.

    The failure frames; when the worst slice had none, all of its frames.

    Raises:
        StageInputError: neither exists in the eval pool.
    """
    if failure_names:
        wanted = set(failure_names)
        return np.flatnonzero(eval_pool["name"].isin(wanted).to_numpy()), "failure frames"
    rows = np.flatnonzero(slice_mask(eval_pool, worst))
    if not len(rows):
        raise StageInputError(f"the eval pool has no frame of the worst slice {worst}: re-run "
                              "`bddengine eval --force`")
    return rows, "all worst-slice frames (the worst slice has no failure frames)"


def mined_document(
    mined: pd.DataFrame, similarity: np.ndarray | None, *, arm: str, strategy: str, embedding: str,
    iter: int, k: int, worst: dict[str, str], failed: list[str],
) -> dict[str, Any]:
    """``mined.json``: the arm, the worst slice, and the mined frames in rank order."""
    matches = slice_mask(mined, worst)
    frames = []
    for i, row in enumerate(mined.itertuples(index=False)):
        sim = None if similarity is None or i >= len(similarity) else float(similarity[i])
        frames.append({
            "name": str(row.name), "path": str(row.path), "video": str(row.video),
            **{a: str(getattr(row, a)) for a in FRAME_ATTRIBUTES},
            "rank": i + 1, "similarity": None if sim is None or math.isnan(sim) else round(sim, 6),
            "matches_slice": bool(matches[i]),
        })
    return {"arm": arm, "strategy": strategy, "embedding": embedding, "iter": iter, "k": k,
            "worst_slice": dict(worst), "failed_classes": list(failed), "frames": frames}


def detector_vectors(
    cfg: EngineConfig, train: RunRef, frames: pd.DataFrame, *, imgsz: int, progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pooled backbone features of the iteration's detector for ``frames``, L2-normalised.

    Vectors an earlier mine run stored for the same train run, image size and layer
    are reused by frame name; only the rest is computed.

    Returns:
        ``[len(frames), D]`` float32 and a record for result.json (train run, layer,
        image size, how many were computed and reused, and from where).

    Raises:
        StageInputError: the detector's weights are missing.
    """
    weights = TRAIN.best_weights.at(train)
    if not weights.is_file():
        raise StageInputError(f"{weights} missing: re-run `bddengine train --iter {train.iter} --force`, "
                              "or mine with --embedding embed")
    model, layer = load_detector(weights)
    names = frames["name"].astype(str).tolist()
    train_id = f"{train.name}@{train.result().get('finished_at')}"  # a re-made run may reuse the name
    cached, source = find_detector_cache(cfg.runs_dir, train_id, imgsz, layer, names)
    todo = [i for i, n in enumerate(names) if n not in cached]
    t0 = time.perf_counter()
    fresh = embed_with_detector(model, layer, FrameSource.from_manifest(frames.iloc[todo]), imgsz=imgsz,
                                batch=cfg.mine.batch, device=resolve_device(cfg.mine.device, "mine.device"),
                                backend=cfg.compute.runner(), progress=progress) if todo else None
    seconds = time.perf_counter() - t0
    dim = fresh.shape[1] if fresh is not None else len(next(iter(cached.values())))
    out = np.zeros((len(names), dim), dtype=np.float32)
    for i, name in enumerate(names):
        if name in cached:
            out[i] = cached[name]
    if fresh is not None:
        out[todo] = fresh
    record = {"train": train.name, "train_id": train_id, "weights": str(weights), "layer": layer,
              "imgsz": imgsz, "dim": dim, "n_computed": len(todo), "n_reused": len(names) - len(todo),
              "reused_from": source, "seconds": round(seconds, 3)}
    return l2_normalize(out), record


def find_detector_cache(
    runs_dir: Path, train_id: str, imgsz: int, layer: int, names: list[str]
) -> tuple[dict[str, np.ndarray], str | None]:
    """Detector vectors of ``names`` stored by the newest mine run of the same detector.

    Returns:
        name -> vector for the names found (empty when no run matches), and that run's name.
    """
    wanted = set(names)
    for ref in reversed(list_runs(runs_dir)):
        if ref.stage != "mine":
            continue
        det = ref.result().get("detector") or {}
        if (det.get("train_id"), det.get("imgsz"), det.get("layer")) != (train_id, imgsz, layer):
            continue
        try:
            stored = MINE.detector_embedding_names.read(ref)
            vectors = MINE.detector_embeddings.read(ref, mmap_mode="r")
        except (OSError, ValueError):
            continue  # a damaged run is simply not a cache
        if vectors.ndim != 2 or len(stored) != len(vectors):
            continue
        found = {n: np.asarray(vectors[i]) for i, n in enumerate(stored) if n in wanted}
        if found:
            return found, ref.name
    return {}, None


def _counts(masks: dict[str, np.ndarray]) -> dict[str, int]:
    return {reason: int(mask.sum()) for reason, mask in masks.items()}


def _shares(block: dict[str, Any]) -> dict[str, Any]:
    keys = ("slice_match", *FRAME_ATTRIBUTES, "has_failed_class", "n_frames", "n_attributes_known",
            "n_attributes_unknown")
    return {k: block[k] for k in keys if k in block}


def _mined_line(n: int, k: int, scope: str) -> str:
    if n == 0:
        return f"NONE of k={k}: the mining pool has no eligible frame{scope}; this arm adds no frames"
    if n < k:
        return f"{n} of k={k} (only {n} eligible frames{scope}: took them all)"
    return f"{n} of k={k}"


def _unknown_note(mined: dict[str, Any], base: dict[str, Any]) -> str:
    """Beside the precision: how many frames it leaves out for unknown attributes (images without labels)."""
    unknown, pool_unknown = mined.get("n_attributes_unknown", 0), base.get("n_attributes_unknown", 0)
    if not unknown and not pool_unknown:
        return ""
    return (f"; over the frames with known attributes: {mined['n_attributes_known']} mined "
            f"({unknown} unknown), {base['n_attributes_known']:,} in the pool ({pool_unknown:,} unknown)")


def _sample_note(every: int | None) -> str:
    """How much of the table the recall check compared on (older runs recorded no sample: the whole table)."""
    return f" (estimated on a 1-in-{every} row sample: mine.lance.recall_sample_rows)" if every and every > 1 else ""


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    p, b, lf = m["precision"], m["base_rate"], m["lift"]
    worst = " / ".join(m["worst_slice"][a] for a in FRAME_ATTRIBUTES)
    lift_s = lambda key: f" (lift {lf[key]:.1f}x)" if lf.get(key) is not None else ""  # noqa: E731
    excluded = ", ".join(f"{k}: {v}" for k, v in m["excluded"].items() if k != "any") or "none"
    spec = strategy_spec(res["strategy"])
    scope = " of the worst slice" if spec is not None and spec.worst_slice_only else ""
    numbers: dict[str, Any] = {}
    near_dup = m["excluded"].get(REASON_NEAR_DUP, 0)
    if near_dup > m["n_mining_pool"] / 2:
        numbers["WARNING"] = (f"{near_dup} of {m['n_mining_pool']} mining frames are near-duplicates of eval "
                              f"frames at cosine > {m['near_dup_threshold']}: embeddings that cannot tell frames "
                              "apart (random-init?) do this; set mine.near_dup_threshold: null to turn it off")
    numbers |= {
        "iteration / arm": f"{res['iter']} / {res['arm']} (strategy {res['strategy']}, "
                           f"embedding {res['embedding']})",
        "worst slice": worst + (f" (mAP@0.5 {m['worst_slice_map50']:.3f})"
                                if m.get("worst_slice_map50") is not None else ""),
        "prototype from": f"{m['n_prototype_frames']} {m['prototype_source']}",
        "mined": _mined_line(m["n_mined"], m["k"], scope),
        "mining pool": f"{m['n_mining_pool']:,} frames, {m['n_eligible']:,} eligible "
                       f"({m['n_slice_eligible']:,} of the worst slice)",
        "excluded": f"{m['excluded']['any']} ({excluded})",
        "slice precision vs base rate": f"{_pct(p['slice_match'])} vs {_pct(b['slice_match'])}"
                                        + lift_s("slice_match") + _unknown_note(p, b),
        "per attribute (weather / time / scene)": " / ".join(
            f"{_pct(p[a])} vs {_pct(b[a])}" for a in FRAME_ATTRIBUTES),
        "frames with a failed class": (f"{_pct(p['has_failed_class'])} vs {_pct(b['has_failed_class'])}"
                                       + lift_s("has_failed_class")
                                       + f"  (failed: {', '.join(m['failed_classes']) or 'none'})"),
    }
    if lance := m.get("lance"):
        line = (f"LanceDB {lance['uri']} [{lance['table']}] v{lance['version']}, {lance['rows']:,} rows, "
                + (f"IVF_PQ nprobes {lance['nprobes']} refine {lance['refine_factor']}, recall@k "
                   f"{m['recall_at_k']:.3f} vs exact scan" + _sample_note(lance.get("recall_sample_every"))
                   if lance["indexed"] else "no index (exact scan)")
                + f", search {m['search_s']:.4f} s")
        if lance["fallback_to_exact"]:
            numbers["WARNING"] = (f"LanceDB recall@k {m['recall_at_k']:.3f} < mine.recall_floor "
                                  f"{lance['recall_floor']}: took the exact scan's answer; raise mine.lance.nprobes "
                                  "or refine_factor")
        numbers["k-NN index"] = line
    elif m.get("index_type"):
        no_index = is_exact(m["index_type"]) and not m.get("index_build_s")  # exact search builds none
        search = (f"{m['index_type']}, " + ("no index built" if no_index else f"build {m['index_build_s']:.3f} s")
                  + f", search {m['search_s']:.4f} s")
        if m.get("recall_at_k") is not None:
            search += f", recall@k {m['recall_at_k']:.3f} vs exact ({m['n_recall_queries']} queries)"
        numbers["k-NN index"] = search
    det = res.get("detector")
    if det:
        numbers["detector embeddings"] = (f"layer {det['layer']} of {det['train']} at {det['imgsz']} px: "
                                          f"{det['n_computed']} computed, {det['n_reused']} reused"
                                          + (f" from {det['reused_from']}" if det["reused_from"] else ""))
    numbers["wall time (s)"] = res["wall_time_s"]
    wrote = [f"{ref.path}/{MINE.mined.file}, {MINE.mining_precision.file}, {MINE.prototype.file}, {MINE.grid.file}"]
    if det:
        wrote.append(f"{ref.path}/{MINE.detector_embeddings.file}, {MINE.detector_embedding_names.file}")
    flags = f"--iter {res['iter']} --strategy {res['strategy']} --embedding {res['embedding']}"
    if lineage := res.get("lineage"):
        flags = f"--iter {res['iter']} --arm {lineage['arm']} --seed {lineage['seed']}"
        numbers["lineage"] = (f"{lineage['arm']} seed {lineage['seed']}: its iteration-{res['iter']} model, "
                              f"{lineage['n_labeled_frames']} frames it labeled before left out")
    return StageOutcome(
        stage="mine",
        location=ref.path,
        skipped=skipped,
        wrote=wrote,
        numbers=numbers,
        look_at=[f"{MINE.grid.at(ref)} (green: matches the worst slice)", str(MINE.mining_precision.at(ref)),
                 *log_lines(ref)],
        safe_to_delete=f"{ref.path} (then `bddengine mine {flags}` re-mines; autolabel reads it, "
                       "so delete its autolabel run too)",
    )

