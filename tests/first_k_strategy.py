"""A mining strategy as a plugin module: the first ``k`` eligible frames, in pool order.

Importing it registers ``first-k`` (``mine.strategy: first-k``, ``flywheel.arms: [first-k]``)
as a control arm; nothing else in the engine knows about it. It imports the strategy
base module, as a strategy inside the engine would, and registers itself.
"""

from __future__ import annotations

import numpy as np

from bddengine.mining.base import StrategySpec, in_draw_order
from bddengine.mining.strategies import register


class FirstKStrategy:
    """The first ``k`` eligible frames: a base line that ignores the failures entirely."""

    name, summary = "first-k", "the first k eligible frames"

    def candidates(self, eligible, worst, k, seed):
        return np.arange(min(k, len(eligible)))

    def rank(self, vectors, prototype, k, *, plan):
        return in_draw_order(vectors, prototype)


register(StrategySpec(FirstKStrategy(), control=True))
