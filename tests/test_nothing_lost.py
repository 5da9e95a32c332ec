"""The engine deletes only what it wrote (issue 15, findings 1 and 2)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bddengine.cli import app
from conftest import write_config

SMALL_SYNTH = ["--set", "synth.n_train=4", "--set", "synth.n_val=2", "--set", "synth.workers=1"]


def _user_files(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (root / "photos").mkdir()
    (root / "photos" / "a.jpg").write_bytes(b"\xff\xd8")


def test_synth_force_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _user_files(root)
    cfg = write_config(tmp_path / "c.yaml", root, tmp_path / "runs")
    runner = CliRunner()
    for extra in ([], ["--force"]):
        res = runner.invoke(app, ["synth", "-c", str(cfg), *SMALL_SYNTH, *extra])
        assert res.exit_code == 2, res.output
        assert "not a synthetic world" in res.output and "notes.txt" in res.output
        assert "Traceback" not in res.output and not isinstance(res.exception, FileExistsError)
        assert (root / "notes.txt").read_text() == "mine" and (root / "photos" / "a.jpg").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "data"]


def test_synth_force_replaces_its_own_world(tmp_path: Path) -> None:
    root = tmp_path / "data"
    cfg = write_config(tmp_path / "c.yaml", root, tmp_path / "runs")
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "-c", str(cfg), *SMALL_SYNTH]).exit_code == 0
    first = (root / "synth_meta.json").stat().st_ino
    res = runner.invoke(app, ["synth", "-c", str(cfg), *SMALL_SYNTH, "--force"])
    assert res.exit_code == 0, res.output
    assert (root / "synth_meta.json").stat().st_ino != first  # a new world was renamed into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "data"]
