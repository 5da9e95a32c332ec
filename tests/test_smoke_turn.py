"""The 50-frame smoke fixture through every stage that is built, as CI runs it."""

import json
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from conftest import fiftyone_reachable

REPO = Path(__file__).resolve().parents[1]


def test_smoke_turn(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["data"]["root"] = str(tmp_path / "world")
    cfg["runs_dir"] = str(tmp_path / "runs")
    cfg["fiftyone"]["enabled"] = fiftyone_reachable()
    cfg["fiftyone"]["dataset_prefix"] = f"bddengine-test-{tmp_path.name}"
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    for args in (["synth"], ["collect"], ["embed"], ["split"], ["train", "--iter", "0"], ["eval", "--iter", "0"]):
        result = runner.invoke(app, [*args, "--config", str(path)])
        assert result.exit_code == 0, f"{args}: {result.output}"
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["01_collect", "02_embed", "03_split", "04_train_iter0", "05_eval_iter0"]
    for run in runs:
        res = json.loads((tmp_path / "runs" / run / "result.json").read_text())
        assert res["status"] == "complete" and res["seed"] == 42 and res["wall_time_s"] >= 0

    manifest = pd.read_parquet(tmp_path / "runs/01_collect/manifest.parquet")
    assert len(manifest) == 50
    emb = json.loads((tmp_path / "runs/02_embed/result.json").read_text())
    assert emb["random_init"] is True
    train = tmp_path / "runs/04_train_iter0"
    assert (train / "ultralytics/weights/best.pt").is_file() and (train / "ultralytics/results.csv").is_file()
    ev = tmp_path / "runs/05_eval_iter0"
    gt = json.loads((tmp_path / "runs/03_split/eval_gt.json").read_text())
    preds = json.loads((ev / "preds.json").read_text())
    assert sorted(f["name"] for f in preds) == sorted(f["name"] for f in gt)
    table = pd.read_csv(ev / "slice_table.csv")
    assert set(table["grouping"]) == {"slice", "weather", "timeofday", "scene", "overall"}
    overall = table[table["grouping"] == "overall"].iloc[0]
    assert overall["n_frames"] == len(gt)
    for name in ("worst_slice.json", "failures.json", "slice_map50.png", "worst_slice_failures.png"):
        assert (ev / name).is_file(), name

    # the same eval with the same inputs is a no-op
    again = runner.invoke(app, ["eval", "--iter", "0", "--config", str(path)])
    assert again.exit_code == 0 and "up to date" in again.output
    # the scorer users run on their own predictions agrees with eval
    out = tmp_path / "score.json"
    scored = runner.invoke(app, ["score", str(tmp_path / "runs/03_split/eval_gt.json"), str(ev / "preds.json"),
                                 "--n-boot", "0", "--json", str(out)])
    assert scored.exit_code == 0, scored.output
    doc = json.loads(out.read_text())
    res = json.loads((ev / "result.json").read_text())
    assert doc["overall"]["map50"] == res["metrics"]["map50"]
