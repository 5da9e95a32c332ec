"""The flywheel's stages, written down once.

``STAGES`` is the single registry of what each stage reads and writes; the CLI, the
``flywheel`` command, the README check and the tests all use it, so the order of
the flywheel lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bddengine.runs.layout import COLLECT, EMBED, EVAL, MINE, REPORT


@dataclass(frozen=True)
class Stage:
    """One step of the flywheel."""

    name: str
    reads: tuple[str, ...]
    """The stages whose runs this one resolves and records under ``result.json`` inputs."""
    writes: str
    summary: str


STAGES: tuple[Stage, ...] = (
    Stage("synth", (), "the synthetic world under data.root (BDD100K det_20 layout)",
          "Generate the synthetic driving world."),
    Stage("collect", (), f"NN_collect/: {COLLECT.manifest.file}, {COLLECT.boxes.file}, slice index, chart",
          "Collect frames stratified by weather x timeofday."),
    Stage("embed", ("collect",), f"NN_embed/: {EMBED.embeddings.file} aligned to the manifest",
          "Embed every collected frame (CLIP / DINOv2)."),
    Stage("split", ("collect", "embed"), "NN_split/: train / eval / mining pools, YOLO export",
          "Split into train, slice-balanced eval and mining pools."),
    Stage("train", ("split", "autolabel", "train"), "NN_train_iterK/: YOLOv8 weights and curves",
          "Train the detector for one iteration."),
    Stage("eval", ("split", "train"), f"NN_eval_iterK/: {EVAL.preds.file}, slice table, worst slice",
          "Evaluate mAP@0.5 per slice with bootstrap CIs."),
    Stage("mine", ("eval", "train", "split", "embed", "collect"),
          f"NN_mine_iterK_<arm>/: {MINE.mined.file}, mining precision",
          "Mine frames like the worst slice's failures."),
    Stage("autolabel", ("mine", "eval", "split", "collect", "train"),
          "NN_autolabel_iterK_<arm>/: accepted YOLO labels, review queue",
          "Auto-label the mined frames."),
    Stage("report", ("collect", "embed", "split", "train", "eval", "mine", "autolabel"),
          f"outputs/{REPORT.case_study.file}, figures",
          "Write the case study with per-slice deltas."),
)

STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


@dataclass
class StageOutcome:
    """What a stage did, for the terminal summary."""

    stage: str
    location: Path
    skipped: bool = False
    wrote: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    look_at: list[str] = field(default_factory=list)
    safe_to_delete: str = ""
