"""Engine configuration: one pydantic root model with a sub-model per stage.

Configs are YAML files in ``configs/``. Every model forbids unknown keys, so a typo
fails before any work starts, and every error names the key and the file.
``--set key.path=value`` overrides are applied to the raw YAML before validation,
so they are checked exactly like the file itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES

DEFAULT_CONFIG = Path("configs/default.yaml")


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """``true`` is not a size: pydantic's lax mode would read it as 1."""
        if isinstance(data, dict):
            for key, value in data.items():
                info = cls.model_fields.get(key)
                if type(value) is bool and info is not None and _is_number(info.annotation):
                    raise ValueError(f"{key}: {str(value).lower()} is a boolean, not a number; give a number")
        return data


def _is_number(annotation: Any) -> bool:
    """int, float, or one of them or None; never a type that also takes a bool."""
    args = getattr(annotation, "__args__", None)
    if args:
        kinds = set(args) - {type(None)}
        return bool(kinds) and kinds <= {int, float}
    return annotation in (int, float)


class DataConfig(_Model):
    """Where the BDD100K-layout dataset lives."""

    root: Path = Field(Path("data/bdd100k"), description="Folder holding images/ and labels/.")
    synthetic: bool = Field(False, description="root is the synthetic world `synth` writes.")
    label_files: dict[str, Path] = Field(
        default_factory=lambda: {
            "train": Path("labels/det_20/det_train.json"),
            "val": Path("labels/det_20/det_val.json"),
        },
        description="Label file per source split, relative to root (or absolute).",
    )

    def label_path(self, split: str) -> Path:
        """Absolute-or-root-relative path of one split's label file."""
        path = self.label_files[split]
        return path if path.is_absolute() else self.root / path


# Upper bounds that stop nonsense before any work starts: a 100000-pixel-wide frame needs tens of
# GB per image (MemoryError), and 1e8 frames runs for days until the disk fills. BDD100K itself is
# 100k frames of 1280x720; the bounds are ten times the frame count and 8K UHD, so a real world
# never reaches them.
MAX_FRAMES = 1_000_000
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
MAX_IMGSZ = 7680  # a network input side (train/eval/autolabel imgsz, embed image_size)


class SynthConfig(_Model):
    """The procedural driving world written by ``bddengine synth``."""

    n_train: int = Field(2000, ge=1, le=MAX_FRAMES)
    n_val: int = Field(500, ge=0, le=MAX_FRAMES)
    width: int = Field(640, ge=64, le=MAX_WIDTH)
    height: int = Field(360, ge=36, le=MAX_HEIGHT)
    frames_per_video: int = Field(3, ge=1, le=MAX_FRAMES)
    jpeg_quality: int = Field(90, ge=10, le=100)
    weather_boost: dict[str, float] = Field(
        default_factory=dict,
        description="Multiply these weather values' BDD share (e.g. foggy: 30) so a small world "
        "holds enough of a rare condition to evaluate and mine it.",
    )
    classes: list[str] | None = Field(
        None, description="Label only these BDD classes (null: all 10); other people and vehicles "
        "become ignored regions, other lights and signs go unlabelled. A small CPU world uses the "
        "classes a from-scratch detector learns in minutes.",
    )
    workers: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check_classes(self) -> SynthConfig:
        unknown = sorted(set(self.classes or ()) - set(CLASSES))
        if unknown:
            raise ValueError(f"classes {unknown} are not BDD classes; use some of {list(CLASSES)}")
        return self


class CollectConfig(_Model):
    """Stratified subsample of the labeled frames plus the unlabeled candidate pool."""

    labeled_target: int = Field(10_000, ge=1, description="Labeled frames to keep.")
    unlabeled_target: int = Field(26_000, ge=0, description="Unlabeled candidates to keep.")
    min_per_bucket: int = Field(50, ge=0, description="Floor per weather x timeofday bucket.")
    drop_undefined: bool = Field(
        True, description="Leave out frames whose weather or timeofday is 'undefined'."
    )
    splits: list[str] = Field(default_factory=lambda: ["train", "val"])


