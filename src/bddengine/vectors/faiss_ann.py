"""Approximate inner-product search with FAISS: an HNSW graph or an IVF index, tuned for recall.

Both are in-memory: built lazily from the vectors when a stage asks (a run's
embeddings), never stored. They keep the vectors they were built from, so their
recall@k can be checked against exact search (`bddengine.vectors.exact.exact_knn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bddengine.vectors.base import Hits, RecallCheck
from bddengine.vectors.exact import as_queries, exact_knn, recall_at_k
from bddengine.vectors.where import Filter, keep_mask

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
KINDS = ("hnsw", "ivf")


def faiss_index(pool: np.ndarray, kind: str, *, seed: int):
    """An HNSW or IVF inner-product FAISS index holding ``pool`` (``[N, D]`` float32, L2-normalised).

    Args:
        pool: the vectors.
        kind: ``hnsw`` or ``ivf``.
        seed: k-means seed of the IVF coarse quantizer.

    Raises:
        ValueError: an unknown ``kind``.
    """
    import faiss

    n, d = pool.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(pool)
        index.nprobe = min(nlist, max(8, nlist // 8))
    else:
        raise ValueError(f"approximate index {kind!r}: expected one of {list(KINDS)}")
    index.add(pool)
    return index


class FaissIndex:
    """A FAISS HNSW or IVF index, the vectors it holds, and their metadata."""

    def __init__(self, kind: str, vectors: np.ndarray, metadata: pd.DataFrame | None, seed: int) -> None:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"an approximate index needs a non-empty [N, D] matrix, got shape {x.shape}")
        if metadata is not None and len(metadata) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(metadata)} rows of metadata")
        self.kind, self.vectors = kind, x
        self.metadata = None if metadata is None else metadata.reset_index(drop=True)
        self.index = faiss_index(x, kind, seed=seed)

    def __len__(self) -> int:
        return len(self.vectors)

    def append(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None) -> None:
        more = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if (self.metadata is None) != (metadata is None):
            raise ValueError("append metadata rows exactly when the index holds metadata")
        self.index.add(more)  # IVF keeps the coarse quantizer it was trained with
        self.vectors = np.concatenate([self.vectors, more])
        if metadata is not None:
            self.metadata = pd.concat([self.metadata, metadata], ignore_index=True)

    def search(self, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> Hits:
        import faiss

        q = as_queries(queries, self.vectors.shape[1], k)
        keep = keep_mask(self.metadata, where, len(self)) if where else None
        k = min(k, len(self) if keep is None else int(keep.sum()))
        if k == 0:
            return Hits(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64))
        ef = max(2 * k, 128)  # HNSW's search beam: at least 2k
        if keep is None:
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = ef
            scores, ids = self.index.search(q, k)
            return Hits(scores, ids)
        selector = faiss.IDSelectorBatch(np.flatnonzero(keep).astype(np.int64))
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)
        scores, ids = self.index.search(q, k, params=params)
        return Hits(scores, ids)

    def check_recall(self, queries: np.ndarray, k: int, *, n_sample: int, seed: int) -> RecallCheck:
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(self), size=min(n_sample, len(self)), replace=False)
        probe = np.concatenate([as_queries(queries, self.vectors.shape[1], k), self.vectors[np.sort(sample)]])
        k = min(k, len(self))
        approx_ids = self.search(probe, k).ids
        _, exact_ids = exact_knn(self.vectors, probe, k)
        return RecallCheck(recall_at_k(approx_ids, exact_ids), len(probe))


@dataclass(frozen=True)
class FaissFactory:
    """Builds (and opens, by building from a run's embeddings) one kind of `FaissIndex`."""

    kind: str

    def build(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None, *, seed: int = 42) -> FaissIndex:
        return FaissIndex(self.kind, vectors, metadata, seed)

    def open(self, location: str | Path, *, seed: int = 42) -> FaissIndex:
        """Built from the embeddings of an embed run (its folder or its ``.npy`` file)."""
        from bddengine.runs.layout import EMBED

        path = Path(location)
        return self.build(np.load(EMBED.embeddings.at(path) if path.is_dir() else path), seed=seed)


HNSW = FaissFactory("hnsw")
IVF = FaissFactory("ivf")
