"""The report stage on a fixture turn: iteration 0 plus two arms (one with two seeds), one arm missing."""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.config import EngineConfig
from bddengine.curation.slice_index import plot_slice_distribution, slice_index, write_slice_index
from bddengine.errors import StageInputError
from bddengine.evaluation import build_match_cache, evaluate_overall, per_frame_metrics
from bddengine.evaluation.slices import score_frames
from bddengine.report import find_placeholders
from bddengine.report.casestudy import APPENDIX, WORD_BUDGET, count_words, fill_template, template_fields
from bddengine.report.inputs import discover_runs, split_tag
from bddengine.runs import StageRun
from bddengine.stages import report as report_stage
from bddengine.stages.eval import failure_frames, pick_worst, slice_table, worst_slice_frames, write_tables

REPO = Path(__file__).resolve().parents[1]
WEATHER = ["clear", "rainy", "foggy"]
TIME = ["daytime", "night"]
SCENE = ["city street", "highway"]
MIN_FRAMES = 10
ARMS = ["prototype", "random", "random-slice"]  # random-slice gets no runs: the missing arm


def _commit(runs: Path, stage: str, *, iter=None, tag=None, inputs=None, metrics=None, files=None, extra=None):
    """A run folder made the way every stage makes one (StageRun), with the given files."""
    with StageRun(runs, stage, {"fixture": True}, 42, f"fp-{stage}-{iter}-{tag}", iter=iter, tag=tag,
                  inputs={k: str(v) for k, v in (inputs or {}).items()}) as run:
        outputs = {}
        for name, content in (files or {}).items():
            path = run.dir / name
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            elif isinstance(content, (dict, list)):
                path.write_text(json.dumps(content, indent=2))
            else:
                content(path)
            outputs[Path(name).stem] = name
        return run.commit(outputs=outputs, metrics=metrics or {}, extra=extra)


def _eval_run(runs: Path, gt, preds, *, iter, tag, split, train):
    """An eval run in the real format: the eval stage's own table, worst-slice and failure functions."""
    cache = build_match_cache(gt, preds)
    table = slice_table(cache, gt, n_boot=30, seed=42)
    worst = pick_worst(table, MIN_FRAMES)
    per_frame = per_frame_metrics(cache, worst_slice_frames(gt, worst), score_threshold=0.25)
    failures = failure_frames(per_frame, gt, recall_below=0.3)
    overall = evaluate_overall(cache)

    def tables(path: Path) -> None:
        write_tables(path.parent, table)

    files = {"preds.json": preds, "slice_table.json": tables,
             "worst_slice.json": {"slice": worst, "min_eval_frames": MIN_FRAMES, "per_frame": per_frame},
             "failures.json": failures, "overall.json": {k: overall[k] for k in ("n_frames", "map50", "map")},
             "worst_slice_failures.png": _png}
    ref = _commit(runs, "eval", iter=iter, tag=tag, inputs={"train": train.path, "split": split.path,
                                                            "eval_gt": split.path / "eval_gt.json"},
                  metrics={"n_frames": overall["n_frames"], "map50": overall["map50"], "map": overall["map"],
                           "worst_slice": worst, "n_failure_frames": len(failures),
                           "n_predictions": sum(len(f["labels"]) for f in preds)}, files=files)
    return ref, worst


