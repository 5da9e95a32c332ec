"""benchmarks/gpu_turn.py: the GPU turn benchmark rehearsed on the CPU at tiny sizes, so it never rots."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_turn.py"


def _run(*args: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = os.environ | {"PYTHONPATH": str(REPO / "src"), "YOLO_OFFLINE": "1"} | (env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=600)


def test_dry_run_runs_every_step_and_prints_the_table(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    done = _run("--dry-run", "--check-cpu", "--out", str(tmp_path / "out"), tmp_path=tmp_path,
                env={"BDDENGINE_BENCH_RESULTS": str(results)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    table = out[out.index("== gpu_turn: DRY RUN"):]
    for stage in ("| curation + embed | 24 |", "| train | 6 x 1 ep |", "| eval | 6 |",
                  "| autolabel (detector) |", "| turn |"):
        assert stage in table, table
    assert "embed on 24 frames: decode" in table and "train: " in table and "JPEG decode" in table
    assert "check: PASS: max per-slice mAP@0.5 difference 0.0000 <= 0.02" in table
    assert not results.exists()  # a rehearsal records no ratio
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").iterdir() if not p.name.startswith("."))
    # a dry run checks the turn's own detector (on a GPU: a YOLOv8n of its own, tag seed43)
    assert runs == ["01_collect", "02_embed", "03_split", "04_train_iter0", "05_eval_iter0", "06_eval_iter0"]
    devices = [yaml.safe_load((tmp_path / f"out/runs/{run}/config.yaml").read_text())["eval"]["device"]
               for run in ("05_eval_iter0", "06_eval_iter0")]
    assert devices == ["cpu", "cpu"]  # a dry run is all CPU; on a GPU the first is cuda


def test_without_cuda_it_says_so_in_one_line_and_records_a_skip(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    done = _run("--out", str(tmp_path / "out"), tmp_path=tmp_path,
                env={"BDDENGINE_BENCH_RESULTS": str(results), "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_turn: no CUDA device here") and done.stdout.count("\n") == 1
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["script"] == "gpu_turn.py" and "no CUDA device" in row["skipped"]
    assert not (tmp_path / "out").exists()
