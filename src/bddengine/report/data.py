"""What the report read from the run folders, and small helpers every section uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from bddengine.config import EngineConfig, parse_arm
from bddengine.report.headline import worst_rows
from bddengine.report.inputs import FlywheelRuns
from bddengine.report.tables import NA, is_num, key_label
from bddengine.report.turn_scores import TurnsFacts
from bddengine.runs import RunRef


class StageEntry(Protocol):
    """One stage of the registry as the report reads it (`bddengine.stages.Stage` is one).

    The report stage hands the registry over in `ReportData.stages`, so this package
    draws and tabulates the stages without importing the layer above it.
    """

    @property
    def name(self) -> str: ...

    @property
    def reads(self) -> tuple[str, ...]: ...

    @property
    def writes(self) -> str: ...

    @property
    def summary(self) -> str: ...


@dataclass
class ArmFacts:
    """What the report knows about one arm."""

    arm: str
    missing: list[str]
    notes: list[str] = field(default_factory=list)
    mine_run: str | None = None
    autolabel_run: str | None = None
    mined: dict[str, Any] | None = None
    mining_numbers: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    autolabel_metrics: dict[str, Any] | None = None
    seeds: list[int] = field(default_factory=list)
    mine_only: bool = False
    added_nothing: bool = False
    """The autolabel run gave iteration 1 no labeled box: the arm was not retrained (and has no delta)."""


@dataclass
class ReportData:
    """Everything the stage read, for the section builders."""

    cfg: EngineConfig
    runs: FlywheelRuns
    stages: Sequence[StageEntry]
    """The stage registry, `bddengine.stages.STAGES`, in flywheel order."""
    results: dict[str, dict[str, Any]]
    slice_index: dict[str, Any] | None
    eval0_table: list[dict[str, Any]]
    worst: dict[str, Any] | None
    failures: list[dict[str, Any]]
    headline: pd.DataFrame
    arms_compared: list[str]
    arms: dict[str, ArmFacts]
    mining_pool_n: int | None
    mining_pool_in_worst: int | None
    figures: dict[str, str | None]
    figure_sources: dict[str, str]
    architecture_renderer: str
    config_yaml: str
    config_sha256: str
    config_source: str
    provenance: dict[str, Any] | None
    generated_at: str
    n_boot: int
    min_frames: int
    contrasts: pd.DataFrame | None = None
    turn_profile: dict[str, Any] | None = None
    """``turn_profile.json`` of the flywheel turn that made these runs (None: not run by `bddengine flywheel`)."""
    errors: dict[str, Any] | None = None
    """Iteration 0's ``errors.json`` (TIDE decomposition per slice; computed for eval runs without one)."""
    error_deltas: list[dict[str, Any]] = field(default_factory=list)
    """Per compared arm, each error type's cost on the worst slice at iteration 1 minus iteration 0
    (`bddengine.evaluation.error_slices.paired_error_deltas`, with ``arm`` added)."""
    figure_notes: dict[str, str] = field(default_factory=dict)
    """Why a figure the report draws itself was not drawn (the saliency figure without weights, ...)."""
    turns: TurnsFacts | None = None
    """Many turns (``flywheel.turns`` > 1 with a lineage past iteration 1): curve, stop advice, alerts."""

    @property
    def arms_missing(self) -> list[str]:
        """Retraining arms without a usable iteration-1 eval (mining-only arms are not missing)."""
        return [a for a, f in self.arms.items()
                if a not in self.arms_compared and not f.mine_only and not f.added_nothing]

    @property
    def arms_empty(self) -> list[str]:
        """Arms whose autolabel run added no labeled box (not retrained, no delta)."""
        return [a for a, f in self.arms.items() if f.added_nothing]

    def result(self, ref: RunRef | None) -> dict[str, Any]:
        """A run's result.json ({} for a missing run)."""
        return self.results.get(ref.name, {}) if ref is not None else {}

    @property
    def overall0(self) -> dict[str, Any]:
        """The iteration-0 overall row of the slice table."""
        return next((r for r in self.eval0_table if r.get("grouping") == "overall"), {})


def worst_label(d: ReportData) -> str:
    """The worst slice as ``weather / timeofday / scene`` (n/a without one)."""
    return key_label(d.worst["key"]) if d.worst else NA


def mined_k(d: ReportData) -> int | None:
    """Frames mined per arm (the largest over the mine runs), None without any."""
    ks = [len(f.mined.get("frames") or []) for f in d.arms.values() if f.mined]
    return max(ks) if ks else None


def arm_commands(arm: str, seeds: list[int], base_seed: int, config: str) -> list[str]:
    """The commands that build one arm: mine, autolabel, then train and eval iteration 1 per seed."""
    try:
        strategy, embedding = parse_arm(arm)
    except ValueError:
        strategy, embedding = arm, "embed"
    mine = f"bddengine mine --strategy {strategy}" + (" --embedding detector" if embedding == "detector" else "")
    out = [f"{mine} --config {config}", f"bddengine autolabel --arm {arm} --config {config}"]
    for s in seeds or [base_seed]:
        seed = "" if s == base_seed else f" --seed {s}"
        out.append(f"bddengine train --iter 1 --arm {arm}{seed} --config {config}")
        out.append(f"bddengine eval --iter 1 --arm {arm}{seed} --config {config}")
    return out


def worst_delta_rows(d: ReportData) -> list[dict[str, Any]]:
    """The headline rows of the worst slice, one per compared arm."""
    rows = worst_rows(d.headline)
    return [r for _, r in rows.iterrows() if r["arm"] is not None and not pd.isna(r["arm"])]


def arm_source(f: ArmFacts) -> str | None:
    """The label source an arm's autolabel run recorded (``human``, ``auto``, ``pyramid``)."""
    for src in (f.autolabel_metrics or {}, f.quality or {}):
        if isinstance(src.get("label_source"), str):
            return src["label_source"]
    return None


def arm_labeler(f: ArmFacts) -> str | None:
    """The labeler an arm's autolabel run recorded."""
    for src in (f.quality or {}, f.autolabel_metrics or {}):
        if isinstance(src.get("labeler"), str):
            return src["labeler"]
    return None


def labeler(d: ReportData) -> str:
    """The labeler(s) of the autolabel runs (``grounded``, or ``grounded (prototype), oracle (random)``)."""
    found = {a: who for a, f in d.arms.items() if (who := arm_labeler(f))}
    if len(set(found.values())) > 1:
        return ", ".join(f"{who} ({a})" for a, who in found.items())
    return next(iter(found.values()), d.cfg.autolabel.labeler)


def wall_time(d: ReportData, ref: RunRef | None) -> float | None:
    """A run's recorded ``wall_time_s`` (None when missing)."""
    w = d.result(ref).get("wall_time_s")
    return float(w) if is_num(w) else None


def cost_of(f: ArmFacts) -> dict[str, Any] | None:
    """An arm's cost table: quality.json's ``cost``, else the autolabel metrics' ``cost``."""
    for src in (f.quality or {}, f.autolabel_metrics or {}):
        if isinstance(src.get("cost"), dict):
            return src["cost"]
    return None
