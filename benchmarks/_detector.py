"""A detector that predicts, for the benchmarks that run one on real images.

A from-scratch YOLOv8n scores nothing above conf 0.001 before it has trained, so a
benchmark on it times a detector pass and an evaluation of empty output. This
trains one for a few epochs on a small synthetic world with the classes a CPU
detector learns in minutes (car, truck: see configs/demo.yaml) with the demo's
training settings (AdamW, lr0 0.002, cosine schedule, batch 8) but no per-epoch
validation, and keeps it under ``outputs/bench/`` so the next benchmark of the same
``make bench`` reuses it.
Benchmarks also take ``--weights`` (e.g. a smoke or demo run's ``best.pt``).

The world has a train split (what the detector learns from) and a val split (the
frames the benchmarks run the detector on, never trained on).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE = Path("outputs/bench")
WIDTH, HEIGHT = 320, 180
CLASSES_LEARNED = ["car", "truck"]


@dataclass
class BenchWorld:
    """The benchmark's world, its eval frames and the detector to run on them."""

    root: Path
    weights: Path
    eval_gt: list[dict[str, Any]]
    eval_paths: list[str]
    trained: dict[str, Any]
    """How the detector was made: ``{"weights", "epochs", "n_train", "imgsz", "train_s", "reused"}``."""


def prepare(n_eval: int, *, n_train: int = 240, epochs: int = 5, imgsz: int = 224, seed: int = 0,
            weights: Path | None = None, cache: Path = CACHE) -> BenchWorld:
    """The world (made once per parameter set) and a detector that predicts on it.

    Args:
        n_eval: frames the benchmark runs the detector on (the world's val split).
        n_train: frames the detector trains on.
        epochs: training epochs.
        imgsz: training (and inference) size.
        seed: world and training seed.
        weights: use these weights instead of training (``--weights``).
        cache: where worlds and detectors are kept between benchmarks.
    """
    key = f"world-{n_train}-{n_eval}-{WIDTH}x{HEIGHT}-s{seed}"
    root = cache / key
    if not (root / "labels/det_20/det_val.json").is_file():
        _make_world(root, n_train=n_train, n_eval=n_eval, seed=seed)
    gt = json.loads((root / "labels/det_20/det_val.json").read_text())
    paths = [str((root / "images/100k/val" / f["name"]).resolve()) for f in gt]
    if weights is not None:
        if not Path(weights).is_file():
            raise SystemExit(f"--weights {weights}: no such file (a train run's ultralytics/weights/best.pt)")
        trained = {"weights": str(weights), "epochs": None, "n_train": None, "imgsz": None, "train_s": 0.0,
                   "reused": True, "source": "--weights"}
        return BenchWorld(root, Path(weights), gt, paths, trained)
    run = root / f"detector-e{epochs}-i{imgsz}"
    best, meta = run / "ultralytics/weights/best.pt", run / "trained.json"
    if best.is_file() and meta.is_file():
        trained = json.loads(meta.read_text()) | {"reused": True}
        print(f"detector: reusing {best} ({trained['epochs']} epochs on {trained['n_train']} frames, "
              f"trained in {trained['train_s']:.0f} s)")
        return BenchWorld(root, best, gt, paths, trained)
    trained = _train(root, run, epochs=epochs, imgsz=imgsz, seed=seed)
    return BenchWorld(root, best, gt, paths, trained)


def _make_world(root: Path, *, n_train: int, n_eval: int, seed: int) -> None:
    from bddengine.bdd.loader import frames_to_tables
    from bddengine.integrations.yolo_export import write_dataset_yaml, yolo_labels
    from bddengine.synth import generate_world

    tmp = root.with_name(f".tmp-{root.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    generate_world(tmp, n_train=n_train, n_val=n_eval, width=WIDTH, height=HEIGHT, seed=seed,
                   classes=CLASSES_LEARNED, progress=False)
    for split in ("train", "val"):  # a YOLO export next to the images: images/ -> labels/
        gt = json.loads((tmp / f"labels/det_20/det_{split}.json").read_text())
        boxes = frames_to_tables(gt, source_split=split).boxes
        by_name = dict(tuple(boxes.groupby("name")))
        labels = tmp / "yolo/labels" / split
        images = tmp / "yolo/images" / split
        labels.mkdir(parents=True)
        images.mkdir(parents=True)
        for frame in gt:
            # relative, so the links survive the rename of the folder into place
            (images / frame["name"]).symlink_to(Path("../../../images/100k") / split / frame["name"])
            lines, _ = yolo_labels(by_name.get(frame["name"], boxes.iloc[:0]), WIDTH, HEIGHT)
            (labels / (Path(frame["name"]).stem + ".txt")).write_text("\n".join(lines))
    # best.pt is picked on the training frames: the val split stays unseen, and is not scored every epoch
    write_dataset_yaml(tmp / "yolo", {"train": "images/train", "val": "images/train"})
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)


def _train(root: Path, run: Path, *, epochs: int, imgsz: int, seed: int) -> dict[str, Any]:
    """The train stage's settings (configs/demo.yaml), without per-epoch validation or plots."""
    from ultralytics import YOLO

    from bddengine.integrations.ultralytics import offline_ultralytics

    offline_ultralytics()
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    n_train = sum(1 for _ in (root / "yolo/images/train").iterdir())
    print(f"detector: training a from-scratch YOLOv8n for {epochs} epochs on {n_train} frames at {imgsz} px "
          f"(classes {', '.join(CLASSES_LEARNED)}) ...", flush=True)
    start = time.perf_counter()
    YOLO("yolov8n.yaml").train(
        data=str(root / "yolo/dataset.yaml"), epochs=epochs, imgsz=imgsz, batch=8, optimizer="AdamW", lr0=0.002,
        cos_lr=True, warmup_epochs=1, workers=0, device="cpu", cache="ram", amp=False, seed=seed,
        deterministic=True, project=str(run.resolve()), name="ultralytics", exist_ok=True,
        val=False, plots=False, verbose=False)  # val=False: scored once, after the last epoch
    train_s = time.perf_counter() - start
    trained = {"weights": str(run / "ultralytics/weights/best.pt"), "epochs": epochs, "n_train": n_train,
               "imgsz": imgsz, "train_s": train_s, "reused": False, "source": "trained here"}
    (run / "trained.json").write_text(json.dumps(trained, indent=2))
    print(f"detector: trained in {train_s:.0f} s -> {trained['weights']}")
    return trained


def count_predictions(preds: list[dict[str, Any]], *, min_score: float = 0.0) -> int:
    """Predicted boxes scoring at least ``min_score``."""
    return sum(1 for f in preds for lab in f.get("labels") or [] if float(lab.get("score", 0)) >= min_score)


def require_predictions(preds: list[dict[str, Any]], weights: Path) -> int:
    """The prediction count; stops the benchmark (exit 1) when the detector predicted nothing."""
    n = count_predictions(preds)
    if n == 0:
        raise SystemExit(f"the detector {weights} made 0 predictions on {len(preds)} frames: a benchmark on it "
                         "would time empty output. Train it longer or pass --weights of a trained best.pt")
    return n
