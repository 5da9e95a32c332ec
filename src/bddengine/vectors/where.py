"""Metadata filters for `VectorIndex.search`: which rows a search may return.

A ``where`` is a sequence of filters that must all hold. Each filter says what it
keeps as a boolean mask over a metadata table (for in-memory indexes) and as a SQL
predicate (for an index that filters in its own engine, e.g. LanceDB).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd


class Filter(Protocol):
    """One condition on a metadata column."""

    column: str

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of ``table`` the filter lets through."""
        ...

    def sql(self) -> str:
        """The same condition as a SQL predicate."""
        ...


@dataclass(frozen=True)
class NotIn:
    """Keeps rows whose ``column`` (compared as text) is none of ``values``."""

    column: str
    values: Collection[str]

    @cached_property
    def texts(self) -> frozenset[str]:
        """``values`` as text, built once: a search that filters its candidates calls `keeps` per query."""
        return frozenset(str(v) for v in self.values)

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        column = table[self.column].astype(str).to_numpy()
        if len(column) < len(self.texts):  # a few candidates against many values: look each one up
            return np.fromiter((v not in self.texts for v in column), dtype=bool, count=len(column))
        return ~np.isin(column, list(self.texts))

    def sql(self) -> str:
        if not self.values:
            return "TRUE"
        quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(self.values))
        return f"{self.column} NOT IN ({quoted})"


@dataclass(frozen=True)
class NotAbove:
    """Keeps rows whose ``column`` is not strictly above ``limit`` (NaN and -inf are kept)."""

    column: str
    limit: float

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        return ~(table[self.column].to_numpy() > self.limit)

    def sql(self) -> str:
        return f"NOT ({self.column} > {self.limit!r})"


@dataclass(frozen=True)
class EveryNth:
    """Keeps rows whose integer ``column`` is a multiple of ``every``: a fixed 1-in-``every`` sample of rows
    numbered in insertion order (``every`` 1 keeps them all)."""

    column: str
    every: int

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        return table[self.column].to_numpy() % self.every == 0

    def sql(self) -> str:
        return "TRUE" if self.every <= 1 else f"{self.column} % {int(self.every)} = 0"


@dataclass(frozen=True, eq=False)
class KeepRows:
    """Keeps the rows whose integer ``column`` (a row number) is True in ``mask``; rows past its end are dropped.

    A set of rows worked out once (mine's eligible frames, from names, videos and
    near-duplicates), which no SQL literal of names could carry at fleet scale: an
    index that filters its candidates evaluates it with `keeps` on their row numbers.
    """

    column: str
    mask: np.ndarray

    @property
    def share(self) -> float:
        """The share of the ``len(mask)`` rows kept."""
        return float(np.mean(self.mask)) if len(self.mask) else 0.0

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        rows = table[self.column].to_numpy()
        inside = (rows >= 0) & (rows < len(self.mask))
        out = np.zeros(len(rows), dtype=bool)
        out[inside] = self.mask[rows[inside]]
        return out

    def sql(self) -> str:
        """The shorter of the two literal lists (the rows kept, or the rows dropped)."""
        kept, dropped = np.flatnonzero(self.mask), np.flatnonzero(~self.mask)
        within = f"{self.column} >= 0 AND {self.column} < {len(self.mask)}"
        if not len(kept):
            return "FALSE"
        if len(kept) <= len(dropped):
            return f"{self.column} IN ({', '.join(map(str, kept))})"
        return within if not len(dropped) else f"{within} AND {self.column} NOT IN ({', '.join(map(str, dropped))})"


def keep_mask(table: pd.DataFrame | None, where: Sequence[Filter], n: int) -> np.ndarray:
    """Rows of an ``n``-row index that every filter of ``where`` keeps (all of them without filters).

    Raises:
        ValueError: ``where`` is given but the index holds no metadata (or not ``n`` rows of it).
    """
    if not where:
        return np.ones(n, dtype=bool)
    if table is None or len(table) != n:
        raise ValueError(f"a where filter needs the index's metadata: {n} rows of vectors, "
                         f"{'no' if table is None else len(table)} rows of metadata")
    mask = np.ones(n, dtype=bool)
    for condition in where:
        mask &= condition.keeps(table)
    return mask
