import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.stages import STAGES
from conftest import write_config

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
COMMANDS = [s.name for s in STAGES] + ["flywheel", "check", "score", "app"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output and f"bddengine {command}" in result.output


def test_every_command_is_in_readme_and_docs() -> None:
    readme = (REPO / "README.md").read_text()
    docs = (REPO / "docs" / "stages.md").read_text()
    for command in COMMANDS:
        assert f"bddengine {command}" in readme, command
        assert f"`{command}`" in docs, command


def test_bad_config_key_is_reported(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "w", tmp_path / "runs")
    result = runner.invoke(app, ["collect", "--config", str(cfg), "--set", "collect.nope=1"])
    assert result.exit_code == 2
    assert "collect.nope" in result.output and str(cfg) in result.output


def test_collect_without_data_writes_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "missing", runs)
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "bddengine synth" in result.output
    assert not runs.exists() or not any(runs.iterdir())


def test_collect_real_dataset_missing_points_to_readme(tmp_path: Path) -> None:
    (tmp_path / "bdd").mkdir()
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "bdd", tmp_path / "runs",
                       data={"synthetic": False})
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "det_train.json" in result.output and "Getting BDD100K" in result.output


def test_synth_refuses_a_real_dataset_root(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "bdd", tmp_path / "runs",
                       data={"synthetic": False})
    result = runner.invoke(app, ["synth", "--config", str(cfg)])
    assert result.exit_code == 2 and "configs/demo.yaml" in result.output
    assert not (tmp_path / "bdd").exists()


def test_synth_then_collect_end_to_end(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    world = tmp_path / "world"
    cfg = write_config(tmp_path / "c.yaml", world, runs)
    result = runner.invoke(app, ["synth", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert (world / "labels/det_20/det_train.json").is_file()

    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    run = runs / "01_collect"
    for name in ("manifest.parquet", "boxes.parquet", "data_provenance.json", "slice_index.csv",
                 "slice_index.json", "slice_distribution.png", "result.json", "config.yaml"):
        assert (run / name).is_file(), name
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert manifest["labeled"].sum() == 30 and (~manifest["labeled"]).sum() == 20
    assert manifest["name"].is_unique
    mixed = manifest.groupby("video")["labeled"].nunique() > 1  # videos cut by the labeled line
    n_buckets = manifest.loc[manifest["labeled"]].groupby(["weather", "timeofday"]).ngroups
    assert mixed.sum() <= n_buckets  # at most one partly taken video per bucket
    res = json.loads((run / "result.json").read_text())
    assert res["metrics"]["n_labeled"] == 30 and res["seed"] == 42
    prov = json.loads((run / "data_provenance.json").read_text())
    assert len(prov["label_files"]["train"]["sha256"]) == 64
    for word in ("wrote", "look at", "to re-run", "slice_distribution.png"):
        assert word in result.output

    again = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert again.exit_code == 0 and "up to date" in again.output
    assert sorted(p.name for p in runs.iterdir()) == ["01_collect"]
    forced = runner.invoke(app, ["collect", "--config", str(cfg), "--force"])
    assert forced.exit_code == 0 and (runs / "02_collect").is_dir()
    changed = runner.invoke(app, ["collect", "--config", str(cfg), "--set", "seed=7"])
    assert changed.exit_code == 0 and (runs / "03_collect").is_dir()
    assert json.loads((runs / "03_collect/result.json").read_text())["seed"] == 7


def test_collect_reads_the_real_bdd_conformance_file(tmp_path: Path, conformance_dir: Path) -> None:
    """gt.json is a real BDD100K label file without frame attributes."""
    root = tmp_path / "bdd"
    (root / "labels").mkdir(parents=True)
    shutil.copy(conformance_dir / "gt.json", root / "labels" / "gt.json")
    frames = json.loads((conformance_dir / "gt.json").read_text())
    img_dir = root / "images" / "100k" / "val"
    img_dir.mkdir(parents=True)
    from PIL import Image

    for f in frames[:150]:  # images for 150 of the 202 frames; 3 extra images without labels
        Image.new("RGB", (64, 36)).save(img_dir / f["name"])
    for extra in ("aaaaaaaa-00000001.jpg", "aaaaaaaa-00000002.jpg", "aaaaaaaa-00000003.jpg"):
        Image.new("RGB", (64, 36)).save(img_dir / extra)
    cfg = write_config(tmp_path / "c.yaml", root, tmp_path / "runs",
                       data={"synthetic": False, "label_files": {"val": "labels/gt.json"}},
                       collect={"splits": ["val"], "labeled_target": 100, "unlabeled_target": 1000})
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "150 of 202" in result.output
    run = tmp_path / "runs" / "01_collect"
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert manifest["labeled"].sum() == 100
    assert set(manifest["weather"]) == {"undefined"} and set(manifest["scene"]) == {"undefined"}
    assert (manifest["video"] == "b1c66a42-6f7d68ca").sum() == 150
    assert (~manifest["has_gt"]).sum() == 3  # the three images without labels
    boxes = pd.read_parquet(run / "boxes.parquet")
    assert set(boxes["name"]) <= set(manifest.loc[manifest["has_gt"], "name"])


def test_score_reproduces_the_official_numbers(tmp_path: Path, conformance_dir: Path) -> None:
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["score", str(conformance_dir / "gt.json"), str(conformance_dir / "pred.json"),
                                 "--n-boot", "50", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    expected = json.loads((conformance_dir / "expected.json").read_text())
    assert doc["protocol"] == "bdd100k-det"
    assert abs(doc["overall"]["map50"] - expected["AP50"] / 100) < 1e-6
    assert abs(doc["overall"]["map"] - expected["AP"] / 100) < 1e-6
    (only,) = doc["slices"]
    assert only["key"] == {"weather": "undefined", "timeofday": "undefined", "scene": "undefined"}
    assert "55.32" in result.output


def test_score_notes_an_unknown_prediction_frame(tmp_path: Path, conformance_dir: Path) -> None:
    preds = json.loads((conformance_dir / "pred.json").read_text())
    preds.append({"name": "not-in-gt.jpg", "labels": []})
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps(preds))
    result = runner.invoke(app, ["score", str(conformance_dir / "gt.json"), str(extra), "--n-boot", "0"])
    assert result.exit_code == 0 and "prediction frame not in the ground truth" in result.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"name": "not-in-gt.jpg", "labels": []}]))
    result = runner.invoke(app, ["score", str(conformance_dir / "gt.json"), str(other)])
    assert result.exit_code == 2 and "not-in-gt.jpg" in result.output and "Traceback" not in result.output


def test_embed_model_flag_is_validated(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "w", tmp_path / "runs")
    result = runner.invoke(app, ["embed", "--config", str(cfg), "--model", "resnet"])
    assert result.exit_code == 2 and "embed.model" in result.output