class EmbedConfig(_Model):
    """Image embeddings for curation, near-duplicate checks and mining."""

    model: Literal["clip", "dinov2"] = Field("clip", description="Embedding family.")
    clip_arch: str = Field("ViT-B-32", description="open_clip architecture name.")
    pretrained: str | None = Field(
        "laion2b_s34b_b79k",
        description="open_clip pretrained tag (e.g. laion2b_s34b_b79k, openai), a local "
        "checkpoint path, or null for random init (recorded in result.json).",
    )
    dinov2_arch: str = Field("vit_small_patch14_dinov2", description="timm DINOv2 model name.")
    image_size: int | None = Field(
        None, ge=32, le=MAX_IMGSZ, description="CLIP input size override (null: the architecture's, 224)."
    )
    batch_size: int = Field(64, ge=1)
    workers: int = Field(2, ge=0, description="DataLoader worker processes decoding JPEGs.")
    device: str = Field("auto", description="auto (GPU when present), cpu, cuda, cuda:1, ...")
    dtype: Literal["float32", "float16"] = Field("float32", description="Stored embedding dtype.")


class SplitConfig(_Model):
    """Train pool, slice-balanced eval pool and mining pool."""

    train_size: int = Field(2500, ge=1, description="Labeled frames in the train pool.")
    eval_size: int = Field(500, ge=1, description="Labeled frames in the eval pool.")
    eval_top_slices: int = Field(20, ge=1, description="Eval pool covers the N most common slices.")
    eval_include: list[dict[Literal["weather", "timeofday", "scene"], str]] = Field(
        default_factory=list,
        description="Attribute patterns whose slices the eval pool also covers however rare, "
        "e.g. [{weather: foggy}]: operational conditions that must be measured.",
    )
    eval_include_min: int = Field(15, ge=1, description="Labeled frames an included slice needs.")
    val_size: int = Field(
        250, ge=1, description="Labeled frames ultralytics validates on while training (same every iter)."
    )
    min_per_bucket: int = Field(50, ge=0, description="Train pool floor per weather x timeofday.")
    near_dup_threshold: float | None = Field(
        0.95,
        gt=0,
        le=1,
        description="Cosine similarity above which a train/eval pair is a near-duplicate; null turns "
        "the check off (random-init embeddings cannot tell frames apart; the video hold-out stays).",
    )
    near_dup_max_share: float = Field(
        0.2, ge=0, le=1,
        description="Split fails when the near-duplicate check drops more than this share of the eval "
        "pool: embeddings that crowd frames together would leave too few frames to measure.",
    )


class TrainConfig(_Model):
    """YOLOv8 training of one flywheel iteration (ultralytics)."""

    model: str = Field(
        "yolov8m.pt",
        description="Weights file (COCO-pretrained .pt, looked up locally) or a model YAML "
        "such as yolov8n.yaml to train from scratch.",
    )
    epochs: int = Field(50, ge=1)
    imgsz: int = Field(640, ge=32, le=MAX_IMGSZ)
    batch: int = Field(16, ge=1)
    optimizer: str = "AdamW"
    lr0: float = Field(0.001, gt=0)
    cos_lr: bool = True
    warmup_epochs: float = Field(3.0, ge=0)
    patience: int = Field(100, ge=0, description="Early-stopping patience in epochs (0 = off).")
    workers: int = Field(2, ge=0)
    device: str = Field("auto", description="auto (GPU when present), cpu, 0, 0,1, ...")
    mosaic: float = Field(1.0, ge=0, le=1)
    cache: Literal["ram", "disk", "none"] = Field(
        "none", description="Cache decoded, resized images (ram: fastest on a CPU; none for big data)."
    )
    amp: bool = True
    next_iter_init: Literal["previous", "model"] = Field(
        "model",
        description="Iteration N > 0 starts from iteration N-1's best weights (previous) "
        "or from `model` again (model).",
    )
    next_iter_epochs: int | None = Field(
        None, ge=1, description="Epochs for iterations N > 0 (default: epochs). ultralytics caps warmup at "
        "epochs - 1, so a one-epoch fine-tune of trained weights starts at full lr0 and can undo them."
    )


