"""Pool assignment for the split: eval, val, train and mining pools held out by video.

Every frame of the collect manifest ends in exactly one of five places: the
slice-balanced ``eval`` pool, the ``val`` pool ultralytics validates on, the
stratified ``train`` pool, the ``mining`` pool (labels hidden from the loop), or
``excluded`` (with a reason). Whole videos go to one pool: when a pool takes one
frame of a video, the video's other frames can only join that same pool, and the
ones that do not are excluded rather than leaked into another pool.

Pure functions on a frames table (``name``, ``video``, ``labeled``, the slice
columns) and an embedding matrix; the stage module does the reading and writing.
`check_video_holdout` re-checks the result from the pool tables alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from bddengine.bdd.categories import ATTRIBUTES_KNOWN
from bddengine.curation.sampling import BucketAllocation, allocate
from bddengine.curation.slice_index import slice_index
from bddengine.vectors.exact import ExactIndex

POOLS: tuple[str, ...] = ("train", "val", "eval", "mining")
"""The pools, in the order tables and charts list them."""

SLICE: tuple[str, ...] = ("weather", "timeofday", "scene")
STRATUM: tuple[str, ...] = ("weather", "timeofday")

EXCLUDED = "excluded"
REASON_VIDEO = "video held by another pool"
REASON_DUP_EVAL = "eval frame near-duplicate of a train/val frame"
REASON_DUP_MINING = "mining frame near-duplicate of an eval frame"

Key = tuple[Hashable, ...]


@dataclass(frozen=True)
class SliceQuota:
    """One eval slice: how many frames it had, was meant to give, and gave.

    Attributes:
        key: ``(weather, timeofday, scene)``.
        available: labeled frames in the slice.
        planned: the equal share ``eval_size / eval_top_slices``.
        allocated: after a short slice's remainder was handed to the others.
        taken: frames the slice gave to the eval pool.
        final: frames left after near-duplicates of train/val were dropped
            (set by `drop_eval_near_duplicates`; equals ``taken`` before).
    """

    key: Key
    available: int
    planned: int
    allocated: int
    taken: int
    final: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for result.json."""
        return {
            **dict(zip(SLICE, self.key, strict=True)),
            "available": self.available,
            "planned": self.planned,
            "allocated": self.allocated,
            "taken": self.taken,
            "final": self.final,
        }


