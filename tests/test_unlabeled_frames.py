"""Images without a label file (``images/100k/test``): mining pool only, in no slice.

Their weather, timeofday and scene read ``undefined`` because nobody recorded them, so
they must not become an "undefined / undefined / undefined" slice in the slice index,
the slice chart or the split table, nor count as misses in mining precision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bddengine.config import load_config
from bddengine.curation.pools import split_table
from bddengine.curation.slice_index import slice_index
from bddengine.stages import collect
from conftest import fiftyone_reachable, write_config


def _world_with_test_images(tiny_world: Path, tmp_path: Path, n: int = 6) -> Path:
    root = Path(shutil.copytree(tiny_world, tmp_path / "world"))
    (root / "synth_meta.json").unlink(missing_ok=True)  # no longer only what synth made
    test = root / "images" / "100k" / "test"
    test.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(test / f"cafe{i:04d}-0000beef.jpg")
    return root


def test_collect_marks_unlabeled_images_and_keeps_them_out_of_every_slice(tiny_world: Path, tmp_path: Path) -> None:
    root = _world_with_test_images(tiny_world, tmp_path)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, tmp_path / "runs",
                                   collect={"labeled_target": 30, "unlabeled_target": 60, "min_per_bucket": 1},
                                   fiftyone={"enabled": False}))
    out = collect.run(cfg, progress=False)
    manifest = pd.read_parquet(out.location / "manifest.parquet")
    unknown = manifest[~manifest["attributes_known"]]
    assert len(unknown) == 6 and unknown["split"].eq("test").all() and not unknown["has_gt"].any()
    assert manifest.loc[manifest["has_gt"], "attributes_known"].all()
    index = json.loads((out.location / "slice_index.json").read_text())
    assert index["n_attributes_unknown"] == 6 and index["n_frames"] == len(manifest) - 6
    keys = {(r["weather"], r["timeofday"], r["scene"]) for r in index["slices"]}
    assert ("undefined", "undefined", "undefined") not in keys
    csv = pd.read_csv(out.location / "slice_index.csv")
    assert not ((csv["weather"] == "undefined") & (csv["scene"] == "undefined")).any()
    result = json.loads((out.location / "result.json").read_text())["metrics"]
    assert result["n_attributes_unknown"] == 6 and result["n_slices"] == len(index["slices"])
    assert out.numbers["frames with unknown attributes"].startswith("6 ")


def test_slice_tables_skip_unknown_attributes() -> None:
    frames = pd.DataFrame({
        "weather": ["clear", "clear", "undefined"], "timeofday": ["daytime", "daytime", "undefined"],
        "scene": ["highway", "highway", "undefined"], "attributes_known": [True, True, False],
    })
    idx = slice_index(frames)
    assert idx.slices["n_frames"].tolist() == [2] and idx.n_attributes_unknown == 1
    table = split_table(frames, np.array(["train", "eval", "mining"], dtype=object))
    assert len(table) == 1 and table["mining"].tolist() == [0]
    assert slice_index(frames.drop(columns="attributes_known")).slices["n_frames"].sum() == 3  # older manifests


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_mirror_tags_unknown_attributes_instead_of_a_slice(tiny_world: Path, tmp_path: Path) -> None:
    import os

    import fiftyone as fo

    root = _world_with_test_images(tiny_world, tmp_path)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, tmp_path / "runs", name=f"u{os.getpid()}",
                                   collect={"labeled_target": 30, "unlabeled_target": 60, "min_per_bucket": 1},
                                   fiftyone={"enabled": True, "dataset_prefix": "bddengine-test"}))
    out = collect.run(cfg, progress=False)
    name = json.loads((out.location / "result.json").read_text())["metrics"]["fiftyone_dataset"]
    ds = fo.load_dataset(name)
    try:
        unknown = ds.match_tags("attributes:unknown")
        assert unknown.count() == 6 and set(unknown.values("weather")) == {None}
        assert not any(t.startswith(("weather:", "timeofday:", "scene:")) for t in unknown.distinct("tags"))
    finally:
        fo.delete_dataset(name)
