"""Weights files are vouched for before anything unpickles them (issue 15, finding 4)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.errors import StageInputError
from bddengine.weights_trust import SHA_KEY, check_weights, sha256_file, trust
from conftest import write_config


class _Payload:
    """Unpickling this writes ``target``: the code a crafted weights file would run."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({str(self.target)!r}, 'w').write('ran')",))


def crafted_weights(path: Path, target: Path, *, legacy: bool = False) -> Path:
    """A ``.pt`` whose unpickling writes ``target`` (torch zip format, or a plain pickle)."""
    import torch

    obj = {"model": _Payload(target), "train_args": {}}
    if legacy:
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    return path


def _complete(run_dir: Path, stage: str, **extra) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps({"stage": stage, "status": "complete", **extra}))
    return run_dir


@pytest.mark.parametrize("legacy", [False, True])
def test_crafted_pickle_is_refused_and_its_code_never_runs(tmp_path: Path, legacy: bool) -> None:
    target = tmp_path / "pwned.txt"
    evil = crafted_weights(tmp_path / "evil.pt", target, legacy=legacy)
    with pytest.raises(StageInputError) as err:
        check_weights(evil, "train.model", runs_dir=tmp_path / "runs")
    assert not target.exists()
    msg = str(err.value)
    assert "train.model" in msg and str(evil) in msg and "--trust-weights" in msg
    assert "Unsupported" in msg  # what the restricted unpickler refused
    assert legacy or "exec" in msg


def test_an_ultralytics_checkpoint_loads_restricted(tmp_path: Path) -> None:
    from ultralytics import YOLO

    path = tmp_path / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(path)
    assert check_weights(path, "train.model") == "safe"


def test_a_state_dict_loads_restricted(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "sam.pt"
    torch.save({"model": torch.nn.Linear(2, 2).state_dict()}, path)
    assert check_weights(path, "autolabel.sam_model") == "safe"


def test_trust_flag_lets_a_named_file_through(tmp_path: Path) -> None:
    evil = crafted_weights(tmp_path / "own.pt", tmp_path / "x.txt")
    trust([evil])
    try:
        assert check_weights(evil, "train.model") == "trusted"
    finally:
        from bddengine import weights_trust

        weights_trust._trusted.discard(evil.resolve())
    assert not (tmp_path / "x.txt").exists()  # vouching does not load it


def test_recorded_digest_vouches_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _complete(runs / "03_train_iter0", "train")
    (run / "ultralytics" / "weights").mkdir(parents=True)
    weights = crafted_weights(run / "ultralytics" / "weights" / "best.pt", tmp_path / "x.txt")
    rel = "ultralytics/weights/best.pt"
    (run / "result.json").write_text(json.dumps(
        {"stage": "train", "status": "complete", SHA_KEY: {rel: sha256_file(weights)}}))
    assert check_weights(weights, "eval --from 03_train_iter0", runs_dir=runs) == "recorded"
    # the same folder seen from another project vouches for nothing
    with pytest.raises(StageInputError, match="restricted unpickler"):
        check_weights(weights, "eval --from 03_train_iter0", runs_dir=tmp_path / "other")
    with weights.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(StageInputError, match="changed after"):
        check_weights(weights, "eval --from 03_train_iter0", runs_dir=runs)
    assert not (tmp_path / "x.txt").exists()


def test_cli_train_model_crafted_is_refused(tmp_path: Path, tiny_world: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    _complete(runs / "01_split", "split")
    target = tmp_path / "pwned.txt"
    evil = crafted_weights(tmp_path / "evil.pt", target)
    cfg = write_config(tmp_path / "c.yaml", tiny_world, runs)
    res = CliRunner().invoke(app, ["train", "-c", str(cfg), "--set", f"train.model={evil}"])
    assert res.exit_code == 2, res.output
    assert "--trust-weights" in res.output and "Traceback" not in res.output
    assert not target.exists()
    assert not [p for p in runs.iterdir() if p.name.startswith(".tmp_")]


def test_cli_eval_from_a_folder_with_a_crafted_best_pt_is_refused(tmp_path: Path, tiny_world: Path,
                                                                  monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    elsewhere = tmp_path / "downloaded"
    split = _complete(elsewhere / "02_split", "split")
    (split / "eval_gt.json").write_text("[]")
    pd.DataFrame({"name": ["a.jpg"], "path": [str(split / "a.jpg")]}).to_parquet(split / "eval_pool.parquet")
    train = _complete(elsewhere / "03_train_iter0", "train", inputs={"split": str(split)}, iter=0)
    (train / "ultralytics" / "weights").mkdir(parents=True)
    target = tmp_path / "pwned.txt"
    crafted_weights(train / "ultralytics" / "weights" / "best.pt", target)
    cfg = write_config(tmp_path / "c.yaml", tiny_world, runs)
    res = CliRunner().invoke(app, ["eval", "-c", str(cfg), "--from", str(train)])
    assert res.exit_code == 2, res.output
    assert "best.pt" in res.output and "--trust-weights" in res.output
    assert not target.exists()
