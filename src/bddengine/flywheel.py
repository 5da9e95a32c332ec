"""One full turn of the flywheel, planned from the stage registry and the config.

``plan_turn`` is pure: it lists the stage calls (stage, options, config) of a turn;
``bddengine flywheel`` runs them in order. The order of stages lives in
`bddengine.stages.STAGES`; this module only expands the arms and seeds of iteration 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bddengine.config import EngineConfig, parse_arm
from bddengine.stages import STAGES


@dataclass(frozen=True)
class Step:
    """One stage call of a turn."""

    stage: str
    cfg: EngineConfig
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def title(self) -> str:
        """What the progress line shows, e.g. ``train --iter 1 --arm prototype``."""
        return self.label or self.stage


def arm_config(cfg: EngineConfig, arm: str) -> EngineConfig:
    """The config with ``mine.strategy``/``mine.embedding`` set for one arm."""
    strategy, embedding = parse_arm(arm)
    mine = cfg.mine.model_copy(update={"strategy": strategy, "embedding": embedding})
    return cfg.model_copy(update={"mine": mine})


def turn_seeds(cfg: EngineConfig) -> list[int]:
    """Training seeds of each iteration-1 arm: the config seed, then seed+1, ..."""
    return [cfg.seed + i for i in range(cfg.flywheel.seeds)]


def plan_turn(cfg: EngineConfig, *, force: bool = False) -> list[Step]:
    """Every stage call of one turn, in order.

    synth (synthetic worlds only) -> collect -> embed -> split -> train/eval iter 0 ->
    mine every arm (plus the mining-only comparisons) -> per trained arm: autolabel,
    then train/eval iter 1 for each seed -> report.

    Args:
        cfg: the validated config (``flywheel.arms``, ``flywheel.mine_only``, ``flywheel.seeds``).
        force: recompute stages even when an identical run exists.
    """
    f = {"force": force}
    names = [s.name for s in STAGES]
    steps: list[Step] = []
    for name in names[: names.index("train")]:
        if name == "synth" and not cfg.data.synthetic:
            continue
        steps.append(Step(name, cfg, dict(f)))
    steps.append(Step("train", cfg, {"iter": 0, **f}, "train --iter 0"))
    steps.append(Step("eval", cfg, {"iter": 0, **f}, "eval --iter 0"))
    arms = list(cfg.flywheel.arms)
    for arm in arms + [a for a in cfg.flywheel.mine_only if a not in arms]:
        steps.append(Step("mine", arm_config(cfg, arm), {"iter": 0, **f}, f"mine --arm {arm}"))
    seeds = turn_seeds(cfg)
    for arm in arms:
        acfg = arm_config(cfg, arm)
        steps.append(Step("autolabel", acfg, {"iter": 0, "arm": arm, **f}, f"autolabel --arm {arm}"))
        for seed in seeds:
            opts = {"iter": 1, "arm": arm, "seed": seed, **f}
            suffix = f" --seed {seed}" if seed != cfg.seed else ""
            steps.append(Step("train", acfg, dict(opts), f"train --iter 1 --arm {arm}{suffix}"))
            steps.append(Step("eval", acfg, dict(opts), f"eval --iter 1 --arm {arm}{suffix}"))
    steps.append(Step("report", cfg, dict(f)))
    return steps
