"""k-NN search as the mine stage runs it: exact up to a pool size, a registered index above it.

`SearchPlan` is the choice (from ``mine.exact_max_pool`` and ``mine.approximate_index``);
`SearchPlan.knn` builds the chosen index over a pool, searches it, checks its recall
when it is not exact, and times both, for result.json.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bddengine.vectors.registry import EXACT, index_spec
from bddengine.vectors.where import Filter

RECALL_QUERIES = 100
"""Queries sampled from the pool to measure an approximate index's recall@k."""


@dataclass(frozen=True)
class KnnResult:
    """Top-k neighbours of each query, and how they were found.

    Attributes:
        scores: ``[Q, k']`` inner products (cosines on unit vectors), best first.
        ids: ``[Q, k']`` pool rows; ``k' = min(k, pool size)``.
        index_type: the registered index that searched.
        build_s: seconds building the index (0 for exact search, which builds none).
        search_s: seconds searching.
        recall: recall@k of an approximate index against exact search on
            sampled queries (None for an exact index).
        n_recall_queries: how many queries that recall is over.
    """

    scores: np.ndarray
    ids: np.ndarray
    index_type: str
    build_s: float
    search_s: float
    recall: float | None = None
    n_recall_queries: int = 0

    def record(self) -> dict[str, Any]:
        """The search record a mine run's result.json holds."""
        return {"index_type": self.index_type, "index_build_s": round(self.build_s, 4),
                "search_s": round(self.search_s, 4), "recall_at_k": self.recall,
                "n_recall_queries": self.n_recall_queries}


@dataclass(frozen=True)
class SearchPlan:
    """Which index searches a pool: `EXACT` up to ``exact_max_pool`` rows, ``index`` above.

    Attributes:
        exact_max_pool: largest pool searched exactly.
        index: a registered index name, used above that size.
        seed: seeds the recall sample and the index's own randomness (IVF training).
        n_recall_queries: pool rows sampled as extra recall queries.
    """

    exact_max_pool: int
    index: str = "hnsw"
    seed: int = 42
    n_recall_queries: int = RECALL_QUERIES

    def index_for(self, n: int) -> str:
        """The index name that searches a pool of ``n`` rows."""
        return EXACT if n <= self.exact_max_pool else self.index

    def knn(self, pool: np.ndarray, queries: np.ndarray, k: int, *, metadata: pd.DataFrame | None = None,
            where: Sequence[Filter] = ()) -> KnnResult:
        """Top-``k`` pool rows by inner product for each query, among the rows ``where`` keeps.

        Args:
            pool: ``[N, D]`` L2-normalised vectors.
            queries: ``[Q, D]`` L2-normalised query vectors.
            k: neighbours per query (capped at ``N``).
            metadata: ``N`` rows the ``where`` filters read.
            where: filters every returned row passes.

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
        spec = index_spec(self.index_for(len(pool)))
        t0 = time.perf_counter()
        index = spec.factory.build(pool, metadata, seed=self.seed)
        build_s = 0.0 if spec.exact else time.perf_counter() - t0  # exact search builds no index
        t0 = time.perf_counter()
        hits = index.search(queries, k, where=where)
        search_s = time.perf_counter() - t0
        check = index.check_recall(queries, k, n_sample=self.n_recall_queries, seed=self.seed)
        return KnnResult(hits.scores, hits.ids, spec.name, build_s, search_s,
                         recall=check.recall, n_recall_queries=check.n_queries)


def knn_search(pool: np.ndarray, queries: np.ndarray, k: int, *, exact_max_pool: int, approximate: str = "hnsw",
               seed: int = 42, n_recall_queries: int = RECALL_QUERIES) -> KnnResult:
    """`SearchPlan.knn` in one call: exact up to ``exact_max_pool`` rows, else the ``approximate`` index."""
    return SearchPlan(exact_max_pool, approximate, seed, n_recall_queries).knn(pool, queries, k)
