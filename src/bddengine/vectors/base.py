"""The vector index protocol: what every index implementation provides, and its registry entry.

An index holds L2-normalised float32 rows (cosine = inner product), optionally a
metadata table with one row per vector, and answers top-k inner-product searches
restricted by metadata filters (`bddengine.vectors.where`). Its life:

- ``build(vectors, metadata)``: from an array. A persistent index (LanceDB) builds
  at embed time and writes itself next to the embeddings; the in-memory ones
  (exact, FAISS) build lazily, when a stage asks, from the embeddings array.
- ``open(location)``: from a run (its folder, or the path or URI of the stored
  index or embeddings).
- ``append(vectors, metadata)``: more rows, numbered after the existing ones.
- ``search(queries, k, where=...)``: the top-k rows per query among those the
  filters keep; ids are row numbers of the whole index.
- ``check_recall(queries, k, ...)``: recall@k against exact search (None for an
  exact index, which is its own truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from bddengine.vectors.where import Filter


@dataclass(frozen=True)
class Hits:
    """Top-k neighbours of each query.

    Attributes:
        scores: ``[Q, k']`` inner products, best first.
        ids: ``[Q, k']`` index rows; ``k' = min(k, rows the filters keep)``.
    """

    scores: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class RecallCheck:
    """Recall@k of an index against exact search (``recall`` None: exact, nothing to check)."""

    recall: float | None
    n_queries: int


class VectorIndex(Protocol):
    """A searchable set of vectors with optional per-row metadata."""

    def __len__(self) -> int:
        """Rows in the index."""
        ...

    def append(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None) -> None:
        """Add rows after the existing ones (with metadata rows when the index holds metadata)."""
        ...

    def search(self, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> Hits:
        """Top-``k`` rows per ``[Q, D]`` query among the rows every filter in ``where`` keeps."""
        ...

    def check_recall(self, queries: np.ndarray, k: int, *, n_sample: int, seed: int) -> RecallCheck:
        """Recall@k against exact search on ``queries`` plus ``n_sample`` index rows drawn with ``seed``."""
        ...


class IndexFactory(Protocol):
    """How an index comes to be: built from vectors, or opened from where a run stored it."""

    def build(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None, *, seed: int = 42) -> VectorIndex:
        """An index over ``[N, D]`` L2-normalised ``vectors`` (``metadata``: N rows, for ``where``)."""
        ...

    def open(self, location: str | Path, *, seed: int = 42) -> VectorIndex:
        """The index of a run: its folder, or the path or URI of what it stored."""
        ...


@dataclass(frozen=True)
class IndexSpec:
    """One registry entry: an index implementation and what the engine needs to know about it.

    Attributes:
        name: the config value (``mine.approximate_index``) and the ``index_type``
            result.json records.
        factory: builds and opens the index (`IndexFactory`; a class whose
            ``build`` and ``open`` are classmethods will do).
        exact: whether its answers are exact (no recall check, no index to build).
        summary: one line for docs and error messages.
        packages: ``(import name, pip name)`` of what it needs installed (preflight).
    """

    name: str
    factory: IndexFactory
    exact: bool
    summary: str
    packages: tuple[tuple[str, str], ...] = ()
