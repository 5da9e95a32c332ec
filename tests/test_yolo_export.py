"""YOLO export: label conversion on a hand-made case, the folder layout, dataset.yaml."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from bddengine.bdd.categories import CLASSES
from bddengine.integrations.yolo_export import (
    check_export,
    export_split,
    label_path_for,
    write_dataset_yaml,
    yolo_labels,
)


def _boxes(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "category", "raw_category", "x1", "y1", "x2", "y2", "ignored"])


def test_yolo_labels_hand_case() -> None:
    # 200 x 100 image
    boxes = _boxes([
        ("a.jpg", "traffic light", "traffic light", 10, 20, 30, 60, False),   # id 8, inside
        ("a.jpg", "traffic sign", "traffic sign", 100, 0, 150, 50, False),    # id 9
        ("a.jpg", "pedestrian", "other person", 0, 0, 10, 10, True),          # ignored category
        ("a.jpg", "car", "car", 50, 50, 60, 60, True),                        # crowd
        ("a.jpg", "car", "car", -20, 40, 40, 120, False),                     # clipped to 0..40 x 40..100
        ("a.jpg", "truck", "truck", 210, 10, 260, 20, False),                 # fully outside: no area
        ("a.jpg", "traffic sign", "traffic sign", 100, 0, 150, 50, False),    # exact duplicate
        ("a.jpg", "bicycle", "bike", 199, 99, 200.5, 100, False),             # clipped, still has area
    ])
    lines, counts = yolo_labels(boxes, 200, 100)
    assert lines == [
        "8 0.100000 0.400000 0.100000 0.400000",
        "9 0.625000 0.250000 0.250000 0.500000",
        "2 0.100000 0.700000 0.200000 0.600000",
        "7 0.997500 0.995000 0.005000 0.010000",
    ]
    assert counts == {"ignored": 2, "clipped": 3, "degenerate": 1, "duplicate": 1}
    for line in lines:
        cls, *xywh = line.split()
        assert 0 <= int(cls) < len(CLASSES)
        assert all(0 <= float(v) <= 1 and len(v.split(".")[1]) == 6 for v in xywh)


def test_yolo_labels_every_class_id_and_unknown_category() -> None:
    rows = [("f.jpg", c, c, 0, 0, 10, 10, False) for c in CLASSES]
    lines, _ = yolo_labels(_boxes(rows), 100, 100)
    assert [int(line.split()[0]) for line in lines] == list(range(10))
    assert lines[8].startswith("8 ") and lines[9].startswith("9 ")  # traffic light / sign
    with pytest.raises(KeyError, match="trailer"):
        yolo_labels(_boxes([("f.jpg", "trailer", "trailer", 0, 0, 5, 5, False)]), 100, 100)


def test_export_layout_symlinks_and_empty_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    frames = []
    for name in ("aa-01.jpg", "bb-02.jpg"):
        Image.new("RGB", (40, 20), "gray").save(src / name)
        frames.append({"name": name, "path": str(src / name), "width": 40, "height": 20})
    frames = pd.DataFrame(frames)
    boxes = _boxes([
        ("aa-01.jpg", "car", "car", 0, 0, 20, 10, False),
        ("bb-02.jpg", "car", "car", 0, 0, 20, 10, True),      # only an ignored box: empty file
        ("zz-99.jpg", "car", "car", 0, 0, 20, 10, False),     # another frame: not exported
    ])
    root = tmp_path / "yolo"
    stats = export_split(frames, boxes, root, "train")
    assert (stats.n_images, stats.n_boxes, stats.n_empty, stats.n_ignored) == (2, 1, 1, 1)
    image = root / "images/train/aa-01.jpg"
    assert image.is_symlink() and image.resolve() == (src / "aa-01.jpg").resolve()
    assert stats.link_methods == {"symlink": 2}
    assert (root / "labels/train/aa-01.txt").read_text() == "2 0.250000 0.250000 0.500000 0.500000\n"
    assert (root / "labels/train/bb-02.txt").read_text() == ""
    assert sorted(p.name for p in (root / "labels/train").iterdir()) == ["aa-01.txt", "bb-02.txt"]
    assert check_export(root, "train") == []
    (root / "labels/train/bb-02.txt").unlink()
    assert any("no label file" in p for p in check_export(root, "train"))


def test_label_path_follows_the_link_not_the_target() -> None:
    # ultralytics swaps the LAST /images/ of the listed path: the symlink's, not the JPEG's
    assert label_path_for("/r/01_split/yolo/images/train/x-1.jpg") == "/r/01_split/yolo/labels/train/x-1.txt"
    assert label_path_for("/data/images/runs/yolo/images/val/a.b.jpg") == "/data/images/runs/yolo/labels/val/a.b.txt"


def test_dataset_yaml_is_relative_with_exact_names(tmp_path: Path) -> None:
    path = write_dataset_yaml(tmp_path)
    data = yaml.safe_load(path.read_text())
    assert "path" not in data
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert data["nc"] == 10
    assert data["names"] == {i: c for i, c in enumerate(CLASSES)}
    assert data["names"][8] == "traffic light" and data["names"][9] == "traffic sign"
