"""A user's mistake found by the CLI pass: each is one paragraph, exit code 2, no traceback."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.config import ConfigError, load_config
from conftest import write_config

runner = CliRunner()


def _refused(result, *needles: str) -> None:
    """Exit 2, every needle in the (unwrapped) message, and no traceback."""
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for needle in needles:
        assert needle in text, result.output


# -- 1. a config that is not UTF-8 text ---------------------------------------------------


@pytest.mark.parametrize("content", [b"# r\xe9glages\nseed: 7\n", bytes(range(256)) * 4],
                         ids=["latin-1", "binary"])
def test_a_config_that_is_not_utf8_names_the_file(tmp_path: Path, content: bytes) -> None:
    cfg = tmp_path / "settings.yaml"
    cfg.write_bytes(content)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(cfg)
    _refused(runner.invoke(app, ["check", "--config", str(cfg)]), str(cfg), "is not UTF-8 text", "save it as UTF-8")


def test_an_unreadable_config_is_a_user_error(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("seed: 7\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(cfg)


# -- 2. a runs_dir the user may not write to -------------------------------------------------


def test_runs_dir_under_a_file_is_a_user_error(tmp_path: Path, tiny_world: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    cfg = write_config(tmp_path / "cfg.yaml", tiny_world, tmp_path / "notes.txt" / "runs")
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    _refused(result, f"runs_dir={tmp_path / 'notes.txt' / 'runs'} cannot be made: {tmp_path / 'notes.txt'} is a "
             "file, not a folder")
    assert "bug" not in result.output and not (tmp_path / "runs").exists()


def test_data_root_under_a_file_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    cfg = write_config(tmp_path / "cfg.yaml", tmp_path / "notes.txt" / "world", tmp_path / "runs")
    result = runner.invoke(app, ["synth", "--config", str(cfg)])
    _refused(result, f"{tmp_path / 'notes.txt'} is a file where a folder is needed", "data.root")
    assert "bug" not in result.output


@pytest.mark.parametrize(("err", "needle"), [
    (PermissionError(errno.EACCES, "Permission denied", "/data/runs"), "/data/runs: permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/data/runs/x"), "/data/runs/x: the file system is read-only"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/f/runs"), "part of this path is a file"),
])
def test_a_refused_path_is_the_users_error(err: OSError, needle: str) -> None:
    from bddengine.errors import path_refused

    refused = path_refused(err, Path("/data/runs"))
    assert refused is not None and needle in str(refused)
    assert path_refused(OSError(errno.EIO, "I/O error", "/x"), None) is None  # not the user's to fix
    assert path_refused(FileExistsError(errno.EEXIST, "File exists", "/"), None) is None  # a folder: no mkdir clash


def test_runs_dir_without_write_permission_is_a_user_error(tmp_path: Path, tiny_world: Path, monkeypatch) -> None:
    """Tests run as root, whom chmod does not stop: the file system's refusal is raised as it would be."""
    runs = tmp_path / "locked" / "runs"
    cfg = write_config(tmp_path / "cfg.yaml", tiny_world, runs)
    mkdir = Path.mkdir

    def refuse_runs(self, *args, **kwargs):
        if self == runs or runs in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_runs)
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    _refused(result, str(runs), "permission denied", "runs_dir")
    assert "bug" not in result.output


# -- 3. absurd sizes ---------------------------------------------------------------------


@pytest.mark.parametrize(("override", "key"), [
    ("synth.width=100000", "synth.width"),
    ("synth.height=100000", "synth.height"),
    ("synth.n_train=100000000", "synth.n_train"),
    ("synth.n_val=100000000", "synth.n_val"),
    ("train.imgsz=100000", "train.imgsz"),
])
def test_absurd_sizes_are_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: Input should be less than or equal to"):
        load_config(None, [override])
    _refused(runner.invoke(app, ["synth", "--set", override]), key, "less than or equal to")


