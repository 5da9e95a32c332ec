"""One full turn of the flywheel, planned from the stage registry and the config.

``plan_turn`` is pure: it lists the stage calls (stage, options, config) of a turn;
``bddengine flywheel`` runs them in order. The order of stages lives in
`bddengine.stages.STAGES`; this module only expands the arms, seeds and turns.
`TurnProfile` records what each step cost (``turn_profile.json``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bddengine.config import EngineConfig, parse_arm
from bddengine.runs.lineages import lineage_seeds
from bddengine.stages import STAGES


@dataclass(frozen=True)
class Step:
    """One stage call of a turn."""

    stage: str
    cfg: EngineConfig
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    arm: str | None = None
    """The arm an autolabel / train / eval step (and, from turn 2 on, a mine step) belongs to."""
    lineage: tuple[str, int] | None = None
    """From turn 2 on: the (arm, seed) lineage the step belongs to."""

    def title(self) -> str:
        """What the progress line shows, e.g. ``train --iter 1 --arm prototype``."""
        return self.label or self.stage


def arm_config(cfg: EngineConfig, arm: str) -> EngineConfig:
    """The config with ``mine.strategy``/``mine.embedding`` set for one arm."""
    strategy, embedding = parse_arm(arm)
    mine = cfg.mine.model_copy(update={"strategy": strategy, "embedding": embedding})
    return cfg.model_copy(update={"mine": mine})


def turn_seeds(cfg: EngineConfig) -> list[int]:
    """Training seeds of each arm (one lineage each): the config seed, then seed+1, ..."""
    return lineage_seeds(cfg)


def plan_turn(cfg: EngineConfig, *, force: bool = False) -> list[Step]:
    """Every stage call of the configured turns, in order.

    Turn 1: synth (synthetic worlds only) -> collect -> embed -> split -> train/eval iter 0 ->
    mine every mining arm once (an arm's strategy and embedding, shared by its label
    sources, plus the mining-only comparisons) -> per trained arm: autolabel, then
    train/eval iter 1 for each seed. Turns 2..``flywheel.turns``: `plan_lineage_turn` for
    every (arm, seed). Then the report. An arm whose autolabel run added no labeled box has
    its later steps skipped by `bddengine flywheel` (`skipped_by`).

    Args:
        cfg: the validated config (``flywheel.arms``, ``flywheel.mine_only``, ``flywheel.seeds``,
            ``flywheel.turns``).
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
    for mining in cfg.flywheel.mining_arms():
        steps.append(Step("mine", arm_config(cfg, mining), {"iter": 0, **f}, f"mine --arm {mining}"))
    seeds = turn_seeds(cfg)
    for arm in arms:
        acfg = arm_config(cfg, arm)
        steps.append(Step("autolabel", acfg, {"iter": 0, "arm": arm, **f}, f"autolabel --arm {arm}", arm=arm))
        for seed in seeds:
            opts = {"iter": 1, "arm": arm, "seed": seed, **f}
            suffix = f" --seed {seed}" if seed != cfg.seed else ""
            steps.append(Step("train", acfg, dict(opts), f"train --iter 1 --arm {arm}{suffix}", arm=arm))
            steps.append(Step("eval", acfg, dict(opts), f"eval --iter 1 --arm {arm}{suffix}", arm=arm))
    for turn in range(2, cfg.flywheel.turns + 1):
        steps += [step for arm in arms for seed in seeds for step in plan_lineage_turn(cfg, arm, seed, turn, force)]
    steps.append(Step("report", cfg, dict(f)))
    return steps


