"""A copied or moved project reads its own runs (issue 15, finding 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.runs import StageRun, parse_run_name
from bddengine.runs.lineage import recorded_run
from conftest import write_config


def _complete(run_dir: Path, stage: str, **extra) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps({"stage": stage, "status": "complete", **extra}))
    return run_dir


def test_inputs_are_recorded_relative_to_the_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    split = _complete(runs / "01_split", "split")
    with StageRun(runs, "train", {}, 42, "fp", iter=0,
                  inputs={"split": str(split), "eval_gt": str(split / "eval_gt.json"),
                          "init_weights": "/elsewhere/yolov8n.pt", "model": "yolov8n.yaml"}) as run:
        ref = run.commit(outputs={}, metrics={})
    inputs = ref.result()["inputs"]
    assert inputs == {"split": "01_split", "eval_gt": "01_split/eval_gt.json",
                      "init_weights": "/elsewhere/yolov8n.pt", "model": "yolov8n.yaml"}


def test_a_copied_project_never_reads_the_original_runs(tmp_path: Path) -> None:
    a = tmp_path / "a" / "runs"
    split = _complete(a / "01_split", "split")
    train = _complete(a / "02_train_iter0", "train", inputs={"split": str(split)})  # absolute, as before
    b = tmp_path / "b" / "runs"
    shutil.copytree(a, b)
    owner = parse_run_name(b / train.name)
    found = recorded_run(owner.path.parent, owner.result()["inputs"]["split"])
    assert found is not None and found.path == b / "01_split"
    shutil.rmtree(b / "01_split")
    assert recorded_run(owner.path.parent, owner.result()["inputs"]["split"]) is None  # gone here: not A's


def test_eval_in_a_moved_project_finds_its_split(tmp_path: Path, tiny_world: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old" / "runs"
    split = _complete(old / "01_split", "split")
    (split / "eval_gt.json").write_text("[]")
    pd.DataFrame({"name": ["a.jpg"], "path": ["a.jpg"]}).to_parquet(split / "eval_pool.parquet")
    _complete(old / "02_train_iter0", "train", iter=0, inputs={"split": str(split)})
    new = tmp_path / "new"
    shutil.move(tmp_path / "old", new)
    cfg = write_config(tmp_path / "c.yaml", tiny_world, new / "runs")
    res = CliRunner().invoke(app, ["eval", "-c", str(cfg), "--from", "02_train_iter0"])
    out = " ".join(res.output.split())
    assert "split run is gone" not in out
    assert res.exit_code == 2 and "best.pt missing" in out  # got past the split, to the weights


def test_train_writes_no_label_cache_into_the_split_run(tmp_path: Path) -> None:
    import ultralytics.data.dataset as dataset

    from bddengine.integrations.ultralytics import keep_label_caches_out

    real = dataset.save_dataset_cache_file
    try:
        keep_label_caches_out()
        (tmp_path / "labels").mkdir()
        cache: dict = {}
        dataset.save_dataset_cache_file("", tmp_path / "labels" / "train.cache", cache, "1")
    finally:
        dataset.save_dataset_cache_file = real
    assert list((tmp_path / "labels").iterdir()) == [] and cache == {"version": "1"}