def _png(path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2), dpi=100)
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory, conformance_dir: Path):
    """A runs folder: collect, embed, split, train/eval iter 0, arms prototype (2 seeds) and random."""
    root = tmp_path_factory.mktemp("turn")
    runs = root / "runs"
    gt = json.loads((conformance_dir / "gt.json").read_text())
    preds0 = json.loads((conformance_dir / "pred.json").read_text())
    for f in preds0:  # the 8 best boxes per frame keep COCO matching quick
        f["labels"] = sorted(f["labels"], key=lambda lab: -lab["score"])[:8]
    rng = random.Random(0)
    for f in gt:
        f["attributes"] = {"weather": rng.choice(WEATHER), "timeofday": rng.choice(TIME),
                           "scene": rng.choice(SCENE)}
    frames = pd.DataFrame([{"name": f["name"], **f["attributes"], "labeled": True} for f in gt]
                          + [{"name": f"u{i}.jpg", "weather": rng.choice(WEATHER), "timeofday": rng.choice(TIME),
                              "scene": rng.choice(SCENE), "labeled": False} for i in range(300)])

    def collect_files(path: Path) -> None:
        write_slice_index(path.parent, slice_index(frames))
        plot_slice_distribution(frames, path.parent / "slice_distribution.png")

    collect = _commit(runs, "collect", files={"slice_index.json": collect_files, "data_provenance.json": {
        "label_files": {"train": {"path": "labels/det_train.json", "sha256": "ab" * 32, "bytes": 1234}}}},
        metrics={"n_frames": len(frames), "n_labeled": len(gt), "n_unlabeled": 300, "n_boxes_labeled": 3241,
                 "n_slices": 12, "weather": frames["weather"].value_counts().to_dict(),
                 "timeofday": frames["timeofday"].value_counts().to_dict()})
    embed = _commit(runs, "embed", inputs={"collect": collect.path},
                    metrics={"n_frames": len(frames), "embedding_dim": 384, "random_init": True, "device": "cpu",
                             "frames_per_s": 50.0, "dtype": "float32"},
                    extra={"model": {"arch": "ViT-S-32", "pretrained": None}, "random_init": True})
    mining = frames[~frames["labeled"]]

    def split_files(path: Path) -> None:
        path.write_text(json.dumps(gt))
        mining[["name", *FRAME_ATTRIBUTES]].to_parquet(path.parent / "mining_pool.parquet")

    split = _commit(runs, "split", inputs={"collect": collect.path, "embed": embed.path},
                    files={"eval_gt.json": split_files},
                    metrics={"n_frames": {"train": 100, "val": 20, "eval": len(gt), "mining": 300},
                             "n_videos": {"train": 50, "val": 10, "eval": 101, "mining": 150},
                             "eval_slices": [{}] * 12, "eval_short_slices": 0, "holdout_ok": True})
    train0 = _commit(runs, "train", iter=0, inputs={"split": split.path, "init_weights": "yolov8n.yaml"},
                     metrics={"epochs": 2, "n_train_images": 100, "n_autolabel_images": 0, "device": "cpu"})
    eval0, worst = _eval_run(runs, gt, preds0, iter=0, tag=None, split=split, train=train0)
    worst_names = set(worst_slice_frames(gt, worst))

    # prototype: near-perfect boxes on the worst slice's frames -> a clear gain there
    by_name = {f["name"]: f for f in gt}
    proto = copy.deepcopy(preds0)
    for f in proto:
        if f["name"] in worst_names:
            f["labels"] = [{"id": f"g{i}", "category": lab["category"], "score": 0.95, "box2d": lab["box2d"]}
                           for i, lab in enumerate(by_name[f["name"]].get("labels") or []) if "box2d" in lab]
    proto43 = copy.deepcopy(proto)
    for f in proto43:  # a second seed: a little worse
        for lab in f["labels"][::4]:
            lab["score"] *= 0.3
    jitter = random.Random(5)
    rand = copy.deepcopy(preds0)
    for f in rand:
        for lab in f["labels"]:
            lab["score"] *= jitter.uniform(0.7, 1.0)

    worst_pool = mining[(mining[list(FRAME_ATTRIBUTES)] == pd.Series(worst["key"])).all(axis=1)]
    arms = {}
    for arm, seeds in (("prototype", {42: proto, 43: proto43}), ("random", {42: rand})):
        picked = worst_pool.head(6) if arm == "prototype" else mining.sample(20, random_state=1)
        rest = mining.drop(picked.index).head(20 - len(picked))
        mined_frames = [{"name": r.name, "weather": r.weather, "timeofday": r.timeofday, "scene": r.scene,
                         "rank": i, "similarity": 0.9 - i / 100,
                         "matches_slice": {a: getattr(r, a) for a in FRAME_ATTRIBUTES} == worst["key"]}
                        for i, r in enumerate(pd.concat([picked, rest]).itertuples())]
        in_slice = sum(f["matches_slice"] for f in mined_frames) / len(mined_frames)
        base = len(worst_pool) / len(mining)
        mine = _commit(runs, "mine", iter=0, tag=arm, files={
            "mined.json": {"arm": arm, "strategy": arm, "embedding": "embed", "iter": 0, "k": 20,
                           "worst_slice": worst, "failed_classes": ["truck"], "frames": mined_frames},
            "mining_precision.json": {"n_mined": 20, "k": 20, "slice_precision": in_slice, "slice_base_rate": base,
                                      "slice_lift": in_slice / base, "failed_class_precision": 0.4,
                                      "failed_class_base_rate": 0.2, "failed_class_lift": 2.0,
                                      "failed_classes": ["truck"]},
            "mined_frames_grid.png": _png}, metrics={"n_mined": 20, "k": 20})
        oracle = arm == "random"  # one arm labeled by the oracle (human stand-in), one by a model
        overall = {"precision": 1.0, "recall": 1.0} if oracle else {"precision": 0.91, "recall": 0.84}
        source = "human" if oracle else "pyramid"
        cost = {"source": source, "n_frames": 20, "n_gt_boxes": 300, "frames_to_humans": 20 if oracle else 6,
                "boxes_to_humans": 300 if oracle else 40, "audit_frames": 0 if oracle else 2,
                "review_frames": 0 if oracle else 4, "frames_machine_labeled": 0 if oracle else 12,
                "boxes_auto_accepted": 0 if oracle else 230, "labeler_wall_s": 4.2, "usd_human_all": 10.0,
                "usd_human_all_range": [5.0, 30.0], "usd_human": 10.0 if oracle else 3.0,
                "usd_human_range": [5.0, 30.0] if oracle else [1.5, 9.0], "usd_compute": 0.0 if oracle else 0.0018,
                "usd_total": 10.0 if oracle else 3.0018, "usd_saved": None if oracle else 7.0,
                "saving_claimed": not oracle,
                "saving_note": "human labels of every mined frame: nothing to save" if oracle else
                "14 of 20 frames not sent to humans; accepted boxes at precision 0.910 >= 0.9",
                "human_labeler": oracle}
        auto = _commit(runs, "autolabel", iter=0, tag=arm, inputs={"mine": mine.path}, files={
            "quality.json": {
                "labeler": "oracle" if oracle else "grounded", "label_source": source, "iou_threshold": 0.5,
                "n_frames_scored": 20,
                "thresholds": {"accept": 0.5, "drop": 0.25, "per_class": {}},
                "accepted": {"overall": overall, "per_class": {
                    "car": {"tp": 200, "fp": 15, "fn": 27, "n_gt": 227, "precision": 0.93, "recall": 0.88},
                    "truck": {"tp": 10, "fp": 4, "fn": 6, "n_gt": 16, "precision": 0.71, "recall": 0.62}}},
                "all_boxes": {"overall": {"precision": 0.7, "recall": 0.93}},
                "skippable": None if oracle else {"threshold": 0.42, "precision": 0.9, "recall": 0.62},
                "skippable_note": "n/a: the oracle is the human labeling" if oracle else "",
                "cost": cost, "note": "oracle: human labeling of every mined frame" if oracle else ""},
            "autolabel_pr.png": _png},
            metrics={"labeler": "oracle" if oracle else "grounded", "label_source": source,
                     "n_boxes": {"accept": 230, "review": 40, "drop": 60}, "n_train_boxes": 230,
                     "n_human_frames": 20 if oracle else 6, "n_machine_frames": 0 if oracle else 12,
                     "n_review_frames": 6, "precision": overall["precision"], "recall": overall["recall"],
                     "cost": cost})
        for seed, preds in seeds.items():
            tag = arm if seed == 42 else f"{arm}-seed{seed}"
            tr = _commit(runs, "train", iter=1, tag=tag, inputs={"split": split.path, "autolabel": auto.path},
                         metrics={"epochs": 1, "n_train_images": 100, "n_autolabel_images": 20, "device": "cpu"})
            _eval_run(runs, gt, preds, iter=1, tag=tag, split=split, train=tr)
        arms[arm] = seeds
    only = [{"name": r.name, **{a: getattr(r, a) for a in FRAME_ATTRIBUTES}, "rank": i, "similarity": 0.5,
             "matches_slice": False} for i, r in enumerate(mining.head(20).itertuples())]
    _commit(runs, "mine", iter=0, tag="prototype-detector", files={"mined.json": {
        "arm": "prototype-detector", "strategy": "prototype", "embedding": "detector", "k": 20, "frames": only}})
    return {"root": root, "runs": runs, "gt": gt, "preds0": preds0, "arms": arms, "worst": worst,
            "eval0": eval0}


