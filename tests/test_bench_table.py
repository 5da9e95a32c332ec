"""benchmarks/_results.py: every benchmark's ratios in one table against their goals (end of `make bench`)."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def results():
    spec = importlib.util.spec_from_file_location("bench_results", REPO / "benchmarks" / "_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_appends_one_line_per_ratio_and_judges_the_goal(results, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bench" / "results.jsonl"
    monkeypatch.setenv(results.ENV, str(path))
    assert results.record("parse: tables / json", 1.4, 2.0, op="<=", script="parse.py")
    assert not results.record("mirror: naive / ours", 1.2, 3.0, script="mirror.py", note="1000 frames")
    with pytest.raises(ValueError, match="op must be"):
        results.record("x", 1.0, 1.0, op=">")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["name"], r["pass"], r["op"], r["script"]) for r in rows] == [
        ("parse: tables / json", True, "<=", "parse.py"), ("mirror: naive / ours", False, ">=", "mirror.py")]
    monkeypatch.delenv(results.ENV)
    results.record("not written", 5.0, 1.0)  # run by hand: no file is written
    assert len(path.read_text().splitlines()) == 2


def test_table_fails_on_a_missed_goal_or_a_benchmark_that_recorded_nothing(results, tmp_path: Path, capsys) -> None:
    path = tmp_path / "results.jsonl"
    ok_row = {"name": "synth: fps / goal", "ratio": 1.3, "goal": 1.0, "op": ">=", "pass": True,
              "script": "synth.py", "note": ""}
    path.write_text(json.dumps(ok_row) + "\n")
    assert results.main([str(path), "benchmarks/synth.py", "benchmarks/_detector.py"]) == 0
    out = capsys.readouterr().out
    assert "| synth: fps / goal | 1.30x | >= 1x | yes |" in out and "_detector" not in out
    assert results.main([str(path), "benchmarks/synth.py", "benchmarks/mirror.py"]) == 1
    assert "| mirror.py | - | - | **NO** | recorded no ratio" in capsys.readouterr().out
    path.write_text(json.dumps(ok_row | {"ratio": 0.5, "pass": False}) + "\n")
    assert results.main([str(path), "benchmarks/synth.py"]) == 1
    assert "**NO**" in capsys.readouterr().out


def test_a_benchmark_that_cannot_run_here_says_so_and_fails_nothing(results, tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv(results.ENV, str(path))
    results.record("synth: fps / goal", 1.3, 1.0, script="synth.py")
    results.skip("no CUDA device: nothing to measure", script="gpu_turn.py")
    assert results.main([str(path), "benchmarks/synth.py", "benchmarks/gpu_turn.py"]) == 0
    out = capsys.readouterr().out
    assert "| gpu_turn.py | - | - | skipped | no CUDA device: nothing to measure |" in out
    assert "(1 of 1 met" in out and "recorded no ratio" not in out
    path.write_text("")  # a skip does not cover a benchmark that crashed
    results.skip("no CUDA device", script="gpu_turn.py")
    assert results.main([str(path), "benchmarks/synth.py", "benchmarks/gpu_turn.py"]) == 1
    assert "| synth.py | - | - | **NO** | recorded no ratio" in capsys.readouterr().out
