"""Tests for bddengine.bdd.loader: reading det_20 label files into tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bddengine.bdd import loader
from bddengine.bdd.categories import CLASSES, column_name
from bddengine.bdd.loader import (
    BOX_COLUMNS,
    FRAME_COLUMNS,
    LabelFileError,
    MalformedReport,
    frames_to_tables,
    index_images,
    join_stats,
    load_label_file,
)

_REPO = Path(__file__).resolve().parents[1]
CONFORMANCE_GT = _REPO / "tests/data/conformance/bdd100k-det-eval/gt.json"


def _label(lid: str, category: str, box: dict | None = None, **attrs: object) -> dict:
    label: dict = {"id": lid, "category": category, "attributes": {"occluded": False, **attrs}}
    if box is not None:
        label["box2d"] = box
    return label


def _box(x1: float = 10.0, y1: float = 20.0, x2: float = 50.0, y2: float = 60.0) -> dict:
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


ATTRS = {"weather": "foggy", "timeofday": "night", "scene": "tunnel"}


@pytest.fixture()
def frames() -> list[dict]:
    """Four frames covering the good, the ignored and the malformed cases."""
    return [
        {
            "name": "aaaaaaaa-00000001.jpg",
            "attributes": ATTRS,
            "timestamp": 10000,
            "labels": [
                _label("1", "car", _box(), occluded=True),
                _label("2", "traffic light", _box(1, 2, 3, 4), truncated=True),
                _label("3", "van", _box()),  # legacy -> car
                _label("4", "other person", _box()),  # ignored category
                _label("5", "car", _box(), crowd=True),  # crowd -> ignored
                _label("6", "car"),  # missing box2d
                _label("7", "car", _box(x1="10")),  # non-numeric
                _label("8", "car", _box(x2=10.0)),  # x2 == x1
                _label("9", "car", _box(y2=math.nan)),  # NaN
                _label("10", "hovercraft", _box()),  # unknown category
                {"id": "11", "category": "lane", "poly2d": []},  # not a detection label
            ],
        },
        # No "labels" key at all: valid, zero boxes. No attributes: malformed.
        {"name": "bbbbbbbb-00000002.jpg", "videoName": "video-b"},
        {
            "name": "cccccccc-00000003.jpg",
            "attributes": {"weather": "sunny", "timeofday": "daytime"},
            "labels": [_label("12", "bike", _box())],
        },
        {"name": "dddddddd-00000004.jpg", "attributes": ATTRS, "labels": []},
    ]


def test_load_label_file_reads_a_list(tmp_path: Path) -> None:
    path = tmp_path / "det.json"
    path.write_text(json.dumps([{"name": "a.jpg"}]))
    assert load_label_file(path) == [{"name": "a.jpg"}]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ('[{"name": ', "not valid JSON"),
        ('{"frames": []}', "expected a list"),
    ],
)
def test_load_label_file_errors_name_the_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "det_broken.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LabelFileError, match=expected) as info:
        load_label_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_label_file_of_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="cannot read") as info:
        load_label_file(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_label_file_accepts_python_json_nan(tmp_path: Path) -> None:
    # Python's json.dump writes NaN literals; the NaN box is counted, not fatal.
    path = tmp_path / "det_nan.json"
    path.write_text(json.dumps([{"name": "a.jpg", "labels": [_label("1", "car", _box(x1=math.nan))]}]))
    parsed = frames_to_tables(load_label_file(path), source_split="val")
    assert parsed.malformed.counts[loader.NAN_BOX] == 1
    assert len(parsed.boxes) == 0


def test_frames_table(frames: list[dict]) -> None:
    parsed = frames_to_tables(
        frames,
        source_split="val",
        image_index={"aaaaaaaa-00000001.jpg": Path("/img/aaaaaaaa-00000001.jpg")},
    )
    df = parsed.frames.set_index("name")
    assert list(parsed.frames.columns) == list(FRAME_COLUMNS)
    assert len(df) == 4
    assert set(df["split"]) == {"val"}

    a = df.loc["aaaaaaaa-00000001.jpg"]
    assert a["path"] == "/img/aaaaaaaa-00000001.jpg"
    assert a["video"] == "aaaaaaaa-00000001"
    assert (a["weather"], a["timeofday"], a["scene"]) == ("foggy", "night", "tunnel")
    assert a["timestamp"] == 10000
    assert a[column_name("car")] == 2  # car + van; crowd car is ignored
    assert a[column_name("traffic light")] == 1
    assert a[column_name("pedestrian")] == 0  # "other person" is ignored
    assert a["n_ignored"] == 2
    assert a["n_boxes"] == 5

    b = df.loc["bbbbbbbb-00000002.jpg"]
    assert pd.isna(b["path"])
    assert b["video"] == "video-b"
    assert (b["weather"], b["timeofday"], b["scene"]) == ("undefined",) * 3
    assert b["n_boxes"] == 0
    assert pd.isna(b["timestamp"])

    c = df.loc["cccccccc-00000003.jpg"]
    assert (c["weather"], c["timeofday"], c["scene"]) == ("undefined", "daytime", "undefined")
    assert c[column_name("bicycle")] == 1

    class_columns = [column_name(cls) for cls in CLASSES]
    assert (df[class_columns].sum(axis=1) + df["n_ignored"] == df["n_boxes"]).all()


def test_boxes_table(frames: list[dict]) -> None:
    boxes = frames_to_tables(frames, source_split="train", image_index={}).boxes
    assert list(boxes.columns) == list(BOX_COLUMNS)
    assert boxes["label_id"].tolist() == ["1", "2", "3", "4", "5", "12"]
    assert boxes["category"].tolist() == ["car", "traffic light", "car", "pedestrian", "car", "bicycle"]
    assert boxes["raw_category"].tolist() == ["car", "traffic light", "van", "other person", "car", "bike"]
    assert boxes["ignored"].tolist() == [False, False, False, True, True, False]
    assert boxes["occluded"].tolist() == [True, False, False, False, False, False]
    assert boxes["truncated"].tolist() == [False, True, False, False, False, False]
    assert boxes.loc[1, ["x1", "y1", "x2", "y2"]].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert boxes["x1"].dtype == "float64"
    assert boxes["ignored"].dtype == bool


def test_malformed_report_counts_every_reason(frames: list[dict]) -> None:
    report = frames_to_tables(frames, source_split="train", image_index={}, file="det.json").malformed
    assert dict(report.counts) == {
        loader.MISSING_BOX: 1,
        loader.NON_NUMERIC_BOX: 1,
        loader.EMPTY_BOX: 1,
        loader.NAN_BOX: 1,
        loader.UNKNOWN_CATEGORY: 1,
        loader.MISSING_ATTRIBUTES: 1,
        loader.UNKNOWN_ATTRIBUTE_VALUE: 1,  # weather "sunny"
        loader.MISSING_ATTRIBUTE: 1,  # the missing scene key is counted (issue 14), not silently undefined
    }
    assert report.non_detection == 1
    assert report.total == 8
    unknown = [e for e in report.examples if e.reason == loader.UNKNOWN_CATEGORY]
    assert unknown[0].label_id == "10"
    assert unknown[0].frame == "aaaaaaaa-00000001.jpg"
    assert unknown[0].file == "det.json"
    assert "hovercraft" in unknown[0].detail
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["total"] == 8


def test_bad_frames_and_duplicates_are_counted_not_kept() -> None:
    frames = [
        {"name": "a.jpg", "attributes": ATTRS},
        {"name": "a.jpg", "attributes": ATTRS},
        {"attributes": ATTRS},
        "not a frame",
        {"name": "b.jpg", "attributes": ATTRS, "labels": {"oops": 1}},
        {"name": "c.jpg", "attributes": ATTRS, "labels": [_label(7, "car", _box())]},
    ]
    parsed = frames_to_tables(frames, source_split="train", image_index={})
    assert parsed.frames["name"].tolist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert parsed.malformed.counts == {
        loader.DUPLICATE_NAME: 1,
        loader.MISSING_NAME: 1,
        loader.BAD_FRAME: 1,
        loader.BAD_LABELS: 1,
    }
    assert parsed.boxes["label_id"].tolist() == ["7"]  # int ids become strings


def test_malformed_examples_are_capped() -> None:
    frames = [{"name": f"{i}.jpg"} for i in range(100)]
    report = frames_to_tables(frames, source_split="train", image_index={}).malformed
    assert report.counts[loader.MISSING_ATTRIBUTES] == 100
    assert len(report.examples) == loader.MAX_EXAMPLES
    merged = report.merge(MalformedReport())
    assert merged.total == 100 and len(merged.examples) == loader.MAX_EXAMPLES


def test_empty_input_gives_empty_tables() -> None:
    parsed = frames_to_tables([], source_split="train", image_index={})
    assert list(parsed.frames.columns) == list(FRAME_COLUMNS)
    assert list(parsed.boxes.columns) == list(BOX_COLUMNS)
    assert len(parsed.frames) == len(parsed.boxes) == 0


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8")
    return path


def test_index_images_and_join(tmp_path: Path) -> None:
    a = _touch(tmp_path / "images/100k/train/a.jpg")
    _touch(tmp_path / "images/10k/val/a.jpg")  # same name: the 100k one wins
    b = _touch(tmp_path / "images/100k/val/b.jpg")
    u = _touch(tmp_path / "images/10k/test/u.jpg")
    _touch(tmp_path / "images/100k/train/notes.txt")
    (tmp_path / "images/100k/train/dir.jpg").mkdir()

    index = index_images(tmp_path)
    assert index == {"a.jpg": (a, "100k/train"), "b.jpg": (b, "100k/val"), "u.jpg": (u, "10k/test")}

    frames = [{"name": n, "attributes": ATTRS} for n in ("a.jpg", "b.jpg", "nolabel.jpg")]
    parsed = frames_to_tables(frames, source_split="train", image_index=index)
    assert parsed.frames["path"].tolist()[:2] == [str(a), str(b)]
    assert pd.isna(parsed.frames["path"].iloc[2])
    assert parsed.join.to_dict() == {
        "n_label_frames": 3,
        "n_matched": 2,
        "n_labels_without_image": 1,
        "n_images": 3,
        "n_images_without_label": 1,
    }
    assert parsed.join.images_without_label == ("u.jpg",)
    assert join_stats(["a.jpg", "u.jpg"], index).images_without_label == ("b.jpg",)


def test_index_images_of_missing_root_is_empty(tmp_path: Path) -> None:
    assert index_images(tmp_path / "nowhere") == {}


def test_parses_real_bdd_conformance_file() -> None:
    parsed = frames_to_tables(
        load_label_file(CONFORMANCE_GT), source_split="val", image_index={}, file=str(CONFORMANCE_GT)
    )
    frames, boxes = parsed.frames, parsed.boxes
    assert len(frames) == 202
    assert len(boxes) == 3241
    assert boxes["category"].value_counts().to_dict() == {
        "car": 2726,
        "pedestrian": 191,
        "rider": 119,
        "motorcycle": 119,
        "truck": 65,
        "bus": 21,
    }
    assert set(frames["video"]) == {"b1c66a42-6f7d68ca"}
    for key in ("weather", "timeofday", "scene"):
        assert set(frames[key]) == {"undefined"}
    assert dict(parsed.malformed.counts) == {loader.MISSING_ATTRIBUTES: 202}
    assert int(frames["n_boxes"].sum()) == 3241
    assert int(frames["n_ignored"].sum()) == int(boxes["ignored"].sum())
