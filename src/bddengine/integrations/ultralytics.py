"""The one adapter to ultralytics: device, weights lookup, model loading, inference steps, training.

train, eval, mine and autolabel reach ultralytics only through this module.

Keep ultralytics off the network: no weight, font or telemetry downloads mid-run.
Weights are resolved locally (with a clear error naming the file and where to put
it when missing). ultralytics also fetches Arial.ttf from GitHub while checking a
dataset or drawing plots; offline that is a failing request each time, so the lookup
is pointed at the copy in ultralytics' config folder or matplotlib's bundled DejaVu
Sans. Set ``YOLO_OFFLINE=0`` to let ultralytics download as usual.

Keep ultralytics off the terminal: inside ``log_to(path)`` its logger, prints and
progress bars go to that file as plain text (no colour codes, a bar's last frame
only), so a stage's terminal output is the project's own lines.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bddengine.bdd.categories import CLASSES
from bddengine.errors import StageInputError
from bddengine.inference import FILES, Backend, Bar, Batch, FrameSource, infer
from bddengine.runs.layout import TRAIN, ULTRALYTICS_DIR, ultralytics_log

WEIGHTS_URL = "https://github.com/ultralytics/assets/releases"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PlainLog(io.TextIOBase):
    """A text stream onto a log file that keeps ultralytics' output readable.

    Colour codes and carriage returns are dropped; a progress bar's redraws (ultralytics'
    ``TQDM`` hands them to a stream's ``progress`` method) are kept back and only its
    last frame is written. The file is created on the first write.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file: io.TextIOWrapper | None = None
        self._bars: dict[int, str] = {}
        self._after_bar = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        text = _ANSI.sub("", s).replace("\r", "")
        if self._after_bar and text.startswith("\n"):
            text = text[1:]  # the newline a closed bar ends with: its last frame already has one
        self._after_bar = False
        if text:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._file.write(text)
        return len(s)

    def progress(self, key: int, frame: str) -> None:
        """A bar's redraw (kept back), or its close (``frame == ""``: write its last frame)."""
        if frame:
            self._bars[key] = frame
            return
        last = self._bars.pop(key, "")
        if last:
            self.write(last + "\n")
            self._after_bar = True

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class _LevelFormatter(logging.Formatter):
    """The message, with the level in front for a warning or an error."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname}: {text}" if record.levelno >= logging.WARNING else text


_open_logs: list[PlainLog] = []  # the log of the block running now (innermost last)


@contextlib.contextmanager
def log_to(path: Path) -> Iterator[Path]:
    """Send ultralytics' own output to ``path`` for the block, instead of the terminal.

    Its logger (banner, settings, layer table, per-epoch lines) writes to the file for
    the whole block; its prints and progress bars do while one of this module's calls
    runs ultralytics (the project's own progress bars stay on the terminal).

    Yields:
        ``path`` (it exists once ultralytics printed something).
    """
    stream = PlainLog(path)
    real_out = sys.stdout
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        from ultralytics.utils import LOGGER  # a first import creates its settings file, and says so
    for h in LOGGER.handlers:  # created during that import: point it back at the terminal for later
        if isinstance(h, logging.StreamHandler) and h.stream is stream:
            h.setStream(real_out)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_LevelFormatter("%(message)s"))
    saved = LOGGER.handlers[:]
    LOGGER.handlers = [handler]
    _open_logs.append(stream)
    try:
        yield path
    finally:
        _open_logs.remove(stream)
        LOGGER.handlers = saved
        stream.close()


def run_log(where: Any) -> contextlib.AbstractContextManager[Path]:
    """``log_to`` the run's ``ultralytics.log`` (``where``: a run being built)."""
    return log_to(ultralytics_log(where))


def log_lines(where: Any) -> list[str]:
    """The summary's pointer to a run's ``ultralytics.log``, when ultralytics printed anything."""
    path = ultralytics_log(where)
    return [f"{path} (what ultralytics printed)"] if path.is_file() else []


@contextlib.contextmanager
def _into_log() -> Iterator[None]:
    """While ultralytics runs: its prints and progress bars into the open log (if any)."""
    if not _open_logs:
        yield
        return
    with contextlib.redirect_stdout(_open_logs[-1]), contextlib.redirect_stderr(_open_logs[-1]):
        yield


def _terminal_console() -> Any:
    """A rich console bound to the terminal stream now, so a bar stays there while ultralytics' output is logged."""
    from rich.console import Console

    return Console(file=sys.stdout)


def local_font(font: str = "Arial.ttf") -> Path:
    """A font file on disk: ultralytics' own copy if present, else matplotlib's DejaVu Sans."""
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    own = USER_CONFIG_DIR / Path(font).name
    if own.is_file():
        return own
    return Path(font_manager.findfont("DejaVu Sans"))


def use_every_core() -> int:
    """Let ultralytics' CPU training and inference use every core this process may use.

    ultralytics sets torch to ``cpu_count - 1`` threads on the CPU (and trains with
    no DataLoader workers there): one thread on a 2-core machine, half its speed.

    Returns:
        The thread count ultralytics will set.
    """
    import ultralytics.utils.torch_utils as torch_utils

    from bddengine.embedding.encode import cpu_count

    torch_utils.NUM_THREADS = cpu_count()
    return torch_utils.NUM_THREADS


def offline_ultralytics() -> bool:
    """Switch ultralytics to offline mode unless the user set ``YOLO_OFFLINE=0``; use every core.

    Returns:
        True when offline mode is on.
    """
    use_every_core()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if os.environ["YOLO_OFFLINE"].lower() in ("0", "false", "no"):
        return False
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.plotting as plotting

    data_utils.check_font = local_font
    plotting.check_font = local_font
    return True


def keep_label_caches_out() -> None:
    """Stop ultralytics writing ``labels/*.cache`` beside a dataset's label files.

    Training reads the split run's YOLO export, a committed run of another stage that
    no stage may write into; without its cache, ultralytics checks the labels again at
    the start of each training (every training run did so anyway: each has new folders).
    """
    import ultralytics.data.dataset as dataset

    def mark_only(prefix: str, path: Path, x: dict, version: str) -> None:
        x["version"] = version  # what the saver adds in place, and the reader checks

    dataset.save_dataset_cache_file = mark_only


def resolve_device(device: str, key: str = "device") -> str:
    """``auto`` -> the first GPU when torch sees one, else ``cpu``; anything else checked.

    Raises:
        StageInputError: not a device name ultralytics takes (cpu, mps, cuda,
            cuda:N, N or N,M), or a GPU that this machine does not have. ``key``
            names the config key in the message.
    """
    import torch

    if device == "auto":
        return "0" if torch.cuda.is_available() else "cpu"
    name = device.strip().lower()
    if name == "cpu":
        return device
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise StageInputError(f"{key}={device!r} but this machine has no Apple GPU: use auto or cpu")
        return device
    indices = name.removeprefix("cuda").removeprefix(":") if name.startswith("cuda") else name
    parts = [p.strip() for p in indices.split(",")] if indices else ["0"]
    if not all(p.isdigit() for p in parts):
        raise StageInputError(f"{key}={device!r} is not a device: use auto, cpu, cuda, cuda:N, N or N,M")
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [p for p in parts if int(p) >= n_gpus]
    if missing:
        seen = f"{n_gpus} GPU(s)" if n_gpus else "no GPU"
        raise StageInputError(f"{key}={device!r} but torch sees {seen} here: use auto or cpu "
                              + (f"or an index below {n_gpus}" if n_gpus else "(or run on a GPU machine)"))
    return device


def weights_dir() -> Path:
    """ultralytics' weights folder (``yolo settings weights_dir``)."""
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"])


def resolve_weights(model: str, key: str, *, folder: Path | None = None, otherwise: str = "") -> Path:
    """Find a weights file at the path given or in ultralytics' weights folder.

    Args:
        model: a path or a file name such as ``yolov8x-worldv2.pt``.
        key: the config key that named it, for the message.
        folder: the weights folder (default: ultralytics' ``weights_dir``).
        otherwise: a further way out, appended to the message (e.g. train from scratch).

    Raises:
        StageInputError: not found; the message names the file, both places looked at
            and where to download it.
    """
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    folder = weights_dir() if folder is None else folder
    if (folder / path.name).is_file():
        return (folder / path.name).resolve()
    raise StageInputError(
        f"{key}={model}: weights file not found (looked at {path.resolve()} and "
        f"{(folder / path.name).resolve()}). Download {path.name} from {asset_url(path.name)} and put it "
        f"at one of those paths, or set {key} to its path{otherwise}")


def asset_url(name: str) -> str:
    """The address ultralytics downloads the weights file ``name`` from (its assets release).

    A file ultralytics does not publish gets the releases page, where its release lists it.
    """
    import inspect

    from ultralytics.utils import downloads

    if name in downloads.GITHUB_ASSETS_NAMES:
        release = inspect.signature(downloads.attempt_download_asset).parameters["release"].default
        return f"https://github.com/{downloads.GITHUB_ASSETS_REPO}/releases/download/{release}/{name}"
    return f"{WEIGHTS_URL} (the release that lists {name})"


def load_yolo(weights: Path | str) -> Any:
    """An ultralytics ``YOLO`` model from a local weights file (or a model YAML), offline."""
    offline_ultralytics()
    with _into_log():
        from ultralytics import YOLO

        return YOLO(str(weights))


def load_sam(weights: Path) -> Any:
    """An ultralytics ``SAM`` model from a local weights file, offline."""
    offline_ultralytics()
    with _into_log():
        from ultralytics import SAM

        return SAM(str(weights))


def fit(run_dir: Path, init: Path | str, data_yaml: Path, t: Any, *, epochs: int, seed: int,
        resume: bool) -> None:
    """Run ultralytics training inside ``run_dir/ultralytics`` (``t``: the train config section)."""
    with _into_log():
        _fit(run_dir, init, data_yaml, t, epochs=epochs, seed=seed, resume=resume)


def _fit(run_dir: Path, init: Path | str, data_yaml: Path, t: Any, *, epochs: int, seed: int,
         resume: bool) -> None:
    keep_label_caches_out()
    if resume:
        last = TRAIN.last_weights.at(run_dir)
        if not last.is_file():
            raise StageInputError(f"--resume: {last} missing; re-run without --resume")
        try:
            # resume=<path> and the run's own dataset: with resume=True ultralytics fills in its
            # default dataset (coco8.yaml) and tries to download it
            load_yolo(last).train(resume=str(last), data=str(data_yaml))
        except AssertionError as exc:
            if "nothing to resume" not in str(exc):
                raise
            finish_stopped_training(last.parent)
        return
    load_yolo(init).train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=t.imgsz,
        batch=t.batch,
        optimizer=t.optimizer,
        lr0=t.lr0,
        cos_lr=t.cos_lr,
        warmup_epochs=t.warmup_epochs,
        patience=t.patience,
        workers=t.workers,
        device=resolve_device(t.device, "train.device"),
        mosaic=t.mosaic,
        cache=False if t.cache == "none" else t.cache,
        amp=t.amp,
        seed=seed,
        deterministic=True,
        project=str(run_dir.resolve()),  # a relative project lands under ultralytics' runs/detect/
        name=ULTRALYTICS_DIR,
        exist_ok=True,
        plots=True,
        verbose=False,
    )


