"""Regression tests for issue 14: each finding of the hostile-user pass, one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bddengine.bdd import loader, validate
from bddengine.bdd.loader import LabelFileError, frames_to_tables, load_label_file
from bddengine.bdd.validate import check_frames, parse_flag
from bddengine.cli import app
from bddengine.config import ConfigError, load_config
from bddengine.errors import StageInputError
from bddengine.evaluation import score_files
from bddengine.evaluation.coco import METRICS
from bddengine.integrations.ultralytics import resolve_device
from bddengine.stages.collect import add_image_sizes, clip_to_images

runner = CliRunner()


def _box(x1: float = 10, y1: float = 10, x2: float = 60, y2: float = 50) -> dict:
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def _frame(name: str, labels: list, weather: str = "clear") -> dict:
    return {"name": name, "attributes": {"weather": weather, "timeofday": "daytime", "scene": "highway"},
            "labels": labels}


def _gt_pred(tmp_path: Path, gt: list, pred: list) -> tuple[Path, Path]:
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    return g, p


GT = [_frame("a.jpg", [{"id": "1", "category": "car", "box2d": _box()}]),
      _frame("b.jpg", [{"id": "2", "category": "car", "box2d": _box(100, 100, 180, 160)}], weather="rainy")]
PRED = [{"name": "a.jpg", "labels": [{"category": "car", "score": 0.9, "box2d": _box()}]},
        {"name": "b.jpg", "labels": [{"category": "car", "score": 0.8, "box2d": _box(100, 100, 180, 160)}]}]


# -- the shared rules ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("false", False), ("False", False), ("no", False), ("0", False), ("off", False), ("f", False), (0, False),
    (0.0, False), ("true", True), ("YES", True), ("1", True), ("on", True), (1, True), (True, True),
    ("maybe", None), (2, None), (0.5, None), (None, None), ([1], None), ("", None),
])
def test_flags_read_as_pydantic_v1_reads_a_bool(value: object, expected: bool | None) -> None:
    assert parse_flag(value) is expected


def test_unreadable_crowd_is_an_error_naming_frame_and_label(tmp_path: Path) -> None:
    gt = [_frame("a.jpg", [{"id": "7", "category": "car", "box2d": _box(), "attributes": {"crowd": None}}])]
    with pytest.raises(LabelFileError, match=r"frame 'a.jpg', label '7': attributes.crowd is None"):
        check_frames(gt, file="gt.json", predictions=False)
    maybe = [_frame("a.jpg", [{"id": "7", "category": "car", "box2d": _box(), "attributes": {"crowd": "maybe"}}])]
    with pytest.raises(LabelFileError, match="attributes.crowd"):  # collect reads plain booleans only
        frames_to_tables(maybe, source_split="train", file="gt.json")
    checked = check_frames(maybe, file="gt.json", predictions=False)  # score reads it as the official evaluator
    assert checked.frames[0]["labels"][0]["attributes"]["crowd"] is True
    assert checked.malformed.notes == {validate.NOTE_ODD_FLAG: 1}


@pytest.mark.parametrize(("value", "expected"), [
    ("maybe", True), ("", False), (2, True), (-1, True), (0.5, False), (1.5, True), ("2", True), ("0.0", False),
    ("nan", True), ("no", False), ("1", True), (None, None), ([1], None),
])
def test_score_reads_flags_as_the_official_evaluator(value: object, expected: bool | None) -> None:
    assert validate.official_flag(value) is expected


def test_collect_reads_crowd_and_ignored_strings_as_the_official_evaluator() -> None:
    gt = [_frame("a.jpg", [
        {"id": "1", "category": "car", "box2d": _box(), "attributes": {"crowd": "false", "occluded": "yes"}},
        {"id": "2", "category": "car", "box2d": _box(), "attributes": {"crowd": "1"}},
        {"id": "3", "category": "car", "box2d": _box(), "attributes": {"ignored": True}},
    ])]
    boxes = frames_to_tables(gt, source_split="train").boxes
    assert boxes["ignored"].tolist() == [False, True, True]
    assert boxes["occluded"].tolist() == [True, False, False]


# -- collect's parsing -----------------------------------------------------------------


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "1e400", "1" + "0" * 400])
def test_collect_counts_non_finite_coordinates(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "det.json"
    good = json.dumps({"id": "1", "category": "car", "box2d": _box()})
    bad = f'{{"id": "2", "category": "car", "box2d": {{"x1": 5, "y1": 5, "x2": {raw}, "y2": 40}}}}'
    path.write_text(f'[{{"name": "a.jpg", "labels": [{good}, {bad}]}}]')
    parsed = frames_to_tables(load_label_file(path), source_split="train", file=str(path))
    assert len(parsed.boxes) == 1 and np.isfinite(parsed.boxes[["x1", "x2"]].to_numpy()).all()
    assert parsed.malformed.counts == {loader.NON_FINITE_BOX: 1, loader.MISSING_ATTRIBUTES: 1}
    assert parsed.frames["n_boxes"].tolist() == [1]


def test_missing_frame_attribute_key_is_counted() -> None:
    frames = [{"name": "a.jpg", "attributes": {"weather": "clear", "timeofday": "night"}, "labels": []}]
    parsed = frames_to_tables(frames, source_split="train")
    assert parsed.malformed.counts == {loader.MISSING_ATTRIBUTE: 1}
    assert parsed.frames["scene"].tolist() == ["undefined"]


def test_lone_surrogate_name_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "det.json"
    path.write_text('[{"name": "a\\ud800.jpg", "labels": []}]')
    with pytest.raises(LabelFileError, match="lone UTF-16 surrogate"):
        load_label_file(path)


def test_deep_nesting_is_a_clean_error_or_counted(tmp_path: Path) -> None:
    path = tmp_path / "det.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(LabelFileError, match="nests its JSON too deeply"):
        load_label_file(path)
    deep = "[" * 500 + "]" * 500  # within what a JSON reader takes: the box is counted
    path.write_text(f'[{{"name": "a.jpg", "labels": [{{"category": "car", "box2d": {{"x1": {deep}, '
                    '"y1": 1, "x2": 5, "y2": 5}}]}]')
    parsed = frames_to_tables(load_label_file(path), source_split="train", file=str(path))
    assert parsed.malformed.counts[loader.NON_NUMERIC_BOX] == 1


def test_huge_timestamp_and_id_do_not_overflow() -> None:
    frames = [{"name": "a.jpg", "timestamp": 10**30, "labels": [{"id": 10**30, "category": "car", "box2d": _box()}]}]
    parsed = frames_to_tables(frames, source_split="train")
    assert parsed.malformed.counts[loader.BAD_TIMESTAMP] == 1
    assert parsed.boxes["label_id"].tolist() == [str(10**30)]


def test_labels_that_are_not_a_list_are_counted() -> None:
    frames = [_frame("a.jpg", {}), _frame("b.jpg", None)]  # type: ignore[arg-type]
    assert frames_to_tables(frames, source_split="train").malformed.counts == {loader.BAD_LABELS: 1}


# -- collect's images and boxes ----------------------------------------------------------


def test_unusable_images_are_skipped_and_listed(tmp_path: Path) -> None:
    good, tiny, empty, cut = (tmp_path / n for n in ("good.jpg", "tiny.jpg", "empty.jpg", "cut.jpg"))
    Image.new("RGB", (64, 36), "red").save(good)
    Image.new("RGB", (1, 1)).save(tiny)
    empty.write_bytes(b"")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:5000])  # truncated: PIL reads its header fine
    manifest = pd.DataFrame({"name": ["good", "tiny", "empty", "cut"],
                             "path": [str(good), str(tiny), str(empty), str(cut)]})
    kept, bad = add_image_sizes(manifest)
    assert kept["name"].tolist() == ["good", "tiny"]
    trailer = tmp_path / "trailer.jpg"  # a whole JPEG with more than 4 KiB after its end marker
    trailer.write_bytes(good.read_bytes() + bytes(8000))
    assert add_image_sizes(pd.DataFrame({"name": ["t"], "path": [str(trailer)]}))[1] == []
    assert kept[["width", "height"]].values.tolist() == [[64, 36], [1, 1]]
    assert {b["name"]: b["reason"].split(":")[0] for b in bad} == {
        "empty": "cannot read the image header", "cut": "truncated JPEG (no end-of-image marker; decoding says"}


def test_boxes_are_clipped_to_their_image_and_counted() -> None:
    manifest = pd.DataFrame({"name": ["big", "one"], "has_gt": True, "width": [100, 1], "height": [50, 1],
                             "n_car": [3, 1], "n_ignored": 0, "n_boxes": [3, 1]})
    for c in ("pedestrian", "rider", "truck", "bus", "train", "motorcycle", "bicycle", "traffic_light",
              "traffic_sign"):
        manifest[f"n_{c}"] = 0
    boxes = pd.DataFrame({"name": ["big", "big", "big", "one"], "category": "car", "ignored": False,
                          "label_id": ["inside", "partly", "outside", "on-1x1"],
                          "x1": [10.0, 80.0, 200.0, 0.0], "y1": [10.0, 10.0, 10.0, 0.0],
                          "x2": [20.0, 150.0, 300.0, 30.0], "y2": [20.0, 20.0, 20.0, 30.0]})
    report = loader.MalformedReport()
    kept, manifest = clip_to_images(boxes, manifest, report)
    assert kept["label_id"].tolist() == ["inside", "partly", "on-1x1"]
    assert kept["x2"].tolist() == [20.0, 100.0, 1.0]
    assert report.counts == {"box2d outside the image": 1}
    assert report.notes == {"box2d clipped to the image": 2}  # the 1x1 image's box is counted too
    assert manifest.set_index("name")["n_car"].to_dict() == {"big": 2, "one": 1}
    assert manifest.set_index("name")["n_boxes"].to_dict() == {"big": 2, "one": 1}


# -- score -----------------------------------------------------------------------------


def test_score_counts_what_it_leaves_out(tmp_path: Path) -> None:
    gt = [*GT, {"labels": []}, 5, _frame("c.jpg", [{"category": "car", "box2d": _box(5, 5, 1, 40)}])]
    pred = [{"name": "a.jpg", "labels": [{"category": "car", "score": 0.9, "box2d": _box()},
                                         {"category": "car", "score": float("nan"), "box2d": _box()},
                                         {"category": "car", "score": "0.5", "box2d": _box()},
                                         {"category": "hovercraft", "score": 0.5, "box2d": _box()},
                                         {"category": "car", "score": 0.5, "box2d": _box(x2=float("nan"))}]}]
    g, p = _gt_pred(tmp_path, gt, pred)
    doc = score_files(g, p, by=["weather"], n_boot=0)
    # what the official evaluator leaves out is counted; the odd records it scores are notes
    assert doc["checks"]["gt"]["counts"] == {"bad frame record": 1, "missing frame name": 1}
    assert doc["checks"]["gt"]["notes"] == {validate.NOTE_INVERTED: 1}
    assert doc["checks"]["pred"]["counts"] == {"unknown category": 1}
    assert doc["checks"]["pred"]["notes"] == {validate.NOTE_NON_FINITE_BOX: 1, validate.NOTE_NAN_SCORE: 1,
                                              validate.NOTE_STRING_NUMBER: 1}
    assert set(doc["official"]) == set(METRICS)
    assert doc["official"]["AP50"][1]["OVERALL"] == pytest.approx(100 * doc["overall"]["map50"])


def test_duplicate_gt_frame_is_an_error(tmp_path: Path) -> None:
    g, p = _gt_pred(tmp_path, [*GT, GT[0]], PRED)
    with pytest.raises(LabelFileError, match=r"gt.json: frame 'a.jpg' is listed more than once"):
        score_files(g, p)


@pytest.mark.parametrize(("args", "message"), [
    (["--n-boot", "-5"], "--n-boot -5"),
    (["--min-frames", "-5"], "--min-frames -5"),
    (["--min-frames", "5000"], "no slice by weather"),
    (["--by", "weather,colour"], "'colour' is not a BDD frame attribute"),
    (["--by", ","], "is not a BDD frame attribute"),
    (["--on-duplicate", "first"], "--on-duplicate first"),
])
def test_score_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    g, p = _gt_pred(tmp_path, GT, PRED)
    result = runner.invoke(app, ["score", str(g), str(p), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_score_json_to_a_folder_is_refused_before_scoring(tmp_path: Path) -> None:
    g, p = _gt_pred(tmp_path, GT, PRED)
    result = runner.invoke(app, ["score", str(g), str(p), "--json", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output


def test_score_prints_the_checks(tmp_path: Path) -> None:
    g, p = _gt_pred(tmp_path, [*GT, {"labels": []}], PRED)
    result = runner.invoke(app, ["score", str(g), str(p), "--by", "weather", "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    assert "gt checks: 1 problem(s) counted (missing frame name: 1)" in result.output
    assert "pred checks: no problem counted (every record accepted)" in result.output


def test_an_unexpected_error_is_one_paragraph_unless_debug(tmp_path: Path, monkeypatch) -> None:
    import bddengine.evaluation as evaluation

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(evaluation, "score_files", broken)
    g, p = _gt_pred(tmp_path, GT, PRED)
    result = runner.invoke(app, ["score", str(g), str(p)])
    assert result.exit_code == 2 and "unexpected RuntimeError: boom" in result.output and "--debug" in result.output
    result = runner.invoke(app, ["--debug", "score", str(g), str(p)])
    assert isinstance(result.exception, RuntimeError)


# -- config and devices ----------------------------------------------------------------


def test_set_on_one_mapping_key_keeps_the_default_entries() -> None:
    cfg = load_config(None, ["data.label_files.train=/elsewhere/train.json"])
    assert cfg.data.label_files == {"train": Path("/elsewhere/train.json"),
                                    "val": Path("labels/det_20/det_val.json")}


@pytest.mark.parametrize(("override", "message"), [
    ("split..train_size=5", "empty part"),
    ("split.train_size=true", "boolean, not a number"),
    ("eval.n_boot=false", "boolean, not a number"),
])
def test_bad_overrides_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_runs_dir_that_is_a_file_is_a_clean_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    result = runner.invoke(app, ["collect", "--set", f"runs_dir={runs}"])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "0", "0,1", "banana", "cuda:x"])
def test_bad_or_absent_devices_are_refused(device: str, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageInputError, match=r"eval\.device="):
        resolve_device(device, "eval.device")
    assert resolve_device("cpu", "eval.device") == "cpu"
    assert resolve_device("auto", "eval.device") == "cpu"


def test_split_names_a_pool_smaller_than_asked() -> None:
    from bddengine.stages.split import _short_pools

    line = _short_pools({"train": 7, "val": 250, "eval": 500}, {"train": 1000, "val": 250, "eval": 500})
    assert line == {"short of the requested size": "train 7 of 1,000 (split.train_size): the collect run has "
                    "too few labeled frames in reach (raise collect.labeled_target or lower the size)"}
    assert _short_pools({"train": 1000, "val": 250, "eval": 500}, {"train": 1000, "val": 250, "eval": 500}) == {}
