import json
import os
from pathlib import Path

import pytest

from bddengine.runs import (
    RunLookupError,
    StageRun,
    clean_stale_tmp,
    find_same_run,
    latest_run,
    list_runs,
    parse_run_name,
    resolve_input,
)


def _run(runs: Path, stage: str, fp: str = "f", **kw) -> Path:
    with StageRun(runs, stage, {"a": 1}, 42, fp, **kw) as r:
        (r.dir / "x.txt").write_text("hi")
        ref = r.commit(outputs={"x": "x.txt"}, metrics={"m": 1})
    return ref.path


def test_numbered_folders_and_result(tmp_path: Path) -> None:
    a = _run(tmp_path, "collect")
    b = _run(tmp_path, "train", iter=0)
    c = _run(tmp_path, "mine", iter=0, tag="prototype")
    assert [a.name, b.name, c.name] == ["01_collect", "02_train_iter0", "03_mine_iter0_prototype"]
    res = json.loads((a / "result.json").read_text())
    assert res["status"] == "complete" and res["seed"] == 42 and res["metrics"] == {"m": 1}
    assert res["outputs"] == {"x": "x.txt"} and res["wall_time_s"] >= 0 and "python" in res["versions"]
    assert (a / "config.yaml").read_text().strip() == "a: 1"
    ref = parse_run_name(c)
    assert ref is not None and (ref.stage, ref.iter, ref.tag) == ("mine", 0, "prototype")


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with StageRun(tmp_path, "collect", {}, 42, "f") as r:
            (r.dir / "partial").write_text("half")
            raise ZeroDivisionError("interrupted")
    assert list(tmp_path.iterdir()) == []
    assert _run(tmp_path, "collect").name == "01_collect"


def test_declared_outputs_must_exist(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not written"):
        with StageRun(tmp_path, "collect", {}, 42, "f") as r:
            r.commit(outputs={"m": "manifest.parquet"}, metrics={})
    assert list_runs(tmp_path) == []


def test_latest_and_resolve(tmp_path: Path) -> None:
    with pytest.raises(RunLookupError, match="bddengine collect"):
        resolve_input(tmp_path, "collect")
    _run(tmp_path, "collect")
    second = _run(tmp_path, "collect")
    _run(tmp_path, "train", iter=1)
    assert latest_run(tmp_path, "collect").path == second
    assert resolve_input(tmp_path, "collect", explicit="01_collect").number == 1
    assert resolve_input(tmp_path, "train", iter=1).iter == 1
    with pytest.raises(RunLookupError, match="expected a 'collect' run"):
        resolve_input(tmp_path, "collect", explicit="03_train_iter1")
    with pytest.raises(RunLookupError, match="--iter 0"):
        resolve_input(tmp_path, "train", iter=0)


def test_incomplete_folders_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "05_collect").mkdir()  # no result.json: not complete
    assert list_runs(tmp_path) == []
    # its number is never reused
    assert _run(tmp_path, "collect").name == "06_collect"


def test_same_fingerprint_found(tmp_path: Path) -> None:
    _run(tmp_path, "collect", fp="abc")
    assert find_same_run(tmp_path, "collect", "abc") is not None
    assert find_same_run(tmp_path, "collect", "other") is None


def test_stale_tmp_of_dead_process_is_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".tmp_01_collect_999999999_abcdef"
    dead.mkdir()
    mine = tmp_path / f".tmp_01_collect_{os.getppid()}_abcdef"
    mine.mkdir()
    removed = clean_stale_tmp(tmp_path)
    assert dead in removed and not dead.exists() and mine.exists()


def test_resumable_run_survives_interruption_and_resumes(tmp_path: Path) -> None:
    from bddengine.runs import discard_resumable, find_resumable

    with pytest.raises(KeyboardInterrupt):
        with StageRun(tmp_path, "train", {}, 42, "fp1", iter=0, resumable=True) as r:
            (r.dir / "last.pt").write_text("epoch 3")
            raise KeyboardInterrupt
    left = find_resumable(tmp_path, "train", "fp1", iter=0)
    assert left is not None and (left / "last.pt").read_text() == "epoch 3"
    assert find_resumable(tmp_path, "train", "other", iter=0) is None
    assert find_resumable(tmp_path, "train", "fp1", iter=1) is None
    clean_stale_tmp(tmp_path)  # a resumable folder is not stale
    assert left.exists()
    with StageRun(tmp_path, "train", {}, 42, "fp1", iter=0, resumable=True, resume_from=left) as r:
        assert (r.dir / "last.pt").exists()
        ref = r.commit(outputs={"w": "last.pt"}, metrics={})
    assert ref.name == "01_train_iter0" and not (ref.path / ".resumable").exists()
    assert find_resumable(tmp_path, "train", "fp1", iter=0) is None
    with pytest.raises(RuntimeError):
        with StageRun(tmp_path, "train", {}, 42, "fp2", iter=0, resumable=True):
            raise RuntimeError("boom")
    assert discard_resumable(tmp_path, "train", iter=0) == 1
    assert find_resumable(tmp_path, "train", "fp2", iter=0) is None
