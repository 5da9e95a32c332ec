"""What a piped run prints: the project's own lines in plain text, readable help, a check that fits 80 columns.

The smoke turn (`tests/test_smoke_turn.py`) checks the same of a turn that trains and
predicts: no colour codes, no ultralytics banner, each train run's `ultralytics.log`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.integrations.ultralytics import PlainLog, log_to
from conftest import write_config

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["synth", "collect", "embed", "split", "train", "eval", "mine", "autolabel", "report",
            "flywheel", "check", "score", "app"]
ULTRALYTICS_BANNER = re.compile(r"^(Ultralytics \d|YOLOv8n summary|\s+from\s+n\s+params|engine/trainer:)", re.M)


def test_piped_synth_prints_no_progress_bar_and_no_python_dict(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "world", tmp_path / "runs")
    result = runner.invoke(app, ["synth", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "synth world" not in result.output and "━" not in result.output  # the bar's label and its fill
    assert "\x1b" not in result.output
    assert "{'train'" not in result.output
    assert re.search(r"frames\s+48 train \+ 12 val", result.output), result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_what_to_type(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for unreadable in ("<bool>", "list[", "{"):
        assert unreadable not in result.output, (command, unreadable)
    if command != "score":
        assert "KEY=VALUE" in result.output


def test_score_usage_names_its_files_and_embed_help_claims_no_default_model() -> None:
    score = runner.invoke(app, ["score", "--help"])
    assert "GT_FILE PRED_FILE" in score.output
    embed = runner.invoke(app, ["embed", "--help"])
    assert "ViT-B-32" not in embed.output  # the config decides the architecture
    assert "embed.model" in embed.output


def test_check_fits_80_columns_with_labeled_columns_and_whole_urls(tmp_path: Path, monkeypatch) -> None:
    from bddengine.integrations import ultralytics
    from bddengine.labeling import labelers

    monkeypatch.setattr(ultralytics, "weights_dir", lambda: tmp_path / "none")
    monkeypatch.setattr(labelers, "weights_dir", lambda: tmp_path / "none")
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check", "--config", str(REPO / "configs" / "default.yaml")],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    listing = [line for line in result.output.splitlines() if not line.startswith("error:")]
    for line in listing:  # a line over 80 columns is one unbroken path or URL, never split
        assert len(line) <= 80 or " " not in line.strip(), line
    assert re.search(r"^stage\s+status\s+item$", result.output, re.M)
    assert "where it is / what to do" in result.output
    url = re.search(r"https://github\.com/ultralytics/assets/releases/download/\S+/yolov8m\.pt", result.output)
    assert url, result.output  # whole, on one line


def test_plain_log_keeps_text_and_a_bars_last_frame(tmp_path: Path) -> None:
    log = PlainLog(tmp_path / "u.log")
    log.write("\x1b[34m\x1b[1mtrain: \x1b[0mScanning...\n")
    for frame in ("\r\x1b[K  1/3", "\r\x1b[K  2/3", "\r\x1b[K  3/3"):
        log.progress(1, frame)
    log.progress(1, "")
    log.write("\n")  # the newline a closed bar ends with
    log.write("done\n")
    log.close()
    assert (tmp_path / "u.log").read_text() == "train: Scanning...\n  3/3\ndone\n"


def test_ultralytics_logger_writes_to_the_log_not_the_terminal(tmp_path: Path, capfd) -> None:
    from ultralytics.utils import LOGGER

    own = LOGGER.handlers[:]
    with log_to(tmp_path / "ultralytics.log"):
        LOGGER.info("\x1b[1mYOLOv8n summary\x1b[0m: 129 layers")
        LOGGER.warning("a warning")
    assert LOGGER.handlers == own  # its own handlers again after the block
    out, err = capfd.readouterr()
    assert "YOLOv8n summary" not in out + err and "a warning" not in out + err
    text = (tmp_path / "ultralytics.log").read_text()
    assert text == "YOLOv8n summary: 129 layers\nWARNING: a warning\n"


def test_nothing_printed_means_no_log_file(tmp_path: Path) -> None:
    with log_to(tmp_path / "ultralytics.log"):
        pass
    assert not (tmp_path / "ultralytics.log").exists()


def test_slice_table_counts_every_groupings_frames_on_one_bar() -> None:
    from bddengine.evaluation import build_match_cache
    from bddengine.evaluation.slices import evaluate_slices

    gt = [{"name": f"f{i}", "attributes": {"weather": "clear" if i % 2 else "rainy"},
           "labels": [{"id": "0", "category": "car", "box2d": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}}]}
          for i in range(6)]
    cache = build_match_cache(gt, [{"name": f["name"], "labels": []} for f in gt])
    seen: list[int] = []
    evaluate_slices(cache, {f["name"]: {"weather": f["attributes"]["weather"]} for f in gt}, n_boot=0,
                    advance=seen.append)
    assert sorted(seen) == [3, 3]


def test_open_clip_random_init_note_stays_off_the_terminal(caplog) -> None:
    from bddengine.embedding.models import _open_clip_notes

    with caplog.at_level(logging.WARNING), _open_clip_notes():
        logging.warning("No pretrained weights loaded for model 'ViT-S-32'. Model initialized randomly.")
        logging.warning("Model ViT-S-32 initialized partially.")
    messages = [r.getMessage() for r in caplog.records if r.name == "bddengine.embed"]
    assert messages == ["open_clip: Model ViT-S-32 initialized partially."]