def plan_lineage_turn(cfg: EngineConfig, arm: str, seed: int, turn: int, force: bool = False) -> list[Step]:
    """Turn ``turn`` >= 2 of the lineage (``arm``, ``seed``): mine with its iteration ``turn - 1`` model,
    label with the arm's source, train iteration ``turn`` from iteration ``turn - 1`` on every frame the
    lineage labeled, and evaluate it."""
    acfg = arm_config(cfg, arm)
    suffix = f" --arm {arm}" + (f" --seed {seed}" if seed != cfg.seed else "")
    opts = {"arm": arm, "seed": seed, "force": force}
    it = turn - 1
    return [Step(stage, acfg, {"iter": i, **opts}, f"{stage} --iter {i}{suffix}", arm=arm, lineage=(arm, seed))
            for stage, i in (("mine", it), ("autolabel", it), ("train", turn), ("eval", turn))]


def skipped_by(step: Step, empty: dict[str | tuple[str, int], str]) -> str | None:
    """The autolabel run that added nothing and so skips ``step``, or None: run it.

    ``empty`` maps an arm (its turn-1 labels, shared by its seeds) or an (arm, seed) lineage (its
    own labels of a later turn) to the autolabel run that added no labeled box. Without new labels
    a training would repeat the last one, so that lineage trains, evaluates and mines no further.
    """
    if step.arm in empty and (step.stage in ("train", "eval") or step.lineage is not None):
        return empty[step.arm]
    return empty.get(step.lineage) if step.lineage is not None else None


# ---------------------------------------------------------------------------
# where a turn's time goes
# ---------------------------------------------------------------------------

@dataclass
class StepCost:
    """What one step of a turn cost the ``bddengine`` process."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None
    peak_rss_scope: str = "step"
    """``step``: the peak during this step; ``process``: since the process started (no per-step reset)."""


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@contextmanager
def measure_step() -> Iterator[StepCost]:
    """Measure the block: wall time, CPU time (this process plus the worker processes that ended in
    it) and this process's peak resident memory during it."""
    cost = StepCost()
    cost.peak_rss_scope = "step" if _reset_peak_rss() else "process"
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    try:
        yield cost
    finally:
        cost.wall_s = time.perf_counter() - wall0
        cost.cpu_s = _cpu_s() - cpu0
        cost.peak_rss_mb = _peak_rss_mb()


@dataclass
class TurnProfile:
    """The steps of one ``bddengine flywheel`` turn and what each cost, saved as ``turn_profile.json``."""

    path: Path
    config: str
    runs_dir: Path
    planned: list[str]
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, step: Step, cost: StepCost, *, run: str | None, skipped: bool, note: str | None = None) -> None:
        """Record one finished step and rewrite the file (so a later step, e.g. the report, reads it)."""
        self.steps.append({"step": step.title(), "stage": step.stage, "run": run, "skipped": skipped, "note": note,
                           "wall_s": round(cost.wall_s, 3), "cpu_s": round(cost.cpu_s, 3),
                           "peak_rss_mb": None if cost.peak_rss_mb is None else round(cost.peak_rss_mb, 1),
                           "peak_rss_scope": cost.peak_rss_scope})
        self.write()

    def to_dict(self) -> dict[str, Any]:
        """The file's content: every step with its share of the turn's wall time so far."""
        total = sum(s["wall_s"] for s in self.steps)
        steps = [s | {"share": round(s["wall_s"] / total, 4) if total > 0 else None} for s in self.steps]
        done = [s["step"] for s in self.steps]
        return {
            "config": self.config,
            "runs_dir": str(Path(self.runs_dir).resolve()),
            "started_at": self.started_at,
            "complete": done == self.planned,
            "n_steps_planned": len(self.planned),
            "wall_s": round(total, 3),
            "cpu_s": round(sum(s["cpu_s"] for s in self.steps), 3),
            "peak_rss_mb": max((s["peak_rss_mb"] for s in self.steps if s["peak_rss_mb"] is not None),
                               default=None),
            "note": "wall and CPU seconds of each step as `bddengine flywheel` ran it (CPU time includes worker "
                    "processes that ended within the step); peak RSS is the bddengine process's own; share is "
                    "the step's part of the wall time of the steps recorded",
            "steps": steps,
        }

    def write(self) -> Path:
        """Write the file atomically (a temporary file renamed into place)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".tmp_{self.path.name}_{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.path)
        return self.path
