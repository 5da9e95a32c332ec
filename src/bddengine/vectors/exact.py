"""Exact inner-product search: no index is built, every search reads the rows themselves.

`exact_knn` picks the fastest route for the query count (NumPy for one query, FAISS's
SIMD scan for a few, FAISS's blocked BLAS product for many; ``benchmarks/mine.py``);
`ExactIndex.within` is the near-duplicate check's range search, a blocked matrix product.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bddengine.vectors.base import Hits, RecallCheck
from bddengine.vectors.where import Filter, keep_mask

BLAS_MIN_QUERIES = 8
"""From this many queries on, `exact_knn` sends FAISS through its blocked BLAS product."""


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


def brute_force_knn(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference for exact search: matmul, argpartition, then sort the top k.

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
    """Mean share of each row of ``truth`` (exact neighbours) present in ``found`` (-1: no neighbour)."""
    hits = [len(set(f[f >= 0].tolist()) & set(t.tolist())) / max(1, len(t))
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) if hits else 1.0


@dataclass(frozen=True)
class RangeHits:
    """Query/index pairs whose inner product is above a threshold.

    Attributes:
        query: query row of each pair.
        reference: index row of each pair.
        similarity: the pair's inner product.
        best_reference: per query, its most similar index row (-1 when the index is empty).
        best_similarity: per query, that similarity (-inf when the index is empty).
    """

    query: np.ndarray
    reference: np.ndarray
    similarity: np.ndarray
    best_reference: np.ndarray
    best_similarity: np.ndarray


class ExactIndex:
    """The rows themselves, searched exactly (`exact_knn`); metadata as a pandas table."""

    def __init__(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None) -> None:
        x = np.ascontiguousarray(vectors, dtype=np.float32)  # no copy of a contiguous float32 pool
        if x.ndim != 2:
            raise ValueError(f"expected a [N, D] matrix of vectors, got shape {x.shape}")
        if metadata is not None and len(metadata) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(metadata)} rows of metadata")
        self.vectors = x
        self.metadata = None if metadata is None else metadata.reset_index(drop=True)

    @classmethod
    def build(cls, vectors: np.ndarray, metadata: pd.DataFrame | None = None, *, seed: int = 42) -> ExactIndex:
        return cls(vectors, metadata)

    @classmethod
    def open(cls, location: str | Path, *, seed: int = 42) -> ExactIndex:
        """The embeddings of an embed run (its folder or its ``.npy`` file), memory-mapped."""
        from bddengine.runs.layout import EMBED

        path = Path(location)
        return cls(np.load(EMBED.embeddings.at(path) if path.is_dir() else path, mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.vectors)

    def append(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None) -> None:
        more = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if (self.metadata is None) != (metadata is None):
            raise ValueError("append metadata rows exactly when the index holds metadata")
        self.vectors = np.concatenate([self.vectors, more])
        if metadata is not None:
            self.metadata = pd.concat([self.metadata, metadata], ignore_index=True)

    def search(self, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> Hits:
        queries = as_queries(queries, self.vectors.shape[1], k)
        rows = np.flatnonzero(keep_mask(self.metadata, where, len(self))) if where else None
        pool = self.vectors if rows is None else self.vectors[rows]  # the kept rows, as one matrix
        k = min(k, len(pool))
        if k == 0:
            return Hits(np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64))
        scores, ids = exact_knn(pool, queries, k)
        return Hits(scores, ids if rows is None else rows[ids])

    def check_recall(self, queries: np.ndarray, k: int, *, n_sample: int, seed: int) -> RecallCheck:
        return RecallCheck(None, 0)  # exact search is the truth recall is measured against

    def within(self, queries: np.ndarray, threshold: float, *, block: int = 2048) -> RangeHits:
        """Every query/row pair with inner product strictly above ``threshold``, and each query's best row.

        A blocked matrix product: ``block`` query rows at a time against all the rows,
        so memory stays at ``block x len(index)`` floats (3K x 1K is one block and a
        few milliseconds).

        Raises:
            ValueError: the queries are not ``[Q, D]`` with the index's width.
        """
        query = np.asarray(queries, dtype=np.float32)
        reference = self.vectors
        if query.ndim != 2 or query.shape[1] != reference.shape[1]:
            raise ValueError(f"embedding shapes do not match: query {query.shape}, reference {reference.shape}")
        nq = query.shape[0]
        best_ref = np.full(nq, -1, dtype=np.int64)
        best_sim = np.full(nq, -np.inf, dtype=np.float32)
        qs, rs, ss = [], [], []
        if reference.shape[0] and nq:
            ref_t = np.ascontiguousarray(reference.T)
            for start in range(0, nq, block):
                sims = query[start : start + block] @ ref_t
                arg = sims.argmax(axis=1)
                best_ref[start : start + len(sims)] = arg
                best_sim[start : start + len(sims)] = sims[np.arange(len(sims)), arg]
                qi, ri = np.nonzero(sims > threshold)
                qs.append(qi + start)
                rs.append(ri)
                ss.append(sims[qi, ri])
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        return RangeHits(cat(qs, np.int64), cat(rs, np.int64), cat(ss, np.float32), best_ref, best_sim)


def as_queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    """Queries as a C-contiguous ``[Q, D]`` float32 matrix, checked against the index."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"query width {q.shape[-1]} != index width {dim}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return q


def merge_top_k(best: tuple[np.ndarray, np.ndarray], scores: np.ndarray, ids: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold one chunk's ``scores`` ``[Q, n]`` of rows ``ids`` ``[n]`` into a running top-``k`` (scores, ids),
    best first, for searches streamed chunk by chunk; start from ``empty_top_k(Q)``."""
    all_s = np.concatenate([best[0], scores], axis=1)
    all_i = np.concatenate([best[1], np.broadcast_to(ids, scores.shape)], axis=1)
    top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)


def empty_top_k(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k of `merge_top_k` before the first chunk."""
    return np.full((n_queries, 0), -np.inf, dtype=np.float32), np.zeros((n_queries, 0), dtype=np.int64)
