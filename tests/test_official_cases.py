"""`score` reproduces the official BDD100K evaluator on the cases in tests/data/official/."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bddengine.bdd.loader import LabelFileError
from bddengine.cli import app
from bddengine.evaluation import score_files

CASES = Path(__file__).parent / "data" / "official"


def _official(case: str) -> dict:
    """official.json with its NaN as None, the way score writes a class without GT."""
    raw = json.loads((CASES / case / "official.json").read_text())
    return {
        metric: [{k: None if math.isnan(v) else v for k, v in part.items()} for part in parts]
        for metric, parts in raw.items()
    }


@pytest.mark.parametrize(
    ("case", "on_duplicate"),
    [("duplicate_pred", "last"), ("crowd_string", "error"), ("no_predictions", "error")],
)
def test_score_reproduces_the_official_output(case: str, on_duplicate: str) -> None:
    doc = score_files(CASES / case / "gt.json", CASES / case / "pred.json", by=["weather"], n_boot=0,
                      on_duplicate=on_duplicate)
    assert doc["official"] == _official(case)  # exactly: same numbers, same NaN places
    overall = _official(case)["AP50"][1]["OVERALL"]
    assert doc["overall"]["map50"] * 100 == overall


def test_no_predictions_is_zero_for_classes_whose_gt_is_all_crowd_or_ignored() -> None:
    doc = score_files(CASES / "no_predictions" / "gt.json", CASES / "no_predictions" / "pred.json",
                      by=["weather"], n_boot=0)
    assert doc["overall"]["map50"] == 0.0
    assert doc["overall"]["ap50_per_class"]["bus"] == 0.0  # its only box is a crowd box
    assert doc["overall"]["ap50_per_class"]["pedestrian"] == 0.0  # its only box is "other person"
    assert doc["overall"]["ap50_per_class"]["train"] is None


def test_duplicate_prediction_frame_is_an_error_by_default() -> None:
    with pytest.raises(LabelFileError, match="listed more than once.*--on-duplicate last"):
        score_files(CASES / "duplicate_pred" / "gt.json", CASES / "duplicate_pred" / "pred.json",
                    by=["weather"], n_boot=0)


def test_duplicate_merge_keeps_both_records() -> None:
    last = score_files(CASES / "duplicate_pred" / "gt.json", CASES / "duplicate_pred" / "pred.json",
                       by=["weather"], n_boot=0, on_duplicate="last")
    merged = score_files(CASES / "duplicate_pred" / "gt.json", CASES / "duplicate_pred" / "pred.json",
                         by=["weather"], n_boot=0, on_duplicate="merge")
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
    assert json.loads(out.read_text())["official"] == _official("duplicate_pred")
