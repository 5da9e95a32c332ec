"""What each stage's run folder holds: every artifact declared once, with how to read and write it.

Code asks the layout for an artifact (``SPLIT.pool("mining").read(split)``,
``COLLECT.boxes.at(collect)``) instead of spelling a file name, so a file is named in
one place, and ``result.json``'s ``outputs`` are built from the same declarations.
Readers and writers follow the file's suffix: ``.parquet`` (pandas), ``.json``,
``.npy`` (numpy, memory-mapped on request); anything else is a path only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bddengine.errors import StageInputError
from bddengine.runs.folders import RunRef, StageRun, write_json

Where = RunRef | StageRun | Path


def _dir(where: Where) -> Path:
    if isinstance(where, RunRef):
        return where.path
    if isinstance(where, StageRun):
        return where.dir
    return Path(where)


@dataclass(frozen=True)
class Artifact:
    """One file (or folder) of a run.

    Attributes:
        key: its name in ``result.json``'s ``outputs``.
        file: its path relative to the run folder.
        about: what it holds, one line.
        compact: JSON written without indentation (large documents).
    """

    key: str
    file: str
    about: str
    compact: bool = False

    def at(self, where: Where) -> Path:
        """The artifact's path inside a run (a committed run, one being built, or a folder)."""
        return _dir(where) / self.file

    def exists(self, where: Where) -> bool:
        """Whether the artifact is there."""
        return self.at(where).exists()

    def require(self, where: Where, todo: str) -> Path:
        """The artifact's path, or a StageInputError saying to run ``todo`` when it is missing."""
        path = self.at(where)
        if not path.exists():
            raise StageInputError(f"{path} is missing: re-run `{todo}` (same --config)")
        return path

    def read(self, where: Where, **kwargs: Any) -> Any:
        """Load the artifact: a DataFrame (``columns=``), a JSON value, or an array (``mmap_mode=``)."""
        path = self.at(where)
        if path.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path, **kwargs)
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".npy":
            import numpy as np

            return np.load(path, **kwargs)
        raise TypeError(f"{self.file}: no reader for {path.suffix} files; use .at()")

    def write(self, where: Where, value: Any) -> Path:
        """Write ``value`` (a DataFrame, a JSON-able object, an array) and return the path."""
        path = self.at(where)
        if path.suffix == ".parquet":
            value.to_parquet(path, index=False)
        elif path.suffix == ".json":
            if self.compact:
                path.write_text(json.dumps(value))
            else:
                write_json(path, value)
        elif path.suffix == ".npy":
            import numpy as np

            np.save(path, value)
        else:
            raise TypeError(f"{self.file}: no writer for {path.suffix} files; write to .at()")
        return path


class StageLayout:
    """The artifacts of one stage's runs, as attributes; subclass once per stage."""

    stage: str = ""
    command: str = ""
    """The command that makes such a run (for messages)."""

    @classmethod
    def artifacts(cls) -> list[Artifact]:
        """Every declared artifact, in declaration order."""
        return [v for v in vars(cls).values() if isinstance(v, Artifact)]

    @classmethod
    def outputs(cls, *artifacts: Artifact) -> dict[str, str]:
        """``result.json`` outputs (key -> file) of ``artifacts`` (default: all)."""
        return {a.key: a.file for a in (artifacts or cls.artifacts())}


def _a(key: str, file: str, about: str, *, compact: bool = False) -> Artifact:
    return Artifact(key, file, about, compact)


class COLLECT(StageLayout):
    stage, command = "collect", "bddengine collect"
    manifest = _a("manifest", "manifest.parquet", "one row per frame: path, split, video, slice, box counts")
    boxes = _a("boxes", "boxes.parquet", "one row per box (ignored classes and crowd flagged)")
    data_provenance = _a("data_provenance", "data_provenance.json", "label-file hashes and join counts")
    malformed = _a("malformed", "malformed.json", "malformed items counted by reason, with examples")
    bad_images = _a("bad_images", "bad_images.json", "images skipped as unreadable, with the reason for each")
    allocation = _a("allocation", "allocation.json", "per-bucket sample sizes")
    slice_index_csv = _a("slice_index_csv", "slice_index.csv", "counts per slice and per marginal")
    slice_index_json = _a("slice_index_json", "slice_index.json", "the same counts as JSON")
    slice_distribution = _a("slice_distribution", "slice_distribution.png", "the slice distribution chart")


class EMBED(StageLayout):
    stage, command = "embed", "bddengine embed"
    embeddings = _a("embeddings", "embeddings.npy", "L2-normalised vectors, one row per manifest row")
    frames = _a("frames", "frames.parquet", "name, path, size, mtime of each embedded frame")


