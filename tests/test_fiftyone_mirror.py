import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.fiftyone_mirror import detections_by_frame, slice_tags
from conftest import fiftyone_reachable, write_config


def test_relative_boxes_and_tags() -> None:
    boxes = pd.DataFrame({"name": ["a", "a"], "category": ["car", "pedestrian"],
                          "x1": [10.0, 0.0], "y1": [20.0, 0.0], "x2": [30.0, 64.0], "y2": [60.0, 36.0],
                          "ignored": [False, True]})
    dets = detections_by_frame(boxes, {"a": (64, 36)})["a"]
    assert dets[0]["bounding_box"] == pytest.approx([10 / 64, 20 / 36, 20 / 64, 40 / 36])
    assert dets[1] == {"label": "pedestrian", "bounding_box": [0.0, 0.0, 1.0, 1.0], "iscrowd": True}
    assert slice_tags("foggy", "night", "highway") == ["weather:foggy", "timeofday:night", "scene:highway"]


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_collect_mirrors_into_fiftyone(tiny_world: Path, tmp_path: Path) -> None:
    import fiftyone as fo

    cfg = write_config(tmp_path / "c.yaml", tiny_world, tmp_path / "runs", name=f"t{os.getpid()}",
                       fiftyone={"enabled": True, "dataset_prefix": "bddengine-test"})
    result = CliRunner().invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "01_collect"
    name = json.loads((run / "result.json").read_text())["metrics"]["fiftyone_dataset"]
    ds = fo.load_dataset(name)
    try:
        manifest = pd.read_parquet(run / "manifest.parquet")
        boxes = pd.read_parquet(run / "boxes.parquet")
        assert len(ds) == len(manifest) and ds.persistent
        assert ds.info["bddengine_runs"]["collect"] == "01_collect"
        labeled = set(manifest.loc[manifest["labeled"], "name"])
        assert ds.match_tags("labeled").count() == len(labeled)
        n_boxes = int(boxes["name"].isin(labeled).sum())
        assert ds.count("ground_truth.detections") == n_boxes
        first = manifest.iloc[0]
        tag = f"weather:{first['weather']}"
        assert ds.match_tags(tag).count() == int((manifest["weather"] == first["weather"]).sum())
    finally:
        fo.delete_dataset(name)
