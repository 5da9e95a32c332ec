"""Stage ``train --iter N``: fine-tune an ultralytics YOLOv8 detector.

resolve the split (and, for N > 0, the accepted auto-labels of iteration N-1) ->
write the dataset YAML -> train inside the run folder -> keep best/last weights,
per-epoch curves and ultralytics' plots -> result.json.

An interrupted training keeps its hidden folder; ``--resume`` continues it from
``last.pt``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from bddengine.bdd.categories import CLASSES
from bddengine.config import EngineConfig, TrainConfig, config_dict, fingerprint
from bddengine.errors import StageInputError
from bddengine.integrations.ultralytics import fit, log_lines, resolve_device, resolve_weights
from bddengine.labeling.sources import added_nothing
from bddengine.lifecycle import interrupts_stick
from bddengine.runs import (
    RunRef,
    StageRun,
    find_resumable,
    resolve_input,
)
from bddengine.runs.layout import AUTOLABEL, SPLIT, TRAIN
from bddengine.runs.lineages import lineage_tag, train_tag, trained_labels
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged
from bddengine.weights_trust import SHA_KEY, check_weights, record_weights


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
    seed = cfg.seed if seed is None else seed
    split = resolve_input(cfg.runs_dir, "split", explicit=source, hint="bddengine split")
    autolabel, previous = lineage_inputs(cfg, iter, arm, seed)
    labels = (*(trained_labels(previous) if previous else ()), *([autolabel] if autolabel else []))
    init = initial_weights(cfg, iter, previous)
    if isinstance(init, Path):
        check_weights(init, "train.model" if iter == 0 or t.next_iter_init != "previous"
                      else f"train --iter {iter} (starts from iteration {iter - 1}'s best.pt)",
                      runs_dir=cfg.runs_dir)
    epochs = t.next_iter_epochs if (iter > 0 and t.next_iter_epochs) else t.epochs
    label_id = [r.name for r in labels] if previous else autolabel.name if autolabel else None
    fp = fingerprint(config_dict(t), seed, iter, arm, split.name, label_id, str(init))
    inputs = ({"split": str(split.path)} | ({"autolabel": str(autolabel.path)} if autolabel else {})
              | ({"train": str(previous.path)} if previous else {}))
    job = Job("train", fp, seed, _outcome, iter=iter, tag=train_tag(iter, arm, seed, cfg.seed),
              inputs=inputs | {"init_weights": str(init)}, ultralytics_log=True, resumable=True)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    job = replace(job, resume_from=interrupted_run(cfg.runs_dir, job) if resume else None)
    return execute(cfg, job, lambda run: train_detector(
        run, t, split, labels, init, epochs=epochs, seed=seed, resume=job.resume_from is not None))


def lineage_inputs(cfg: EngineConfig, iter: int, arm: str | None, seed: int) -> tuple[RunRef | None, RunRef | None]:
    """The autolabel run iteration ``iter`` adds, and from iteration 2 on the lineage's training it continues.

    Iteration 1 adds the arm's turn-1 labels (shared by its seeds); iteration ``t >= 2`` adds
    the lineage's own (``arm``, ``seed``) labels of turn ``t`` and starts from its iteration ``t - 1``.

    Raises:
        RunLookupError: a run is missing; StageInputError: the autolabel run added no labeled box.
    """
    if iter == 0:
        return None, None
    if iter >= 2 and not arm:
        raise StageInputError(f"train --iter {iter} continues one lineage: give --arm (and --seed for another seed)")
    flags = (f" --arm {arm}" if arm else "") + (f" --seed {seed}" if seed != cfg.seed else "")
    tag = lineage_tag(arm, seed) if iter >= 2 and arm else arm
    autolabel = resolve_input(cfg.runs_dir, "autolabel", iter=iter - 1, tag=tag,
                              hint=f"bddengine autolabel --iter {iter - 1}" + (flags if iter >= 2 else
                                                                               f" --arm {arm}" if arm else ""))
    refuse_empty_labels(autolabel, iter)
    if iter == 1:
        return autolabel, None
    previous = resolve_input(cfg.runs_dir, "train", iter=iter - 1, tag=train_tag(iter - 1, arm, seed, cfg.seed),
                             hint=f"bddengine train --iter {iter - 1}{flags}")
    return autolabel, previous


def interrupted_run(runs_dir: Path, job: Job) -> Path:
    """The interrupted training ``--resume`` continues: same stage, iteration, tag and fingerprint.

    Raises:
        StageInputError: there is none, or its ``last.pt`` fails `check_weights`.
    """
    found = find_resumable(runs_dir, job.stage, job.fingerprint, iter=job.iter, tag=job.tag)
    if found is None:
        raise StageInputError(
            f"--resume: no interrupted `train --iter {job.iter}` with this config under {runs_dir}"
        )
    check_weights(TRAIN.last_weights.at(found), "train --resume", runs_dir=runs_dir)
    return found


def train_detector(
    run: StageRun, t: TrainConfig, split: RunRef, labels: Sequence[RunRef], init: Path | str, *, epochs: int,
    seed: int, resume: bool,
) -> Commit:
    """Write the dataset YAML, train inside the run folder, and record the curves and the weights' digests.

    ``labels``: every autolabel run whose accepted frames join the train pool (a lineage's, oldest first).
    """
    data_yaml = write_dataset_yaml(TRAIN.dataset_yaml.at(run), split, labels)
    counts = count_images(data_yaml)
    with interrupts_stick():  # ultralytics swallows a Ctrl-C that lands in its plotting code
        fit(run.dir, init, data_yaml, t, epochs=epochs, seed=seed, resume=resume)
    curves = read_curves(TRAIN.curves.at(run))
    return Commit(
        outputs=TRAIN.outputs(TRAIN.best_weights, TRAIN.last_weights, TRAIN.curves, TRAIN.dataset_yaml),
        metrics={
            "epochs": epochs,
            "n_train_images": counts["train"],
            "n_val_images": counts["val"],
            "n_autolabel_images": counts.get("autolabel", 0),
            "device": resolve_device(t.device, "train.device"),
            "final": curves[-1] if curves else {},
            "best_epoch_ultralytics_map50": _best(curves),
            "note": "ultralytics' own val numbers; `bddengine eval` gives the BDD100K numbers",
        },
        extra={**({"autolabels": [r.name for r in labels]} if labels else {}), "curves": curves, "plots": sorted(
            p.name for p in TRAIN.ultralytics_dir(run).glob("*.png")),
            SHA_KEY: record_weights(run.dir, (TRAIN.best_weights.file, TRAIN.last_weights.file))},
    )


def refuse_empty_labels(autolabel: RunRef, iter: int) -> None:
    """Stop iteration ``iter`` when its autolabel run added no labeled box.

    Training again on the same frames would retrain iteration ``iter - 1`` and report a
    delta that no label caused.

    Raises:
        StageInputError: the run's ``n_train_boxes`` is 0 (or missing).
    """
    m = autolabel.result().get("metrics") or {}
    if not added_nothing(m):
        return
    n = m.get("n_boxes") or {}
    raise StageInputError(
        f"train --iter {iter} --arm {autolabel.tag}: {autolabel.name} added no labeled box "
        f"({m.get('n_frames', '?')} mined frames; boxes accepted {n.get('accept', 0)}, review {n.get('review', 0)}, "
        f"dropped {n.get('drop', 0)}; {m.get('n_human_frames', 0)} labeled by humans), so iteration {iter} would "
        f"train on iteration {iter - 1}'s data again and any delta would be noise. Lower autolabel.accept (or "
        "calibrate with autolabel.audit_frames), use a -pyramid or -human arm, or a stronger labeler, then "
        f"re-run `bddengine autolabel --iter {iter - 1} --arm {autolabel.tag} --force`")


def initial_weights(cfg: EngineConfig, iter: int, previous: RunRef | None = None) -> Path | str:
    """The weights (or model YAML) this iteration starts from: with ``train.next_iter_init: previous``,
    ``previous``'s best.pt (the lineage's last iteration), else iteration ``iter - 1``'s newest."""
    t = cfg.train
    if iter > 0 and t.next_iter_init == "previous":
        prev = previous or resolve_input(cfg.runs_dir, "train", iter=iter - 1,
                                         hint=f"bddengine train --iter {iter - 1}")
        return TRAIN.best_weights.at(prev)
    return resolve_model(t.model)


