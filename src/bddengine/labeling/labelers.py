"""The pluggable labelers of ``bddengine autolabel``.

Each labeler turns frames (``name``, ``path``, ``width``, ``height``) into boxes
``{"category", "score", "box2d": {"x1", "y1", "x2", "y2"}}`` in pixels of the original
image, one list per frame name:

- `OracleLabeler`: the frame's hidden ground truth (a human labeling vendor);
- `UltralyticsLabeler`: any ultralytics detector with a map from its class names to
  the BDD classes; the ``detector`` labeler (a COCO checkpoint or the iteration's own
  detector) and the ``grounded`` labeler (YOLO-World / YOLOE prompted with the BDD
  class names, optionally refined by SAM 2) are both built on it.

Weights are never downloaded: a missing file is a `StageInputError` naming the file
and where to put it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from bddengine.bdd.categories import CLASSES
from bddengine.errors import StageInputError
from bddengine.inference import FILES, Backend, Bar, Batch, FrameSource, infer
from bddengine.integrations.ultralytics import (
    asset_url,
    load_sam,
    load_yolo,
    resolve_device,
    resolve_weights,
    weights_dir,
)
from bddengine.labeling.sources import human_boxes

Box = dict[str, Any]
Frame = dict[str, Any]

GROUNDED_PROMPT = ("car . truck . bus . pedestrian . bicycle . motorcycle . traffic light . "
                   "traffic sign . train . rider")
"""The open-vocabulary prompt: the BDD classes, ``.``-separated (Grounding DINO style)."""

COCO_TO_BDD: dict[str, str] = {
    "person": "pedestrian",
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "train": "train",
    "motorcycle": "motorcycle",
    "bicycle": "bicycle",
    "traffic light": "traffic light",
    "stop sign": "traffic sign",
}
"""COCO class name -> BDD class; every other COCO class is dropped."""

CLIP_PACKAGE = "git+https://github.com/ultralytics/CLIP.git"
CLIP_VIT_B32_URL = ("https://openaipublic.azureedge.net/clip/models/"
                    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
"""Where the ``clip`` package downloads ViT-B/32 from; the folder name is the file's SHA-256."""
CLIP_VIT_B32_SHA256 = CLIP_VIT_B32_URL.split("/")[-2]
CLIP_VIT_B32_SHAPES: dict[str, tuple[int, ...]] = {
    "visual.conv1.weight": (768, 3, 32, 32), "visual.proj": (768, 512), "text_projection": (512, 512),
    "positional_embedding": (77, 512),
}
"""Tensors that tell ViT-B/32 from the other CLIP models (width 768, patch 32, text width 512)."""
NMS_IOU = 0.7
MAX_DET = 300


class Labeler(Protocol):
    """Anything that labels frames."""

    name: str

    def label(self, frames: Sequence[Frame], *, progress: bool = True) -> dict[str, list[Box]]:
        """Boxes per frame name, for every frame."""
        ...


# --- oracle --------------------------------------------------------------------------------------


def gt_frames(boxes: pd.DataFrame, names: Sequence[str]) -> dict[str, list[Box]]:
    """Hidden ground truth of ``names`` from ``boxes.parquet`` rows, ignored regions included.

    Returns:
        ``{name: [{"category", "box2d", "ignored"}, ...]}`` for every name (``[]`` when
        the frame has no box).
    """
    out: dict[str, list[Box]] = {name: [] for name in names}
    rows = boxes[boxes["name"].isin(out)]
    for name, cat, x1, y1, x2, y2, ign in rows[["name", "category", "x1", "y1", "x2", "y2", "ignored"]] \
            .itertuples(index=False, name=None):
        out[name].append({"category": cat, "box2d": {"x1": float(x1), "y1": float(y1), "x2": float(x2),
                                                     "y2": float(y2)}, "ignored": bool(ign)})
    return out


