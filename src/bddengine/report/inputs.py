"""The run folders of one flywheel turn, found from the iteration-0 eval outwards.

The report follows the chain the runs themselves recorded: the iter-0 eval names its
train and split runs, the split names its collect and embed runs. The arms of the
retraining comparison are the tags of the ``mine``, ``autolabel`` and iteration-1
``train``/``eval`` runs (``prototype``, ``random-seed43``, ...). Runs made by stages
still being built are read defensively: a missing or malformed file is reported as
missing, never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bddengine.config import mining_arm
from bddengine.runs import RunRef, latest_run, list_runs
from bddengine.runs.lineage import recorded_input

_SEED_TAG = re.compile(r"^(?P<arm>.+)-seed(?P<seed>\d+)$")


@dataclass
class ArmRuns:
    """The runs of one retraining arm (mining strategy + embedding)."""

    arm: str
    mine: RunRef | None = None
    autolabel: RunRef | None = None
    train: dict[int, RunRef] = field(default_factory=dict)
    eval: dict[int, RunRef] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mine_only: bool = False
    """A mining-only comparison (``flywheel.mine_only``): never auto-labeled or retrained."""

    @property
    def seeds(self) -> list[int]:
        """Training seeds with an iteration-1 eval."""
        return sorted(self.eval)

    def missing(self) -> list[str]:
        """The stages of this arm that have no run, in flywheel order."""
        out = []
        if self.mine is None:
            out.append("mine")
        if self.mine_only:
            return out
        if self.autolabel is None:
            out.append("autolabel")
        if not self.train:
            out.append("train --iter 1")
        if not self.eval:
            out.append("eval --iter 1")
        return out


@dataclass
class FlywheelRuns:
    """Every run the report reads."""

    runs_dir: Path
    base_seed: int
    eval0: RunRef
    train0: RunRef | None
    split: RunRef | None
    collect: RunRef | None
    embed: RunRef | None
    arms: dict[str, ArmRuns]
    expected_arms: list[str]

    def ordered(self) -> list[RunRef]:
        """All runs, in flywheel order (per arm: mine, autolabel, train, eval)."""
        out = [r for r in (self.collect, self.embed, self.split, self.train0, self.eval0) if r is not None]
        for arm in self.arms.values():
            out += [r for r in (arm.mine, arm.autolabel) if r is not None]
            out += [arm.train[s] for s in sorted(arm.train)]
            out += [arm.eval[s] for s in sorted(arm.eval)]
        return out

    def arms_with_eval(self) -> list[str]:
        """Arms that have at least one iteration-1 eval."""
        return [a for a, r in self.arms.items() if r.eval]


def split_tag(tag: str | None, base_seed: int) -> tuple[str | None, int]:
    """``prototype-seed43`` -> (prototype, 43); ``prototype`` -> (prototype, base seed)."""
    if not tag:
        return None, base_seed
    m = _SEED_TAG.match(tag)
    if m:
        return m.group("arm"), int(m.group("seed"))
    if tag.startswith("seed") and tag[4:].isdigit():
        return None, int(tag[4:])
    return tag, base_seed


def mining_of(arm: str) -> str:
    """The mining arm of an arm name (itself when it does not parse)."""
    try:
        return mining_arm(arm)
    except ValueError:
        return arm


def read_json(path: Path) -> Any | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def discover_runs(
    runs_dir: Path, *, base_seed: int, expected_arms: list[str], mine_only: list[str] | None = None
) -> FlywheelRuns | None:
    """Find the runs of the newest turn; None when there is no iteration-0 eval.

    Args:
        runs_dir: the runs folder.
        base_seed: the config seed (a tag without ``-seed<S>`` was trained with it).
        expected_arms: the arms the config asks for (``flywheel.arms``); each gets an
            entry even without runs, so the report can say what is missing.
        mine_only: arms that are only mined, for comparison (``flywheel.mine_only``).
    """
    only = [a for a in (mine_only or []) if a not in expected_arms]
    runs = list_runs(runs_dir)
    evals0 = [r for r in runs if r.stage == "eval" and r.iter == 0 and r.tag is None]
    if not evals0:
        return None
    eval0 = evals0[-1]
    res0 = eval0.result()
    train0 = recorded_input(runs_dir, res0, "train")
    split = recorded_input(runs_dir, res0, "split") or latest_run(runs_dir, "split")
    split_res = split.result() if split else {}
    collect = recorded_input(runs_dir, split_res, "collect") or latest_run(runs_dir, "collect")
    embed = recorded_input(runs_dir, split_res, "embed") or latest_run(runs_dir, "embed")

    arms: dict[str, ArmRuns] = {a: ArmRuns(a) for a in expected_arms}
    arms.update({a: ArmRuns(a, mine_only=True) for a in only})
    for ref in runs:
        if ref.stage == "mine" and ref.tag and ref.iter in (0, None):
            # label sources of one mining arm share its mine run (prototype-human, prototype-pyramid -> prototype)
            sharing = [a for a in arms if a != ref.tag and mining_of(a) == ref.tag]
            for a in sharing or [ref.tag]:
                arms.setdefault(a, ArmRuns(a)).mine = ref
        elif ref.stage == "autolabel" and ref.tag and ref.iter in (0, None):
            arms.setdefault(ref.tag, ArmRuns(ref.tag)).autolabel = ref
        elif ref.stage in ("train", "eval") and ref.iter == 1:
            name, seed = split_tag(ref.tag, base_seed)
            if name is None:
                continue
            arm = arms.setdefault(name, ArmRuns(name))
            if ref.stage == "eval" and split is not None:
                used = recorded_input(runs_dir, ref.result(), "split")
                if used is not None and used.name != split.name:
                    arm.notes.append(f"{ref.name} scored split run {used.name}, not {split.name} "
                                     f"(the iteration-0 eval's): left out of the paired comparison")
                    continue
            getattr(arm, ref.stage)[seed] = ref  # newest wins: runs are oldest first
    extra = sorted(a for a in arms if a not in expected_arms and a not in only)
    ordered = {a: arms[a] for a in [*expected_arms, *extra, *only]}
    return FlywheelRuns(runs_dir, base_seed, eval0, train0, split, collect, embed, ordered,
                        list(expected_arms))