YOLO_DATASET_YAML = "dataset.yaml"
"""The dataset file of a YOLO-format export, beside its images/ and labels/."""


class SPLIT(StageLayout):
    stage, command = "split", "bddengine split"
    train_pool = _a("train_pool", "train_pool.parquet", "the train pool")
    val_pool = _a("val_pool", "val_pool.parquet", "the validation pool ultralytics validates on")
    eval_pool = _a("eval_pool", "eval_pool.parquet", "the slice-balanced eval pool")
    mining_pool = _a("mining_pool", "mining_pool.parquet", "the unlabeled mining pool (labels hidden)")
    excluded = _a("excluded", "excluded.parquet", "frames left out, with reasons")
    eval_gt = _a("eval_gt", "eval_gt.json", "the eval pool's ground truth in BDD format")
    leakage_check = _a("leakage_check", "leakage_check.json", "video hold-out and near-duplicate checks")
    split_table = _a("split_table", "split_table.csv", "frames per pool and slice")
    split_distribution = _a("split_distribution", "split_distribution.png", "the split chart")
    yolo_dataset = _a("yolo_dataset", f"yolo/{YOLO_DATASET_YAML}", "train and val in YOLO format")

    @classmethod
    def pool(cls, name: str) -> Artifact:
        """The table of pool ``name`` (``train``, ``val``, ``eval`` or ``mining``)."""
        return {"train": cls.train_pool, "val": cls.val_pool, "eval": cls.eval_pool,
                "mining": cls.mining_pool}[name]

    @classmethod
    def yolo_dir(cls, where: Where) -> Path:
        """The folder of the YOLO export."""
        return cls.yolo_dataset.at(where).parent


ULTRALYTICS_DIR = "ultralytics"
"""The folder of a train run that ultralytics trains in."""

ULTRALYTICS_LOG = "ultralytics.log"
"""What ultralytics itself printed during a run (train, eval, mine, autolabel), as plain text."""


def ultralytics_log(where: Where) -> Path:
    """The run's log of ultralytics' own output (written only when ultralytics printed something)."""
    return _dir(where) / ULTRALYTICS_LOG


class TRAIN(StageLayout):
    stage, command = "train", "bddengine train"
    dataset_yaml = _a("dataset_yaml", YOLO_DATASET_YAML, "the training dataset (split export + auto-labels)")
    best_weights = _a("best", f"{ULTRALYTICS_DIR}/weights/best.pt", "the best epoch's weights")
    last_weights = _a("last", f"{ULTRALYTICS_DIR}/weights/last.pt", "the last epoch's weights")
    curves = _a("curves", f"{ULTRALYTICS_DIR}/results.csv", "per-epoch metrics and losses")

    @classmethod
    def ultralytics_dir(cls, where: Where) -> Path:
        """The folder ultralytics trains in (weights, curves, its plots)."""
        return _dir(where) / ULTRALYTICS_DIR


class EVAL(StageLayout):
    stage, command = "eval", "bddengine eval"
    preds = _a("preds", "preds.json", "the detector's predictions on the eval pool (BDD format)", compact=True)
    slice_table_csv = _a("slice_table_csv", "slice_table.csv", "mAP@0.5 per slice and marginal")
    slice_table_json = _a("slice_table_json", "slice_table.json", "the same table as JSON records")
    slice_table_md = _a("slice_table_md", "slice_table.md", "the table's headline columns")
    worst_slice = _a("worst_slice", "worst_slice.json", "the worst slice and its per-frame metrics")
    failures = _a("failures", "failures.json", "the worst slice's failure frames, with reasons")
    overall = _a("overall", "overall.json", "overall mAP and per-class AP")
    errors = _a("errors", "errors.json", "TIDE error decomposition and recall by size / visibility per slice")
    box_errors = _a("box_errors", "box_errors.json", "each prediction's and GT box's error type", compact=True)
    slice_chart = _a("slice_chart", "slice_map50.png", "per-slice mAP@0.5 chart")
    failure_thumbnails = _a("failure_thumbnails", "worst_slice_failures.png", "failure frames with boxes")


class MINE(StageLayout):
    stage, command = "mine", "bddengine mine"
    mined = _a("mined", "mined.json", "the mined frames in rank order")
    mining_precision = _a("mining_precision", "mining_precision.json", "mining precision vs the base rate")
    prototype = _a("prototype", "prototype.npy", "the failure prototype vector")
    grid = _a("grid", "mined_frames_grid.png", "thumbnails of the mined frames")
    detector_embeddings = _a("detector_embeddings", "detector_embeddings.npy", "detector backbone vectors")
    detector_embedding_names = _a("detector_embedding_names", "detector_embedding_names.json",
                                  "frame names of the detector vectors' rows")


