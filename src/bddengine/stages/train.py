"""Stage ``train --iter N``: fine-tune an ultralytics YOLOv8 detector.

resolve the split (and, for N > 0, the accepted auto-labels of iteration N-1) ->
write the dataset YAML -> train inside the run folder -> keep best/last weights,
per-epoch curves and ultralytics' plots -> result.json.

An interrupted training keeps its hidden folder; ``--resume`` continues it from
``last.pt``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from bddengine.bdd.categories import CLASSES
from bddengine.config import EngineConfig, config_dict, fingerprint, train_tag
from bddengine.lifecycle import interrupts_stick
from bddengine.runs import (
    RunRef,
    StageRun,
    find_resumable,
    find_same_run,
    resolve_input,
)
from bddengine.stages import StageInputError, StageOutcome
from bddengine.ultra import keep_label_caches_out, offline_ultralytics
from bddengine.weights_trust import SHA_KEY, check_weights, record_weights

ULTRA_DIR = "ultralytics"
WEIGHTS_URL = "https://github.com/ultralytics/assets/releases"


def run(
    cfg: EngineConfig,
    *,
    iter: int = 0,
    arm: str | None = None,
    seed: int | None = None,
    resume: bool = False,
    force: bool = False,
    source: str | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Train one flywheel iteration.

    Args:
        cfg: the engine config (``train`` section, ``seed``).
        iter: 0 trains on the train pool; N > 0 adds iteration N-1's accepted auto-labels.
        arm: for N > 0, the mining strategy whose auto-labels to add (e.g. ``prototype``).
        seed: training seed (default ``cfg.seed``); another seed gets its own run tag.
        resume: continue an interrupted training of the same config from ``last.pt``.
        force: re-train even when an identical run exists.
        source: explicit split run (``--from``).
        progress: unused; ultralytics prints its own per-epoch progress.
    """
    t = cfg.train
    split = resolve_input(cfg.runs_dir, "split", explicit=source, hint="bddengine split")
    autolabel = None
    if iter > 0:
        autolabel = resolve_input(
            cfg.runs_dir, "autolabel", iter=iter - 1, tag=arm,
            hint=f"bddengine autolabel --iter {iter - 1}" + (f" --arm {arm}" if arm else ""),
        )
    init = initial_weights(cfg, iter)
    if isinstance(init, Path):
        check_weights(init, "train.model" if iter == 0 or t.next_iter_init != "previous"
                      else f"train --iter {iter} (starts from iteration {iter - 1}'s best.pt)",
                      runs_dir=cfg.runs_dir)
    epochs = t.next_iter_epochs if (iter > 0 and t.next_iter_epochs) else t.epochs
    seed = cfg.seed if seed is None else seed
    fp = fingerprint(config_dict(t), seed, iter, arm, split.name,
                     autolabel.name if autolabel else None, str(init))
    tag = train_tag(iter, arm, seed, cfg.seed)
    same = None if force else find_same_run(cfg.runs_dir, "train", fp, iter=iter, tag=tag)
    if same is not None:
        return _outcome(same, skipped=True)
    resume_dir = find_resumable(cfg.runs_dir, "train", fp, iter=iter, tag=tag) if resume else None
    if resume and resume_dir is None:
        raise StageInputError(
            f"--resume: no interrupted `train --iter {iter}` with this config under {cfg.runs_dir}"
        )
    if resume_dir is not None:
        check_weights(resume_dir / ULTRA_DIR / "weights" / "last.pt", "train --resume", runs_dir=cfg.runs_dir)

    inputs = {"split": str(split.path)} | ({"autolabel": str(autolabel.path)} if autolabel else {})
    with StageRun(cfg.runs_dir, "train", config_dict(cfg), seed, fp, iter=iter, tag=tag,
                  inputs=inputs | {"init_weights": str(init)}, resumable=True,
                  resume_from=resume_dir) as run:
        data_yaml = write_dataset_yaml(run.dir / "dataset.yaml", split, autolabel)
        counts = count_images(data_yaml)
        with interrupts_stick():  # ultralytics swallows a Ctrl-C that lands in its plotting code
            fit(run.dir, init, data_yaml, t, epochs=epochs, seed=seed, resume=resume_dir is not None)
        curves = read_curves(run.dir / ULTRA_DIR / "results.csv")
        ref = run.commit(
            outputs={
                "best": f"{ULTRA_DIR}/weights/best.pt",
                "last": f"{ULTRA_DIR}/weights/last.pt",
                "curves": f"{ULTRA_DIR}/results.csv",
                "dataset_yaml": "dataset.yaml",
            },
            metrics={
                "epochs": epochs,
                "n_train_images": counts["train"],
                "n_val_images": counts["val"],
                "n_autolabel_images": counts.get("autolabel", 0),
                "device": resolve_device(t.device),
                "final": curves[-1] if curves else {},
                "best_epoch_ultralytics_map50": _best(curves),
                "note": "ultralytics' own val numbers; `bddengine eval` gives the BDD100K numbers",
            },
            extra={"curves": curves, "plots": sorted(
                p.name for p in (run.dir / ULTRA_DIR).glob("*.png")),
                SHA_KEY: record_weights(run.dir, (f"{ULTRA_DIR}/weights/best.pt", f"{ULTRA_DIR}/weights/last.pt"))},
        )
    return _outcome(ref, skipped=False)


def initial_weights(cfg: EngineConfig, iter: int) -> Path | str:
    """The weights (or model YAML) this iteration starts from."""
    t = cfg.train
    if iter > 0 and t.next_iter_init == "previous":
        prev = resolve_input(cfg.runs_dir, "train", iter=iter - 1,
                             hint=f"bddengine train --iter {iter - 1}")
        return prev.path / ULTRA_DIR / "weights" / "best.pt"
    return resolve_model(t.model)


