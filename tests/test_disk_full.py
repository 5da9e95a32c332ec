"""A full disk: one clear message, nothing half-written (issue 15, finding 8)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.errors import StageInputError
from bddengine.runs import TMP_PREFIX, StageRun
from conftest import write_config


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_mid_stage_is_one_message_and_leaves_nothing(tmp_path: Path, tiny_world: Path,
                                                             monkeypatch) -> None:
    import bddengine.stages.collect as collect_stage

    def full(run_dir, *args, **kwargs):
        (Path(run_dir) / "slice_index.partial").write_bytes(b"x" * 4096)
        raise _enospc(Path(run_dir) / "slice_index.json")

    monkeypatch.setattr(collect_stage, "write_slice_index", full)
    runs = tmp_path / "runs"
    cfg = write_config(tmp_path / "c.yaml", tiny_world, runs)
    res = CliRunner().invoke(app, ["collect", "-c", str(cfg)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "disk full writing" in out and "slice_index.json" in out and str(runs) in out
    assert "free" in out and "it had written" in out and "Traceback" not in out
    assert sorted(p.name for p in runs.iterdir()) == []  # no .tmp_, no lock, no run


def test_disk_full_before_the_first_file_leaves_no_temp_folder(tmp_path: Path, monkeypatch) -> None:
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "config.yaml":
            raise _enospc(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(StageInputError, match="disk full"):
        with StageRun(tmp_path, "collect", {}, 42, "fp"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_collect_on_a_truly_full_disk(tmp_path: Path, tiny_world: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mnt / "runs").mkdir()
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:  # until 0 bytes are free
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        cfg = write_config(tmp_path / "c.yaml", tiny_world, mnt / "runs")
        res = CliRunner().invoke(app, ["collect", "-c", str(cfg)])
        out = " ".join(res.output.split())
        assert res.exit_code == 2, res.output
        assert "disk full" in out and str(mnt / "runs") in out and "Traceback" not in out, out
        assert "has 0 bytes free" in out, out
        assert not [p for p in (mnt / "runs").iterdir() if p.name.startswith(TMP_PREFIX)]
    finally:
        subprocess.run(["umount", str(mnt)])