@dataclass
class PoolAssignment:
    """Where each frame went.

    Attributes:
        pool: one entry per frame (row of the frames table): a name from `POOLS`
            or `EXCLUDED`.
        reason: why an excluded frame is excluded ("" for pooled frames).
        eval_quotas: the eval balance, one entry per eval slice, most common first.
        train_allocation: the train pool's weather x timeofday allocation.
        val_allocation: the val pool's weather x timeofday allocation.
    """

    pool: np.ndarray
    reason: np.ndarray
    eval_quotas: list[SliceQuota] = field(default_factory=list)
    train_allocation: list[BucketAllocation] = field(default_factory=list)
    val_allocation: list[BucketAllocation] = field(default_factory=list)
    include_report: list[dict[str, object]] = field(default_factory=list)
    """What each ``eval_include`` pattern matched (`eval_include_report`)."""

    def indices(self, pool: str) -> np.ndarray:
        """Row indices of one pool (or of the excluded frames), ascending."""
        return np.flatnonzero(self.pool == pool)

    def counts(self) -> dict[str, int]:
        """Frames per pool, plus excluded."""
        return {p: int((self.pool == p).sum()) for p in (*POOLS, EXCLUDED)}

    def excluded_by_reason(self) -> dict[str, int]:
        """Excluded frames per reason."""
        reasons = self.reason[self.pool == EXCLUDED]
        values, counts = np.unique(reasons.astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def assign_pools(
    frames: pd.DataFrame,
    *,
    eval_size: int,
    eval_top_slices: int,
    val_size: int,
    train_size: int,
    min_per_bucket: int,
    seed: int,
    eval_include: Sequence[Mapping[str, str]] = (),
    eval_include_min: int = 1,
) -> PoolAssignment:
    """Assign every frame to eval, val, train, mining or excluded, whole videos at a time.

    Order: the eval pool first (it must not be starved), then the small val pool
    (so ultralytics always has one, even when labeled frames run short), then
    the train pool from what remains; every other frame whose video no pool
    holds goes to mining. A video is held by the first pool that takes one of
    its frames; its frames that pool does not take are excluded.

    Args:
        frames: the collect manifest: ``name``, ``video``, ``labeled`` and the
            slice columns.
        eval_size: labeled frames in the eval pool.
        eval_top_slices: the eval pool covers this many most common slices.
        eval_include: attribute patterns (``{"weather": "foggy"}``) whose slices the eval
            pool also covers, however rare: the operational conditions that must be measured.
        eval_include_min: an included slice needs at least this many labeled frames.
        val_size: labeled frames in the val pool.
        train_size: labeled frames in the train pool.
        min_per_bucket: train floor per weather x timeofday bucket; the val
            floor is scaled down by ``val_size / train_size``.
        seed: the same frames and seed give the same pools.

    Returns:
        The assignment; near-duplicate drops are applied afterwards by
        `drop_eval_near_duplicates` and `drop_mining_near_duplicates`.
    """
    n = len(frames)
    pool = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    videos = frames["video"].astype(str).to_numpy()
    labeled = frames["labeled"].to_numpy(dtype=bool)
    slice_keys = _keys(frames, SLICE)
    stratum_keys = _keys(frames, STRATUM)
    held: dict[str, str] = {}  # video -> pool holding it

    # eval: equal shares over the most common slices of the labeled frames
    top = top_slices(frames[labeled], eval_top_slices)
    per_slice = Counter(slice_keys[i] for i in np.flatnonzero(labeled))
    top_common = list(top)
    top += included_slices(per_slice, eval_include, eval_include_min, exclude=top)
    available = [per_slice[k] for k in top]
    planned, allocated = eval_quotas(available, eval_size)
    free = labeled & _unheld(videos, held)
    # plain shuffled order: frames of one video are correlated, and preferring fully labeled
    # (multi-frame) videos would shrink the number of distinct eval videos
    taken = take_by_video(slice_keys, videos, free, dict(zip(top, allocated, strict=True)), seed=seed,
                          usable_first=False)
    _claim(pool, held, videos, taken, "eval")
    taken_per_slice = {k: 0 for k in top}
    for i in taken:
        taken_per_slice[slice_keys[i]] += 1
    quotas = [
        SliceQuota(k, a, p, al, taken_per_slice[k], taken_per_slice[k])
        for k, a, p, al in zip(top, available, planned, allocated, strict=True)
    ]

    # val, then train: stratified by weather x timeofday on what is left
    val_floor = round(min_per_bucket * val_size / train_size) if train_size else 0
    allocations = {}
    plan = (("val", val_size, val_floor, 1), ("train", train_size, min_per_bucket, 2))
    for name, size, floor, offset in plan:
        free = labeled & (pool == "") & _unheld(videos, held)
        alloc = stratum_allocation([stratum_keys[i] for i in np.flatnonzero(free)], size, floor)
        taken = take_by_video(
            stratum_keys, videos, free, {a.key: a.allocated for a in alloc}, seed=seed + offset
        )
        _claim(pool, held, videos, taken, name)
        allocations[name] = alloc

    # the rest: frames of held videos are excluded, all others are mined
    rest = pool == ""
    in_held = np.array([v in held for v in videos], dtype=bool)
    pool[rest & in_held] = EXCLUDED
    reason[rest & in_held] = REASON_VIDEO
    pool[rest & ~in_held] = "mining"
    return PoolAssignment(
        pool=pool,
        reason=reason,
        eval_quotas=quotas,
        train_allocation=allocations["train"],
        val_allocation=allocations["val"],
        include_report=eval_include_report(per_slice, eval_include, eval_include_min, top_common),
    )


def included_slices(
    per_slice: Mapping[Key, int], patterns: Sequence[Mapping[str, str]], min_frames: int, *,
    exclude: Sequence[Key] = (),
) -> list[Key]:
    """Slices matching any attribute pattern, with at least ``min_frames`` frames, most common first.

    Args:
        per_slice: frames per (weather, timeofday, scene) slice.
        patterns: e.g. ``[{"weather": "foggy"}, {"timeofday": "night", "weather": "snowy"}]``.
        min_frames: smaller slices are left out (too few frames to score).
        exclude: slices already chosen.
    """
    for pat in patterns:
        unknown = set(pat) - set(SLICE)
        if unknown:
            raise ValueError(f"eval_include pattern {dict(pat)}: unknown attribute(s) {sorted(unknown)}; "
                             f"use {list(SLICE)}")
    chosen = set(exclude)
    out = [
        key for key, n in sorted(per_slice.items(), key=lambda kv: (-kv[1], kv[0]))
        if n >= min_frames and key not in chosen
        and any(all(key[SLICE.index(a)] == v for a, v in pat.items()) for pat in patterns)
    ]
    return out


INCLUDE_ADDED = "added"
INCLUDE_TOP = "already among the top slices"
INCLUDE_SMALL = "too few labeled frames"


def eval_include_report(
    per_slice: Mapping[Key, int], patterns: Sequence[Mapping[str, str]], min_frames: int, top: Sequence[Key],
) -> list[dict[str, object]]:
    """What each ``eval_include`` pattern matched: every matching slice and what became of it.

    Args:
        per_slice: labeled frames per (weather, timeofday, scene) slice.
        patterns: the ``eval_include`` patterns.
        min_frames: ``eval_include_min``.
        top: the most common slices, chosen before the patterns.

    Returns:
        One entry per pattern: ``pattern``, ``n_slices``, ``n_labeled`` (frames in the
        matching slices), ``n_added``, ``slices`` (``weather``, ``timeofday``, ``scene``,
        ``n_labeled``, ``status``: `INCLUDE_ADDED`, `INCLUDE_TOP` or `INCLUDE_SMALL`) and
        ``summary``, a sentence that says plainly when the pattern matched nothing.
    """
    chosen = set(top)
    out = []
    for pat in patterns:
        rows = []
        for key, n in sorted(per_slice.items(), key=lambda kv: (-kv[1], kv[0])):
            if not all(key[SLICE.index(a)] == v for a, v in pat.items()):
                continue
            status = INCLUDE_TOP if key in chosen else INCLUDE_ADDED if n >= min_frames else INCLUDE_SMALL
            if status == INCLUDE_ADDED:
                chosen.add(key)  # a later pattern matching it too finds it taken
            rows.append({**dict(zip(SLICE, key, strict=True)), "n_labeled": int(n), "status": status})
        out.append(_include_entry(dict(pat), rows, min_frames))
    return out


def _include_entry(pat: dict[str, str], rows: list[dict[str, object]], min_frames: int) -> dict[str, object]:
    text = "{" + ", ".join(f"{k}: {v}" for k, v in pat.items()) + "}"
    by = Counter(str(r["status"]) for r in rows)
    n_labeled = sum(int(r["n_labeled"]) for r in rows)  # type: ignore[call-overload]
    if not rows:
        summary = (f"{text} matched nothing: no labeled frame has "
                   + " and ".join(f"{k}={v}" for k, v in pat.items()))
    elif not by[INCLUDE_ADDED] and not by[INCLUDE_TOP]:
        summary = (f"{text} matched {len(rows)} slice(s) with {n_labeled} labeled frames, none with "
                   f"split.eval_include_min={min_frames}: nothing added to the eval pool")
    else:
        parts = [f"{by[INCLUDE_ADDED]} added"] + ([f"{by[INCLUDE_TOP]} already among the top slices"]
                                                  if by[INCLUDE_TOP] else [])
        parts += [f"{by[INCLUDE_SMALL]} with fewer than {min_frames} labeled frames left out"] \
            if by[INCLUDE_SMALL] else []
        summary = f"{text} matched {len(rows)} slice(s) ({n_labeled} labeled frames): " + ", ".join(parts)
    return {"pattern": pat, "n_slices": len(rows), "n_labeled": n_labeled, "n_added": by[INCLUDE_ADDED],
            "slices": rows, "summary": summary}


def top_slices(frames: pd.DataFrame, k: int) -> list[Key]:
    """The ``k`` most common weather x timeofday x scene slices of a frames table.

    Ties are broken in BDD's native attribute order (`slice_index` ordering), so
    the choice is deterministic.
    """
    if frames.empty:
        return []
    table = slice_index(frames).slices.head(k)
    return [tuple(row) for row in table[list(SLICE)].itertuples(index=False, name=None)]


def eval_quotas(available: Sequence[int], eval_size: int) -> tuple[list[int], list[int]]:
    """Equal per-slice eval quotas, and the same after short slices hand on their remainder.

    Args:
        available: labeled frames per eval slice, most common first.
        eval_size: eval frames wanted in all.

    Returns:
        ``(planned, allocated)``: ``planned`` splits ``eval_size`` equally (the
        first slices take the rounding remainder); ``allocated`` caps each slice
        at what it has and gives the shortfall to the slices with frames to
        spare, equally. ``sum(allocated) == min(eval_size, sum(available))``.
    """
    k = len(available)
    if k == 0:
        return [], []
    planned = allocate([eval_size] * k, eval_size, min_per_bucket=0, power=0.0)
    allocated = allocate(list(available), eval_size, min_per_bucket=0, power=0.0)
    return planned, allocated


def stratum_allocation(keys: Sequence[Key], target: int, min_per_bucket: int) -> list[BucketAllocation]:
    """How many frames each stratum gives: proportional, with a floor (as collect does).

    Uses `bddengine.curation.sampling.allocate`, the rule behind
    `stratified_sample_with_report`; the frames themselves are then drawn whole
    videos at a time by `take_by_video`.

    Returns:
        One allocation per stratum, largest first (ties in sorted key order).
    """
    counts: dict[Key, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts)
    allocated = allocate([counts[k] for k in ordered], target, min_per_bucket=min_per_bucket)
    report = [BucketAllocation(k, counts[k], a) for k, a in zip(ordered, allocated, strict=True)]
    report.sort(key=lambda b: -b.available)
    return report


def take_by_video(
    keys: Sequence[Key],
    videos: np.ndarray,
    candidates: np.ndarray,
    quotas: Mapping[Key, int],
    *,
    seed: int,
    usable_first: bool = True,
) -> np.ndarray:
    """Fill each bucket's quota with candidate frames, a whole video at a time where it fits.

    Per bucket, the candidate videos are shuffled. With ``usable_first`` they
    are then ordered by how many of their frames are not candidates (stable, so
    ties stay shuffled): taking a video whose other frames are unlabeled
    excludes those frames from the mining pool, so fully usable videos go
    first. A video whose frames in the
    bucket fit in what is left of the quota gives them all; a video that does
    not fit is passed over. If the quota is still not full at the end, the first
    passed-over video gives the frames that fit (its others are then excluded
    by the caller), so every quota is met exactly when the bucket has enough
    frames.

    Args:
        keys: bucket key per frame.
        videos: video id per frame.
        candidates: bool mask of frames that may be taken.
        quotas: frames wanted per bucket.
        seed: shuffling seed.
        usable_first: order videos by their frames that are not candidates
            (fewer first) before taking them.

    Returns:
        Sorted row indices of the frames taken.
    """
    rng = np.random.default_rng(seed)
    by_bucket: dict[Key, dict[str, list[int]]] = {}
    for i in np.flatnonzero(candidates):
        by_bucket.setdefault(keys[i], {}).setdefault(str(videos[i]), []).append(int(i))
    all_frames = Counter(str(v) for v in videos)
    usable = Counter(str(v) for v in videos[candidates])
    taken: list[int] = []
    for key, quota in quotas.items():
        members = by_bucket.get(key, {})
        order = sorted(members)
        order = [order[j] for j in rng.permutation(len(order))]
        if usable_first:
            order.sort(key=lambda v: all_frames[v] - usable[v])
        left = quota
        passed: list[str] = []
        for video in order:
            if left == 0:
                break
            rows = members[video]
            if len(rows) <= left:
                taken.extend(rows)
                left -= len(rows)
            else:
                passed.append(video)
        for video in passed:
            if left == 0:
                break
            rows = members[video][:left]
            taken.extend(rows)
            left -= len(rows)
    return np.array(sorted(taken), dtype=np.int64)


@dataclass
class NearDuplicates:
    """Query/reference pairs whose cosine similarity is above a threshold.

    Attributes:
        query: query row of each pair.
        reference: reference row of each pair.
        similarity: the pair's cosine similarity.
        best_reference: per query row, its most similar reference row (-1 when
            there are no references).
        best_similarity: per query row, that similarity.
    """

    query: np.ndarray
    reference: np.ndarray
    similarity: np.ndarray
    best_reference: np.ndarray
    best_similarity: np.ndarray

    @property
    def n_pairs(self) -> int:
        return int(self.query.size)

    def query_rows(self) -> np.ndarray:
        """Query rows with at least one near-duplicate, ascending."""
        return np.unique(self.query)


def find_near_duplicates(
    query: np.ndarray, reference: np.ndarray, threshold: float, *, block: int = 2048
) -> NearDuplicates:
    """Every query/reference pair with cosine similarity above ``threshold``.

    An exact range search over an index of the references
    (`bddengine.vectors.exact.ExactIndex.within`): a blocked matrix product,
    ``block`` query rows at a time against all the references, so memory stays
    at ``block x len(reference)`` floats (3K x 1K is one block and a few milliseconds).

    Args:
        query: ``[Q, D]`` L2-normalised embeddings (any float dtype).
        reference: ``[R, D]`` L2-normalised embeddings.
        threshold: pairs with similarity strictly above it are returned.
        block: query rows per matrix product.

    Raises:
        ValueError: the two matrices have different widths.
    """
    query = np.asarray(query, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(f"embedding shapes do not match: query {query.shape}, reference {reference.shape}")
    hits = ExactIndex(reference).within(query, threshold, block=block)
    return NearDuplicates(
        query=hits.query,
        reference=hits.reference,
        similarity=hits.similarity,
        best_reference=hits.best_reference,
        best_similarity=hits.best_similarity,
    )


def drop_eval_near_duplicates(
    assignment: PoolAssignment, frames: pd.DataFrame, embeddings: np.ndarray, threshold: float
) -> NearDuplicates:
    """Drop every eval frame that has a near-duplicate in the train or val pool.

    Both train and val are seen while training (val picks ``best.pt``), so both
    count as the reference side. The dropped eval frames are excluded, never
    moved to another pool (their video stays held by eval).

    Returns:
        The pairs found, with query rows indexing the eval pool (in
        ``assignment.indices("eval")`` order) and reference rows indexing the
        train+val rows (``np.concatenate([indices("train"), indices("val")])``).
    """
    eval_rows = assignment.indices("eval")
    ref_rows = np.concatenate([assignment.indices("train"), assignment.indices("val")])
    dups = find_near_duplicates(embeddings[eval_rows], embeddings[ref_rows], threshold)
    dropped = eval_rows[dups.query_rows()]
    assignment.pool[dropped] = EXCLUDED
    assignment.reason[dropped] = REASON_DUP_EVAL
    keys = _keys(frames, SLICE)
    lost: dict[Key, int] = {}
    for i in dropped:
        lost[keys[i]] = lost.get(keys[i], 0) + 1
    assignment.eval_quotas = [
        SliceQuota(q.key, q.available, q.planned, q.allocated, q.taken, q.taken - lost.get(q.key, 0))
        for q in assignment.eval_quotas
    ]
    return dups


def drop_mining_near_duplicates(
    assignment: PoolAssignment, embeddings: np.ndarray, threshold: float
) -> NearDuplicates:
    """Exclude mining frames that near-duplicate a (kept) eval frame.

    Mined frames are auto-labeled and trained on, and the miner looks for frames
    like the eval failures: a near-copy of an eval frame in the mining pool
    would leak the eval set into training on the next iteration.

    Returns:
        The pairs found; query rows index ``indices("mining")`` (taken before the
        drop), reference rows index ``indices("eval")``.
    """
    mining_rows = assignment.indices("mining")
    eval_rows = assignment.indices("eval")
    dups = find_near_duplicates(embeddings[mining_rows], embeddings[eval_rows], threshold)
    dropped = mining_rows[dups.query_rows()]
    assignment.pool[dropped] = EXCLUDED
    assignment.reason[dropped] = REASON_DUP_MINING
    return dups


def check_video_holdout(pools: Mapping[str, pd.DataFrame | Iterable[str]]) -> dict[str, object]:
    """Check, from the pool tables alone, that no video and no frame is in two pools.

    Independent of `assign_pools`: it only looks at what ended up in each pool.

    Args:
        pools: pool name -> a frames table (``video`` and ``name`` columns) or an
            iterable of video ids.

    Returns:
        ``{"ok", "videos_per_pool", "frames_per_pool", "video_overlaps",
        "frame_overlaps", "n_overlapping_videos", "examples"}``; the overlap
        dicts are keyed ``"a&b"`` for every pair of pools, ``examples`` lists up
        to 10 shared video ids per overlapping pair.
    """
    video_sets: dict[str, set[str]] = {}
    frame_sets: dict[str, set[str]] = {}
    for name, table in pools.items():
        if isinstance(table, pd.DataFrame):
            video_sets[name] = set(table["video"].astype(str))
            frame_sets[name] = set(table["name"].astype(str)) if "name" in table.columns else set()
        else:
            video_sets[name] = {str(v) for v in table}
            frame_sets[name] = set()
    video_overlaps: dict[str, int] = {}
    frame_overlaps: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    shared_videos: set[str] = set()
    for a, b in combinations(video_sets, 2):
        pair = f"{a}&{b}"
        shared = video_sets[a] & video_sets[b]
        video_overlaps[pair] = len(shared)
        frame_overlaps[pair] = len(frame_sets[a] & frame_sets[b])
        shared_videos |= shared
        if shared:
            examples[pair] = sorted(shared)[:10]
    return {
        "ok": not shared_videos and not any(frame_overlaps.values()),
        "videos_per_pool": {k: len(v) for k, v in video_sets.items()},
        "frames_per_pool": {
            k: (len(t) if isinstance(t, pd.DataFrame) else None) for k, t in pools.items()
        },
        "video_overlaps": video_overlaps,
        "frame_overlaps": frame_overlaps,
        "n_overlapping_videos": len(shared_videos),
        "examples": examples,
    }


def split_table(frames: pd.DataFrame, pool: np.ndarray) -> pd.DataFrame:
    """Frames per weather x timeofday x scene slice and pool.

    Frames whose attributes are unknown (``attributes_known`` False) are in no slice.

    Returns:
        One row per slice with columns weather, timeofday, scene, train, val,
        eval, mining, excluded, total; most frames first.
    """
    table = frames[list(SLICE)].assign(pool=pool)
    if ATTRIBUTES_KNOWN in frames.columns:
        table = table[frames[ATTRIBUTES_KNOWN].fillna(True).astype(bool).to_numpy()]
    counts = table.groupby([*SLICE, "pool"], dropna=False).size().unstack("pool", fill_value=0)
    for column in (*POOLS, EXCLUDED):
        if column not in counts.columns:
            counts[column] = 0
    counts = counts[[*POOLS, EXCLUDED]].astype(int)
    counts["total"] = counts.sum(axis=1)
    counts = counts.reset_index()
    counts.columns.name = None
    return counts.sort_values(["total", *SLICE], ascending=[False, True, True, True]).reset_index(drop=True)


def _keys(frames: pd.DataFrame, columns: Sequence[str]) -> list[Key]:
    return list(zip(*(frames[c].astype(str) for c in columns), strict=True))


def _unheld(videos: np.ndarray, held: Mapping[str, str]) -> np.ndarray:
    return np.array([v not in held for v in videos], dtype=bool)


def _claim(pool: np.ndarray, held: dict[str, str], videos: np.ndarray, rows: np.ndarray, name: str) -> None:
    pool[rows] = name
    for v in videos[rows]:
        held.setdefault(str(v), name)