class EvalConfig(_Model):
    """Per-slice evaluation of one iteration's detector on the eval pool."""

    conf: float = Field(0.001, ge=0, le=1, description="Lowest score kept (COCO-style AP wants all).")
    nms_iou: float = Field(0.7, gt=0, le=1, description="NMS IoU threshold of the detector.")
    max_det: int = Field(100, ge=1, description="Detections per image (BDD protocol: 100).")
    batch: int = Field(16, ge=1)
    imgsz: int | None = Field(None, ge=32, le=MAX_IMGSZ, description="Inference size (default: train.imgsz).")
    device: str = "auto"
    min_eval_frames: int = Field(15, ge=1, description="Slices smaller than this can't be the worst.")
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples for each slice's 95% CI.")
    failure_recall: float = Field(0.3, ge=0, le=1, description="Failure frame: AP 0 or recall below this.")
    failure_score: float = Field(0.25, ge=0, le=1, description="Score threshold for per-frame recall.")
    height_buckets: list[float] = Field(
        [32, 64, 128], min_length=1,
        description="Box-height bucket edges in pixels for recall by size (a distance proxy): 0-32, 32-64, ...")

    @field_validator("height_buckets")
    @classmethod
    def _ascending_buckets(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[0] <= 0:
            raise ValueError("height_buckets must be positive pixel edges in ascending order, e.g. [32, 64, 128]")
        return v


def strategy_names() -> list[str]:
    """The registered mining strategies (``bddengine.mining.strategies.STRATEGIES``)."""
    from bddengine.mining.strategies import STRATEGIES

    return list(STRATEGIES)


def is_control(strategy: str) -> bool:
    """Whether a strategy's entry makes its arms controls (`StrategySpec.control`; False when unregistered)."""
    from bddengine.mining.strategies import strategy_spec

    spec = strategy_spec(strategy)
    return spec is not None and spec.control


def backend_names() -> list[str]:
    """The registered inference backends (``bddengine.inference.BACKENDS``)."""
    from bddengine.inference import backend_names

    return backend_names()


def labeler_names() -> list[str]:
    """The registered labelers (``bddengine.labeling.registry.LABELERS``)."""
    from bddengine.labeling.registry import LABELERS

    return list(LABELERS)


def stands_in_for_humans(labeler: str) -> bool:
    """Whether a labeler's entry makes it the human stand-in (`LabelerSpec.stands_in_for_humans`)."""
    from bddengine.labeling.registry import labeler_spec

    spec = labeler_spec(labeler)
    return spec is not None and spec.stands_in_for_humans


def index_names() -> list[str]:
    """The registered vector indexes (``bddengine.vectors.registry.INDEXES``)."""
    from bddengine.vectors.registry import index_names

    return index_names()


def _registered(value: str, names: list[str]) -> str:
    if value not in names:
        raise ValueError(f"{value!r} is not one of {names}")
    return value


class LanceConfig(_Model):
    """The LanceDB mining index (``mine.approximate_index: lancedb``): embed writes it, mine reads it."""

    uri: str | None = Field(
        None, description="Database folder or object-store URI (s3://bucket/prefix); null: <runs_dir>/lance. "
        "Credentials come from the environment (AWS_* and the like), never from here."
    )
    table: str = Field("frames", pattern=r"^[A-Za-z0-9_.-]+$", description="Table name in that database.")
    index_min_rows: int = Field(100_000, ge=1, description="Rows from which an IVF_PQ index is trained; "
                                "below, every search is an exact scan.")
    partition_rows: int = Field(4096, ge=16, description="Rows per IVF partition when the index is trained "
                                "(num_partitions = rows / this): larger trains faster and scans more rows per "
                                "probe; 16384 keeps a 10M-row build to minutes on 2 cores.")
    nprobes: int = Field(32, ge=1, description="IVF partitions searched per query.")
    refine_factor: int = Field(30, ge=1, description="Candidates re-ranked with full vectors, as a multiple of k "
                               "(benchmarks/scale.py at 10M rows: 20 gave recall@100 0.84, 30 gave 0.955, 35 "
                               "gave 0.986).")
    retrain_growth: float = Field(0.5, gt=0, description="Retrain the index (replace=True) when the table grew "
                                  "by more than this share since it was trained; else the index step of "
                                  "optimize() folds rows in.")
    recall_sample_rows: int = Field(
        1_000_000, ge=1, description="Most rows mine's recall check scans exactly: above, the answer's recall "
        "is estimated on the 1-in-m rows whose row number is a multiple of m = ceil(rows / this); each sampled "
        "row that beats the answer's k-th score but is missing from it counts for m misses (unbiased; the "
        "check reads this many vectors, not the table).")

    @field_validator("uri")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value and ("@" in value.split("://", 1)[-1].split("/", 1)[0] or "?" in value):
            raise ValueError("the URI carries credentials or options (user:secret@ or ?key=): give the bare "
                             "URI and set the store's credentials in the environment (e.g. AWS_ACCESS_KEY_ID, "
                             "AWS_SECRET_ACCESS_KEY)")
        return value

    def settings(self, runs_dir: Path) -> dict[str, Any]:
        """`bddengine.vectors.lance.LanceSettings` keyword arguments, the URI resolved."""
        return self.model_dump() | {"uri": self.uri or str(Path(runs_dir) / "lance")}


class MineConfig(_Model):
    """k-NN mining of the unlabeled pool for frames like the worst slice's failures."""

    strategy: str = Field(
        "prototype", description="A registered strategy: prototype (k-NN), random (uniform), random-slice "
        "(metadata filter)."
    )
    embedding: Literal["embed", "detector"] = Field(
        "embed", description="embed: the curate-stage CLIP/DINOv2 vectors; detector: pooled "
        "backbone features of the iteration's own detector (ultralytics embed)."
    )
    k: int = Field(100, ge=1, description="Frames to mine (the label budget of one arm).")
    exact_max_pool: int = Field(
        1_000_000, ge=1, description="Pool size above which an approximate index replaces exact search."
    )
    approximate_index: str = Field(
        "hnsw", description="A registered vector index (bddengine.vectors) searching pools above exact_max_pool: "
        "hnsw or ivf (FAISS), or the exact one."
    )
    near_dup_threshold: float | None = Field(
        0.95, gt=0, le=1, description="Drop mined frames this cosine-similar to an eval frame (null: off)."
    )
    batch: int = Field(16, ge=1, description="Detector batch for `embedding: detector`.")
    device: str = "auto"
    recall_floor: float = Field(
        0.95, ge=0, le=1, description="lancedb: below this recall@k against an exact scan of the same "
        "filtered rows, the run says so and takes the exact answer."
    )
    lance: LanceConfig = LanceConfig()

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        return _registered(value, strategy_names())

    @field_validator("approximate_index")
    @classmethod
    def _check_index(cls, value: str) -> str:
        return _registered(value, index_names())


class AutolabelConfig(_Model):
    """Labeling of the mined frames and the accept / review / drop pyramid."""

    labeler: str = Field(
        "grounded", description="A registered labeler: grounded (YOLO-World / YOLOE prompts), detector (any "
        "ultralytics checkpoint or the iteration's own), oracle (hidden GT: a human labeling vendor)."
    )
    grounded_model: str = Field("yolov8x-worldv2.pt", description="YOLO-World or YOLOE weights file.")
    sam_model: str | None = Field(None, description="SAM 2 weights (e.g. sam2_b.pt) to refine boxes; null: off.")
    detector_model: str = Field(
        "iter", description="`iter`: the iteration's own detector; else an ultralytics .pt file."
    )
    class_map: dict[str, str] | None = Field(
        None, description="Detector class name -> BDD class (default: the COCO -> BDD map)."
    )
    tta: bool = Field(False, description="Test-time augmentation for the detector labeler.")
    imgsz: int | None = Field(None, ge=32, le=MAX_IMGSZ, description="Labeler inference size (default: train.imgsz).")
    conf: float = Field(0.05, ge=0, le=1, description="Lowest score the labeler returns.")
    accept: float = Field(0.5, ge=0, le=1, description="Boxes scoring at least this are accepted.")
    drop: float = Field(0.25, ge=0, le=1, description="Boxes scoring below this are dropped; between: review.")
    per_class: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Per-class [drop, accept] thresholds overriding the two above."
    )
    usd_per_frame: float = Field(0.50, ge=0, description="Human labeling price per frame.")
    usd_per_frame_range: tuple[float, float] = Field((0.25, 1.50), description="Quoted price range.")
    usd_per_box: float = Field(0.0, ge=0, description="Extra human price per box.")
    usd_per_gpu_hour: float = Field(1.50, ge=0, description="Compute price for auto-labeling.")
    target_precision: float = Field(
        0.9, gt=0, le=1, description="Precision the accepted boxes must reach: the pyramid's calibration target, "
        "and the precision at which the skippable share is stated."
    )
    audit_frames: int = Field(
        20, ge=0, description="Pyramid arms: mined frames labeled by humans first (charged) to calibrate the "
        "per-class thresholds; 0: use accept / drop / per_class as configured."
    )
    audit_min_boxes: int = Field(
        5, ge=1, description="A class needs this many labeler boxes on the audit frames to get its own "
        "accept threshold; with fewer, none of its boxes is auto-accepted (all go to review or drop)."
    )
    drop_keep_recall: float = Field(
        0.9, gt=0, le=1, description="Pyramid calibration: the drop threshold keeps this share of the "
        "labeler's correct audit boxes above it."
    )
    batch: int = Field(16, ge=1)
    device: str = "auto"

    @field_validator("labeler")
    @classmethod
    def _check_labeler(cls, value: str) -> str:
        return _registered(value, labeler_names())

    @model_validator(mode="after")
    def _check_thresholds(self) -> AutolabelConfig:
        if self.drop > self.accept:
            raise ValueError(f"drop ({self.drop}) must not exceed accept ({self.accept})")
        from bddengine.bdd.categories import CLASSES

        for name, (lo, hi) in self.per_class.items():
            if name not in CLASSES:
                raise ValueError(f"per_class.{name}: not a BDD class; use one of {list(CLASSES)}")
            if lo > hi:
                raise ValueError(f"per_class.{name}: drop {lo} exceeds accept {hi}")
        for name, target in (self.class_map or {}).items():
            if target not in CLASSES:
                raise ValueError(f"class_map.{name}: {target!r} is not a BDD class; use one of {list(CLASSES)}")
        if self.usd_per_frame_range[0] > self.usd_per_frame_range[1]:
            raise ValueError(f"usd_per_frame_range {list(self.usd_per_frame_range)}: low exceeds high")
        return self


