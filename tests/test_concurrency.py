"""Two copies of a stage on one runs folder (issue 15, finding 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bddengine.locks import StageBusy
from bddengine.runs import TMP_PREFIX, StageRun

HOLDER = """
import sys, time
from pathlib import Path
from bddengine.runs import StageRun
with StageRun(Path(sys.argv[1]), "train", {}, 42, "fp", iter=0, resumable=True) as run:
    (run.dir / "epoch.txt").write_text("1")
    print(run.dir, flush=True)
    time.sleep(120)
"""


def _start_holder(runs: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(runs)], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip()
    assert line, "the holder did not start"
    return proc, Path(line)


def test_second_copy_stops_and_leaves_the_first_ones_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc, live = _start_holder(runs)
    try:
        with pytest.raises(StageBusy) as err:
            with StageRun(runs, "train", {}, 42, "fp", iter=0, resumable=True):
                pass
        assert f"PID {proc.pid}" in str(err.value) and "train_iter0" in str(err.value)
        assert live.is_dir() and (live / "epoch.txt").is_file()  # not deleted by the second copy
        with StageRun(runs, "train", {}, 42, "fp", iter=1):  # another iteration is another lock
            pass
        assert live.is_dir()
    finally:
        proc.kill()
        proc.wait()
    # the holder died (kill -9): its lock went with it, and a fresh run replaces its folder
    with StageRun(runs, "train", {}, 42, "fp", iter=0, resumable=True) as run:
        run.commit(outputs={}, metrics={})
    assert not live.exists()
    assert not [p for p in runs.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_cli_second_copy_gets_a_clear_message(tmp_path: Path, tiny_world: Path) -> None:
    from typer.testing import CliRunner

    from bddengine.cli import app
    from bddengine.locks import acquire
    from conftest import write_config

    runs = tmp_path / "runs"
    cfg = write_config(tmp_path / "c.yaml", tiny_world, runs)
    lock = acquire(runs, "collect")
    try:
        # the lock is per open file: this process's own second open conflicts like another process
        res = CliRunner().invoke(app, ["collect", "-c", str(cfg)])
    finally:
        lock.release()
    assert res.exit_code == 2, res.output
    assert "already running" in res.output and "Traceback" not in res.output
    assert not [p for p in runs.iterdir() if p.name[:2].isdigit()]
    assert CliRunner().invoke(app, ["collect", "-c", str(cfg)]).exit_code == 0


def test_lock_holder_killed_mid_stage_leaves_nothing_stuck(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc, live = _start_holder(runs)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    with StageRun(runs, "train", {}, 42, "fp", iter=0):
        pass
    assert time.monotonic() - t0 < 5
