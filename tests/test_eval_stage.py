import json
import random
from pathlib import Path

import pandas as pd
import pytest

from bddengine.errors import StageInputError
from bddengine.evaluation import build_match_cache
from bddengine.runs import RunRef
from bddengine.stages.eval import failure_frames, pick_worst, slice_table, write_tables
from bddengine.stages.train import resolve_model, write_dataset_yaml

WEATHER = ["clear", "rainy", "foggy"]
TIME = ["daytime", "night"]


@pytest.fixture(scope="module")
def scored(conformance_dir: Path):
    gt = json.loads((conformance_dir / "gt.json").read_text())
    preds = json.loads((conformance_dir / "pred.json").read_text())
    rng = random.Random(0)
    for f in gt:
        f["attributes"] = {"weather": rng.choice(WEATHER), "timeofday": rng.choice(TIME), "scene": "highway"}
    cache = build_match_cache(gt, preds)
    return gt, preds, cache


def test_slice_table_has_every_slice_marginal_and_overall(scored) -> None:
    gt, _, cache = scored
    table = slice_table(cache, gt, n_boot=50, seed=42)
    groups = table["grouping"].value_counts().to_dict()
    assert groups == {"slice": 6, "weather": 3, "timeofday": 2, "scene": 1, "overall": 1}
    overall = table[table["grouping"] == "overall"].iloc[0]
    assert overall["n_frames"] == 202 and abs(overall["map50"] - 0.553239004090397) < 1e-9
    slices = table[table["grouping"] == "slice"]
    assert slices["n_frames"].sum() == 202
    assert list(slices["map50"]) == sorted(slices["map50"])  # ascending, worst first
    assert (slices["ci_lo"] <= slices["map50"]).all() and (slices["map50"] <= slices["ci_hi"]).all()
    scene = table[table["grouping"] == "scene"].iloc[0]
    assert abs(scene["map50"] - overall["map50"]) < 1e-12  # one scene: same frames as overall


def test_pick_worst_respects_min_frames(scored) -> None:
    gt, _, cache = scored
    table = slice_table(cache, gt, n_boot=0, seed=42)
    slices = table[table["grouping"] == "slice"]
    worst = pick_worst(table, min_frames=1)
    assert worst["map50"] == pytest.approx(slices["map50"].min())
    big = pick_worst(table, min_frames=33)
    eligible = slices[slices["n_frames"] >= 33]
    assert big["map50"] == pytest.approx(eligible["map50"].min()) and big["n_frames"] >= 33
    assert pick_worst(table, min_frames=10_000) is None


def test_failure_frames_and_reasons() -> None:
    per_frame = {
        "a": {"ap50": 0.0, "recall": 0.0, "n_gt": 3, "n_pred": 0, "tp": 0, "fp": 0, "fn": 3},
        "b": {"ap50": 0.5, "recall": 0.2, "n_gt": 5, "n_pred": 4, "tp": 1, "fp": 3, "fn": 4},
        "c": {"ap50": 0.9, "recall": 0.9, "n_gt": 10, "n_pred": 9, "tp": 9, "fp": 0, "fn": 1},
        "d": {"ap50": None, "recall": None, "n_gt": 0, "n_pred": 2, "tp": 0, "fp": 2, "fn": 0},
    }
    gt = [{"name": "a", "labels": [{"category": "car"}] * 3}]
    out = failure_frames(per_frame, gt, recall_below=0.3)
    assert [f["name"] for f in out] == ["a", "b"]
    assert any("AP@0.5 is 0" in r for r in out[0]["reasons"])
    assert any("no detection" in r for r in out[0]["reasons"]) and out[0]["gt_classes"] == {"car": 3}
    assert any("missed 4 of 5" in r for r in out[1]["reasons"]) and any("3 false" in r for r in out[1]["reasons"])


def test_tables_written(scored, tmp_path: Path) -> None:
    gt, _, cache = scored
    table = slice_table(cache, gt, n_boot=0, seed=42)
    write_tables(tmp_path, table)
    back = pd.read_csv(tmp_path / "slice_table.csv")
    assert len(back) == len(table)
    md = (tmp_path / "slice_table.md").read_text().splitlines()
    assert md[0].startswith("| grouping") and len(md) == len(table) + 2


def test_missing_weights_say_where_to_put_them() -> None:
    with pytest.raises(StageInputError) as err:
        resolve_model("yolov8m.pt")
    msg = str(err.value)
    assert "yolov8m.pt" in msg and "github.com/ultralytics/assets/releases" in msg and "train.model" in msg
    assert resolve_model("yolov8n.yaml") == "yolov8n.yaml"


def test_dataset_yaml_adds_autolabel_images(tmp_path: Path) -> None:
    import yaml

    split = tmp_path / "03_split"
    (split / "yolo" / "images" / "train").mkdir(parents=True)
    (split / "yolo" / "images" / "val").mkdir(parents=True)
    (split / "yolo" / "dataset.yaml").write_text("train: images/train\nval: images/val\nnames: {0: pedestrian}\n")
    auto = tmp_path / "09_autolabel_iter0_prototype"
    (auto / "yolo" / "images" / "train").mkdir(parents=True)
    out = write_dataset_yaml(tmp_path / "d.yaml", RunRef(split, 3, "split"),
                             [RunRef(auto, 9, "autolabel", 0, "prototype")])
    spec = yaml.safe_load(out.read_text())
    assert spec["train"] == [str(split / "yolo/images/train"), str(auto / "yolo/images/train")]
    assert spec["val"] == [str(split / "yolo/images/val")]
    assert spec["names"][8] == "traffic light" and len(spec["names"]) == 10
    with pytest.raises(StageInputError, match="autolabel"):
        write_dataset_yaml(tmp_path / "d.yaml", RunRef(split, 3, "split"), [RunRef(tmp_path / "x", 9, "autolabel")])


def test_predict_frames_keeps_the_callers_order_and_names_an_unreadable_image(tmp_path: Path) -> None:
    """The detector pass streams a file list (read in ultralytics' sorted order): results come back per name."""
    from PIL import Image
    from ultralytics import YOLO

    from bddengine.integrations.ultralytics import predict_frames

    weights = tmp_path / "scratch.pt"
    YOLO("yolov8n.yaml").save(str(weights))
    paths = []
    for name, colour in (("c.jpg", (200, 0, 0)), ("a.jpg", (0, 200, 0)), ("b.jpg", (0, 0, 200))):
        Image.new("RGB", (96, 64), colour).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    names = ["frame-c", "frame-a", "frame-b"]
    preds = predict_frames(weights, paths, names, imgsz=64, conf=0.0, iou=0.7, max_det=5, batch=2,
                           device="cpu", progress=False)
    assert [f["name"] for f in preds] == names and all(len(f["labels"]) <= 5 for f in preds)
    assert predict_frames(weights, [], [], imgsz=64, conf=0.0, iou=0.7, max_det=5, batch=2, device="cpu",
                          progress=False) == []
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(StageInputError, match=r"1 of 4 frames .*broken\.jpg"):
        predict_frames(weights, [*paths, str(tmp_path / "broken.jpg")], [*names, "frame-x"], imgsz=64, conf=0.0,
                       iou=0.7, max_det=5, batch=2, device="cpu", progress=False)