def _cfg(turn, **report) -> EngineConfig:
    """The fixture turn's config; no slice is fragile unless ``fragile_min_gt`` is given."""
    report = {"fragile_min_gt": 1, **report}
    return EngineConfig.model_validate({
        "name": "fixture", "runs_dir": str(turn["runs"]),
        "data": {"root": str(turn["root"] / "world"), "synthetic": True},
        "eval": {"min_eval_frames": MIN_FRAMES},
        "report": {"n_boot": 200, "out_dir": str(turn["root"] / "out"), **report},
        "flywheel": {"arms": ARMS, "mine_only": ["prototype-detector"]},
    })


@pytest.fixture(scope="module")
def reported(turn):
    out = report_stage.run(_cfg(turn), progress=False)
    return turn, out


def test_report_writes_everything(reported) -> None:
    turn, out = reported
    pub = turn["root"] / "out"
    case, figs = pub / "case_study", pub / "figures"
    for name in ("case_study_v1.md", "case_study_v1.html", "case_study_v1.pdf", "headline.csv", "headline.json",
                 "headline.md", "config.yaml"):
        assert (case / name).is_file(), name
    for name in ("slice_distribution", "slice_delta", "worst_slice_failures", "mined_frames_grid", "autolabel_pr",
                 "architecture", "error_costs"):
        assert (figs / f"{name}.png").is_file(), name
    assert (figs / "architecture.dot").read_text().startswith("digraph flywheel")
    md = (case / "case_study_v1.md").read_text()
    assert find_placeholders(md) == []
    # the fixture's train runs hold no weights: the saliency figure is skipped with the reason, never faked
    assert not (figs / "gradcam_worst_slice.png").exists()
    assert "*Figure not drawn: the weights (ultralytics/weights/best.pt) of 04_train_iter0 and " in md
    assert "![AP each error type costs](../figures/error_costs.png)" in md
    for section in ("## 1. Problem statement", "## 2. Pipeline architecture", "## 5. Worst-slice analysis",
                    "## 7. Discussion", "## 8. Limitations", "## 9. Reproduction notes"):
        assert section in md
    assert "../figures/slice_delta.png" in md and "Figure not available" not in md
    limitations = md.split("## 8. Limitations")[1].split("## 9.")[0]
    appendix = (case / "case_study_appendix.md").read_text()
    every = appendix.split("## H. Limitations")[1]  # the main text keeps the first one, the appendix all
    assert len(re.findall(r"^\d+\. \*\*", limitations, flags=re.MULTILINE)) == 1
    assert len(re.findall(r"^\d+\. \*\*", every, flags=re.MULTILINE)) >= 6 and "appendix H" in limitations
    assert "Synthetic data" in every and "Random-init embeddings" in every
    assert find_placeholders(appendix) == []
    assert "ab" * 32 in appendix  # label-file hash from data_provenance.json
    assert "## 9. Reproduction notes" in md and "appendix F" in md
    mining = md.split("### Mining")[1].split("### Auto-label")[0]
    assert "| prototype | prototype | embed | 20 | 6 |" in mining and "2.0×" in mining  # failed-class lift
    auto = md.split("### Auto-label quality")[1].split("### Cost")[0]
    assert "- **prototype** (pyramid, " in auto and "appendix D" in auto  # precision / recall per arm
    measures = appendix.split("## D.")[1]  # every measure per arm in the appendix
    assert "| accepted machine boxes: precision | 0.910 | 1.000 |" in measures and "230 / 40 / 60" in measures
    assert "| label source | pyramid | human |" in measures
    assert "| frames labeled by humans / machine | 6 / 12 |" in measures
    assert "62.0% of GT boxes at score ≥ 0.42" in measures and "| truck | 16 | 10 | 4 | 6 |" in appendix
    cost = md.split("### Cost")[1].split("### Headline")[0]
    assert "| all frames by hand | $10.00 | $10.00 |" in appendix and "| paid to humans | $3.00 | $10.00 |" in appendix
    assert "humans labeled 6 of 20 frames ($3.00 of the $10.00 by-hand price)" in cost and "$7.00 saved" in cost
    summary = md.split("## Summary")[1].split("## 1.")[0]
    assert "**Labels and cost per arm**" in summary and "| prototype | pyramid |" in summary
    html = (case / "case_study_v1.html").read_text()
    assert "data:image/png;base64," in html and "../figures/" not in html and "<table>" in html
    pdf = (case / "case_study_v1.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 3
    res = json.loads((out.location / "result.json").read_text())
    assert res["stage"] == "report" and res["status"] == "complete"
    assert res["metrics"]["arms_compared"] == ["prototype", "random"]
    assert (out.location / "case_study" / "case_study_v1.md").read_text() == md  # published copy is the run's
    assert any("slice_delta.png" in x for x in out.look_at)
    assert any(k.startswith("worst slice Δ prototype") for k in out.numbers)


def test_headline_numbers_match_independent_scoring(reported) -> None:
    turn, out = reported
    doc = json.loads((turn["root"] / "out/case_study/headline.json").read_text())
    rows = doc["rows"]
    gt, worst = turn["gt"], turn["worst"]
    assert rows[0]["worst"] and {a: rows[0][a] for a in FRAME_ATTRIBUTES} == worst["key"]  # worst first
    assert rows[-1]["grouping"] == "overall"  # overall last
    slice_rows = [r for r in rows if r["grouping"] == "slice"]
    assert all(r["n_frames"] >= MIN_FRAMES for r in slice_rows)
    iter0 = [r["map50_iter0"] for r in slice_rows if r["arm"] == "random"]
    assert iter0 == sorted(iter0)

    cache0 = build_match_cache(gt, turn["preds0"])
    caches = {a: {s: build_match_cache(gt, p) for s, p in seeds.items()} for a, seeds in turn["arms"].items()}
    table0 = json.loads((turn["eval0"].path / "slice_table.json").read_text())
    for r in rows:
        names = [f["name"] for f in gt if r["grouping"] == "overall"
                 or all(f["attributes"][a] == r[a] for a in FRAME_ATTRIBUTES)]
        idx = np.sort(cache0.frame_indices(names))
        m0 = score_frames(cache0, idx, {}, n_boot=0).map50
        assert r["map50_iter0"] == pytest.approx(m0, abs=1e-12) and r["n_frames"] == len(names)
        m1 = [score_frames(c, idx, {}, n_boot=0).map50 for c in caches[r["arm"]].values()]
        assert r["map50_iter1"] == pytest.approx(np.mean(m1), abs=1e-12)
        assert r["delta"] == pytest.approx(np.mean(m1) - m0, abs=1e-12)
        assert r["ci_lo"] <= r["delta"] + 1e-12 and r["delta"] <= r["ci_hi"] + 1e-12
        assert r["n_seeds"] == len(m1)
        if len(m1) > 1:
            assert r["delta_min"] == pytest.approx(min(m1) - m0) and r["delta_max"] == pytest.approx(max(m1) - m0)
        same = [t for t in table0 if t["grouping"] == r["grouping"] and all(t[a] == r[a] for a in FRAME_ATTRIBUTES)]
        assert r["map50_iter0"] == pytest.approx(same[0]["map50"], abs=1e-9)  # the eval table (10 digits)
    overall = next(r for r in rows if r["grouping"] == "overall")
    assert overall["map50_iter0"] == pytest.approx(evaluate_overall(cache0)["map50"], abs=1e-12)
    proto_worst = next(r for r in rows if r["worst"] and r["arm"] == "prototype")
    assert proto_worst["delta"] > 0.2 and proto_worst["ci_excludes_0"]  # the fixture's targeted gain
    md = (turn["root"] / "out/case_study/headline.md").read_text()
    assert "| arm | iter 1 | Δ | 95% CI of Δ | CI resamples | per-seed Δ |" in md and "**" in md
    assert re.search(r"\| prototype \| 1\.000 \| \*\*\+0\.\d{3}\*\* \| \[\+0\.\d{3},\s\+0\.\d{3}\] "
                     r"\| 2 seeds × frames \| 2: ", md)


def test_missing_arm_is_reported(reported) -> None:
    turn, _ = reported
    md = (turn["root"] / "out/case_study/case_study_v1.md").read_text()
    assert "**Arm random-slice is missing**" in md
    assert "bddengine mine --strategy random-slice" in md
    doc = json.loads((turn["root"] / "out/case_study/headline.json").read_text())
    assert "random-slice" in doc["arms_missing"] and doc["arms"] == ["prototype", "random"]
    # a mining-only comparison is in the mining table and never reported missing
    assert doc["arms_mine_only"] == ["prototype-detector"] and "prototype-detector" not in doc["arms_missing"]
    assert "| prototype-detector (mining only) | prototype | detector | 20 | 0 |" in md
    assert "Arm prototype-detector is missing" not in md


def test_rerun_is_skipped_and_republishes(reported) -> None:
    turn, first = reported
    shutil.rmtree(turn["root"] / "out" / "figures")
    again = report_stage.run(_cfg(turn), progress=False)
    assert again.skipped and again.location == first.location
    assert (turn["root"] / "out/figures/slice_delta.png").is_file()
    assert not [p for p in (turn["root"] / "out").iterdir() if p.name.startswith((".tmp_", ".old_"))]


def test_iteration0_only(turn, tmp_path: Path) -> None:
    """Without any iteration-1 run the report still builds, and says so plainly."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for ref in sorted(turn["runs"].iterdir()):
        if ref.name.split("_", 1)[1] in ("collect", "embed", "split", "train_iter0", "eval_iter0"):
            shutil.copytree(ref, runs / ref.name)
    cfg = _cfg(turn, html=False, pdf=False, marginals=True).model_copy(update={"runs_dir": runs})
    cfg.report.out_dir = tmp_path / "out"
    report_stage.run(cfg, progress=False)
    md = (tmp_path / "out/case_study/case_study_v1.md").read_text()
    assert find_placeholders(md) == []
    assert "No arm has an iteration-1 eval" in md and "no mine run was found" in md
    assert not (tmp_path / "out/case_study/case_study_v1.pdf").exists()
    rows = json.loads((tmp_path / "out/case_study/headline.json").read_text())["rows"]
    assert [r["grouping"] for r in rows][-1] == "overall" and {"weather", "timeofday", "scene"} <= {
        r["grouping"] for r in rows}
    assert all(r["arm"] is None and r["delta"] is None for r in rows)


def test_no_iteration0_eval_is_a_clear_error(tmp_path: Path) -> None:
    cfg = EngineConfig.model_validate({"runs_dir": str(tmp_path / "runs")})
    with pytest.raises(StageInputError, match=r"no complete iteration-0 eval run .*bddengine eval --iter 0"):
        report_stage.run(cfg, progress=False)


def test_cli_report(reported, tmp_path: Path) -> None:
    from bddengine.cli import app

    turn, _ = reported
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(json.loads(_cfg(turn).model_dump_json())))
    result = CliRunner().invoke(app, ["report", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output  # same config, same runs: the report run is reused
    assert "worst slice Δ prototype" in result.output and "case_study_v1.md" in result.output
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"runs_dir": str(tmp_path / "nothing")}))
    failed = CliRunner().invoke(app, ["report", "--config", str(empty)])
    assert failed.exit_code == 2 and "iteration-0 eval" in failed.output


@pytest.mark.parametrize("text", ["{{title}}", "a {{ field }} b", "TODO: fill", "status TBD", "use e.g. this",
                                  "E.G. caps", "Lorem ipsum"])
def test_find_placeholders_catches_each_kind(text: str) -> None:
    assert len(find_placeholders(f"clean line\n{text}\n")) == 1
    assert find_placeholders("clean: 0.412 mAP, todo-list is lowercase, eg without dots") == []


def test_fill_template_drops_comments_and_fills_fields() -> None:
    template = (REPO / "case_study_template.md").read_text()
    fields = template_fields(template)
    assert "headline" in fields and "limitations" in fields
    assert find_placeholders(fill_template(template, {f: "x" for f in fields})) == []
    assert fill_template("<!-- a {{comment}} -->\n# {{title}}\n", {"title": "T"}) == "# T\n"


def test_split_tag() -> None:
    assert split_tag("prototype", 42) == ("prototype", 42)
    assert split_tag("prototype-seed43", 42) == ("prototype", 43)
    assert split_tag("prototype-detector-seed7", 42) == ("prototype-detector", 7)
    assert split_tag("random-slice", 42) == ("random-slice", 42)


def test_case_study_fits_the_word_budget(reported) -> None:
    turn, out = reported
    case = turn["root"] / "out" / "case_study"
    md, appendix = (case / "case_study_v1.md").read_text(), (case / APPENDIX).read_text()
    assert count_words(md) <= WORD_BUDGET
    res = json.loads((out.location / "result.json").read_text())
    assert res["metrics"]["case_study_words"] == count_words(md)
    # the per-run tables live in the appendix, the main text points there
    for heading in ("## A.", "## B. Numbers per run", "## C.", "## D.", "## E. Headline, every slice",
                    "## F. Reproduction"):
        assert heading in appendix
    assert "| **05_eval_iter0** |" in appendix and "| **05_eval_iter0** |" not in md
    assert "```yaml" in appendix and "```yaml" not in md
    summary = md.split("## Summary")[1].split("## 1.")[0]
    assert "**Headline**" in summary and "(worst)" in summary  # the headline is on page 1


STAGE_FIGURE_PX = {  # the size each stage draws its figure at on a real turn (smoke and demo)
    "01_collect/slice_distribution.png": (1800, 744),
    "05_eval_iter0/worst_slice_failures.png": (1760, 352),
    "06_mine_iter0_prototype/mined_frames_grid.png": (1228, 168),
    "07_autolabel_iter0_prototype/autolabel_pr.png": (1320, 550),
}


def test_case_study_pdf_is_four_pages_of_9pt_text(turn, tmp_path: Path) -> None:
    """The seed's four A4 pages, body text at least 9 pt. The appendix is its own PDF
    (``case_study_appendix.pdf``), so the main PDF's page count is the case study's."""
    from PIL import Image

    from bddengine.report.export import BODY_PT
    from test_report_architecture import pdf_text_sizes

    runs = tmp_path / "runs"
    shutil.copytree(turn["runs"], runs)
    for rel, size in STAGE_FIGURE_PX.items():  # the fixture's stage figures at the size real stages draw them
        hits = list(runs.glob(rel.split("/")[0] + "*/" + rel.split("/")[1]))
        assert hits, rel
        for h in hits:
            Image.new("RGB", size, (200, 60, 60)).save(h)
    cfg = _cfg(turn).model_copy(update={"runs_dir": runs})
    cfg.report.out_dir = tmp_path / "out"
    report_stage.run(cfg, progress=False)
    pdf = (tmp_path / "out/case_study/case_study_v1.pdf").read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert 1 <= pages <= 4, pages
    sizes = pdf_text_sizes(pdf)
    body = sizes.most_common(1)[0][0]
    assert body == BODY_PT >= 9.0, sizes
    # under 9 pt: only tables (8), inline code (9 x 0.92), captions and the footer (7.5), and far from most text
    assert min(sizes) >= 7.5, sizes
    assert sum(n for pt, n in sizes.items() if pt >= 9.0) >= 0.8 * sum(sizes.values()), sizes
    assert (tmp_path / "out/case_study/case_study_appendix.pdf").is_file()


def test_word_count_ignores_markup() -> None:
    assert count_words("| a | 0.5 |\n| --- | ---: |\n![alt text](x.png) two words") == 4


def test_arm_vs_control_rows(reported) -> None:
    turn, out = reported
    doc = json.loads((turn["root"] / "out/case_study/headline.json").read_text())
    contrasts = doc["contrasts"]
    assert {(r["arm"], r["control"]) for r in contrasts} == {("prototype", "random")}
    rows = {(r["slice"], r["arm"]): r for r in doc["rows"]}
    for c in contrasts:
        proto, rand = rows[(c["slice"], "prototype")], rows[(c["slice"], "random")]
        assert c["diff"] == pytest.approx(proto["map50_iter1"] - rand["map50_iter1"], abs=1e-12)
        assert c["ci_levels"] == "seeds+frames"  # prototype has two seeds
        if c["ci_excludes_0"]:
            assert c["verdict"] == ("prototype beats random" if c["diff"] > 0 else "random beats prototype")
        else:
            assert c["verdict"] == "cannot tell apart"
    worst = next(c for c in contrasts if c["worst"])
    assert worst["verdict"] == "prototype beats random"  # the fixture's targeted gain
    metrics = json.loads((out.location / "result.json").read_text())["metrics"]
    assert metrics["worst_slice_contrasts"]["prototype - random"]["verdict"] == "prototype beats random"
    md = (turn["root"] / "out/case_study/case_study_v1.md").read_text()
    assert "prototype − random" in md.split("## 1.")[0]  # on page 1
    # one seed: the table says the CI leaves out training variance
    headline = (turn["root"] / "out/case_study/headline.md").read_text()
    assert re.search(r"\| random \| [0-9.]+ \| [^|]+ \| [^|]+ \| frames only \| 1 \|", headline)
    assert "leaves out training variance" in headline


def test_which_arm_is_a_control_comes_from_the_strategy_entry(turn, tmp_path: Path) -> None:
    """With random's entry registered again without ``control``, the report compares no arm against it."""
    from bddengine.mining.strategies import STRATEGIES, StrategySpec, register

    random_entry = STRATEGIES["random"]
    assert random_entry.control
    register(StrategySpec(random_entry.strategy), replace=True)  # the same strategy, not a control
    try:
        cfg = _cfg(turn, html=False, pdf=False, out_dir=str(tmp_path / "out"))
        report_stage.run(cfg, force=True, progress=False)
    finally:
        register(random_entry, replace=True)
    assert STRATEGIES["random"] is random_entry and list(STRATEGIES)[:3] == ["prototype", "random", "random-slice"]
    doc = json.loads((tmp_path / "out/case_study/headline.json").read_text())
    assert doc["contrasts"] == [] and {r["arm"] for r in doc["rows"]} >= {"prototype", "random"}
    assert "prototype − random" not in (tmp_path / "out/case_study/case_study_v1.md").read_text()


def test_fragile_slices_are_marked_and_never_bold(turn, tmp_path: Path) -> None:
    cfg = _cfg(turn, fragile_min_gt=10, html=False, pdf=False, out_dir=str(tmp_path / "out"))
    report_stage.run(cfg, progress=False)
    doc = json.loads((tmp_path / "out/case_study/headline.json").read_text())
    worst = next(r for r in doc["rows"] if r["worst"] and r["arm"] == "prototype")
    assert worst["ci_excludes_0"] and worst["fragile"]  # the fixture's worst slice has few boxes of some classes
    gt = [f for f in turn["gt"] if all(f["attributes"][a] == worst[a] for a in FRAME_ATTRIBUTES)]
    counts = {}
    for f in gt:
        for lab in f.get("labels") or []:
            if lab["category"] in CLASSES and not (lab.get("attributes") or {}).get("crowd"):
                counts[lab["category"]] = counts.get(lab["category"], 0) + 1
    thin = {c: n for c, n in counts.items() if n < 10}
    assert thin and all(f"{c} ({n})" in worst["fragile_classes"] for c, n in thin.items())
    md = (tmp_path / "out/case_study/headline.md").read_text()
    line = next(x for x in md.splitlines() if "(worst)" in x and "| prototype |" in x)
    assert "‡" in line and "**+" not in line  # excludes 0, yet not bold
    assert "fewer than 10 GT boxes" in md


def test_turn_profile_chart(turn, tmp_path: Path) -> None:
    """The flywheel's turn_profile.json becomes one chart and a sentence of shares; another turn's is not shown."""
    from bddengine.flywheel import Step, StepCost, TurnProfile
    from bddengine.runs.turn_profile import profile_path

    runs = tmp_path / "runs"
    shutil.copytree(turn["runs"], runs)
    cfg = _cfg(turn, html=False, pdf=False).model_copy(update={"runs_dir": runs})
    cfg.report.out_dir = tmp_path / "out"
    costs = [("collect", "collect", 10.0, False), ("train --iter 0", "train", 70.0, False),
             ("eval --iter 0", "eval", 15.0, False), ("mine --arm prototype", "mine", 5.0, True)]
    eval0 = turn["eval0"].name
    profile = TurnProfile(profile_path(runs), "fixture", runs, [c[0] for c in costs] + ["report"])
    for title, stage, wall, skipped in costs:
        run = eval0 if stage == "eval" else f"00_{stage}"
        profile.add(Step(stage, cfg, label=title), StepCost(wall, wall * 1.5, 300.0 + wall), run=run,
                    skipped=skipped)
    report_stage.run(cfg, progress=False)
    md = (tmp_path / "out/case_study/case_study_v1.md").read_text()
    stages = md.split("## 2. Pipeline architecture")[1].split("## 3.")[0]
    assert "4 steps, 1.7\u00a0min wall" in stages
    assert "By stage: train 70%, eval 15%, collect 10%, mine 5%" in stages
    assert "Peak memory 370 MB, in `train --iter 0`" in stages and "1 step(s) were up to date" in stages
    assert "The report step itself is not included" in stages
    appendix = (tmp_path / "out/case_study/case_study_appendix.md").read_text()  # the chart sits with the runs
    assert "../figures/turn_profile.png" not in md and "Chart: appendix B." in stages
    assert "../figures/turn_profile.png" in appendix and (tmp_path / "out/figures/turn_profile.png").is_file()

    doc = json.loads(profile_path(runs).read_text())  # a profile of another turn: not this report's
    for s in doc["steps"]:
        s["run"] = "99_eval_iter0" if s["stage"] == "eval" else s["run"]
    profile_path(runs).write_text(json.dumps(doc))
    report_stage.run(cfg, progress=False)
    md = (tmp_path / "out/case_study/case_study_v1.md").read_text()
    assert "No `turn_profile.json` of this turn" in md and "turn_profile.png" not in md


def test_cost_per_point_only_when_the_delta_ci_excludes_zero() -> None:
    from bddengine.report.costs import per_point

    cost, ci, note = per_point(50.0, 0.05, 0.02, 0.10, True)
    assert cost == pytest.approx(10.0) and ci == pytest.approx((5.0, 25.0)) and note == ""
    assert per_point(50.0, 0.05, -0.01, 0.10, False) == (None, None, "CI includes 0")
    assert per_point(50.0, -0.05, -0.08, -0.02, True)[0] is None
    assert per_point(None, 0.05, 0.02, 0.10, True)[0] is None


def test_no_saving_is_claimed_for_labels_that_recovered_nothing() -> None:
    """The bill of an arm whose machine accepted nothing: humans paid nothing, and nothing is 'saved'."""
    from bddengine.report.casestudy import saving_sentence

    c = {"source": "auto", "n_frames": 20, "frames_to_humans": 0, "usd_human": 0.0, "usd_human_all": 10.0,
         "usd_compute": 0.01, "usd_saved": None, "saving_claimed": False,
         "saving_note": "not claimed: the machine's accepted boxes recovered no ground-truth box",
         "human_labeler": False}
    text = saving_sentence("prototype-auto", c)
    assert "no saving is claimed" in text and "recovered no ground-truth box" in text and "less" not in text
    assert "saved" not in text.replace("no saving", "")


def test_reproduction_commands_only_for_what_ran_and_weights_hashed(reported) -> None:
    """The mining-only arm gets its mine command alone; weights files carry their SHA-256."""
    turn, _ = reported
    appendix = (turn["root"] / "out/case_study" / APPENDIX).read_text()
    repro = appendix.split("## F. Reproduction")[1].split("## G.")[0]
    assert "bddengine mine --strategy prototype --embedding detector" in repro
    assert "bddengine autolabel --arm prototype-detector" not in repro
    assert "bddengine train --iter 1 --arm prototype-detector" not in repro
    assert "**Weights files**" in repro or "no run read or wrote a weights file" in repro


def test_claims_follow_the_config_that_ran(reported) -> None:
    from bddengine.report.discussion import more_training_sentence
    from bddengine.stages.report import gather

    turn, _ = reported
    d = gather(_cfg(turn), discover_runs(turn["runs"], base_seed=42, expected_arms=ARMS,
                                         mine_only=["prototype-detector"]), out_dir=turn["root"] / "o", progress=False)
    for init, more in (("previous", True), ("model", False)):
        d.cfg = d.cfg.model_copy(update={"train": d.cfg.train.model_copy(update={"next_iter_init": init})})
        assert ("more training" in more_training_sentence(d, "weights/yolov8m.pt")) is more
    text = more_training_sentence(d, "weights/yolov8m.pt")
    assert "more training" not in text and "restarts from `yolov8m.pt`" in text


def test_failure_breakdown_counts_only_scored_boxes() -> None:
    """Ignored categories and crowd regions are not ground truth the protocol scores."""
    from bddengine.stages.eval import scored_classes

    labels = [{"category": "car"}, {"category": "trailer"}, {"category": "car", "attributes": {"crowd": True}},
              {"category": "person"}, {"category": "lane"}, {"category": "truck"}]
    assert scored_classes(labels) == {"car": 1, "pedestrian": 1, "truck": 1}


def test_search_note_says_whether_an_index_was_built() -> None:
    from types import SimpleNamespace

    from bddengine.report.discussion import _search_note

    def data(**metrics):
        arm = SimpleNamespace(mine="06_mine")
        return SimpleNamespace(runs=SimpleNamespace(arms={"prototype": arm}),
                               result=lambda ref: {"metrics": {"n_eligible": 1200, "search_s": 0.01, **metrics}})

    exact = _search_note(data(index_type="flat-ip", index_build_s=0.0))
    assert exact == " This run searched 1,200 frames exactly (`flat-ip`, no index built) in 0.010 s."
    older = _search_note(data(index_type="flat-ip", index_build_s=0.2))  # a run from when exact search built one
    assert older == " This run searched 1,200 frames with a `flat-ip` index in 0.010 s."
    hnsw = _search_note(data(index_type="hnsw", index_build_s=0.0, recall_at_k=0.97))  # build rounded to 0
    assert hnsw == (" This run searched 1,200 frames with a `hnsw` index in 0.010 s "
                    "(recall@k 0.970 against exact search).")


def test_summary_and_headline_name_every_significant_regression(reported) -> None:
    turn, out = reported
    doc = json.loads((turn["root"] / "out/case_study/headline.json").read_text())
    falls = [r for r in doc["rows"] if r["arm"] and r["ci_hi"] is not None and r["ci_hi"] < 0 and not r["fragile"]]
    md = (turn["root"] / "out/case_study/case_study_v1.md").read_text().replace("\xa0", " ")
    summary = md.split("## Summary")[1].split("## 1.")[0]
    headline = md.split("### Headline")[1].split("## 7.")[0]
    for r in falls:
        assert f"{r['arm']} on {r['slice']}, {r['delta']:+.3f} [{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}]" in summary
        assert f"{r['arm']} on {r['slice']}" in headline.split("Regression")[1].split("\n")[0]
    assert ("Regression" in summary) is bool(falls) and ("Every slice: appendix E." in headline) is (not falls)
    res = json.loads((out.location / "result.json").read_text())
    assert [(x["arm"], x["slice"]) for x in res["metrics"]["regressions"]] == [
        (r["arm"], r["slice"]) for r in sorted(falls, key=lambda r: (r["arm"], r["delta"]))]  # largest fall first
