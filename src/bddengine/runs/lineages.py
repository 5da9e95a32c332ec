"""The lineages of a many-turn flywheel: each (arm, seed) iteration by iteration.

A lineage starts at the shared iteration-0 model. Turn 1 mines with it once per mining
arm and labels once per arm (``NN_autolabel_iter0_<arm>``, shared by the arm's seeds);
iteration 1 trains per seed. From turn 2 on every lineage mines and labels with its own
model (``NN_mine_iter<t>_<arm>-seed<S>``, ``NN_autolabel_iter<t>_<arm>-seed<S>``) and
iteration ``t + 1`` fine-tunes from iteration ``t`` on the train pool plus every frame
the lineage labeled so far. A train run records the autolabel run it added under
``inputs["autolabel"]`` and, from iteration 2 on, the training it started from under
``inputs["train"]``; following those back gives the lineage's labels in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bddengine.runs.folders import RunRef, latest_run, list_runs
from bddengine.runs.lineage import recorded_input


def train_tag(iter: int, arm: str | None, seed: int | None, base_seed: int) -> str | None:
    """The run tag of a training (and its eval): the arm for N > 0, plus ``-seed<S>`` for
    any seed other than the config's."""
    tag = arm if iter > 0 else None
    if seed is not None and seed != base_seed:
        tag = f"{tag}-seed{seed}" if tag else f"seed{seed}"
    return tag


def lineage_tag(arm: str, seed: int) -> str:
    """The run tag of a lineage's own mine and autolabel runs (turn 2 on): ``prototype-pyramid-seed42``.

    Turn 1 mines and labels once per arm with the shared iteration-0 model (tags ``prototype``,
    ``prototype-pyramid``); from turn 2 each (arm, seed) has its own model, so the seed is always named.
    """
    return f"{arm}-seed{seed}"


def lineage_of(tag: str | None) -> tuple[str, int] | None:
    """The (arm, seed) a lineage's own mine or autolabel run tag names, or None for another tag."""
    m = re.fullmatch(r"(?P<arm>.+)-seed(?P<seed>\d+)", tag or "")
    return (m["arm"], int(m["seed"])) if m else None


class _Flywheel(Protocol):
    arms: Sequence[str]
    seeds: int
    turns: int


class TurnsConfig(Protocol):
    """What `lineage_steps` reads of a `bddengine.config.EngineConfig` (runs cannot import the config)."""

    seed: int
    runs_dir: Path
    flywheel: _Flywheel


@dataclass(frozen=True)
class LineageStep:
    """One iteration of one lineage, as far as it is complete on disk.

    Attributes:
        arm: the flywheel arm, e.g. ``prototype-human``.
        seed: the lineage's training seed.
        iter: 0 for the shared iteration-0 model.
        eval_run: the eval run of this iteration's model on the eval pool.
        autolabel_runs: every autolabel run the lineage trained on up to this iteration,
            oldest first (``()`` at iteration 0).
    """

    arm: str
    seed: int
    iter: int
    eval_run: RunRef
    autolabel_runs: tuple[RunRef, ...]


def lineage_seeds(cfg: TurnsConfig) -> list[int]:
    """The training seeds of each arm: the config seed, then seed+1, ... (``flywheel.seeds``)."""
    return [cfg.seed + i for i in range(cfg.flywheel.seeds)]


def trained_labels(train: RunRef) -> tuple[RunRef, ...]:
    """Every autolabel run a train run's model was trained on, oldest first.

    Follows ``inputs["autolabel"]`` and ``inputs["train"]`` (the run it fine-tuned from)
    back through the runs folder ``train`` lives in; a run whose inputs are gone ends
    the walk there.
    """
    out: list[RunRef] = []
    seen: set[str] = set()
    run: RunRef | None = train
    while run is not None and run.name not in seen and (run.iter or 0) > 0:
        seen.add(run.name)
        result = run.result()
        label = recorded_input(run.path.parent, result, "autolabel")
        if label is not None:
            out.append(label)
        run = recorded_input(run.path.parent, result, "train")
    return tuple(reversed(out))


def lineage_steps(cfg: TurnsConfig) -> list[LineageStep]:
    """Every complete (arm, seed, iter) of the configured arms, seeds and turns found under ``cfg.runs_dir``.

    Iteration 0 is listed once per lineage (the shared model). A lineage's list ends at
    its first iteration without a complete eval run (a later one would not descend from it).
    """
    runs_dir = Path(cfg.runs_dir)
    base = next((r for r in reversed(list_runs(runs_dir)) if r.stage == "eval" and r.iter == 0 and r.tag is None),
                None)
    if base is None:
        return []
    steps: list[LineageStep] = []
    for arm in cfg.flywheel.arms:
        for seed in lineage_seeds(cfg):
            steps.append(LineageStep(arm, seed, 0, base, ()))
            for it in range(1, cfg.flywheel.turns + 1):
                ev = latest_run(runs_dir, "eval", iter=it, tag=train_tag(it, arm, seed, cfg.seed))
                train = recorded_input(runs_dir, ev.result(), "train") if ev is not None else None
                if ev is None or train is None:
                    break
                steps.append(LineageStep(arm, seed, it, ev, trained_labels(train)))
    return steps
