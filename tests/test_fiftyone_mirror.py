import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.config import EngineConfig
from bddengine.evaluation import ERROR_TYPES, build_match_cache, per_frame_metrics
from bddengine.evaluation.error_slices import box_errors
from bddengine.integrations.fiftyone import (
    EvalNames,
    SyncReport,
    collect_of,
    detections_by_frame,
    match_eval_boxes,
    plan_slots,
    run_label,
    slice_tags,
    slug,
    view_for_run,
)
from bddengine.runs import list_runs, parse_run_name
from conftest import fiftyone_reachable, write_config, write_result

W, H = 100, 50
SLICE = {"weather": "rainy", "timeofday": "night", "scene": "highway"}
FRAMES = [  # name, pool, labeled, weather, timeofday, scene
    ("e1.jpg", "eval", True, *SLICE.values()),
    ("e2.jpg", "eval", True, *SLICE.values()),
    ("t1.jpg", "train", True, "clear", "daytime", "city street"),
    ("v1.jpg", "val", True, "clear", "dawn/dusk", "city street"),
    ("m1.jpg", "mining", False, "rainy", "night", "highway"),
    ("m2.jpg", "mining", False, "clear", "daytime", "city street"),
]
GT_BOXES = [  # name, label_id, category, raw category, ignored, x1, y1, x2, y2
    ("e1.jpg", "1", "car", "car", False, 10, 10, 30, 30),
    ("e1.jpg", "2", "pedestrian", "pedestrian", False, 50, 10, 60, 40),
    ("e2.jpg", "5", "truck", "truck", False, 0, 0, 20, 20),
    ("e2.jpg", "6", "car", "other vehicle", True, 40, 0, 60, 20),
    ("t1.jpg", "9", "car", "car", False, 5, 5, 25, 25),
    ("v1.jpg", "10", "bus", "bus", False, 5, 5, 45, 35),
]
PREDS = [
    {"name": "e1.jpg", "labels": [
        {"category": "car", "score": 0.9, "box2d": {"x1": 11, "y1": 11, "x2": 30, "y2": 30}},        # TP
        {"category": "car", "score": 0.8, "box2d": {"x1": 70, "y1": 10, "x2": 90, "y2": 30}},        # FP
        {"category": "pedestrian", "score": 0.1, "box2d": {"x1": 50, "y1": 10, "x2": 60, "y2": 40}},  # under 0.25
    ]},
    {"name": "e2.jpg", "labels": [
        {"category": "car", "score": 0.7, "box2d": {"x1": 40, "y1": 0, "x2": 60, "y2": 20}},  # on the ignored box
    ]},
]


def box2d(x1, y1, x2, y2) -> dict:
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def eval_gt() -> list[dict]:
    out = []
    for name, *_ in [f for f in FRAMES if f[1] == "eval"]:
        labels = [{"id": lid, "category": raw, "attributes": {"crowd": False}, "box2d": box2d(*xy)}
                  for n, lid, _, raw, _, *xy in GT_BOXES if n == name]
        out.append({"name": name, "attributes": dict(SLICE), "labels": labels})
    return out


def _commit(run: Path, inputs: dict, config: dict | None = None, **files) -> Path:
    run.mkdir(parents=True)
    for name, obj in files.items():
        (run / name.replace("__", ".")).write_text(json.dumps(obj))
    (run / "config.yaml").write_text(yaml.safe_dump(config or {}))
    return write_result(run, inputs)