def test_real_sizes_stay_within_the_bounds() -> None:
    cfg = load_config(None, ["synth.width=1280", "synth.height=720", "synth.n_train=70000", "train.imgsz=1280"])
    assert (cfg.synth.width, cfg.synth.height, cfg.synth.n_train) == (1280, 720, 70000)


# -- 4. and 5. options whose zero or negative value meant something else ------------------------


def test_flywheel_seeds_zero_is_refused(tmp_path: Path) -> None:
    _refused(runner.invoke(app, ["flywheel", "--seeds", "0"]), "--seeds")


@pytest.mark.parametrize("turns", ["0", "-2"])
def test_flywheel_turns_below_one_is_refused(turns: str) -> None:
    _refused(runner.invoke(app, ["flywheel", "--turns", turns]), "--turns")


def test_flywheel_empty_arms_is_refused() -> None:
    _refused(runner.invoke(app, ["flywheel", "--arms", ""]), "--arms", "names no arm")


def test_embed_empty_model_is_validated() -> None:
    _refused(runner.invoke(app, ["embed", "--model", ""]), "embed.model")


@pytest.mark.parametrize("command", ["train", "eval", "mine", "autolabel"])
def test_negative_iter_is_refused(command: str) -> None:
    result = runner.invoke(app, [command, "--iter", "-1"])
    _refused(result, "--iter")
    assert "train --iter -1" not in result.output


# -- 6. --debug after the subcommand ----------------------------------------------------------


@pytest.mark.parametrize("command", ["synth", "collect", "embed", "split", "train", "eval", "mine", "autolabel",
                                     "report", "check", "flywheel", "app"])