@dataclass
class OracleLabeler:
    """The hidden ground truth, standing in for a human labeling vendor.

    Returns every non-ignored ground-truth box with score 1.0; a frame without such
    boxes is truly empty.
    """

    gt: Mapping[str, list[Box]]
    name: str = "oracle"

    def label(self, frames: Sequence[Frame], *, progress: bool = True) -> dict[str, list[Box]]:
        """The ground truth of each frame.

        Raises:
            StageInputError: a frame has no hidden ground truth.
        """
        missing = [f["name"] for f in frames if f["name"] not in self.gt]
        if missing:
            raise StageInputError(
                f"oracle labeler: no hidden ground truth for {len(missing)} frame(s), e.g. {missing[0]}; "
                "use autolabel.labeler=detector or grounded for frames without labels")
        return {f["name"]: human_boxes(self.gt[f["name"]]) for f in frames}


# --- ultralytics ---------------------------------------------------------------------------------


def prompt_classes(prompt: str = GROUNDED_PROMPT) -> list[str]:
    """``"car . truck . traffic light"`` -> ``["car", "truck", "traffic light"]``."""
    return [p.strip() for p in prompt.split(".") if p.strip()]


def default_class_map(model_names: Sequence[str]) -> dict[str, str]:
    """Identity when the model already speaks BDD classes, else the COCO -> BDD map."""
    if set(model_names) <= set(CLASSES):
        return {c: c for c in model_names}
    return dict(COCO_TO_BDD)


def check_class_map(class_map: Mapping[str, str], key: str = "autolabel.class_map") -> dict[str, str]:
    """The map, checked: every target is a BDD class.

    Raises:
        StageInputError: a target outside `CLASSES`, naming the key.
    """
    bad = {k: v for k, v in class_map.items() if v not in CLASSES}
    if bad:
        k, v = next(iter(bad.items()))
        raise StageInputError(f"{key}.{k}={v!r}: not a BDD class; use one of {list(CLASSES)}")
    return dict(class_map)


