"""Metadata filters for `VectorIndex.search`: which rows a search may return.

A ``where`` is a sequence of filters that must all hold. Each filter says what it
keeps as a boolean mask over a metadata table (for in-memory indexes) and as a SQL
predicate (for an index that filters in its own engine, e.g. LanceDB).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
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

    def keeps(self, table: pd.DataFrame) -> np.ndarray:
        return ~np.isin(table[self.column].astype(str).to_numpy(), list(self.values))

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