def resolve_model(model: str) -> Path | str:
    """Find a ``.pt`` weights file locally, or pass a model YAML through.

    Raises:
        StageInputError: a ``.pt`` file that is neither at the path given nor in
            ultralytics' weights folder; the message says where to put it.
    """
    if model.endswith((".yaml", ".yml")):
        return model
    return resolve_weights(model, "train.model", otherwise=" (or to yolov8n.yaml to train from scratch)")


def write_dataset_yaml(path: Path, split: RunRef, labels: Sequence[RunRef]) -> Path:
    """The training dataset: the split's YOLO export plus the accepted auto-labels of every run in ``labels``."""
    split_yaml = SPLIT.yolo_dataset.require(split, "bddengine split --force")
    spec = yaml.safe_load(split_yaml.read_text())
    base = (split_yaml.parent / spec.get("path", ".")).resolve()
    train = [str((base / p).resolve()) for p in _as_list(spec["train"])]
    for autolabel in labels:
        extra = AUTOLABEL.yolo_images.require(autolabel, "bddengine autolabel --force")
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
        wrote=[f"{TRAIN.best_weights.at(ref)} (and last.pt)", f"{TRAIN.curves.at(ref)} (per-epoch curves)"],
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
        look_at=[f"{TRAIN.ultralytics_dir(ref) / 'results.png'} (training curves)", *log_lines(ref)],
        safe_to_delete=f"{ref.path} (then `bddengine train --iter {res['iter']}` retrains)",
    )
