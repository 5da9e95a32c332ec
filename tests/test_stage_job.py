"""The stage lifecycle (`bddengine.stages.job`): no-op, run folder, commit, summary, mirror."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

import bddengine.integrations.fiftyone as fiftyone_integration
from bddengine.config import load_config
from bddengine.runs import RESULT_FILE, RunRef, StageRun, list_runs
from bddengine.stages import STAGES, StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged
from conftest import write_config

RUN_MAX_LINES = 60


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_run_reads_as_its_table_of_contents(stage: str) -> None:
    """Each stage's run() stays short: the work lives in named functions, the lifecycle in job.py."""
    run = importlib.import_module(f"bddengine.stages.{stage}").run
    n = len(inspect.getsource(run).splitlines())
    assert n < RUN_MAX_LINES, f"stages/{stage}.py run() is {n} lines; move the work into named functions"


def _cfg(tmp_path: Path, *, fiftyone: bool = False):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path / "cfg.yaml", tmp_path / "world", tmp_path / "runs",
                        fiftyone={"enabled": fiftyone})
    return load_config(path)


def _summary(ref: RunRef, *, skipped: bool) -> StageOutcome:
    return StageOutcome(stage=ref.stage, location=ref.path, skipped=skipped,
                        numbers={"answer": ref.result()["metrics"]["answer"]})


def _work(calls: list[str]):
    def work(run: StageRun) -> Commit:
        calls.append(run.run_name)
        (run.dir / "answer.json").write_text(json.dumps(42))
        return Commit(outputs={"answer": "answer.json"}, metrics={"answer": 42}, extra={"note": "kept"})
    return work


def test_execute_commits_and_unchanged_skips(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    job = Job("mine", "fp-1", 7, _summary, iter=0, tag="random", inputs={"eval": str(cfg.runs_dir / "05_eval")})
    calls: list[str] = []
    assert unchanged(cfg, job, force=False) is None
    out = execute(cfg, job, _work(calls))
    assert calls == ["01_mine_iter0_random"] and not out.skipped and out.numbers == {"answer": 42}
    result = json.loads((cfg.runs_dir / "01_mine_iter0_random" / RESULT_FILE).read_text())
    assert (result["fingerprint"], result["seed"], result["iter"], result["tag"]) == ("fp-1", 7, 0, "random")
    assert result["inputs"] == {"eval": "05_eval"} and result["note"] == "kept"
    assert result["outputs"] == {"answer": "answer.json"} and result["metrics"] == {"answer": 42}

    again = unchanged(cfg, job, force=False)
    assert again is not None and again.skipped and again.location == out.location
    assert unchanged(cfg, job, force=True) is None
    assert unchanged(cfg, Job("mine", "fp-2", 7, _summary, iter=0, tag="random"), force=False) is None


def test_interrupted_work_leaves_no_run_folder(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)

    def work(run: StageRun) -> Commit:
        (run.dir / "half.json").write_text("{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(cfg, Job("eval", "fp", 42, _summary, iter=0), work)
    assert list(cfg.runs_dir.iterdir()) == []


def test_mirror_runs_after_commit_only_for_mirrored_fresh_runs(tmp_path: Path, monkeypatch) -> None:
    mirrored: list[str] = []

    def fake_mirror(cfg, ref: RunRef) -> str:
        assert (ref.path / RESULT_FILE).is_file()  # committed before it is mirrored
        mirrored.append(ref.name)
        return f"mirrored {ref.name}"

    monkeypatch.setattr(fiftyone_integration, "try_mirror_run", fake_mirror)
    cfg = _cfg(tmp_path, fiftyone=True)
    out = execute(cfg, Job("split", "fp", 42, _summary, mirror=True), _work([]))
    assert mirrored == ["01_split"] and out.look_at == ["mirrored 01_split"]
    skipped = unchanged(cfg, Job("split", "fp", 42, _summary, mirror=True), force=False)
    assert skipped is not None and skipped.look_at == [] and mirrored == ["01_split"]
    execute(cfg, Job("collect", "fp", 42, _summary), _work([]))  # not a mirrored stage
    off = _cfg(tmp_path / "off")
    execute(off, Job("split", "fp", 42, _summary, mirror=True), _work([]))  # fiftyone.enabled: false
    assert mirrored == ["01_split"]
    assert [r.name for r in list_runs(cfg.runs_dir)] == ["01_split", "02_collect"]
