"""What a mining strategy is, and the entry that registers one.

A strategy says which eligible frames to consider (``candidates``) and how to rank
them against the failure prototype (``rank``); its `StrategySpec` says what the rest
of the engine needs to know about it (whether it is a control arm, whether it draws
only from the worst slice, whether it ranks by likeness to the failures). A strategy
in its own module imports this module, not ``mining.strategies`` (which imports the
built-in ones and holds the registry), so no import cycle forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from bddengine.vectors.search import SearchPlan

NO_SEARCH: dict[str, Any] = {"index_type": None, "index_build_s": None, "search_s": None,
                             "recall_at_k": None, "n_recall_queries": 0}
"""The search record of a strategy that searches nothing."""


@dataclass
class Ranking:
    """A strategy's answer: candidate rows in mined order, their cosine to the prototype, the search record."""

    order: np.ndarray
    similarity: np.ndarray
    search: dict[str, Any] = field(default_factory=lambda: dict(NO_SEARCH))


class Strategy(Protocol):
    """One way of choosing ``k`` frames of the eligible mining pool."""

    name: str
    summary: str

    def candidates(self, eligible: pd.DataFrame, worst: Mapping[str, str], k: int, seed: int) -> np.ndarray | None:
        """Rows of ``eligible`` whose vectors are needed (None: every row)."""
        ...

    def rank(self, vectors: np.ndarray, prototype: np.ndarray, k: int, *, plan: SearchPlan) -> Ranking:
        """Order the candidates' L2-normalised ``vectors`` (rows as ``candidates`` gave them).

        ``plan`` says which registered vector index searches them (`SearchPlan.knn`).
        """
        ...


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy and what the engine decides by it (never by its name).

    Attributes:
        strategy: the strategy itself (``mine.strategy`` and ``flywheel.arms`` name it by ``strategy.name``).
        control: a base line: by default (``report.contrasts`` unset) every other arm with the
            same label source is compared against its arms.
        targeted: ranks frames by their likeness to the failures; the report shows the mining
            grid and PR chart of such an arm first.
        worst_slice_only: draws only from the worst slice's frames (the mine summary says so).
    """

    strategy: Strategy
    control: bool = False
    targeted: bool = False
    worst_slice_only: bool = False

    @property
    def name(self) -> str:
        """The value of ``mine.strategy``."""
        return self.strategy.name

    @property
    def summary(self) -> str:
        """One line for help texts."""
        return self.strategy.summary


def in_draw_order(vectors: np.ndarray, prototype: np.ndarray) -> Ranking:
    """Keep the candidates as drawn; their cosine to the prototype is recorded for comparison only."""
    return Ranking(np.arange(len(vectors)), (vectors @ prototype).astype(float))
