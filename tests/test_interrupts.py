"""Signals: Ctrl-C, kill -9 and resume (issue 15, finding 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.lifecycle import alive, interrupts_stick
from bddengine.runs import RESULT_FILE, TMP_PREFIX, list_runs
from conftest import write_config


@pytest.fixture(autouse=True)
def terminal_ctrl_c():
    """Ctrl-C handled as in a terminal, whatever started pytest: a suite run as a background job of a
    shell inherits SIGINT ignored, which the engine then leaves ignored (`test_an_ignored_ctrl_c_stays_ignored`)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _swallowing_library_code() -> None:
    """What ultralytics' TryExcept does to a Ctrl-C that lands in its plotting."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    except BaseException:  # noqa: BLE001
        pass


def test_a_swallowed_ctrl_c_still_stops() -> None:
    with pytest.raises(KeyboardInterrupt):
        with interrupts_stick():
            _swallowing_library_code()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_ctrl_c_stays_ignored() -> None:
    """A background job of a shell (``cmd &``, nohup) starts with SIGINT ignored: a Ctrl-C meant for the
    foreground must not stop its stage."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_stick():
            _swallowing_library_code()
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_exits_130_and_commits_nothing(tmp_path: Path, tiny_world: Path, monkeypatch) -> None:
    import bddengine.stages.collect as collect_stage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect_stage, "write_slice_index", interrupted)
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["collect", "-c", str(write_config(tmp_path / "c.yaml", tiny_world, runs))])
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output and "nothing was committed" in res.output
    assert list(runs.iterdir()) == []


def _fake_split(runs: Path) -> None:
    split = runs / "01_split"
    for role in ("train", "val"):
        (split / "yolo" / "images" / role).mkdir(parents=True)
    (split / "yolo" / "dataset.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "images/train", "val": "images/val"}))
    (split / RESULT_FILE).write_text('{"stage": "split", "status": "complete"}')


def test_ctrl_c_swallowed_late_in_train_still_commits_nothing(tmp_path: Path, tiny_world: Path,
                                                               monkeypatch) -> None:
    import bddengine.stages.train as train_stage
    from bddengine.config import load_config

    runs = tmp_path / "runs"
    _fake_split(runs)

    def fit(run_dir, *args, **kwargs):
        weights = run_dir / "ultralytics" / "weights"
        weights.mkdir(parents=True)
        for name in ("best.pt", "last.pt"):
            (weights / name).write_bytes(b"w")
        (run_dir / "ultralytics" / "results.csv").write_text("epoch\n1\n")
        _swallowing_library_code()  # Ctrl-C during the final plots: ultralytics carries on

    monkeypatch.setattr(train_stage, "fit", fit)
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_world, runs), ["train.model=yolov8n.yaml"])
    with pytest.raises(KeyboardInterrupt):
        train_stage.run(cfg)
    assert [r.stage for r in list_runs(runs)] == ["split"]  # no committed train run
    kept = [p for p in runs.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert len(kept) == 1 and (kept[0] / ".resumable").is_file()  # for --resume


def test_resume_trains_on_the_runs_own_dataset(tmp_path: Path, tiny_world: Path, monkeypatch) -> None:
    import ultralytics

    import bddengine.stages.train as train_stage
    from bddengine.config import load_config

    runs = tmp_path / "runs"
    _fake_split(runs)
    calls = []

    class FakeYOLO:
        def __init__(self, model: str) -> None:
            self.model = model

        def train(self, **kwargs) -> None:
            calls.append(kwargs)
            run_dir = Path(kwargs["project"]) if "project" in kwargs else Path(kwargs["resume"]).parents[2]
            weights = run_dir / "ultralytics" / "weights"
            weights.mkdir(parents=True, exist_ok=True)
            if "project" in kwargs:
                (weights / "last.pt").write_bytes(b"epoch 0")
                raise KeyboardInterrupt  # killed after the only epoch
            (weights / "best.pt").write_bytes(b"w")
            (run_dir / "ultralytics" / "results.csv").write_text("epoch\n1\n")

    monkeypatch.setattr(ultralytics, "YOLO", FakeYOLO)
    monkeypatch.setattr(train_stage, "check_weights", lambda *a, **k: "safe")
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_world, runs), ["train.model=yolov8n.yaml"])
    with pytest.raises(KeyboardInterrupt):
        train_stage.run(cfg)
    out = train_stage.run(cfg, resume=True)
    resumed = calls[-1]
    assert isinstance(resumed["resume"], str) and resumed["resume"].endswith("last.pt")
    interrupted_dir = Path(resumed["resume"]).parents[2]  # the run's own folder, then renamed into place
    assert resumed["data"] == str(interrupted_dir / "dataset.yaml")
    assert "coco8" not in str(resumed) and (out.location / "dataset.yaml").is_file()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_kill_9_of_synth_leaves_no_worker_and_its_temp_tree_goes_next_start(tmp_path: Path) -> None:
    from bddengine.synth import generate_world

    root = tmp_path / "world"
    code = ("import sys; from pathlib import Path; from bddengine.synth import generate_world; "
            "generate_world(Path(sys.argv[1]), n_train=400, n_val=40, width=320, height=180, "
            "frames_per_video=1, workers=2, progress=False)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], env=env)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = _children(proc.pid) if proc.poll() is None else []
    assert len(workers) >= 2, "synth did not start its workers"
    tmp = [p for p in tmp_path.iterdir() if p.name.startswith("world.tmp-")]
    assert tmp
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(w) and _not_zombie(w) for w in workers):
        time.sleep(0.2)
    survivors = [w for w in workers if alive(w) and _not_zombie(w)]
    for w in survivors:  # do not leave them running on a failure
        os.kill(w, signal.SIGKILL)
    assert not survivors, "a worker outlived its parent"
    generate_world(root, n_train=4, n_val=2, width=160, height=90, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
