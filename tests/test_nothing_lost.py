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


def _report_run(run_dir: Path, version: str, extra: dict[str, str] | None = None) -> Path:
    for name, text in {"case_study/case_study_v1.md": f"# {version}", "figures/slice_delta.png": version,
                       **(extra or {})}.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    return run_dir


def test_report_publish_keeps_a_users_own_files(tmp_path: Path) -> None:
    from bddengine.stages.report import publish

    out = tmp_path / "out"
    publish(_report_run(tmp_path / "r1", "one", {"figures/old_only.png": "x"}), out)
    (out / "figures" / "my_plot.png").write_text("mine")
    (out / "case_study" / "notes" ).mkdir()
    (out / "case_study" / "notes" / "n.md").write_text("mine too")
    publish(_report_run(tmp_path / "r2", "two"), out)
    assert (out / "figures" / "my_plot.png").read_text() == "mine"
    assert (out / "case_study" / "notes" / "n.md").read_text() == "mine too"
    assert (out / "figures" / "slice_delta.png").read_text() == "two"
    assert (out / "case_study" / "case_study_v1.md").read_text() == "# two"
    assert not (out / "figures" / "old_only.png").exists()  # published last time, gone from this run
    assert sorted(p.name for p in out.iterdir()) == ["case_study", "figures"]
    assert not [p for p in out.rglob(".tmp*")]


def test_report_publish_refuses_to_replace_a_file_it_did_not_publish(tmp_path: Path) -> None:
    import pytest

    from bddengine.errors import StageInputError
    from bddengine.stages.report import publish

    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "slice_delta.png").write_text("a user's own chart")
    with pytest.raises(StageInputError, match="not published by bddengine"):
        publish(_report_run(tmp_path / "r1", "one"), out)
    assert (out / "figures" / "slice_delta.png").read_text() == "a user's own chart"
    assert not (out / "case_study").exists()  # checked before anything was written
    (out / "figures" / "slice_delta.png").unlink()
    publish(_report_run(tmp_path / "r1", "one"), out)
    (out / "case_study" / "case_study_v1.md").write_text("# edited by hand")
    with pytest.raises(StageInputError, match="changed since"):
        publish(_report_run(tmp_path / "r2", "two"), out)
    assert (out / "case_study" / "case_study_v1.md").read_text() == "# edited by hand"


def test_report_publish_follows_a_symlinked_folder(tmp_path: Path) -> None:
    import pytest

    from bddengine.errors import StageInputError
    from bddengine.stages.report import publish

    out, shared = tmp_path / "out", tmp_path / "shared_case"
    out.mkdir()
    shared.mkdir()
    (shared / "keep.md").write_text("mine")
    (out / "case_study").symlink_to(shared)
    publish(_report_run(tmp_path / "r1", "one"), out)
    publish(_report_run(tmp_path / "r2", "two"), out)
    assert (out / "case_study").is_symlink() and (shared / "case_study_v1.md").read_text() == "# two"
    assert (shared / "keep.md").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["case_study", "figures"]  # no .old_case_study_*
    (out / "figures").rename(tmp_path / "figs")
    (out / "figures").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StageInputError, match="symlink"):
        publish(_report_run(tmp_path / "r2", "two"), out)