class ReportConfig(_Model):
    """The case study: per-slice deltas with paired bootstrap CIs."""

    out_dir: Path | None = Field(
        None, description="Where figures/ and case_study/ go (default: the parent of runs_dir)."
    )
    n_boot: int = Field(1000, ge=100, description="Paired bootstrap resamples for each delta's CI.")
    marginals: bool = Field(
        False, description="Also score each weather / timeofday / scene marginal in the headline table."
    )
    fragile_min_gt: int = Field(
        10, ge=1, description="A slice with a class of fewer GT boxes than this is marked fragile (Δ never bold)."
    )
    contrasts: list[tuple[str, str]] | None = Field(
        None, description="Arm-vs-control pairs [arm, control] (default: each arm vs each arm of a control "
        "strategy: random)."
    )
    template: Path | None = Field(
        None, description="Case-study template (default: case_study_template.md at the repository root)."
    )
    pdf: bool = Field(True, description="Also write case_study_v1.pdf (fpdf2).")
    html: bool = Field(True, description="Also write case_study_v1.html (one self-contained page).")


class FlywheelConfig(_Model):
    """What `bddengine flywheel` runs after iteration 0."""

    arms: list[str] = Field(
        default_factory=strategy_names,
        description="Retraining arms: a strategy, optionally `-detector` for detector embeddings.",
    )
    mine_only: list[str] = Field(
        default_factory=list,
        description="Arms that are mined (for the mining-precision comparison) but not retrained.",
    )
    seeds: int = Field(1, ge=1, description="Trainings per arm (seed, seed+1, ...) for seed variance.")
    turns: int = Field(
        1, ge=1, description="Turns per lineage (arm, seed): turn t mines with iteration t-1's model, labels "
        "mine.k more frames and trains iteration t on every frame the lineage labeled so far.")
    target_slice: dict[str, str] | None = Field(
        None, description="The slice every arm mines for, as weather / timeofday / scene (e.g. "
        "{weather: snowy, timeofday: night, scene: highway}, or the string 'snowy / night / highway'); "
        "null: iteration 0's worst slice. It needs eval.min_eval_frames eval frames or more.")
    target_lift: float | None = Field(
        None,
        gt=0,
        description="Frames to target: the target slice's mAP@0.5 gain the report measures each arm's labeled "
        "frames and cost against (None: up to iteration 0's overall mAP@0.5).",
    )

    @field_validator("target_slice", mode="before")
    @classmethod
    def _slice_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(" / ")]  # "dawn/dusk" is one time of day
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"{value!r} is not 'weather / timeofday / scene', spaces around each / "
                                 "(e.g. 'snowy / dawn/dusk / highway')")
            return dict(zip(FRAME_ATTRIBUTES, parts, strict=True))
        if isinstance(value, dict) and set(value) != set(FRAME_ATTRIBUTES):
            raise ValueError(f"{value!r}: give exactly the keys weather, timeofday and scene")
        return value

    @model_validator(mode="after")
    def _check_arms(self) -> FlywheelConfig:
        for arm in [*self.arms, *self.mine_only]:
            parse_arm(arm)
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms repeats a name: {self.arms}")
        return self

    def mining_arms(self) -> list[str]:
        """Every mining arm a turn mines, once each: those of ``arms``, then ``mine_only``'s."""
        out: list[str] = []
        for arm in [*self.arms, *self.mine_only]:
            if (m := mining_arm(arm)) not in out:
                out.append(m)
        return out