def test_every_command_takes_debug(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--debug" in result.output


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    cfg = write_config(tmp_path / "cfg.yaml", tmp_path / "notes.txt" / "world", tmp_path / "runs")
    result = runner.invoke(app, ["synth", "--config", str(cfg), "--debug"])
    assert isinstance(result.exception, FileExistsError)
    result = runner.invoke(app, ["synth", "--config", str(cfg)])
    _refused(result, "is a file where a folder is needed")


# -- 7. an image whose content is not the format its name says ---------------------------------


def test_a_png_named_jpg_is_left_out_and_counted(tmp_path: Path, tiny_world: Path) -> None:
    import json
    import shutil

    import pandas as pd
    from PIL import Image

    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    renamed = sorted((world / "images" / "100k" / "train").glob("*.jpg"))[0]
    with Image.open(renamed) as im:
        im.load()
        im.save(renamed, format="PNG")  # PNG bytes under the .jpg name
    cfg = write_config(tmp_path / "cfg.yaml", world, tmp_path / "runs",
                       collect={"labeled_target": 60, "unlabeled_target": 0, "min_per_bucket": 0})
    result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").glob("*_collect"))
    bad = json.loads((run / "bad_images.json").read_text())
    assert [(b["name"], b["reason"].split(":")[0]) for b in bad] == [(renamed.name, "not a JPEG file")]
    assert "its content is PNG" in bad[0]["reason"]
    assert renamed.name not in set(pd.read_parquet(run / "manifest.parquet")["name"])
    assert json.loads((run / "result.json").read_text())["metrics"]["n_bad_images"] == 1
    assert "unusable images skipped" in result.output and "1 (unreadable, truncated or not the format" in result.output


# -- 8. a deleted input run: advice that rebuilds it -------------------------------------------


def test_a_deleted_split_gets_advice_that_rebuilds_it(tiny_world: Path, tiny_clip_arch: str, tmp_path: Path) -> None:
    import shutil

    from bddengine.config import load_config
    from bddengine.runs import list_runs
    from bddengine.stages import collect, embed, split
    from conftest import write_result

    runs = tmp_path / "runs"
    path = write_config(
        tmp_path / "c.yaml", tiny_world, runs,
        embed={"clip_arch": tiny_clip_arch, "pretrained": None, "workers": 0, "batch_size": 16},
        split={"train_size": 14, "eval_size": 6, "eval_top_slices": 3, "val_size": 4,
               "min_per_bucket": 1, "near_dup_threshold": None},
    )
    cfg = load_config(path)
    collect.run(cfg, progress=False)
    embed.run(cfg, progress=False)
    first = split.run(cfg, progress=False).location
    write_result(runs / "04_train_iter0", {"split": first.name})  # iteration 0's training read that split
    shutil.rmtree(first)

    result = runner.invoke(app, ["eval", "--iter", "0", "--config", str(path)])
    _refused(result, f"names split run '{first.name}', which is gone",
             "run `bddengine split`, then `bddengine train --iter 0` (same --config)")
    result = runner.invoke(app, ["split", "--config", str(path)])  # the advice's first command rebuilds it
    assert result.exit_code == 0 and "up to date" not in result.output, result.output
    assert [r.stage for r in list_runs(runs)] == ["collect", "embed", "train", "split"]


@pytest.mark.parametrize(("name", "command"), [
    ("03_split", "bddengine split"),
    ("04_train_iter0", "bddengine train --iter 0"),
    ("04_train_iter0_seed43", "bddengine train --iter 0 --seed 43"),
    ("09_train_iter1_prototype-pyramid", "bddengine train --iter 1 --arm prototype-pyramid"),
    ("10_eval_iter1_random-human-seed44", "bddengine eval --iter 1 --arm random-human --seed 44"),
    ("07_mine_iter0_random-slice-detector", "bddengine mine --iter 0 --strategy random-slice --embedding detector"),
    ("08_autolabel_iter0_prototype-pyramid", "bddengine autolabel --iter 0 --arm prototype-pyramid"),
])
def test_the_command_that_remakes_a_run_is_read_from_its_name(name: str, command: str) -> None:
    from bddengine.runs import parse_run_name
    from bddengine.runs.lineage import run_command

    assert run_command(parse_run_name(Path(name))) == command


# -- 9. label ids of mixed JSON types --------------------------------------------------------------


def _mixed_id_world(tiny_world: Path, folder: Path) -> Path:
    """A copy of the tiny world whose train labels carry int ids, string ids and no id."""
    import json
    import shutil

    world = folder / "world"
    shutil.copytree(tiny_world, world)
    path = world / "labels" / "det_20" / "det_train.json"
    frames = json.loads(path.read_text())
    labels = [label for frame in frames for label in frame.get("labels") or []]
    for i, label in enumerate(labels):
        if i % 3 == 0:
            label["id"] = i  # a JSON number
        elif i % 3 == 1:
            label.pop("id", None)
    path.write_text(json.dumps(frames))
    return world


def test_label_ids_are_read_as_strings_and_a_missing_one_stays_missing(tiny_world: Path, tmp_path: Path) -> None:
    import pandas as pd

    from bddengine.bdd.loader import frames_to_tables, load_label_file
    from bddengine.integrations.fiftyone import detections_by_frame

    world = _mixed_id_world(tiny_world, tmp_path)
    boxes = frames_to_tables(load_label_file(world / "labels/det_20/det_train.json"), source_split="train").boxes
    ids = boxes["label_id"]
    assert ids.iloc[0] == "0" and ids.isna().sum() > 0
    assert {type(v) for v in ids.dropna()} == {str}
    sizes = dict.fromkeys(boxes["name"], (160, 90))
    dets = [d for frame in detections_by_frame(boxes, sizes).values() for d in frame]
    assert {type(d["label_id"]) for d in dets if "label_id" in d} == {str}
    assert sum("label_id" not in d for d in dets) == int(ids.isna().sum())
    assert not pd.isna(dets[0]["label_id"])


@pytest.mark.fiftyone
def test_mixed_label_ids_mirror_without_a_mixed_type_field(tiny_world: Path, tmp_path: Path, caplog) -> None:
    import json
    import logging
    import os

    from conftest import fiftyone_reachable

    if not fiftyone_reachable():
        pytest.skip("no MongoDB for FiftyOne (CI starts one)")
    import fiftyone as fo

    world = _mixed_id_world(tiny_world, tmp_path)
    cfg = write_config(tmp_path / "c.yaml", world, tmp_path / "runs", name=f"ids{os.getpid()}",
                       fiftyone={"enabled": True, "dataset_prefix": "bddengine-test"})
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "mixed types" not in caplog.text and "mixed types" not in result.output
    name = json.loads((tmp_path / "runs/01_collect/result.json").read_text())["metrics"]["fiftyone_dataset"]
    ds = fo.load_dataset(name)
    try:
        schema = ds.get_field_schema(flat=True)
        assert "ground_truth.detections.label_id" in schema
        ids = [i for frame in ds.values("ground_truth.detections.label_id") for i in frame or []]
        assert {type(i) for i in ids} == {str, type(None)} and "0" in ids
    finally:
        fo.delete_dataset(name)


# -- 10. `check` writes nothing ------------------------------------------------------------------


def _check_in_fresh_process(home: Path, cwd: Path, **env: str) -> tuple[int, str]:
    """`bddengine check` in a new interpreter: ultralytics writes its settings at its first import,
    which in this test process has long happened."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if k not in ("YOLO_CONFIG_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR")}
    clean.update(HOME=str(home), PYTHONPATH=os.pathsep.join(p for p in (str(SRC), clean.get("PYTHONPATH")) if p),
                 FIFTYONE_DATABASE_URI="mongodb://127.0.0.1:9", COLUMNS="200", **env)
    proc = subprocess.run([sys.executable, "-c", "from bddengine.cli import app; app()", "check", "--config",
                           str(SRC.parent / "configs" / "default.yaml")],
                          cwd=cwd, env=clean, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


SRC = Path(__file__).resolve().parents[1] / "src"


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_check_writes_nothing_under_home_or_the_config_dir(tmp_path: Path) -> None:
    home, cwd, ycfg = tmp_path / "home", tmp_path / "work", tmp_path / "yolo-config"
    for folder in (home, cwd, ycfg):
        folder.mkdir()
    code, out = _check_in_fresh_process(home, cwd)
    assert code == 2 and "train.model yolov8m.pt" in out and "Traceback" not in out, out
    code, out = _check_in_fresh_process(home, cwd, YOLO_CONFIG_DIR=str(ycfg))
    assert code == 2 and "Traceback" not in out, out
    assert (_files(home), _files(cwd), _files(ycfg)) == ([], [], [])


def test_check_reads_the_users_ultralytics_weights_dir(tmp_path: Path) -> None:
    import json

    home, cwd, weights = tmp_path / "home", tmp_path / "work", tmp_path / "weights"
    settings = home / ".config" / "Ultralytics" / "settings.json"
    for folder in (cwd, weights, settings.parent):
        folder.mkdir(parents=True)
    (weights / "yolov8m.pt").write_bytes(b"stands in for the weights")
    settings.write_text(json.dumps({"weights_dir": str(weights)}))  # outdated: ultralytics would rewrite it
    before = settings.read_bytes(), settings.stat().st_mtime_ns
    code, out = _check_in_fresh_process(home, cwd)
    assert "Traceback" not in out, out
    assert re.search(r"found\s+train\.model yolov8m\.pt\n\s+" + re.escape(str(weights / "yolov8m.pt")), out), out
    assert "Ultralytics settings" not in out, out  # what it says of the temporary copy stays off the terminal
    assert (settings.read_bytes(), settings.stat().st_mtime_ns) == before
    assert _files(home) == [".config", ".config/Ultralytics", ".config/Ultralytics/settings.json"]


@pytest.mark.parametrize("lift", ["0", "-0.05"])
def test_a_target_lift_that_lifts_nothing_is_refused(lift: str) -> None:
    _refused(runner.invoke(app, ["report", "--set", f"flywheel.target_lift={lift}"]), "flywheel.target_lift",
             "greater than 0")