def _np(x: Any) -> np.ndarray:
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def result_to_boxes(res: Any, names: Sequence[str], class_map: Mapping[str, str]) -> list[Box]:
    """One ultralytics result -> BDD boxes; classes outside ``class_map`` are dropped.

    Args:
        res: an ultralytics ``Results`` (``boxes.xyxy``, ``boxes.conf``, ``boxes.cls``).
        names: the model's class names by index.
        class_map: model class name -> BDD class.
    """
    b = res.boxes
    out = []
    for (x1, y1, x2, y2), score, cls in zip(_np(b.xyxy).tolist(), _np(b.conf).tolist(),
                                            _np(b.cls).astype(int).tolist(), strict=True):
        category = class_map.get(names[cls])
        if category is None:
            continue
        out.append({"category": category, "score": float(score),
                    "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}})
    return out


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The tight pixel box ``(x1, y1, x2, y2)`` around a boolean mask; None when empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


Refiner = Callable[[str, list[Box]], list[Box]]


@dataclass
class UltralyticsLabeler:
    """An ultralytics detector whose class names map onto the BDD classes.

    Attributes:
        model: a loaded ultralytics model (anything with ``predict``).
        names: the model's class names by index.
        class_map: model class name -> BDD class (others dropped).
        name: the labeler's name (``detector`` or ``grounded``).
        refine: optional ``(image path, boxes) -> boxes`` (SAM 2 tight boxes).
    """

    model: Any
    names: Sequence[str]
    class_map: Mapping[str, str]
    name: str = "detector"
    imgsz: int = 640
    conf: float = 0.05
    batch: int = 16
    device: str = "cpu"
    augment: bool = False
    refine: Refiner | None = None
    backend: str | Backend = "local"
    """Where the model runs (``compute.backend``, `bddengine.inference`)."""

    def label(self, frames: Sequence[Frame], *, progress: bool = True) -> dict[str, list[Box]]:
        """Predict every frame once (in batches, on ``self.backend``) and map the classes."""
        source = FrameSource([f["name"] for f in frames], [str(f["path"]) for f in frames])
        found = infer(source, FILES, self._label_batch, batch_size=self.batch, backend=self.backend,
                      progress=Bar(f"labeling with {self.name}") if progress else None)
        return {f["name"]: found[f["name"]] for f in frames}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for another process (a Ray actor) without ultralytics' last predictor: it holds a lock."""
        state = dict(vars(self))
        if getattr(self.model, "predictor", None) is not None:
            state["model"] = copy.copy(self.model)
            state["model"].predictor = None
        return state

    def _label_batch(self, batch: Batch) -> dict[str, list[Box]]:
        """The model step: predict a batch of image files, map the classes, refine."""
        results = self.model.predict(batch.paths, imgsz=self.imgsz, conf=self.conf, iou=NMS_IOU, max_det=MAX_DET,
                                     device=self.device, augment=self.augment, verbose=False, batch=len(batch.paths))
        out = {}
        for name, path, res in zip(batch.names, batch.paths, results, strict=True):
            boxes = result_to_boxes(res, self.names, self.class_map)
            out[name] = self.refine(path, boxes) if self.refine and boxes else boxes
        return out


def sam_refiner(sam: Any, device: str) -> Refiner:
    """Refine boxes with SAM box prompts: each box becomes the tight box of its mask.

    A box whose mask comes back empty keeps its detector box.
    """
    def refine(path: str, boxes: list[Box]) -> list[Box]:
        prompts = [[b["box2d"][k] for k in ("x1", "y1", "x2", "y2")] for b in boxes]
        (res,) = sam.predict(path, bboxes=prompts, device=device, verbose=False)
        masks = _np(res.masks.data).astype(bool) if res.masks is not None else []
        out = []
        for box, mask in zip(boxes, list(masks) + [None] * (len(boxes) - len(masks)), strict=True):
            tight = mask_box(mask) if mask is not None else None
            out.append(box if tight is None else
                       {**box, "box2d": dict(zip(("x1", "y1", "x2", "y2"), tight, strict=True))})
        return out

    return refine


# --- weights, resolved locally -------------------------------------------------------------------


def text_encoder_problem(kind: str, *, folder: Path, text_model: str = "mobileclip:blt",
                         clip_importable: bool | None = None) -> str | None:
    """What is missing for ``set_classes`` to embed the prompts offline, or None.

    YOLO-World embeds prompts with OpenAI CLIP ViT-B/32 (the ``clip`` package and
    ``<weights_dir>/clip/ViT-B-32.pt``, verified byte for byte: `clip_file_problem`);
    YOLOE with MobileCLIP (``mobileclip_blt.ts`` or ``mobileclip2_b.ts`` in the weights
    folder or the working directory).

    Args:
        kind: ``world`` or ``yoloe``.
        folder: ultralytics' weights folder.
        text_model: YOLOE's ``text_model`` (``mobileclip:blt``, ``mobileclip2:b``, ``clip:ViT-B/32``).
        clip_importable: whether ``import clip`` works (default: look for the package, not importing it).
    """
    if kind == "world" or text_model.startswith("clip:"):
        if clip_importable is None:
            clip_importable = clip_installed()
        if not clip_importable:
            return (f"the prompts are embedded with OpenAI CLIP, whose package is not installed: "
                    f"pip install {CLIP_PACKAGE}")
        file = text_encoder_file(kind, folder=folder, text_model=text_model)
        if not file.is_file():
            return (f"the prompts are embedded with CLIP ViT-B/32: download {CLIP_VIT_B32_URL} and put it "
                    f"at {file.resolve()}")
        return clip_file_problem(file)
    file = text_encoder_file(kind, folder=folder, text_model=text_model)
    if file.is_file():
        return None
    return (f"the prompts are embedded with MobileCLIP: download {asset_url(file.name)} and put it "
            f"at {(folder / file.name).resolve()}")


def clip_installed() -> bool:
    """Whether the ``clip`` package is installed (looked up, not imported: importing it loads torch)."""
    import importlib.util

    return importlib.util.find_spec("clip") is not None


def clip_file_problem(file: Path) -> str | None:
    """None when ``file`` is OpenAI's ``ViT-B-32.pt`` byte for byte; else what it is and what to do.

    The ``clip`` package accepts the file only when its SHA-256 matches and otherwise
    downloads it again (offline: a long traceback); so the file is checked here first,
    and a file that fails is described: a state dict instead of OpenAI's TorchScript
    release, a CLIP of another architecture, or the right kind of file with the wrong
    bytes. Nothing is downloaded, and a file that is not TorchScript is read only with
    torch's restricted unpickler.
    """
    from bddengine.weights_trust import sha256_file

    expected = CLIP_VIT_B32_SHA256
    try:
        digest = sha256_file(file)
    except OSError as exc:
        return f"the CLIP text encoder {file.resolve()} cannot be read ({exc}): download {CLIP_VIT_B32_URL} again"
    if digest == expected:
        return None
    what = _describe_clip_file(file)
    return (f"the CLIP text encoder {file.resolve()} {what}; its SHA-256 is {digest}, not OpenAI's {expected}, "
            f"so the clip package would refuse it and try to download it again. Download {CLIP_VIT_B32_URL} "
            f"(OpenAI's TorchScript release, 338 MB) and put it at {file.resolve()}, replacing this file")


def _describe_clip_file(file: Path) -> str:
    """What a file that is not OpenAI's ViT-B-32.pt holds, in a few words."""
    import warnings
    import zipfile

    import torch

    from bddengine.embedding.models import is_torchscript

    if not zipfile.is_zipfile(file):
        return "is not a PyTorch file (no zip archive)"
    if is_torchscript(file):
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; OpenAI's file is one
                warnings.simplefilter("ignore", FutureWarning)
                tensors = dict(torch.jit.load(str(file), map_location="cpu").state_dict())
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged archive
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            return f"is a damaged TorchScript archive ({first})"
        arch = _clip_architecture(tensors)
        return ("is a TorchScript CLIP ViT-B/32 but not OpenAI's file (different weights, or a damaged download)"
                if arch is None else f"is a TorchScript model of another architecture ({arch})")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler refuses anything else
        return f"is a PyTorch file torch's restricted unpickler cannot read ({type(exc).__name__})"
    tensors = loaded if isinstance(loaded, dict) else {}
    arch = _clip_architecture(tensors)
    kind = "a state dict (torch.save)" if tensors else f"a pickled {type(loaded).__name__}"
    return (f"is {kind}, not OpenAI's TorchScript release"
            + ("" if arch is None else f", and of another architecture ({arch})"))


def _clip_architecture(tensors: Mapping[str, Any]) -> str | None:
    """None when the tensors have ViT-B/32's shapes, else the first one that differs."""
    for key, shape in CLIP_VIT_B32_SHAPES.items():
        if key not in tensors:
            return f"no {key} tensor: not a CLIP model"
        got = tuple(getattr(tensors[key], "shape", ()))
        if got != shape:
            return f"{key} is {list(got)}, ViT-B/32 has {list(shape)}"
    return None


def load_grounded(model_path: Path, classes: Sequence[str], *, folder: Path | None = None,
                  loader: Callable[[str], Any] | None = None) -> Any:
    """Load YOLO-World / YOLOE weights and set the prompt classes.

    Args:
        model_path: a local YOLO-World or YOLOE weights file.
        classes: the prompt classes (`prompt_classes`).
        folder: the weights folder holding the text encoder (default: ultralytics').
        loader: builds the model from a path (default: ``ultralytics.YOLO``).

    Raises:
        StageInputError: not an open-vocabulary model, or its text encoder is missing.
    """
    model = (loader or load_yolo)(str(model_path))
    kind = type(model).__name__
    if kind not in ("YOLOWorld", "YOLOE"):
        raise StageInputError(
            f"autolabel.grounded_model={model_path}: a {kind} model, not YOLO-World or YOLOE; "
            "use a *-world*.pt or yoloe-*.pt file (or autolabel.labeler=detector)")
    problem = text_encoder_problem(
        "world" if kind == "YOLOWorld" else "yoloe", folder=weights_dir() if folder is None else folder,
        text_model=getattr(getattr(model, "model", None), "text_model", "mobileclip:blt"))
    if problem:
        raise StageInputError(f"autolabel.labeler=grounded ({model_path.name}): {problem}")
    model.set_classes(list(classes))
    return model


# --- the entries of the labeler registry ------------------------------------------------------


class LabelerSettings(Protocol):
    """The ``autolabel`` settings a `LabelerSpec` reads; `bddengine.config.AutolabelConfig` is one.

    The labelers name what they read instead of importing the config, which itself
    takes its allowed ``autolabel.labeler`` values from this package's registry.
    """

    grounded_model: str
    sam_model: str | None
    detector_model: str
    class_map: dict[str, str] | None
    tta: bool
    conf: float
    batch: int
    device: str


WeightsResolver = Callable[[LabelerSettings, Callable[[], Path]], dict[str, Path]]


@dataclass(frozen=True)
class LabelerSpec:
    """How the autolabel stage makes one kind of labeler; registered in ``labeling.registry``.

    The engine decides what to do with a labeler from these fields, never from its name.

    Attributes:
        name: the value of ``autolabel.labeler``.
        summary: one line for help texts.
        weights: ``(autolabel config, iteration_weights) -> {role: weights file}``, resolved
            locally before any work starts; ``iteration_weights()`` gives the iteration's own
            detector (it raises when that is missing). Recorded in the run's inputs. None:
            each role of ``weights_keys`` is the file its config key names (`resolve_weights`).
        build: ``(autolabel config, weights, imgsz) -> Labeler`` for a machine labeler. It is
            given no ground truth: a machine labeler cannot read the hidden labels. None for
            the human stand-in (`OracleLabeler`), which the stage builds from the hidden labels.
        weights_keys: weights role -> the config key naming its file (``autolabel.detector_model``),
            named when ``check`` or the stage finds the file missing or untrusted; None for a
            role no key names, which its ``weights`` verifies itself (grounded's text encoder,
            checked byte for byte against its published SHA-256).
        stands_in_for_humans: labels with the hidden ground truth, playing the human labeling
            vendor: arms without a label-source suffix are then ``human`` arms, and ``-auto`` /
            ``-pyramid`` arms are refused (they need a machine labeler).
    """

    name: str
    summary: str
    weights: WeightsResolver | None = None
    build: Callable[[LabelerSettings, dict[str, Path], int], Labeler] | None = None
    weights_keys: Mapping[str, str | None] = field(default_factory=dict)
    stands_in_for_humans: bool = False

    def __post_init__(self) -> None:
        if self.build is None and not self.stands_in_for_humans:
            raise ValueError(f"labeler {self.name!r}: a machine labeler needs `build`")

    @property
    def machine(self) -> bool:
        """True for a labeler that labels from weights (not the human stand-in)."""
        return not self.stands_in_for_humans

    def resolve(self, a: LabelerSettings, iteration_weights: Callable[[], Path]) -> dict[str, Path]:
        """The weights files this labeler reads, resolved locally (`weights`, else `resolve_keys`).

        Raises:
            StageInputError: a file is missing or unusable (`MissingWeights` lists every one).
        """
        if self.weights is not None:
            return self.weights(a, iteration_weights)
        return resolve_keys(a, self.weights_keys)

    def trust_key(self, role: str) -> str | None:
        """The config key to name when the file of ``role`` is checked before loading it
        (`bddengine.weights_trust.check_weights`); None for a role its resolver verified."""
        return self.weights_keys.get(role, f"autolabel.labeler={self.name} ({role})")


def _settings(a: LabelerSettings, imgsz: int) -> dict[str, Any]:
    return {"imgsz": imgsz, "conf": a.conf, "batch": a.batch, "device": resolve_device(a.device, "autolabel.device")}


def model_names(model: Any) -> list[str]:
    """An ultralytics model's class names by index."""
    names = model.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


ORACLE = LabelerSpec(
    "oracle", "hidden GT: a human labeling vendor (the labels of -human arms and of the pyramid's review)",
    stands_in_for_humans=True,
)


def _detector_weights(a: LabelerSettings, iteration_weights: Callable[[], Path]) -> dict[str, Path]:
    if a.detector_model != "iter":
        return {"weights": resolve_weights(a.detector_model, "autolabel.detector_model")}
    return {"weights": iteration_weights()}


def _build_detector(a: LabelerSettings, weights: dict[str, Path], imgsz: int) -> Labeler:
    model = load_yolo(weights["weights"])
    if a.detector_model == "iter":
        names, class_map = list(CLASSES), {c: c for c in CLASSES}
    else:
        names = model_names(model)
        class_map = check_class_map(a.class_map) if a.class_map else default_class_map(names)
    return UltralyticsLabeler(model, names, class_map, name="detector", augment=a.tta, **_settings(a, imgsz))


DETECTOR = LabelerSpec("detector", "any ultralytics checkpoint or the iteration's own",
                       weights=_detector_weights, build=_build_detector,
                       weights_keys={"weights": "autolabel.detector_model"})


class MissingWeights(StageInputError):
    """Weights files a labeler needs are missing or unusable; ``problems`` has each as
    ``(config key or item, message)``, ``found`` the files that were resolved."""

    def __init__(self, problems: list[tuple[str, str]], found: dict[str, Path] | None = None) -> None:
        self.problems = problems
        self.found = dict(found or {})
        text = problems[0][1] if len(problems) == 1 else (
            f"{len(problems)} files the labeler needs are missing or unusable: "
            + " ".join(f"({i}) {msg}" for i, (_, msg) in enumerate(problems, 1)))
        super().__init__(text)


def resolve_keys(a: LabelerSettings, keys: Mapping[str, str | None]) -> dict[str, Path]:
    """Each role's file, named by its ``autolabel.<field>`` key; every problem reported at once.

    A key whose setting is empty (``autolabel.sam_model: null``) is skipped: the labeler runs
    without that file.

    Raises:
        MissingWeights: a file is missing or unusable.
    """
    out: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    for role, key in keys.items():
        if key is None:
            continue
        setting = key.removeprefix("autolabel.")
        if not hasattr(a, setting):
            raise ValueError(f"labeler weights key {key!r}: the autolabel section has no {setting!r} setting")
        model = getattr(a, setting)
        if not model:
            continue
        try:
            out[role] = resolve_weights(model, key)
        except StageInputError as exc:
            problems.append((key, str(exc)))
    if problems:
        raise MissingWeights(problems, out)
    return out


def grounded_kind(model: str) -> str:
    """``yoloe`` or ``world``, from the weights file's name (the loaded model has the last word)."""
    return "yoloe" if "yoloe" in Path(model).name.lower() else "world"


def text_encoder_file(kind: str, *, folder: Path, text_model: str = "mobileclip:blt") -> Path:
    """Where the text encoder of a YOLO-World (``world``) or YOLOE (``yoloe``) model is read from."""
    if kind == "world" or text_model.startswith("clip:"):
        return folder / "clip" / "ViT-B-32.pt"
    name = "mobileclip2_b.ts" if text_model.startswith("mobileclip2") else "mobileclip_blt.ts"
    return folder / name if (folder / name).is_file() or not Path(name).is_file() else Path(name)


def _grounded_weights(a: LabelerSettings, iteration_weights: Callable[[], Path]) -> dict[str, Path]:
    """The grounded model, SAM (when set) and the text encoder, every problem reported at once."""
    out: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    for role, key, model in (("weights", "autolabel.grounded_model", a.grounded_model),
                             ("sam", "autolabel.sam_model", a.sam_model)):
        if model:
            try:
                out[role] = resolve_weights(model, key)
            except StageInputError as exc:
                problems.append((key, str(exc)))
    kind, folder = grounded_kind(a.grounded_model), weights_dir()
    problem = text_encoder_problem(kind, folder=folder)
    if problem:
        problems.append(("text encoder", f"autolabel.labeler=grounded ({Path(a.grounded_model).name}): {problem}"))
    else:
        out["text_encoder"] = text_encoder_file(kind, folder=folder).resolve()
    if problems:
        raise MissingWeights(problems, out)
    return out


def _build_grounded(a: LabelerSettings, weights: dict[str, Path], imgsz: int) -> Labeler:
    settings = _settings(a, imgsz)
    classes = prompt_classes(GROUNDED_PROMPT)
    model = load_grounded(weights["weights"], classes)
    refine = sam_refiner(load_sam(weights["sam"]), settings["device"]) if "sam" in weights else None
    return UltralyticsLabeler(model, classes, {c: c for c in classes}, name="grounded", refine=refine, **settings)


GROUNDED = LabelerSpec("grounded", "YOLO-World / YOLOE prompted with the BDD classes",
                       weights=_grounded_weights, build=_build_grounded,
                       weights_keys={"weights": "autolabel.grounded_model", "sam": "autolabel.sam_model",
                                     "text_encoder": None})
