"""Rehearsal of the real path: `configs/default.yaml` end to end on stand-ins in the real formats.

A BDD100K 100K layout at 1280x720 (det_20 label files without ``videoName``, a
``images/100k/test`` folder of frames without labels), random-init weights saved the way
ultralytics and open_clip save them, and `bddengine flywheel` with only the overrides
that shrink the turn. A random-weight detector labels nothing useful: the rehearsal checks
that the report says what happened, not that it finds a delta.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bddengine.cli import app

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.rehearsal


def _synth(root: Path, seed: int, n_train: int, n_val: int) -> None:
    """A 1280x720 world with all ten classes, one frame per video, written by `bddengine synth`."""
    cfg = {"name": "standin", "seed": seed, "data": {"root": str(root), "synthetic": True},
           "synth": {"n_train": n_train, "n_val": n_val, "width": 1280, "height": 720, "frames_per_video": 1,
                     "jpeg_quality": 70, "workers": 1}}
    path = root.parent / f"synth-{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["synth", "--config", str(path)])
    assert result.exit_code == 0, result.output


def bdd_layout(tmp: Path) -> Path:
    """``images/100k/{train,val,test}`` and ``labels/det_20/det_{train,val}.json`` as BDD100K ships them."""
    _synth(tmp / "w1", 42, 150, 40)
    _synth(tmp / "w2", 7, 40, 0)
    root = tmp / "bdd100k"
    for split in ("train", "val"):
        shutil.copytree(tmp / "w1/images/100k" / split, root / "images/100k" / split)
        frames = json.loads((tmp / f"w1/labels/det_20/det_{split}.json").read_text())
        for f in frames:
            f.pop("videoName", None)  # the real det_20 files carry no video name
        (root / "labels/det_20").mkdir(parents=True, exist_ok=True)
        (root / f"labels/det_20/det_{split}.json").write_text(json.dumps(frames))
    test = root / "images/100k/test"
    test.mkdir(parents=True)
    for i, img in enumerate(sorted((tmp / "w2/images/100k/train").glob("*.jpg"))):
        shutil.copy(img, test / f"test{i:05d}-{img.name}")
    return root


def standin_weights(folder: Path) -> dict[str, Path]:
    """Random-init weights in the real formats: an ultralytics checkpoint and an open_clip state dict."""
    import open_clip
    import torch
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    yolo = folder / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(yolo))
    clip = folder / "open_clip_vit_b_32.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), clip)
    return {"yolo": yolo, "clip": clip}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("realpath")
    root = bdd_layout(tmp)
    weights = standin_weights(tmp / "weights")
    overrides = {
        "runs_dir": str(tmp / "outputs/runs"),
        "data.root": str(root),
        "collect.labeled_target": 150, "collect.unlabeled_target": 80, "collect.min_per_bucket": 1,
        "embed.pretrained": str(weights["clip"]), "embed.batch_size": 16, "embed.workers": 0, "embed.device": "cpu",
        "split.train_size": 50, "split.eval_size": 40, "split.eval_top_slices": 4, "split.eval_include_min": 3,
        "split.val_size": 10, "split.min_per_bucket": 1, "split.near_dup_threshold": None,
        "train.model": str(weights["yolo"]), "train.epochs": 1, "train.imgsz": 96, "train.batch": 8,
        "train.workers": 0, "train.warmup_epochs": 0, "train.device": "cpu",
        "eval.min_eval_frames": 3, "eval.n_boot": 50, "eval.batch": 8, "eval.device": "cpu",
        "mine.k": 8, "mine.near_dup_threshold": None, "mine.device": "cpu",
        "autolabel.labeler": "detector", "autolabel.detector_model": str(weights["yolo"]),
        "autolabel.audit_frames": 3, "autolabel.device": "cpu",
        "report.n_boot": 100, "report.out_dir": str(tmp / "outputs"), "report.pdf": False,
        "fiftyone.enabled": False,
    }
    args = [x for k, v in overrides.items() for x in ("--set", f"{k}={'null' if v is None else v}")]
    result = CliRunner().invoke(app, ["flywheel", "--config", str(REPO / "configs/default.yaml"), *args])
    return tmp, result


def test_default_config_runs_end_to_end_on_standins(rehearsal) -> None:
    tmp, result = rehearsal
    assert result.exit_code == 0, result.output
    runs = tmp / "outputs/runs"
    names = sorted(p.name for p in runs.iterdir())
    assert names[-1].endswith("_report")
    for arm in ("prototype-pyramid", "prototype-human", "random-human"):
        assert any(n.endswith(f"_autolabel_iter0_{arm}") for n in names), arm


def test_report_claims_hold_for_the_rehearsal(rehearsal) -> None:
    tmp, result = rehearsal
    assert result.exit_code == 0, result.output
    runs = tmp / "outputs/runs"
    md = (tmp / "outputs/case_study/case_study_v1.md").read_text()
    appendix = (tmp / "outputs/case_study/case_study_appendix.md").read_text()
    # unlabeled test frames never form a slice
    assert "undefined / undefined / undefined" not in md + appendix
    collect = json.loads(next(runs.glob("*_collect")).joinpath("result.json").read_text())["metrics"]
    assert collect["n_frames"] == collect["n_labeled"] + collect["n_unlabeled"]
    assert "collected from the label files" not in md
    # no saving claimed where the machine recovered nothing
    for run in runs.glob("*_autolabel_iter0_*"):
        m = json.loads((run / "result.json").read_text())["metrics"]
        if not m["recall"]:
            assert not m["cost"]["saving_claimed"] and m["cost"]["usd_saved"] is None, run.name
    assert not re.search(r"\$[\d,.]+ saved", md)
    # the claims that depend on the config follow default.yaml (iteration 1 restarts from train.model);
    # the limitations beyond the first sit in the appendix, so the case study is read whole
    whole = md + appendix
    assert "part of any delta is more training" not in whole and "restarts from `yolov8n.pt`" in whole
    # the weights it read are hashed in the reproduction notes
    assert "yolov8n.pt" in appendix.split("**Weights files**")[1].split("**Commands**")[0]


def test_label_sources_of_one_mining_arm_are_not_reported_missing(rehearsal) -> None:
    tmp, result = rehearsal
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp / "outputs/case_study/headline.json").read_text())
    assert not doc["arms_missing"] and "prototype" not in doc["arms"]
    md = (tmp / "outputs/case_study/case_study_v1.md").read_text()
    assert "Missing arm" not in md
    # a random-weight detector before and after: iteration 1 scores what iteration 0 scored, said plainly
    for arm in doc["arms"]:
        deltas = [r["delta"] for r in doc["rows"] if r["arm"] == arm]
        assert (f"{arm} changed nothing" in md) is all(abs(x) < 1e-12 for x in deltas), arm