def make_runs(runs: Path, *, images: Path | None = None) -> Path:
    """A hand-made flywheel: collect, embed, split, eval, mine and autolabel of 6 frames."""
    collect = runs / "01_collect"
    collect.mkdir(parents=True)
    img = images or runs.parent / "images"
    pd.DataFrame([{"name": n, "path": str(img / n), "split": "train", "video": f"vid-{n[:2]}", "weather": w,
                   "timeofday": t, "scene": s, "labeled": lab, "width": W, "height": H}
                  for n, _, lab, w, t, s in FRAMES]).to_parquet(collect / "manifest.parquet")
    pd.DataFrame([{"name": n, "label_id": lid, "category": c, "raw_category": raw, "ignored": ign,
                   "x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)}
                  for n, lid, c, raw, ign, x1, y1, x2, y2 in GT_BOXES]).to_parquet(collect / "boxes.parquet")
    write_result(collect, {})
    embed = runs / "02_embed"
    embed.mkdir()
    pd.DataFrame({"name": [f[0] for f in FRAMES]}).to_parquet(embed / "frames.parquet")
    np.save(embed / "embeddings.npy", np.random.default_rng(0).normal(size=(len(FRAMES), 8)).astype(np.float32))
    (embed / "config.yaml").write_text(yaml.safe_dump({"embed": {"model": "clip"}}))
    write_result(embed, {"collect": collect})
    split = runs / "03_split"
    split.mkdir()
    for pool in ("train", "val", "eval", "mining"):
        pd.DataFrame({"name": [f[0] for f in FRAMES if f[1] == pool]}).to_parquet(split / f"{pool}_pool.parquet")
    (split / "eval_gt.json").write_text(json.dumps(eval_gt()))
    write_result(split, {"collect": collect, "embed": embed})
    write_eval(runs / "04_eval_iter0", split, runs / "00_train_iter0")
    _commit(runs / "05_mine_iter0_prototype", {"eval": runs / "04_eval_iter0", "split": split},
            mined__json={"arm": "prototype", "strategy": "prototype", "frames": [
                {"name": "m2.jpg", "rank": 1, "similarity": 0.9, "matches_slice": False},
                {"name": "m1.jpg", "rank": 2, "similarity": 0.8, "matches_slice": True}]})
    review = {"category": "car", "score": 0.4, "route": "review", "box2d": box2d(1, 1, 11, 11)}
    _commit(runs / "06_autolabel_iter0_prototype", {"mine": runs / "05_mine_iter0_prototype"},
            autolabels__json=[
                {"name": "m2.jpg", "labels": [
                    {"category": "car", "score": 0.9, "route": "accept", "box2d": box2d(20, 20, 40, 40)}, review]},
                {"name": "m1.jpg", "labels": [
                    {"category": "bus", "score": 0.1, "route": "drop", "box2d": box2d(0, 0, 5, 5)}]}],
            review_queue__json=[{"name": "m2.jpg", "path": "m2.jpg", "n_review": 1, "boxes": [review]}])
    return runs


def write_eval(run: Path, split: Path, train: Path, preds: list[dict] | None = None) -> Path:
    """An eval run whose worst_slice.json counts come from bddengine's evaluator."""
    preds = PREDS if preds is None else preds
    gt = eval_gt()
    cache = build_match_cache(gt, preds, errors=True)
    per_frame = per_frame_metrics(cache, [f["name"] for f in gt], score_threshold=0.25)
    failures = [{"name": n, **m} for n, m in per_frame.items() if m["recall"] is not None and m["recall"] < 0.3]
    return _commit(run, {"train": train, "split": split, "eval_gt": split / "eval_gt.json"},
                   config={"eval": {"failure_score": 0.25}}, preds__json=preds, failures__json=failures,
                   box_errors__json=box_errors(cache, gt, preds),
                   worst_slice__json={"slice": {"key": SLICE, "n_frames": 2, "map50": 0.3},
                                      "per_frame": per_frame})


def mirror_config(tmp_path: Path, runs: Path) -> EngineConfig:
    return EngineConfig.model_validate({
        "name": "t", "runs_dir": str(runs),
        "fiftyone": {"enabled": True, "dataset_prefix": f"bddengine-test-{os.getpid()}-{tmp_path.name}"}})


@pytest.fixture
def mirrored(tmp_path: Path):
    """A hand-made run tree synced into a throwaway dataset; deleted afterwards."""
    import fiftyone as fo

    from bddengine.integrations.fiftyone import sync_runs

    runs = make_runs(tmp_path / "runs")
    cfg = mirror_config(tmp_path, runs)
    report = sync_runs(cfg)
    yield cfg, report, fo.load_dataset(report.dataset)
    for name in fo.list_datasets():
        if name.startswith(cfg.fiftyone.dataset_prefix):
            fo.delete_dataset(name)


# --- pure pieces -------------------------------------------------------------------------


def test_relative_boxes_and_tags() -> None:
    boxes = pd.DataFrame({"name": ["a", "a"], "category": ["car", "pedestrian"],
                          "x1": [10.0, 0.0], "y1": [20.0, 0.0], "x2": [30.0, 64.0], "y2": [60.0, 36.0],
                          "ignored": [False, True]})
    dets = detections_by_frame(boxes, {"a": (64, 36)})["a"]
    assert dets[0]["bounding_box"] == pytest.approx([10 / 64, 20 / 36, 20 / 64, 40 / 36])
    assert dets[1] == {"label": "pedestrian", "bounding_box": [0.0, 0.0, 1.0, 1.0], "iscrowd": True}
    assert slice_tags("foggy", "night", "highway") == ["weather:foggy", "timeofday:night", "scene:highway"]
    with_ids = detections_by_frame(boxes.assign(label_id=["7", "8"]), {"a": (64, 36)})["a"]
    assert [d["label_id"] for d in with_ids] == ["7", "8"]


def test_names_and_view_slugs() -> None:
    assert slug("clear-dawn/dusk-city street") == "clear-dawn-dusk-city-street"
    ev = parse_run_name(Path("07_eval_iter1_random-slice"))
    assert run_label(ev) == "iter1-random-slice"
    names = EvalNames(run_label(ev))
    assert names.pred_field == "pred_iter1_random_slice" and names.counts[0] == "eval_iter1_random_slice_tp"
    assert names.worst_tag == "worst-slice/iter1-random-slice"
    assert run_label(parse_run_name(Path("05_eval_iter0"))) == "iter0"
    assert run_label(parse_run_name(Path("08_mine_iter0_prototype"))) == "prototype"
    assert run_label(parse_run_name(Path("12_mine_iter1_prototype"))) == "iter1-prototype"
    assert view_for_run(ev) == "worst-slice-iter1-random-slice"
    assert view_for_run(parse_run_name(Path("09_autolabel_iter0_random-slice"))) == \
        "autolabel-review-queue-random-slice"


def test_box_marks_agree_with_bddengine_evaluator() -> None:
    gt = eval_gt()
    marks = match_eval_boxes(gt, PREDS, score_threshold=0.25)
    e1, e2 = marks["e1.jpg"], marks["e2.jpg"]
    assert e1.pred == ["tp", "fp", "tp"]  # the 0.1 pedestrian matches, but counts only above 0.25
    assert e1.gt == {"1": "tp", "2": "fn"}
    assert (e1.tp, e1.fp, e1.fn) == (1, 1, 1)
    assert e2.pred == ["ignored"] and e2.gt == {"5": "fn", "6": "ignored"}
    assert (e2.tp, e2.fp, e2.fn) == (0, 0, 1)
    official = per_frame_metrics(build_match_cache(gt, PREDS), ["e1.jpg", "e2.jpg"], score_threshold=0.25)
    for name, m in marks.items():
        assert (m.tp, m.fp, m.fn) == (official[name]["tp"], official[name]["fp"], official[name]["fn"])
    low = match_eval_boxes(gt, PREDS, score_threshold=0.0)["e1.jpg"]
    assert (low.tp, low.fp, low.fn) == (2, 1, 0) and low.gt["2"] == "tp"


def random_frames(n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """``n`` frames of crowded GT (some crowd boxes) and jittered / spurious predictions."""
    from bddengine.bdd.categories import CLASSES

    rng = np.random.default_rng(seed)
    gt, preds = [], []
    for i in range(n):
        labels, guesses = [], []
        for j in range(int(rng.integers(0, 12))):
            x, y, w, h = rng.uniform(0, 300), rng.uniform(0, 200), rng.uniform(2, 120), rng.uniform(2, 90)
            cat = str(rng.choice(CLASSES))
            labels.append({"id": str(j), "category": cat, "attributes": {"crowd": bool(rng.random() < 0.1)},
                           "box2d": box2d(x, y, x + w, y + h)})
            if rng.random() < 0.7:
                dx, dy = rng.normal(0, 0.15 * w), rng.normal(0, 0.15 * h)
                guesses.append({"category": cat, "score": float(rng.random()),
                                "box2d": box2d(x + dx, y + dy, x + dx + w, y + dy + h)})
        for _ in range(int(rng.integers(0, 5))):
            x, y = rng.uniform(0, 300), rng.uniform(0, 200)
            guesses.append({"category": str(rng.choice(CLASSES)), "score": float(rng.random()),
                            "box2d": box2d(x, y, x + rng.uniform(2, 80), y + rng.uniform(2, 80))})
        gt.append({"name": f"r{i:03d}.jpg", "attributes": dict(SLICE), "labels": labels})
        preds.append({"name": f"r{i:03d}.jpg", "labels": guesses})
    return gt, preds


def test_marks_only_matching_equals_the_full_protocol_run() -> None:
    from bddengine.evaluation.coco import AREA_ALL, frames_to_coco, match_boxes

    gt, preds = random_frames(60, seed=3)
    full, quick = match_boxes(frames_to_coco(gt, preds)), match_boxes(frames_to_coco(gt, preds), marks_only=True)
    all_range = list(full.params.areaRng[AREA_ALL])
    wanted = {(e["image_id"], e["category_id"]): e for e in full.evalImgs
              if e is not None and list(e["aRng"]) == all_range}
    got = {(e["image_id"], e["category_id"]): e for e in quick.evalImgs if e is not None}
    assert got.keys() == wanted.keys() and len(got) > 100
    for key, e in got.items():
        w = wanted[key]
        assert e["dtIds"] == w["dtIds"] and e["gtIds"] == w["gtIds"]
        assert np.array_equal(e["dtMatches"][0], w["dtMatches"][0])  # IoU 0.5 is the first threshold
        assert np.array_equal(e["gtMatches"][0], w["gtMatches"][0])
        assert np.array_equal(e["dtIgnore"][0], w["dtIgnore"][0]) and np.array_equal(e["gtIgnore"], w["gtIgnore"])


def test_lineage_and_plan(tmp_path: Path) -> None:
    runs = make_runs(tmp_path / "runs")
    refs = list_runs(runs)
    assert collect_of(next(r for r in refs if r.stage == "autolabel"), runs) == "01_collect"
    write_eval(runs / "07_eval_iter0", runs / "03_split", runs / "00_train_iter0")  # a re-run of eval iter 0
    shutil.copytree(runs / "01_collect", runs / "08_collect")
    (runs / "08_collect" / "result.json").write_text(
        (runs / "01_collect" / "result.json").read_text().replace("01_collect", "08_collect"))
    refs = list_runs(runs)
    lineage = {r.name: collect_of(r, runs) for r in refs}
    plan, skipped = plan_slots(refs, "01_collect", lineage, {"02_embed": "clip"})
    assert plan["eval:iter0"].name == "07_eval_iter0"  # the newest run of a slot wins
    assert set(plan) == {"embed:clip", "split", "eval:iter0", "mine:prototype", "autolabel:prototype"}
    assert skipped == []
    plan8, skipped8 = plan_slots(refs, "08_collect", lineage, {})
    assert plan8 == {} and any("belongs to 01_collect" in s for s in skipped8)


def test_report_lines_never_hide_a_mismatch() -> None:
    rep = SyncReport(dataset="d", collect="01_collect", mirrored=["a"], unchanged=["b"],
                     removed=["pred_iter1 (from 07_eval_iter1: its run folder no longer exists)"],
                     mismatches=["dataset d had 3 samples"])
    short = rep.lines(verbose=False)
    assert any("removed: pred_iter1" in line for line in short)
    assert any("MISMATCH: dataset d had 3 samples" in line for line in short)
    assert not any("unchanged: b" in line for line in short) and not rep.ok


# --- against a real FiftyOne database ---------------------------------------------------------


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_collect_mirrors_into_fiftyone(tiny_world: Path, tmp_path: Path) -> None:
    import fiftyone as fo

    cfg = write_config(tmp_path / "c.yaml", tiny_world, tmp_path / "runs", name=f"t{os.getpid()}",
                       fiftyone={"enabled": True, "dataset_prefix": "bddengine-test"})
    result = CliRunner().invoke(app, ["collect", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "01_collect"
    name = json.loads((run / "result.json").read_text())["metrics"]["fiftyone_dataset"]
    ds = fo.load_dataset(name)
    try:
        manifest = pd.read_parquet(run / "manifest.parquet")
        boxes = pd.read_parquet(run / "boxes.parquet")
        assert len(ds) == len(manifest) and ds.persistent
        assert ds.info["bddengine_runs"]["collect"] == "01_collect"
        labeled = set(manifest.loc[manifest["labeled"], "name"])
        assert ds.match_tags("labeled").count() == len(labeled)
        n_boxes = int(boxes["name"].isin(labeled).sum())
        assert ds.count("ground_truth.detections") == n_boxes
        first = manifest.iloc[0]
        tag = f"weather:{first['weather']}"
        assert ds.match_tags(tag).count() == int((manifest["weather"] == first["weather"]).sum())
    finally:
        fo.delete_dataset(name)


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_sync_mirrors_every_stage(mirrored) -> None:
    from fiftyone import ViewField as F

    cfg, report, ds = mirrored
    assert report.ok, report.mismatches
    assert report.rebuilt and len(report.mirrored) == 5 and not report.removed
    assert len(ds) == len(FRAMES)
    # embed: vectors, similarity index, 2-D map
    assert {"clip_sim", "clip_viz"} <= set(ds.list_brain_runs())
    assert ds.exists("clip_embedding").count() == len(FRAMES)
    # split
    assert ds.match_tags("pool:eval").count() == 2 and ds.count_values("pool")["mining"] == 2
    # eval: predictions with per-box marks, per-frame counts from bddengine's matching
    e1 = ds.one(F("frame_name") == "e1.jpg")
    assert [d.confidence for d in e1.pred_iter0.detections] == [0.9, 0.8, 0.1]
    assert [d.eval_iter0 for d in e1.pred_iter0.detections] == ["tp", "fp", "tp"]
    assert e1.pred_iter0.detections[0].bounding_box == pytest.approx([0.11, 0.22, 0.19, 0.38])
    assert (e1.eval_iter0_tp, e1.eval_iter0_fp, e1.eval_iter0_fn) == (1, 1, 1)
    assert {d.label_id: d.eval_iter0 for d in e1.ground_truth.detections} == {"1": "tp", "2": "fn"}
    assert ds.exists("pred_iter0").count() == 2  # eval-pool samples only
    assert ds.match_tags("worst-slice").count() == 2 and ds.match_tags("worst-slice/iter0").count() == 2
    assert ds.match_tags("worst-slice-failure").values("frame_name") == ["e2.jpg"]
    # mine and autolabel
    assert ds.match_tags("mined/prototype").sort_by("mined_prototype_rank").values("frame_name") == \
        ["m2.jpg", "m1.jpg"]
    m2 = ds.one(F("frame_name") == "m2.jpg")
    assert [d.route for d in m2.autolabel_prototype.detections] == ["accept", "review"]
    assert ds.match_tags("review/prototype").values("frame_name") == ["m2.jpg"]
    # where each field came from
    slots = ds.info["bddengine_mirror"]["slots"]
    assert slots["eval:iter0"]["run"] == "04_eval_iter0" and "pred_iter0" in slots["eval:iter0"]["fields"]
    assert ds.info["bddengine_runs"]["mine_prototype"] == "05_mine_iter0_prototype"


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_saved_views(mirrored) -> None:
    cfg, report, ds = mirrored
    views = set(ds.list_saved_views())
    assert views == set(report.views)
    assert {"slice-rainy-night-highway", "slice-clear-dawn-dusk-city-street", "worst-slice",
            "worst-slice-failures", "worst-slice-iter0", "mined-prototype",
            "autolabel-review-queue-prototype", "eval-pool", "train-pool"} <= views
    assert all(v == slug(v) for v in views)  # names are their own URL slugs
    worst = ds.load_saved_view("worst-slice")
    assert worst.count() == 2
    assert worst.count("pred_iter0.detections") == 3  # of 4: the 0.1-score box is filtered out
    assert ds.load_saved_view("worst-slice-failures").values("frame_name") == ["e2.jpg"]
    assert ds.load_saved_view("mined-prototype").values("frame_name") == ["m2.jpg", "m1.jpg"]
    review = ds.load_saved_view("autolabel-review-queue-prototype")
    assert review.count() == 1 and review.count("autolabel_prototype.detections") == 2
    assert ds.load_saved_view("eval-pool").count() == 2
    colors = {f["path"]: f["colorByAttribute"] for f in ds.app_config.color_scheme.fields}
    assert colors == {"pred_iter0": "eval_iter0", "ground_truth": "eval_iter0", "autolabel_prototype": "route"}


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_error_types_on_boxes_and_saved_views(mirrored) -> None:
    from fiftyone import ViewField as F

    _, report, ds = mirrored
    gt, preds = eval_gt(), PREDS
    expected = box_errors(build_match_cache(gt, preds, errors=True), gt, preds)
    for frame in preds:
        sample = ds.one(F("frame_name") == frame["name"])
        assert [d["error_iter0"] if d.has_field("error_iter0") else None
                for d in sample.pred_iter0.detections] == expected[frame["name"]]["pred"]
    for frame in gt:
        sample = ds.one(F("frame_name") == frame["name"])
        want = {str(lab["id"]): t for lab, t in zip(frame["labels"], expected[frame["name"]]["gt"], strict=True)
                if t}
        got = {d.label_id: d["error_iter0"] for d in sample.ground_truth.detections if d.has_field("error_iter0")}
        assert got == want
    views = set(ds.list_saved_views())
    assert {f"worst-slice-{t}" for t in ERROR_TYPES} <= views and "worst-slice-miss-iter0" in views
    n_miss = sum(t == "miss" for f in gt for t in expected[f["name"]]["gt"])
    assert ds.load_saved_view("worst-slice-miss").count("ground_truth.detections") == n_miss
    for t in ("cls", "loc", "both", "dupe", "bkg"):
        n = sum(x == t for f in preds for x in expected[f["name"]]["pred"])
        assert ds.load_saved_view(f"worst-slice-{t}").count("pred_iter0.detections") == n, t


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_rerun_replaces_and_deleted_run_is_removed(mirrored) -> None:
    from bddengine.integrations.fiftyone import mirror_run, sync_runs

    cfg, _, ds = mirrored
    runs = Path(cfg.runs_dir)
    again = sync_runs(cfg)
    assert again.mirrored == [] and len(again.unchanged) == 5 and again.rebuilt is None
    # a re-run of eval iter 0 with other predictions replaces the field, not appends
    only_car = [PREDS[0] | {"labels": PREDS[0]["labels"][:1]}]
    ref = parse_run_name(write_eval(runs / "07_eval_iter0", runs / "03_split", runs / "00_train_iter0", only_car))
    rep = mirror_run(cfg, ref)
    assert [m.split(":")[0] for m in rep.mirrored] == ["07_eval_iter0"]
    ds.reload()
    assert ds.count("pred_iter0.detections") == 1
    assert ds.info["bddengine_mirror"]["slots"]["eval:iter0"]["run"] == "07_eval_iter0"
    # a second eval run gets its own field; deleting its folder removes it on the next sync
    write_eval(runs / "08_eval_iter1_prototype", runs / "03_split", runs / "00_train_iter1_prototype")
    sync_runs(cfg)
    ds.reload()
    assert ds.has_field("pred_iter1_prototype") and ds.has_saved_view("worst-slice-iter1-prototype")
    assert ds.match_tags("worst-slice").count() == 2  # the newest eval run owns the plain tags
    shutil.rmtree(runs / "08_eval_iter1_prototype")
    shutil.rmtree(runs / "06_autolabel_iter0_prototype")
    rep = sync_runs(cfg)
    ds.reload()
    assert not ds.has_field("pred_iter1_prototype") and not ds.has_field("autolabel_prototype")
    assert not ds.has_saved_view("worst-slice-iter1-prototype")
    assert ds.match_tags("review/prototype").count() == 0
    assert any("pred_iter1_prototype" in r and "no longer exists" in r for r in rep.removed)
    assert any("autolabel_prototype" in r for r in rep.removed)
    assert ds.has_field("pred_iter0") and ds.match_tags("worst-slice").count() == 2


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_mismatches_are_reported(mirrored) -> None:
    import fiftyone as fo
    from fiftyone import ViewField as F

    from bddengine.integrations.fiftyone import sync_runs

    cfg, _, ds = mirrored
    ds.set_values("stray", [1] * len(ds))
    ds.delete_samples(ds.match(F("frame_name") == "t1.jpg"))
    rep = sync_runs(cfg)
    assert any("had 5 samples" in m for m in rep.mismatches), rep.mismatches
    assert rep.rebuilt and len(rep.mirrored) == 5  # rebuilt from the run folders
    ds = fo.load_dataset(rep.dataset)
    assert len(ds) == len(FRAMES) and not ds.has_field("stray")
    ds.set_values("stray", [1] * len(ds))
    runs = Path(cfg.runs_dir)  # and an eval run whose predictions name a frame the split never had
    bad = write_eval(runs / "09_eval_iter2", runs / "03_split", runs / "00_train_iter2")
    (bad / "preds.json").write_text(json.dumps([{"name": "zzz.jpg", "labels": []}]))
    rep = sync_runs(cfg)
    assert any("'stray'" in m for m in rep.mismatches) and not rep.ok
    assert any(m.startswith("09_eval_iter2: not mirrored") and "zzz.jpg" in m for m in rep.mismatches)
    assert any("MISMATCH" in line for line in rep.lines(verbose=False))
    assert not ds.has_field("pred_iter2") and ds.has_field("pred_iter0")


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_two_project_folders_one_database_keep_their_own_datasets(tmp_path: Path, monkeypatch) -> None:
    """Issue 15, finding 3: same config name and prefix, two folders, one MongoDB."""
    import fiftyone as fo

    from bddengine.integrations.fiftyone import ProjectMismatch, sync_runs
    from bddengine.integrations.fiftyone import names as fiftyone_names

    a_runs = make_runs(tmp_path / "a" / "runs")
    b_runs = make_runs(tmp_path / "b" / "runs")
    a_cfg, b_cfg = mirror_config(tmp_path, a_runs), mirror_config(tmp_path, b_runs)
    try:
        a = sync_runs(a_cfg)
        b = sync_runs(b_cfg)
        assert a.dataset != b.dataset
        a_ds, b_ds = fo.load_dataset(a.dataset), fo.load_dataset(b.dataset)
        assert all(p.startswith(str(tmp_path / "a")) for p in a_ds.values("filepath"))
        assert all(p.startswith(str(tmp_path / "b")) for p in b_ds.values("filepath"))
        a_fields = set(a_ds.get_field_schema())
        # `app --sync` in B (a full rebuild) touches only B's dataset
        sync_runs(b_cfg, full=True)
        a_ds.reload()
        assert set(a_ds.get_field_schema()) == a_fields and len(a_ds) == len(FRAMES)
        assert a_ds.info["bddengine_mirror"]["runs_dir"] == str(a_runs.resolve())
        # should two folders ever map to one name, the second refuses and names both folders
        monkeypatch.setattr(fiftyone_names, "project_id", lambda runs_dir: "same")
        sync_runs(a_cfg)
        with pytest.raises(ProjectMismatch) as err:
            sync_runs(b_cfg, full=True)
        assert str(a_runs.resolve()) in str(err.value) and str(b_runs.resolve()) in str(err.value)
        shared = fo.load_dataset(sync_runs(a_cfg).dataset)
        assert all(p.startswith(str(tmp_path / "a")) for p in shared.values("filepath"))
    finally:
        for name in fo.list_datasets():
            if name.startswith(a_cfg.fiftyone.dataset_prefix):
                fo.delete_dataset(name)


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_label_documents_read_back_as_the_labels_fiftyone_builds() -> None:
    """The mirror writes raw label documents; FiftyOne must read them as if it had built them."""
    import fiftyone as fo

    from bddengine.integrations.fiftyone import detection_doc, detections_doc, set_label_docs

    frames = {"a.jpg": [("car", [0.1, 0.2, 0.3, 0.4], {"confidence": 0.9, "eval_x": "tp", "label_id": "3"}),
                        ("bus", [0.5, 0.5, 0.1, 0.1], {"confidence": None, "iscrowd": True})],
              "b.jpg": []}
    names = [f"bddengine-test-docs-{os.getpid()}-{k}" for k in ("objects", "docs")]
    try:
        built, raw = (fo.Dataset(n) for n in names)
        for ds in (built, raw):
            ds.add_samples([fo.Sample(filepath=f"/nonexistent/{n}", frame_name=n) for n in [*frames, "c.jpg"]])
        built.set_values("boxes", {n: fo.Detections(detections=[
            fo.Detection(label=c, bounding_box=b, **{k: v for k, v in a.items() if v is not None})
            for c, b, a in dets]) for n, dets in frames.items()}, key_field="frame_name")
        set_label_docs(fo, raw, "boxes", {n: detections_doc([detection_doc(c, b, **a) for c, b, a in dets])
                                          for n, dets in frames.items()})
        for ds in (built, raw):
            ds.add_dynamic_sample_fields()

        def plain(ds) -> list:
            return [None if d is None else [{k: v for k, v in x.to_dict().items() if k != "_id"}
                                            for x in d.detections] for d in ds.values("boxes")]

        assert plain(raw) == plain(built) and plain(raw)[1] == [] and plain(raw)[2] is None
        assert raw.get_field_schema(flat=True).keys() == built.get_field_schema(flat=True).keys()
        assert type(raw.get_field("boxes.detections.eval_x")) is type(built.get_field("boxes.detections.eval_x"))
        assert raw.count("boxes.detections") == 2 and raw.distinct("boxes.detections.label") == ["bus", "car"]
        assert len(set(raw.values("boxes.detections.id", unwind=True))) == 2  # every box has its own id
    finally:
        for n in names:
            if fo.dataset_exists(n):
                fo.delete_dataset(n)
