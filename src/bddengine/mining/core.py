"""Mining the unlabeled pool for frames like the worst slice's failures.

Pure functions on embedding matrices and frame tables; the ``mine`` stage does the
reading and writing. The pieces, in the order the stage uses them:

- `failure_prototype`: the mean of the L2-normalised failure-frame embeddings,
  re-normalised: one query vector standing for "what the model gets wrong".
- `exclusion_masks`: mining frames that must not be mined (their video is held by
  the train, val or eval pool, or they near-duplicate an eval frame).
- `knn_search`: FAISS exact inner-product search (cosine on unit vectors), or an
  approximate HNSW / IVF index above a pool size, with its recall@k measured
  against exact search.
- `mine_random`, `mine_random_slice`: the two baselines every prototype arm is
  compared with, drawing the same ``k``.
- `precision_block`, `failed_classes`: how well a set of mined frames matches the
  worst slice, and which of its classes the model failed on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bddengine.bdd.categories import ATTRIBUTES_KNOWN, CLASSES, FRAME_ATTRIBUTES, known_attributes

RECALL_QUERIES = 100
"""Queries sampled from the pool to measure an approximate index's recall@k."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200

REASON_VIDEO = "video in {pool} pool"
REASON_NEAR_DUP = "near-duplicate of an eval frame"


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; an all-zero row stays zero).

    Raises:
        ValueError: ``vectors`` is not a 2-D matrix.
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a [N, D] matrix, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def failure_prototype(vectors: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised rows, re-normalised to unit length (``[D]`` float32).

    Raises:
        ValueError: no rows, or rows that cancel out (a zero mean has no direction).
    """
    x = l2_normalize(vectors)
    if not len(x):
        raise ValueError("no failure-frame embeddings to build a prototype from")
    mean = x.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-8:
        raise ValueError("the failure-frame embeddings cancel out: their mean is the zero vector")
    return (mean / norm).astype(np.float32)


@dataclass(frozen=True)
class KnnResult:
    """Top-k neighbours of each query.

    Attributes:
        scores: ``[Q, k']`` inner products (cosines on unit vectors), best first.
        ids: ``[Q, k']`` pool rows; ``k' = min(k, pool size)``.
        index_type: ``flat-ip`` (exact), ``hnsw`` or ``ivf``.
        build_s: seconds building the index (0 for exact search, which builds none).
        search_s: seconds searching.
        recall: recall@k of the approximate index against exact search on
            sampled queries (None for exact search).
        n_recall_queries: how many queries that recall is over.
    """

    scores: np.ndarray
    ids: np.ndarray
    index_type: str
    build_s: float
    search_s: float
    recall: float | None = None
    n_recall_queries: int = 0


@contextmanager
def faiss_blas_path() -> Iterator[None]:
    """Route FAISS flat searches through BLAS matrix products while inside the block.

    Below ``faiss.cvar.distance_compute_blas_threshold`` queries (128K in faiss 1.15)
    FAISS scans the whole pool once per query; for tens of queries one blocked
    matrix product is several times faster (``benchmarks/mine.py``).
    """
    import faiss

    before = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 0
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = before


BLAS_MIN_QUERIES = 8
"""From this many queries on, `exact_knn` sends FAISS through its blocked BLAS product."""


def exact_knn(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` pool rows by inner product, by the fastest route for the query count.

    No index is built: an ``IndexFlatIP`` would first copy the whole pool (1.7 s and
    2 GB more memory at 1M x 512) to run the same computation. Measured at 1M x 512
    on two cores (``benchmarks/mine.py``):

    - one query (the mine stage's prototype): one NumPy matrix-vector product and a
      partial sort, 0.10 s against FAISS's 0.16 s;
    - up to ``BLAS_MIN_QUERIES``: ``faiss.knn``'s SIMD scan, once per query (4
      queries: 0.17 s, NumPy 0.32 s);
    - more: ``faiss.knn`` through one BLAS product per block (100 queries: 0.79 s,
      NumPy 1.9 s and a 400 MB score matrix, FAISS's SIMD scan 4-6 s).

    Args:
        pool: ``[N, D]`` float32, C-contiguous (no copy is made of it).
        queries: ``[Q, D]`` float32, C-contiguous.
        k: neighbours per query, at most ``N``.

    Returns:
        ``(scores, ids)``, each ``[Q, k]``, best first.
    """
    if len(queries) == 1:
        return brute_force_knn(pool, queries, k)
    import faiss

    if len(queries) < BLAS_MIN_QUERIES:
        return faiss.knn(queries, pool, k, metric=faiss.METRIC_INNER_PRODUCT)
    with faiss_blas_path():
        return faiss.knn(queries, pool, k, metric=faiss.METRIC_INNER_PRODUCT)


def approximate_index(pool: np.ndarray, kind: str, *, k: int, seed: int):
    """An HNSW or IVF inner-product index over ``pool``, tuned for recall over speed.

    Args:
        pool: ``[N, D]`` L2-normalised vectors.
        kind: ``hnsw`` or ``ivf``.
        k: neighbours that will be asked for (HNSW's search beam is at least 2k).
        seed: k-means seed of the IVF coarse quantizer.

    Raises:
        ValueError: an unknown ``kind``.
    """
    import faiss

    x = np.ascontiguousarray(pool, dtype=np.float32)
    n, d = x.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = max(2 * k, 128)
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(x)
        index.nprobe = min(nlist, max(8, nlist // 8))
    else:
        raise ValueError(f"approximate index {kind!r}: expected 'hnsw' or 'ivf'")
    index.add(x)
    return index


def knn_search(
    pool: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    exact_max_pool: int,
    approximate: str = "hnsw",
    seed: int = 42,
    n_recall_queries: int = RECALL_QUERIES,
) -> KnnResult:
    """Top-``k`` pool rows by inner product for each query.

    Exact search (`exact_knn`) up to ``exact_max_pool`` vectors; above it an
    approximate index, whose recall@k is then measured against exact search on
    the queries plus up to ``n_recall_queries`` pool vectors drawn with ``seed``.

    Args:
        pool: ``[N, D]`` L2-normalised vectors.
        queries: ``[Q, D]`` L2-normalised query vectors.
        k: neighbours per query (capped at ``N``).
        exact_max_pool: largest pool searched exactly.
        approximate: ``hnsw`` or ``ivf``.
        seed: seeds the recall sample and IVF training.
        n_recall_queries: pool vectors sampled as extra recall queries.

    Raises:
        ValueError: empty pool, ``k < 1``, or pool and queries of different widths.
    """
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if pool.ndim != 2 or not len(pool):
        raise ValueError(f"empty or malformed pool: shape {pool.shape}")
    if queries.shape[1] != pool.shape[1]:
        raise ValueError(f"query width {queries.shape[1]} != pool width {pool.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(pool))
    if len(pool) <= exact_max_pool:
        t0 = time.perf_counter()
        scores, ids = exact_knn(pool, queries, k)
        return KnnResult(scores, ids, "flat-ip", 0.0, time.perf_counter() - t0)
    t0 = time.perf_counter()
    index = approximate_index(pool, approximate, k=k, seed=seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores, ids = index.search(queries, k)
    search_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(pool), size=min(n_recall_queries, len(pool)), replace=False)
    probe = np.concatenate([queries, pool[np.sort(sample)]])
    _, approx_ids = index.search(probe, k)
    _, exact_ids = exact_knn(pool, probe, k)
    return KnnResult(scores, ids, approximate, build_s, search_s,
                     recall=recall_at_k(approx_ids, exact_ids), n_recall_queries=len(probe))


def brute_force_knn(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference for `knn_search`: matmul, argpartition, then sort the top k.

    Returns:
        ``(scores, ids)``, each ``[Q, min(k, N)]``, best first.
    """
    sims = np.atleast_2d(queries).astype(np.float32) @ np.asarray(pool, dtype=np.float32).T
    k = min(k, sims.shape[1])
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1, kind="stable")
    return np.take_along_axis(part_sims, order, axis=1), np.take_along_axis(part, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (exact neighbours) present in ``found``."""
    hits = [len(set(f[f >= 0].tolist()) & set(t.tolist())) / max(1, len(t))
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) if hits else 1.0


def nearest_similarity(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per query row, its highest cosine to any reference row (-inf without references)."""
    if not len(reference) or not len(query):
        return np.full(len(query), -np.inf, dtype=np.float32)
    scores, _ = exact_knn(np.ascontiguousarray(reference, dtype=np.float32),
                          np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32), 1)
    return scores[:, 0]


def exclusion_masks(
    mining: pd.DataFrame,
    held_videos: Mapping[str, Iterable[str]],
    eval_similarity: np.ndarray | None,
    threshold: float | None,
) -> dict[str, np.ndarray]:
    """One boolean mask over the mining rows per reason a frame must not be mined.

    Args:
        mining: the mining pool (``video`` column).
        held_videos: pool name (train, val, eval) -> its videos.
        eval_similarity: per mining row, its highest cosine to an eval frame.
        threshold: near-duplicate cosine (strictly above is a duplicate); None: off.

    Returns:
        ``reason -> mask``; a frame may be caught by several reasons.
    """
    videos = mining["video"].astype(str).to_numpy()
    masks = {REASON_VIDEO.format(pool=pool): np.isin(videos, list(held))
             for pool, held in held_videos.items()}
    if threshold is not None and eval_similarity is not None:
        masks[REASON_NEAR_DUP] = np.asarray(eval_similarity) > threshold
    return masks


def mine_random(n: int, k: int, seed: int) -> np.ndarray:
    """``min(k, n)`` distinct rows of ``range(n)`` drawn uniformly, in draw order."""
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=min(k, n), replace=False).astype(np.int64)


def slice_mask(frames: pd.DataFrame, key: Mapping[str, str]) -> np.ndarray:
    """Rows whose weather, timeofday and scene all equal ``key``'s (never a frame whose attributes are unknown)."""
    mask = np.ones(len(frames), dtype=bool)
    if ATTRIBUTES_KNOWN in frames.columns:
        mask &= frames[ATTRIBUTES_KNOWN].fillna(True).astype(bool).to_numpy()
    for a in FRAME_ATTRIBUTES:
        mask &= (frames[a].astype(str) == str(key[a])).to_numpy()
    return mask


def mine_random_slice(frames: pd.DataFrame, key: Mapping[str, str], k: int, seed: int) -> np.ndarray:
    """Up to ``k`` rows drawn uniformly among those of the slice ``key`` (all of them when fewer)."""
    rows = np.flatnonzero(slice_mask(frames, key))
    return rows[mine_random(len(rows), k, seed)]


def failed_classes(slice_row: Mapping[str, object], *, below: float = 0.5) -> list[str]:
    """Classes with ground truth in a slice (AP not null) whose ``ap50/<class>`` is under ``below``.

    Args:
        slice_row: one row of the eval's ``slice_table.json``.
        below: the AP@0.5 a class must reach not to count as failed.
    """
    out = []
    for c in CLASSES:
        ap = slice_row.get(f"ap50/{c}")
        if ap is None or (isinstance(ap, float) and np.isnan(ap)):
            continue  # no ground truth of this class in the slice
        if float(ap) < below:
            out.append(c)
    return out


def precision_block(
    frames: pd.DataFrame, key: Mapping[str, str], gt_classes: Mapping[str, set[str]],
    failed: Sequence[str],
) -> dict[str, object]:
    """How well ``frames`` match the worst slice: shares in 0-1, None when undefined.

    Args:
        frames: the frames (``name``, ``has_gt`` if known, the slice columns).
        key: the worst slice.
        gt_classes: frame name -> classes in its (hidden) ground truth.
        failed: the classes the model failed on in the worst slice.

    Returns:
        ``n_frames``; ``n_attributes_known`` and ``n_attributes_unknown`` (images without a
        label file, whose weather, timeofday and scene nobody recorded); ``slice_match``
        (all three attributes equal) and the per-attribute shares, over the frames whose
        attributes are known; ``n_with_gt`` and ``has_failed_class`` (share of the frames with ground
        truth holding at least one box of a failed class; None without failed classes
        or without ground truth).
    """
    n = len(frames)
    known = known_attributes(frames)
    n_known = len(known)
    share = lambda mask: float(np.mean(mask)) if n_known else None  # noqa: E731
    out: dict[str, object] = {"n_frames": n, "n_attributes_known": n_known,
                              "n_attributes_unknown": n - n_known, "slice_match": share(slice_mask(known, key))}
    for a in FRAME_ATTRIBUTES:
        out[a] = share((known[a].astype(str) == str(key[a])).to_numpy())
    names = frames["name"].astype(str).tolist()
    has_gt = frames["has_gt"].to_numpy(dtype=bool) if "has_gt" in frames else np.ones(n, dtype=bool)
    with_gt = [name for name, g in zip(names, has_gt, strict=True) if g]
    out["n_with_gt"] = len(with_gt)
    wanted = set(failed)
    hits = [bool(gt_classes.get(name, set()) & wanted) for name in with_gt]
    out["has_failed_class"] = float(np.mean(hits)) if hits and wanted else None
    return out


def lift(mined: Mapping[str, object], base: Mapping[str, object]) -> dict[str, float | None]:
    """Mined share / base-rate share for every share both blocks define (None where base is 0)."""
    out: dict[str, float | None] = {}
    for name in ("slice_match", *FRAME_ATTRIBUTES, "has_failed_class"):
        m, b = mined.get(name), base.get(name)
        out[name] = None if m is None or b is None or b == 0 else float(m) / float(b)
    return out


def gt_classes_by_frame(boxes: pd.DataFrame) -> dict[str, set[str]]:
    """Frame name -> the classes of its non-ignored ground-truth boxes."""
    kept = boxes[~boxes["ignored"].astype(bool)] if "ignored" in boxes else boxes
    return {str(name): set(group.astype(str)) for name, group in kept.groupby("name")["category"]}


ABBREVIATIONS: dict[str, str] = {
    "clear": "clear", "overcast": "ovc", "snowy": "snow", "rainy": "rain", "partly cloudy": "pcloudy",
    "foggy": "fog", "daytime": "day", "night": "night", "dawn/dusk": "dusk", "city street": "city",
    "highway": "hwy", "residential": "resid", "parking lot": "park", "tunnel": "tunnel",
    "gas stations": "gas", "undefined": "undef",
}


def slice_caption(row: Mapping[str, object]) -> str:
    """``weather/timeofday/scene`` of a frame, abbreviated for a thumbnail caption."""
    return "/".join(ABBREVIATIONS.get(str(row[a]), str(row[a])[:6]) for a in FRAME_ATTRIBUTES)