LABEL_SOURCES: tuple[str, ...] = ("human", "auto", "pyramid")
"""Who labels an arm's mined frames, at the same frame budget ``mine.k``:

- ``human``: the human stand-in (the hidden ground truth) labels every mined frame, charged per frame;
- ``auto``: only the machine labeler's accepted boxes, nothing charged but compute;
- ``pyramid``: accepted machine boxes kept, frames with a box to review (and the audit frames that
  calibrate the thresholds) labeled by the human stand-in, charged per frame; dropped boxes gone.
"""


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a turn: a mining strategy, its embedding and a label source.

    Written ``<strategy>[-detector][-<source>]``: ``prototype-pyramid``, ``random-human``,
    ``prototype-detector-auto``. Without a source suffix (``prototype``) the source follows
    ``autolabel.labeler``: ``human`` for the oracle, else ``auto`` (`label_source`).
    """

    strategy: str
    embedding: str
    source: str | None

    @property
    def mining(self) -> str:
        """The mining arm (the mine run's tag): ``prototype``, ``random-slice-detector``."""
        return arm_name(self.strategy, self.embedding)


def parse_arm_spec(arm: str) -> ArmSpec:
    """``prototype-detector-pyramid`` -> ArmSpec(prototype, detector, pyramid).

    Raises:
        ValueError: the strategy is not registered.
    """
    rest, source = arm, None
    for s in LABEL_SOURCES:
        if rest.endswith(f"-{s}"):
            rest, source = rest[: -len(s) - 1], s
            break
    strategy, embedding = rest, "embed"
    if rest.endswith("-detector"):
        strategy, embedding = rest[: -len("-detector")], "detector"
    if strategy not in strategy_names():
        raise ValueError(
            f"arm {arm!r}: strategy must be one of {strategy_names()}, optionally with -detector, "
            f"then optionally a label source -{'/-'.join(LABEL_SOURCES)}"
        )
    return ArmSpec(strategy, embedding, source)


def parse_arm(arm: str) -> tuple[str, str]:
    """``prototype`` -> (prototype, embed); ``prototype-detector`` -> (prototype, detector).

    A label-source suffix (``-human``, ``-auto``, ``-pyramid``) is accepted and ignored here.
    """
    spec = parse_arm_spec(arm)
    return spec.strategy, spec.embedding


def mining_arm(arm: str) -> str:
    """The mine run an arm reads: ``prototype-pyramid`` -> ``prototype``."""
    return parse_arm_spec(arm).mining


def label_source(arm: str, labeler: str) -> str:
    """The arm's label source: its suffix, else ``human`` for a labeler standing in for humans (the oracle)
    and ``auto`` otherwise."""
    source = parse_arm_spec(arm).source
    if source is not None:
        return source
    return "human" if stands_in_for_humans(labeler) else "auto"


def arm_name(strategy: str, embedding: str) -> str:
    """The run tag of one arm: the strategy, plus ``-detector`` for detector embeddings."""
    return strategy if embedding == "embed" else f"{strategy}-detector"


class ComputeConfig(_Model):
    """Where batch inference runs (embed, eval's detector pass, detector embeddings, labelers).

    The other keys are the ``ray`` backend's (README, "Batch inference on a cluster"); the
    results are the same on every backend, so none of them enters a run's fingerprint.
    """

    backend: str = Field(
        "local", description="A registered inference backend: local (DataLoader workers feeding the model "
        "in this process) or ray (Ray Data on a cluster)."
    )
    address: str | None = Field(
        None, description="ray: the cluster, host:port (a head node's GCS port, 6379), ray://host:10001 "
        "(Ray Client) or auto; null: RAY_ADDRESS from the environment, else a local Ray instance per call. "
        "No credentials here: a token comes from the environment (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN)."
    )
    actors: int = Field(1, ge=1, description="ray: model actors (each loads the model once).")
    gpus_per_actor: float | None = Field(
        None, ge=0, description="ray: GPUs per actor; null: 1 when the cluster has GPUs, else 0 (CPU).")
    cpus_per_actor: float = Field(1.0, gt=0, description="ray: CPUs per actor.")

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        return _registered(value, backend_names())

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if "@" in value or "?" in value:
            # config.yaml is copied into every run folder: a secret here would be written there
            raise ValueError(
                "compute.address must name the cluster only (host:port, ray://host:port or auto), not a "
                "user, password or token: put those in the environment (RAY_ADDRESS, or RAY_AUTH_MODE=token "
                "and RAY_AUTH_TOKEN), which bddengine never writes down")
        return value or None

    def runner(self) -> Any:
        """The backend named by ``backend``, set up with this section's settings (an inference ``Backend``)."""
        from bddengine.inference import get_backend

        return get_backend(self.backend, self.model_dump(exclude={"backend"}))


class FiftyOneConfig(_Model):
    """Mirror of the run folders into a persistent FiftyOne dataset."""

    enabled: bool = True
    dataset_prefix: str = "bddengine"


class EngineConfig(_Model):
    """Root config: global settings plus one section per stage."""

    name: str = Field("bddengine", description="Project name; prefixes FiftyOne datasets.")
    seed: int = 42
    runs_dir: Path = Path("outputs/runs")
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    collect: CollectConfig = CollectConfig()
    embed: EmbedConfig = EmbedConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    mine: MineConfig = MineConfig()
    autolabel: AutolabelConfig = AutolabelConfig()
    report: ReportConfig = ReportConfig()
    flywheel: FlywheelConfig = FlywheelConfig()
    fiftyone: FiftyOneConfig = FiftyOneConfig()
    compute: ComputeConfig = ComputeConfig()

    @model_validator(mode="after")
    def _check_splits(self) -> EngineConfig:
        missing = [s for s in self.collect.splits if s not in self.data.label_files]
        if missing:
            raise ValueError(
                f"collect.splits names {missing} but data.label_files has only "
                f"{sorted(self.data.label_files)}"
            )
        labeler = self.autolabel.labeler
        if stands_in_for_humans(labeler):
            machine = [a for a in self.flywheel.arms if label_source(a, labeler) != "human"]
            if machine:
                raise ValueError(
                    f"flywheel.arms {machine}: `-auto` and `-pyramid` arms label with a machine labeler, but "
                    f"autolabel.labeler is {labeler} (the hidden ground truth, i.e. human labels); set "
                    "autolabel.labeler to detector or grounded, or use -human arms")
        for arm, control in self.report.contrasts or []:
            unknown = [a for a in (arm, control) if a not in self.flywheel.arms]
            if unknown or arm == control:
                raise ValueError(
                    f"report.contrasts [{arm}, {control}]: "
                    + (f"{unknown} not in flywheel.arms {self.flywheel.arms}" if unknown
                       else "an arm cannot be its own control"))
        return self


def default_contrasts(arms: list[str], labeler: str = "grounded") -> list[tuple[str, str]]:
    """Arm-vs-control pairs when ``report.contrasts`` is unset, each changing one thing:

    - mining: each arm against each control arm (a strategy whose entry says ``control``:
      random) with the same label source. A random arm spends the same label budget on
      frames picked without looking at the failures, so "arm minus random" is what
      targeted mining added;
    - labeling: each ``auto`` / ``pyramid`` arm against the ``human`` arm of the same mining
      arm, so "pyramid minus human" is what machine labels cost (or gained) on those frames.

    Args:
        arms: ``flywheel.arms``.
        labeler: ``autolabel.labeler`` (the source of arms without a suffix, `label_source`).
    """
    specs = {a: parse_arm_spec(a) for a in arms}
    source = {a: label_source(a, labeler) for a in arms}
    controls = [a for a in arms if is_control(specs[a].strategy)]
    out = [(a, c) for a in arms if a not in controls for c in controls if source[a] == source[c]]
    for a in arms:
        if source[a] != "human":
            out += [(a, h) for h in arms if source[h] == "human" and specs[h].mining == specs[a].mining
                    and (a, h) not in out]
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value`` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. --set seed=7")
    key, raw = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not key.strip():
        raise ConfigError(f"--set {text!r}: empty key")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: the key {key.strip()!r} has an empty part; "
                          "write it like --set split.train_size=1000")
    return parts, yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a raw config mapping (in place).

    A key inside a mapping the file does not set starts from the default of that
    mapping, so ``--set data.label_files.train=x`` keeps the default ``val`` entry.
    """
    defaults: dict[str, Any] | None = None
    for text in overrides:
        parts, value = parse_override(text)
        node, default = raw, None
        if len(parts) > 1 and defaults is None:
            defaults = json.loads(EngineConfig().model_dump_json())
        default = defaults
        for part in parts[:-1]:
            default = default.get(part) if isinstance(default, dict) else None
            if part not in node:
                node[part] = dict(default) if isinstance(default, dict) else {}
            child = node[part]
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} config error(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo? see configs/default.yaml for the valid keys)"
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> EngineConfig:
    """Load, override and validate a YAML config.

    Args:
        path: YAML file; ``configs/default.yaml`` when None.
        overrides: ``key.path=value`` strings applied before validation.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable file, bad YAML, or failed validation; the message
            names the file and every offending key.
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (pass --config configs/<name>.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte {exc.start} cannot be read as UTF-8): a config is a YAML text "
            "file; if it is one, save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), otherwise pass the right "
            "file with --config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc}): check its "
                          "permissions, or pass another file with --config") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    apply_overrides(raw, overrides or [])
    source = str(path) + (f" (with --set {', '.join(overrides)})" if overrides else "")
    try:
        return EngineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def config_dict(cfg: BaseModel) -> dict[str, Any]:
    """JSON-safe dict of a (sub-)config."""
    return json.loads(cfg.model_dump_json())


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-able parts (configs, input run names) and the engine version."""
    from bddengine import __version__

    blob = json.dumps([__version__, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