class AUTOLABEL(StageLayout):
    stage, command = "autolabel", "bddengine autolabel"
    autolabels = _a("autolabels", "autolabels.json", "every mined frame's boxes with score and route",
                    compact=True)
    review_queue = _a("review_queue", "review_queue.json", "frames with boxes to review")
    quality = _a("quality", "quality.json", "label quality against hidden ground truth, cost table")
    pr_chart = _a("pr_chart", "autolabel_pr.png", "precision / recall vs score threshold")
    yolo_images = _a("yolo_images", "yolo/images/train", "accepted frames as YOLO training images")
    yolo_labels = _a("yolo_labels", "yolo/labels/train", "accepted boxes as YOLO label files")

    @classmethod
    def yolo_dir(cls, where: Where) -> Path:
        """The folder of the YOLO training data (``images/train``, ``labels/train``)."""
        return cls.yolo_images.at(where).parent.parent


CASE_STUDY_DIR, FIGURES_DIR = "case_study", "figures"
"""The report run's two folders, published whole next to the runs folder."""


class REPORT(StageLayout):
    stage, command = "report", "bddengine report"
    case_study = _a("case_study", f"{CASE_STUDY_DIR}/case_study_v1.md", "the case study (markdown)")
    appendix = _a("appendix", f"{CASE_STUDY_DIR}/case_study_appendix.md", "every run, slice and class (markdown)")
    headline_csv = _a("headline_csv", f"{CASE_STUDY_DIR}/headline.csv", "one row per slice and arm")
    headline_json = _a("headline_json", f"{CASE_STUDY_DIR}/headline.json", "the headline table and its runs")
    headline_md = _a("headline_md", f"{CASE_STUDY_DIR}/headline.md", "the headline table, wide")
    config = _a("config", f"{CASE_STUDY_DIR}/config.yaml", "the config the turn ran with")
    errors_json = _a("errors_json", f"{CASE_STUDY_DIR}/errors.json",
                     "iteration 0's error decomposition per slice and each arm's change on the worst slice")
    architecture_dot = _a("architecture_dot", f"{FIGURES_DIR}/architecture.dot", "the architecture graph")
    architecture_png = _a("figure_architecture", f"{FIGURES_DIR}/architecture.png", "the architecture diagram")
    slice_delta = _a("figure_slice_delta", f"{FIGURES_DIR}/slice_delta.png", "per-slice deltas with CIs")
    turn_profile = _a("figure_turn_profile", f"{FIGURES_DIR}/turn_profile.png", "where the turn's time went")
    error_costs = _a("figure_error_costs", f"{FIGURES_DIR}/error_costs.png",
                     "AP@0.5 each error type costs the worst slice (TIDE), with CIs")
    gradcam = _a("figure_gradcam", f"{FIGURES_DIR}/gradcam_worst_slice.png",
                 "EigenCAM heat maps of the worst slice's failure frames, iteration 0 and the best arm")
    turns_json = _a("turns_json", f"{CASE_STUDY_DIR}/turns.json",
                    "many turns: learning curve, frames to target, stop advice and regression alerts")
    learning_curve = _a("figure_learning_curve", f"{FIGURES_DIR}/learning_curve.png",
                        "the target slice's mAP@0.5 against labeled frames and cost, per arm")
    html = _a("html", f"{CASE_STUDY_DIR}/case_study_v1.html", "the case study (HTML)")
    pdf = _a("pdf", f"{CASE_STUDY_DIR}/case_study_v1.pdf", "the case study (PDF)")
    appendix_html = _a("appendix_html", f"{CASE_STUDY_DIR}/case_study_appendix.html", "the appendix (HTML)")
    appendix_pdf = _a("appendix_pdf", f"{CASE_STUDY_DIR}/case_study_appendix.pdf", "the appendix (PDF)")

    @classmethod
    def case_study_dir(cls, where: Where) -> Path:
        return _dir(where) / CASE_STUDY_DIR

    @classmethod
    def figures_dir(cls, where: Where) -> Path:
        return _dir(where) / FIGURES_DIR


LAYOUTS: dict[str, type[StageLayout]] = {
    layout.stage: layout for layout in (COLLECT, EMBED, SPLIT, TRAIN, EVAL, MINE, AUTOLABEL, REPORT)
}
"""Stage name -> its run layout."""
