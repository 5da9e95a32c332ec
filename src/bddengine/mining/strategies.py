"""The mining strategies, registered once: each is one arm of the retraining comparison.

A strategy says which eligible frames to consider (``candidates``) and how to rank
them against the failure prototype (``rank``). The config's allowed values of
``mine.strategy`` and ``flywheel.arms`` come from ``STRATEGIES``, so a new strategy
is one module with a class like these plus one entry there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from bddengine.mining.core import mine_random, mine_random_slice
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


def in_draw_order(vectors: np.ndarray, prototype: np.ndarray) -> Ranking:
    """Keep the candidates as drawn; their cosine to the prototype is recorded for comparison only."""
    return Ranking(np.arange(len(vectors)), (vectors @ prototype).astype(float))


class PrototypeStrategy:
    """k-NN of the failure prototype over every eligible frame (the plan's index, exact or approximate)."""

    name, summary = "prototype", "prototype (k-NN)"

    def candidates(self, eligible, worst, k, seed):
        return None

    def rank(self, vectors, prototype, k, *, plan):
        knn = plan.knn(vectors, prototype[None, :], k)
        return Ranking(knn.ids[0], knn.scores[0].astype(float), knn.record())


class RandomStrategy:
    """``k`` eligible frames drawn uniformly: the base line every arm is compared with."""

    name, summary = "random", "random (uniform)"

    def candidates(self, eligible, worst, k, seed):
        return mine_random(len(eligible), k, seed)

    def rank(self, vectors, prototype, k, *, plan):
        return in_draw_order(vectors, prototype)


class RandomSliceStrategy:
    """``k`` frames drawn uniformly among the eligible frames of the worst slice (a metadata filter)."""

    name, summary = "random-slice", "random-slice (metadata filter)"

    def candidates(self, eligible, worst, k, seed):
        return mine_random_slice(eligible, worst, k, seed)

    def rank(self, vectors, prototype, k, *, plan):
        return in_draw_order(vectors, prototype)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (PrototypeStrategy(), RandomStrategy(), RandomSliceStrategy())}
"""Strategy name -> strategy; the config's allowed values of ``mine.strategy``."""