def resolve_model(model: str) -> Path | str:
    """Find a ``.pt`` weights file locally, or pass a model YAML through.

    Raises:
        StageInputError: a ``.pt`` file that is neither at the path given nor in
            ultralytics' weights folder; the message says where to put it.
    """
    if model.endswith((".yaml", ".yml")):
        return model
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    from ultralytics.utils import SETTINGS

    in_weights_dir = Path(SETTINGS["weights_dir"]) / path.name
    if in_weights_dir.is_file():
        return in_weights_dir
    raise StageInputError(
        f"train.model={model}: weights file not found (looked at {path.resolve()} and "
        f"{in_weights_dir}). Download {path.name} from {WEIGHTS_URL} and put it at one of "
        "those paths, or set train.model to its path (or to yolov8n.yaml to train from scratch)"
    )


def resolve_device(device: str) -> str:
    """``auto`` -> the first GPU when torch sees one, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def write_dataset_yaml(path: Path, split: RunRef, autolabel: RunRef | None) -> Path:
    """The training dataset: the split's YOLO export plus accepted auto-labels."""
    split_yaml = split.path / "yolo" / "dataset.yaml"
    if not split_yaml.is_file():
        raise StageInputError(f"{split_yaml} missing: re-run `bddengine split --force`")
    spec = yaml.safe_load(split_yaml.read_text())
    base = (split_yaml.parent / spec.get("path", ".")).resolve()
    train = [str((base / p).resolve()) for p in _as_list(spec["train"])]
    if autolabel is not None:
        extra = autolabel.path / "yolo" / "images" / "train"
        if not extra.is_dir():
            raise StageInputError(f"{extra} missing: re-run `bddengine autolabel --force`")
        train.append(str(extra.resolve()))
    data = {
        "path": str(base),
        "train": train,
        "val": [str((base / p).resolve()) for p in _as_list(spec["val"])],
        "names": {i: name for i, name in enumerate(CLASSES)},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def count_images(data_yaml: Path) -> dict[str, int]:
    """Images per role in a dataset YAML written by ``write_dataset_yaml``."""
    spec = yaml.safe_load(data_yaml.read_text())
    counts = {"train": 0, "val": 0}
    for i, folder in enumerate(spec["train"]):
        n = sum(1 for p in Path(folder).iterdir() if p.suffix.lower() == ".jpg")
        counts["train"] += n
        if i > 0:
            counts["autolabel"] = counts.get("autolabel", 0) + n
    counts["val"] = sum(
        sum(1 for p in Path(f).iterdir() if p.suffix.lower() == ".jpg") for f in spec["val"]
    )
    return counts


def fit(run_dir: Path, init: Path | str, data_yaml: Path, t, *, epochs: int, seed: int,
        resume: bool) -> None:
    """Run ultralytics training inside ``run_dir/ultralytics``."""
    from ultralytics import YOLO

    offline_ultralytics()
    keep_label_caches_out()
    if resume:
        last = run_dir / ULTRA_DIR / "weights" / "last.pt"
        if not last.is_file():
            raise StageInputError(f"--resume: {last} missing; re-run without --resume")
        try:
            # resume=<path> and the run's own dataset: with resume=True ultralytics fills in its
            # default dataset (coco8.yaml) and tries to download it
            YOLO(str(last)).train(resume=str(last), data=str(data_yaml))
        except AssertionError as exc:
            if "nothing to resume" not in str(exc):
                raise
            finish_stopped_training(run_dir / ULTRA_DIR / "weights")
        return
    YOLO(str(init)).train(
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
        device=resolve_device(t.device),
        mosaic=t.mosaic,
        cache=False if t.cache == "none" else t.cache,
        amp=t.amp,
        seed=seed,
        deterministic=True,
        project=str(run_dir.resolve()),  # a relative project lands under ultralytics' runs/detect/
        name=ULTRA_DIR,
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


def read_curves(results_csv: Path) -> list[dict[str, float]]:
    """Per-epoch metrics and losses from ultralytics' ``results.csv``."""
    if not results_csv.is_file():
        return []
    with results_csv.open() as f:
        rows = list(csv.DictReader(f))
    return [{k.strip(): float(v) for k, v in row.items() if v not in ("", None)} for row in rows]


def _best(curves: list[dict[str, float]]) -> float | None:
    vals = [c.get("metrics/mAP50(B)") for c in curves if "metrics/mAP50(B)" in c]
    return max(vals) if vals else None


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    return StageOutcome(
        stage="train",
        location=ref.path,
        skipped=skipped,
        wrote=[f"{ref.path}/{ULTRA_DIR}/weights/best.pt (and last.pt)",
               f"{ref.path}/{ULTRA_DIR}/results.csv (per-epoch curves)"],
        numbers={
            "iteration": res["iter"],
            "arm": res["tag"] or "-",
            "train images": f"{m['n_train_images']:,} ({m['n_autolabel_images']:,} auto-labeled)",
            "epochs": m["epochs"],
            "device": m["device"],
            "ultralytics val mAP@0.5 (best epoch)": m["best_epoch_ultralytics_map50"],
            "wall time (s)": res["wall_time_s"],
            "seed": res["seed"],
        },
        look_at=[f"{ref.path}/{ULTRA_DIR}/results.png (training curves)"],
        safe_to_delete=f"{ref.path} (then `bddengine train --iter {res['iter']}` retrains)",
    )