def finish_stopped_training(weights_dir: Path) -> None:
    """Every epoch ran but the run was stopped before ultralytics' end of training.

    Do what that end does to the weights files (drop the optimizer state, keep the EMA
    weights in half precision), so they match an uninterrupted run's.
    """
    from ultralytics.utils.torch_utils import strip_optimizer

    for name in ("last.pt", "best.pt"):
        if (weights_dir / name).is_file():
            strip_optimizer(weights_dir / name)


def predict_frames(
    weights: Path, paths: list[str], names: list[str], *, imgsz: int, conf: float, iou: float,
    max_det: int, batch: int, device: str, backend: str | Backend = "local", progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the detector once over the frames; BDD-format prediction frames, in ``names`` order.

    Each batch goes to ultralytics as a ``.txt`` list: ultralytics then decodes the batch
    on threads (``benchmarks/eval_pass.py``); a Python list is decoded serially first.
    The batches are cut from the frames sorted by path, the order ultralytics reads a
    list in, so each holds the frames of ultralytics' own streaming predict over all of
    them (its letterbox depends on the shapes within a batch).

    Raises:
        StageInputError: the weights are missing, or a frame gave no result (its image
            is unreadable or not an image file).
    """
    if not weights.is_file():
        raise StageInputError(f"{weights} missing: re-run `bddengine train --force`")
    if not paths:
        return []
    name_of = {os.path.abspath(p): n for p, n in zip(paths, names, strict=True)}
    source = FrameSource([name_of[p] for p in sorted(name_of)], sorted(name_of))
    step = DetectorPass(load_yolo(weights), imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, device=device)
    found = infer(source, FILES, step, batch_size=batch, backend=backend,
                  progress=Bar("predicting eval pool") if progress else None)
    missing = [(n, p) for p, n in zip(paths, names, strict=True) if n not in found]
    if missing:
        raise StageInputError(f"{len(missing)} of {len(paths)} frames gave the detector no image (first: "
                              f"{missing[0][1]}): it is unreadable or not an image file; fix or remove it and "
                              "re-run `bddengine split --force`")
    return [found[n] for n in names]


@dataclass
class DetectorPass:
    """The detector pass's model step: a batch of image files -> a BDD prediction frame per name.

    A frame ultralytics cannot read is skipped with its warning, and left out.
    """

    model: Any
    imgsz: int
    conf: float
    iou: float
    max_det: int
    device: str

    def __getstate__(self) -> dict[str, Any]:
        return {**vars(self), "model": shippable(self.model)}

    def __call__(self, batch: Batch) -> dict[str, dict[str, Any]]:
        import tempfile

        name_of = {os.path.abspath(p): n for p, n in zip(batch.paths, batch.names, strict=True)}
        with tempfile.TemporaryDirectory(prefix="bddengine-predict-") as tmp, _into_log():
            listing = Path(tmp) / "frames.txt"  # ultralytics reads it in its own (sorted) order: matched by path
            listing.write_text("".join(f"{p}\n" for p in name_of))
            out = {}
            for res in self.model.predict(str(listing), imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                          max_det=self.max_det, device=self.device, verbose=False,
                                          batch=len(batch.paths), stream=True):
                name = name_of[os.path.abspath(res.path)]
                out[name] = result_to_frame(name, res)
        return out


def shippable(model: Any) -> Any:
    """``model`` as a model step pickles it for another process (a Ray actor): without its predictor.

    ultralytics keeps the predictor of the last ``predict`` / ``embed`` on the model, and
    the predictor holds a thread lock, which does not pickle; the copy (sharing the
    weights) builds its own predictor on its first call, as a fresh model does.
    """
    if getattr(model, "predictor", None) is None:
        return model
    model = copy.copy(model)
    model.predictor = None
    return model


def result_to_frame(name: str, res: Any) -> dict[str, Any]:
    """One ultralytics result -> a BDD prediction frame."""
    boxes = res.boxes
    xyxy = boxes.xyxy.cpu().numpy().tolist()
    scores = boxes.conf.cpu().numpy().tolist()
    cls = boxes.cls.cpu().numpy().astype(int).tolist()
    labels = [
        {"id": str(i), "category": CLASSES[c], "score": s,
         "box2d": {"x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}}
        for i, (b, s, c) in enumerate(zip(xyxy, scores, cls, strict=True))
    ]
    return {"name": name, "labels": labels}


def load_detector(weights: Path) -> tuple[Any, int]:
    """The YOLO model and the index of its last backbone layer (SPPF on YOLOv8)."""
    model = load_yolo(weights)
    spec = getattr(model.model, "yaml", None) or {}
    layer = len(spec["backbone"]) - 1 if spec.get("backbone") else len(model.model.model) - 2
    return model, layer


def embed_with_detector(
    model: Any, layer: int, frames: FrameSource, *, imgsz: int, batch: int, device: str,
    backend: str | Backend = "local", progress: bool,
) -> np.ndarray:
    """``model.embed`` over ``frames`` in batches: ``[N, D]`` float32 in ``frames`` order (not normalised)."""
    step = DetectorEmbed(model, layer, imgsz=imgsz, device=device)
    vectors = infer(frames, FILES, step, batch_size=batch, backend=backend,
                    progress=Bar(f"detector embeddings (layer {layer})") if progress else None)
    return np.stack([vectors[name] for name in frames.names]).astype(np.float32)


@dataclass
class DetectorEmbed:
    """Detector embeddings' model step: a batch of image files -> the pooled ``layer`` features per name."""

    model: Any
    layer: int
    imgsz: int
    device: str

    def __getstate__(self) -> dict[str, Any]:
        return {**vars(self), "model": shippable(self.model)}

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        with _into_log():
            feats = self.model.embed(batch.paths, imgsz=self.imgsz, device=self.device, batch=len(batch.paths),
                                     verbose=False, embed=[self.layer])
        return {name: f.detach().float().cpu().numpy().reshape(-1)
                for name, f in zip(batch.names, feats, strict=True)}


def eigencam_maps(weights: Path, images: list[Path], *, imgsz: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """EigenCAM heat maps (the ``grad-cam`` package) of a YOLO detector's last backbone layer, on CPU.

    EigenCAM projects that layer's activations on their first principal component, so it
    needs no gradient and no target class. Each image is resized to ``imgsz`` wide (its
    height rounded to the stride, 32), as the detector saw it.

    Returns:
        Per image, (the resized RGB image in 0-1, H x W x 3; the heat map in 0-1, H x W).
    """
    import torch
    from PIL import Image
    from pytorch_grad_cam import EigenCAM

    model, layer = load_detector(weights)
    net = model.model.float().cpu().eval()
    cam = EigenCAM(net, target_layers=[net.model[layer]])
    out = []
    try:
        for path in images:
            with Image.open(path) as im:
                w, h = im.size
                size = (imgsz, max(32, round(imgsz * h / w / 32) * 32))
                rgb = np.asarray(im.convert("RGB").resize(size), dtype=np.float32) / 255.0
            x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]
            # targets given (and unused: EigenCAM takes no gradient), so grad-cam does not argmax the
            # detector's tuple output as if it were a classifier's scores
            heat = cam(x, targets=[None])[0]
            out.append((rgb, np.asarray(heat, dtype=np.float32)))
    finally:
        cam.activations_and_grads.release()
    return out
