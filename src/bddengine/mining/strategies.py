"""The mining strategies, registered once: each is one arm of the retraining comparison.

The config's allowed values of ``mine.strategy`` and ``flywheel.arms`` come from
``STRATEGIES``, and what the engine decides about a strategy (is it a control arm?)
comes from its `StrategySpec`. A new strategy is one module (a class like these,
importing `bddengine.mining.base`) plus one entry: a line in ``BUILT_IN`` below, or a
`register` call from that module.
"""

from __future__ import annotations

from bddengine.mining.base import NO_SEARCH, Ranking, Strategy, StrategySpec, in_draw_order
from bddengine.mining.core import mine_random, mine_random_slice

__all__ = ["NO_SEARCH", "STRATEGIES", "Ranking", "Strategy", "StrategySpec", "in_draw_order", "register",
           "strategy_spec", "unregister"]


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


BUILT_IN: tuple[StrategySpec, ...] = (
    StrategySpec(PrototypeStrategy(), targeted=True),
    StrategySpec(RandomStrategy(), control=True),
    StrategySpec(RandomSliceStrategy(), worst_slice_only=True),
)

STRATEGIES: dict[str, StrategySpec] = {s.name: s for s in BUILT_IN}
"""Strategy name -> its entry; the config's allowed values of ``mine.strategy``."""


def register(spec: StrategySpec, *, replace: bool = False) -> StrategySpec:
    """Add a strategy under ``spec.name`` (a module's one entry, when it registers itself).

    Raises:
        ValueError: the name is taken (and ``replace`` is False).
    """
    if spec.name in STRATEGIES and not replace:
        raise ValueError(f"mining strategy {spec.name!r} is already registered ({STRATEGIES[spec.name].summary})")
    STRATEGIES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered strategy (the built-in ones included); an unknown name is ignored."""
    STRATEGIES.pop(name, None)


def strategy_spec(name: str) -> StrategySpec | None:
    """The entry of ``name``; None when it is not registered (a run recorded by a strategy since removed)."""
    return STRATEGIES.get(name)
