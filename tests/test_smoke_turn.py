"""The 50-frame smoke fixture through every stage that is built, as CI runs it."""

import json
import os
import re
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.stages import STAGE_BY_NAME
from conftest import fiftyone_reachable, recorded_reads

REPO = Path(__file__).resolve().parents[1]


TURN = [
    "01_collect", "02_embed", "03_split", "04_train_iter0", "05_eval_iter0",
    "06_mine_iter0_prototype", "07_mine_iter0_random", "08_mine_iter0_random-slice",
    "09_autolabel_iter0_prototype-pyramid", "10_train_iter1_prototype-pyramid", "11_eval_iter1_prototype-pyramid",
    "12_autolabel_iter0_random-human", "13_train_iter1_random-human", "14_eval_iter1_random-human", "15_report",
]


def test_smoke_turn(tmp_path: Path, monkeypatch, capfd) -> None:
    """`bddengine flywheel` on the smoke config, with its relative paths, from a fresh folder."""
    from bddengine.report.casestudy import find_placeholders

    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    assert not Path(cfg["runs_dir"]).is_absolute()  # relative paths are what users run with
    # smoke.yaml leaves FiftyOne off (a newcomer may have no MongoDB); the test mirrors wherever one
    # answers, and CI (which starts one) must
    cfg["fiftyone"]["enabled"] = fiftyone_reachable() or bool(os.environ.get("CI"))
    cfg["fiftyone"]["dataset_prefix"] = f"bddengine-test-{tmp_path.name}"
    cfg["report"]["template"] = str(REPO / "case_study_template.md")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    result = runner.invoke(app, ["flywheel", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "flywheel turn" in result.output  # the closing table of step times
    # piped output is the project's own plain lines: ultralytics' output went to each run's log
    out, err = capfd.readouterr()
    for text in (result.output, out, err):
        assert "\x1b" not in text
        assert not re.search(r"^(Ultralytics \d|YOLOv8n summary|\s+from\s+n\s+params)", text, re.M), text
    assert "scoring slices" not in result.output and "WARNING:root" not in result.output + out + err
    runs_dir = tmp_path / cfg["runs_dir"]
    runs = sorted(p.name for p in runs_dir.iterdir())
    assert runs == TURN
    assert not (tmp_path / "runs").exists()  # nothing lands in ultralytics' own runs/ folder
    reads: dict[str, set[str]] = {}
    for run in runs:
        res = json.loads((runs_dir / run / "result.json").read_text())
        assert res["status"] == "complete" and res["seed"] == 42 and res["wall_time_s"] >= 0
        assert recorded_reads(res) <= set(STAGE_BY_NAME[res["stage"]].reads), run
        reads.setdefault(res["stage"], set()).update(recorded_reads(res))
    # every stage's declared reads are what it resolved (the pyramid's detector labeler reads the train run)
    for stage, got in reads.items():
        assert got == set(STAGE_BY_NAME[stage].reads), stage

    out = runs_dir.parent
    profile = json.loads((out / "turn_profile.json").read_text())  # where the turn's time went
    assert profile["complete"] and [s["run"] for s in profile["steps"] if s["stage"] != "synth"] == TURN
    assert all(s["wall_s"] > 0 and s["cpu_s"] >= 0 and s["peak_rss_mb"] > 0 for s in profile["steps"])
    assert abs(sum(s["share"] for s in profile["steps"]) - 1) < 1e-3
    study = out / "case_study" / "case_study_v1.md"
    text = study.read_text()
    assert find_placeholders(text) == []
    assert "prototype" in text and "random" in text
    for name in ("case_study_v1.html", "case_study_v1.pdf"):
        assert (out / "case_study" / name).stat().st_size > 1000, name
    for fig in ("slice_distribution.png", "slice_delta.png", "worst_slice_failures.png",
                "mined_frames_grid.png", "autolabel_pr.png", "architecture.png", "turn_profile.png"):
        assert (out / "figures" / fig).is_file(), fig
    mined = json.loads((runs_dir / "06_mine_iter0_prototype/mined.json").read_text())
    assert mined["strategy"] == "prototype" and 0 < len(mined["frames"]) <= cfg["mine"]["k"]
    train1 = json.loads((runs_dir / "10_train_iter1_prototype-pyramid/result.json").read_text())
    assert train1["metrics"]["n_autolabel_images"] > 0  # the pyramid's labels reached iteration 1
    pyramid = json.loads((runs_dir / "09_autolabel_iter0_prototype-pyramid/result.json").read_text())["metrics"]
    assert pyramid["label_source"] == "pyramid" and pyramid["n_audit_frames"] == 3
    assert pyramid["cost"]["frames_to_humans"] == pyramid["n_human_frames"] >= 3
    report = json.loads((runs_dir / "15_report/result.json").read_text())["metrics"]
    assert set(report["arm_costs"]) == {"prototype-pyramid", "random-human"}
    assert "**Labels and cost per arm**" in text

    manifest = pd.read_parquet(runs_dir / "01_collect/manifest.parquet")
    assert len(manifest) == 50
    emb = json.loads((runs_dir / "02_embed/result.json").read_text())
    assert emb["random_init"] is True
    train = runs_dir / "04_train_iter0"
    assert (train / "ultralytics/weights/best.pt").is_file() and (train / "ultralytics/results.csv").is_file()
    log = (train / "ultralytics.log").read_text()
    assert "YOLOv8n summary" in log and "\x1b" not in log
    assert "04_train_iter0/ultralytics.log (what ultralytics printed)" in result.output
    assert not list((runs_dir / "03_split").rglob("*.cache"))  # train wrote nothing into the split run
    train_res = json.loads((train / "result.json").read_text())
    assert train_res["inputs"]["split"] == "03_split"  # relative: a moved project finds its own runs
    assert set(train_res["weights_sha256"]) == {"ultralytics/weights/best.pt", "ultralytics/weights/last.pt"}
    ev = runs_dir / "05_eval_iter0"
    gt = json.loads((runs_dir / "03_split/eval_gt.json").read_text())
    preds = json.loads((ev / "preds.json").read_text())
    assert sorted(f["name"] for f in preds) == sorted(f["name"] for f in gt)
    table = pd.read_csv(ev / "slice_table.csv")
    assert set(table["grouping"]) == {"slice", "weather", "timeofday", "scene", "overall"}
    overall = table[table["grouping"] == "overall"].iloc[0]
    assert overall["n_frames"] == len(gt)
    for name in ("worst_slice.json", "failures.json", "slice_map50.png", "worst_slice_failures.png"):
        assert (ev / name).is_file(), name

    # the same eval with the same inputs is a no-op
    again = runner.invoke(app, ["eval", "--iter", "0", "--config", str(path)])
    assert again.exit_code == 0 and "up to date" in again.output
    # the scorer users run on their own predictions agrees with eval
    out = tmp_path / "score.json"
    scored = runner.invoke(app, ["score", str(runs_dir / "03_split/eval_gt.json"), str(ev / "preds.json"),
                                 "--n-boot", "0", "--json", str(out)])
    assert scored.exit_code == 0, scored.output
    doc = json.loads(out.read_text())
    res = json.loads((ev / "result.json").read_text())
    assert doc["overall"]["map50"] == res["metrics"]["map50"]
