"""`score` reproduces the official BDD100K evaluator on the cases in tests/data/official/.

Each case holds the official evaluator's own output (README.md there says how each was
made); a sliced case also holds its output on each slice's frames alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bddengine.bdd import validate
from bddengine.bdd.categories import CLASSES
from bddengine.bdd.loader import LabelFileError, load_label_file
from bddengine.cli import app
from bddengine.evaluation import build_match_cache, evaluate_slices, score_files, slice_keys
from bddengine.stages.eval import slice_table

CASES = Path(__file__).parent / "data" / "official"
ALL_CASES = sorted(p.parent.name for p in CASES.glob("*/official.json"))
ON_DUPLICATE = {"duplicate_pred": "last"}
TOLERANCE = 1e-12  # percent; the per-slice means add in another order than the official evaluator


def _official(folder: Path) -> dict:
    """official.json with its NaN as None, the way score writes a class without GT."""
    raw = json.loads((folder / "official.json").read_text())
    return {
        metric: [{k: None if math.isnan(v) else v for k, v in part.items()} for part in parts]
        for metric, parts in raw.items()
    }


def _same(mine: float | None, official: float | None) -> bool:
    """Equal to the official number: both None (NaN there), or within `TOLERANCE`."""
    if mine is None or official is None:
        return mine is None and official is None
    return abs(mine - official) <= TOLERANCE


def _score(case: str, **options) -> dict:
    options = {"by": ["weather"], "on_duplicate": ON_DUPLICATE.get(case, "error"), **options}
    return score_files(CASES / case / "gt.json", CASES / case / "pred.json", n_boot=0, **options)


def test_every_case_is_here() -> None:
    assert len(ALL_CASES) >= 13


@pytest.mark.parametrize("case", ALL_CASES)
def test_score_reproduces_the_official_output(case: str) -> None:
    doc = _score(case)
    assert doc["official"] == _official(CASES / case)  # exactly: same numbers, same NaN places
    assert doc["overall"]["map50"] * 100 == _official(CASES / case)["AP50"][1]["OVERALL"]


SLICED = sorted(p.parent.name for p in CASES.glob("*/slices.json"))
SLICES = [(case, entry) for case in SLICED for entry in json.loads((CASES / case / "slices.json").read_text())]


@pytest.mark.parametrize(("case", "entry"), SLICES, ids=[f"{c}:{e['folder']}" for c, e in SLICES])
def test_each_slice_equals_the_official_output_on_its_frames_alone(case: str, entry: dict) -> None:
    official = _official(CASES / case / "slices" / entry["folder"])
    gt = load_label_file(CASES / case / "gt.json")
    keys = slice_keys(gt, entry["by"])
    assert sorted(n for n, k in keys.items() if k == entry["key"]) == entry["frames"]

    doc = _score(case, by=entry["by"])
    (row,) = [r for r in doc["slices"] if r["key"] == entry["key"]]
    assert _same(row["map50"] and row["map50"] * 100, official["AP50"][1]["OVERALL"])
    assert _same(row["map"] and row["map"] * 100, official["AP"][1]["OVERALL"])

    cache = build_match_cache(gt, load_label_file(CASES / case / "pred.json"))
    (result,) = [r for r in evaluate_slices(cache, keys, n_boot=0) if r.key == entry["key"]]
    for c in CLASSES:  # the same None and 0.0 cells
        ap50 = result.ap50_per_class[c]
        assert _same(None if ap50 is None else ap50 * 100, official["AP50"][0][c]), c


def test_eval_stage_slice_table_follows_the_official_rule() -> None:
    """The eval stage's marginal rows equal the official output on each slice's frames alone."""
    case = "sliced"
    gt = load_label_file(CASES / case / "gt.json")
    table = slice_table(build_match_cache(gt, load_label_file(CASES / case / "pred.json")), gt, n_boot=0, seed=42)
    checked = 0
    for entry in json.loads((CASES / case / "slices.json").read_text()):
        if len(entry["by"]) != 1:
            continue
        (attribute,) = entry["by"]
        row = table[(table["grouping"] == attribute) & (table[attribute] == entry["key"][attribute])].iloc[0]
        official = _official(CASES / case / "slices" / entry["folder"])
        for column, value in [("map50", official["AP50"][1]["OVERALL"]),
                              *((f"ap50/{c}", official["AP50"][0][c]) for c in CLASSES)]:
            mine = None if pd.isna(row[column]) else float(row[column]) * 100
            assert _same(mine, value), (entry["folder"], column)
        checked += 1
    assert checked >= 5


def test_a_slice_without_predictions_is_the_official_empty_result() -> None:
    """0.0 for every class with any GT box, crowd or ignored included; None for the others."""
    official = _official(CASES / "sliced" / "slices" / "weather=snowy")
    assert official["AP50"][1]["OVERALL"] == 0.0  # the case holds what this test is about
    doc = _score("sliced")
    (snowy,) = [r for r in doc["slices"] if r["key"] == {"weather": "snowy"}]
    assert snowy["map50"] == 0.0 and snowy["map"] == 0.0


def test_a_class_with_only_crowd_gt_in_a_slice_reads_none() -> None:
    official = _official(CASES / "sliced" / "slices" / "weather=foggy")
    assert official["AP50"][0]["bus"] is None  # its only bus is a crowd box, and the slice has predictions
    gt = load_label_file(CASES / "sliced" / "gt.json")
    cache = build_match_cache(gt, load_label_file(CASES / "sliced" / "pred.json"))
    (foggy,) = [r for r in evaluate_slices(cache, slice_keys(gt, ["weather"]), n_boot=0)
                if r.key == {"weather": "foggy"}]
    assert foggy.ap50_per_class["bus"] is None and foggy.ap50_per_class["car"] is not None


def _labels(case: str, file: str) -> list[dict]:
    return [label for frame in json.loads((CASES / case / file).read_text()) for label in frame.get("labels") or []]


def test_inverted_boxes_are_scored_and_counted_as_notes() -> None:
    inverted = [b for b in (lab["box2d"] for lab in _labels("jitter_inverted", "pred.json"))
                if b["x2"] < b["x1"] or b["y2"] < b["y1"]]
    assert any(b["x1"] - b["x2"] < 1 for b in inverted) and any(b["x1"] - b["x2"] > 1 for b in inverted)
    doc = _score("jitter_inverted")
    assert doc["checks"]["pred"]["notes"][validate.NOTE_INVERTED] == len(inverted)
    assert doc["checks"]["gt"]["notes"][validate.NOTE_INVERTED] == 1
    assert doc["checks"]["pred"]["total"] == 0  # nothing dropped
    assert doc["official"] == _official(CASES / "jitter_inverted")


def test_numeric_strings_are_read_as_numbers() -> None:
    labels = _labels("numeric_strings", "pred.json")  # one note per odd score and one per odd box
    odd = sum(type(lab["score"]) in (str, bool) for lab in labels) + sum(
        any(type(v) in (str, bool) for v in lab["box2d"].values()) for lab in labels)
    doc = _score("numeric_strings")
    assert doc["checks"]["pred"]["notes"][validate.NOTE_STRING_NUMBER] == odd > 50
    assert doc["checks"]["pred"]["total"] == 0
    assert doc["official"] == _official(CASES / "numeric_strings")


def test_nan_scores_are_scored() -> None:
    labels = _labels("nan_scores", "pred.json")
    n_nan = sum(isinstance(lab["score"], float) and math.isnan(lab["score"]) or lab["score"] == "nan"
                for lab in labels)
    doc = _score("nan_scores")
    assert doc["checks"]["pred"]["notes"][validate.NOTE_NAN_SCORE] == n_nan > 0
    assert doc["checks"]["pred"]["total"] == 0
    assert doc["official"] == _official(CASES / "nan_scores")


def test_a_score_the_official_evaluator_cannot_read_is_an_error(tmp_path: Path) -> None:
    pred = json.loads((CASES / "numeric_strings" / "pred.json").read_text())
    pred[0]["labels"][1]["score"] = "high"
    (tmp_path / "p.json").write_text(json.dumps(pred))
    with pytest.raises(LabelFileError, match=r"score is 'high', which is not a number"):
        score_files(CASES / "numeric_strings" / "gt.json", tmp_path / "p.json", n_boot=0)
    del pred[0]["labels"][1]["score"]
    (tmp_path / "p.json").write_text(json.dumps(pred))
    with pytest.raises(LabelFileError, match="has no score"):
        score_files(CASES / "numeric_strings" / "gt.json", tmp_path / "p.json", n_boot=0)


def test_swapped_arguments_are_detected() -> None:
    case = CASES / "crowd_string"
    result = CliRunner().invoke(app, ["score", str(case / "pred.json"), str(case / "gt.json")])
    assert result.exit_code == 2, result.output
    assert "swapped" in result.output and "not one score" in result.output
    assert "Traceback" not in result.output and "bug" not in result.output
    assert result.output.strip().count("\n\n") == 0  # one paragraph


def test_a_broken_prediction_file_is_called_a_prediction_file(tmp_path: Path) -> None:
    broken = tmp_path / "pred.json"
    broken.write_text((CASES / "crowd_string" / "pred.json").read_text()[:5000])  # cut short
    result = CliRunner().invoke(app, ["score", str(CASES / "crowd_string" / "gt.json"), str(broken)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"prediction file {broken}" in text and "re-export the predictions" in text
    assert "label file" not in text and "download" not in text and "Traceback" not in text
    missing = CliRunner().invoke(app, ["score", str(CASES / "crowd_string" / "gt.json"), str(tmp_path / "x.json")])
    assert missing.exit_code == 2 and "prediction file not found" in " ".join(missing.output.split())


def test_no_predictions_is_zero_for_classes_whose_gt_is_all_crowd_or_ignored() -> None:
    doc = _score("no_predictions")
    assert doc["overall"]["map50"] == 0.0
    assert doc["overall"]["ap50_per_class"]["bus"] == 0.0  # its only box is a crowd box
    assert doc["overall"]["ap50_per_class"]["pedestrian"] == 0.0  # its only box is "other person"
    assert doc["overall"]["ap50_per_class"]["train"] is None


def test_duplicate_prediction_frame_is_an_error_by_default() -> None:
    with pytest.raises(LabelFileError, match="listed more than once.*--on-duplicate last"):
        score_files(CASES / "duplicate_pred" / "gt.json", CASES / "duplicate_pred" / "pred.json",
                    by=["weather"], n_boot=0)


def test_duplicate_merge_keeps_both_records() -> None:
    last = _score("duplicate_pred")
    merged = _score("duplicate_pred", on_duplicate="merge")
    assert merged["overall"]["map50"] != last["overall"]["map50"]
    assert merged["checks"]["pred"]["notes"] == {"duplicate frame name (records merged)": 1}


def test_cli_names_the_duplicate_frame_and_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["score", str(CASES / "duplicate_pred" / "gt.json"),
                                      str(CASES / "duplicate_pred" / "pred.json")])
    assert result.exit_code == 2
    assert "listed more than once" in result.output and "--on-duplicate" in result.output
    assert "Traceback" not in result.output
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["score", str(CASES / "duplicate_pred" / "gt.json"),
                                      str(CASES / "duplicate_pred" / "pred.json"), "--on-duplicate", "last",
                                      "--by", "weather", "--n-boot", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["official"] == _official(CASES / "duplicate_pred")
