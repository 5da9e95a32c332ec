"""Benchmark: the FiftyOne mirror writes N frames with boxes >= 3x faster than a naive per-sample loop.

Claim: mirroring a collect run and an eval run of the same frames into FiftyOne
(`bddengine.fiftyone_mirror.sync_runs`: the samples with their ground-truth boxes and
slice tags, the eval pool, the predictions with per-box TP / FP marks, the per-frame
TP / FP / FN counts, the ground-truth boxes' TP / FN marks, the worst-slice tags, and
the saved views) is at least 3x faster than writing the same fields the naive way:
``add_samples`` of one sample at a time, then ``sample.save()`` per sample with its
eval fields. Both use the same MongoDB and the same box marks
(`match_eval_boxes`, timed on both sides); only ours also saves views and colours.

The frames are generated (no images are read: FiftyOne only stores the paths):
``--frames`` frames of 1280x720 with ``--boxes`` ground-truth boxes each, the detector's
jittered copies of most of them plus low-score false positives, random slice
attributes. The run folders are made with the engine's own `StageRun`; both datasets
are deleted at the end.

::

    eval "$(bash tools/local-mongod.sh start)"     # or `make bench`, which starts it
    PYTHONPATH=src python benchmarks/mirror.py                 # 1000 frames, 15 boxes each
    PYTHONPATH=src python benchmarks/mirror.py --frames 3000 --boxes 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _results import record

GOAL = 3.0
W, H = 1280, 720
SCORE = 0.25  # the eval stage's default failure_score: the per-frame counts' threshold


def make_frames(n: int, n_boxes: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[dict], list[dict]]:
    """(manifest, boxes, eval GT frames, prediction frames) of ``n`` frames."""
    from bddengine.bdd.categories import ATTRIBUTE_VALUES, CLASSES, FRAME_ATTRIBUTES

    rng = np.random.default_rng(seed)
    values = {a: ATTRIBUTE_VALUES[a][:-1] for a in FRAME_ATTRIBUTES}  # no "undefined"
    manifest, boxes, gt, preds = [], [], [], []
    for i in range(n):
        name = f"bench-{i:06d}.jpg"
        attrs = {a: str(rng.choice(values[a])) for a in FRAME_ATTRIBUTES}
        manifest.append({"name": name, "path": f"/nonexistent/bench/{name}", "split": "val",
                         "video": f"video-{i // 3:05d}", **attrs, "labeled": True, "width": W, "height": H})
        labels, pred_labels = [], []
        for j in range(n_boxes):
            w, h = rng.uniform(15, 300), rng.uniform(15, 200)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            cat = str(rng.choice(CLASSES))
            box = {"x1": x, "y1": y, "x2": x + w, "y2": y + h}
            labels.append({"id": str(j), "category": cat, "attributes": {"crowd": False}, "box2d": box})
            boxes.append({"name": name, "label_id": str(j), "category": cat, "raw_category": cat,
                          "ignored": False, **box})
            if rng.random() < 0.8:
                jit = {k: v + rng.normal(0, 4) for k, v in box.items()}
                pred_labels.append({"category": cat, "score": float(rng.beta(5, 2)), "box2d": jit})
        for _ in range(rng.poisson(n_boxes // 2)):
            w, h = rng.uniform(10, 200, 2)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            pred_labels.append({"category": str(rng.choice(CLASSES)), "score": float(0.001 + rng.beta(0.6, 8)),
                                "box2d": {"x1": x, "y1": y, "x2": x + w, "y2": y + h}})
        gt.append({"name": name, "attributes": attrs, "labels": labels})
        preds.append({"name": name, "labels": pred_labels})
    return pd.DataFrame(manifest), pd.DataFrame(boxes), gt, preds


def make_runs(runs: Path, manifest: pd.DataFrame, boxes: pd.DataFrame, gt: list[dict],
              preds: list[dict]) -> None:
    """collect, split and iteration-0 eval run folders, written as the stages write them."""
    from bddengine.bdd.categories import FRAME_ATTRIBUTES
    from bddengine.evaluation import build_match_cache, per_frame_metrics
    from bddengine.runs import StageRun
    from bddengine.stages.eval import failure_frames

    def commit(stage: str, files: dict[str, Any], inputs: dict[str, Path], **kw: Any) -> Path:
        with StageRun(runs, stage, {"eval": {"failure_score": SCORE}}, 42, f"bench-{stage}",
                      inputs={k: str(v) for k, v in inputs.items()}, **kw) as run:
            for name, content in files.items():
                if isinstance(content, pd.DataFrame):
                    content.to_parquet(run.dir / name)
                else:
                    (run.dir / name).write_text(json.dumps(content))
            return run.commit(outputs={Path(n).stem: n for n in files}, metrics={}).path

    collect = commit("collect", {"manifest.parquet": manifest, "boxes.parquet": boxes}, {})
    split = commit("split", {"eval_pool.parquet": manifest[["name", *FRAME_ATTRIBUTES]], "eval_gt.json": gt},
                   {"collect": collect})
    key = gt[0]["attributes"]
    names = [f["name"] for f in gt if f["attributes"] == key]
    per_frame = per_frame_metrics(build_match_cache(gt, preds), names, score_threshold=SCORE)
    failures = failure_frames(per_frame, gt, recall_below=0.3)
    commit("eval", {"preds.json": preds, "failures.json": failures,
                    "worst_slice.json": {"slice": {"key": key, "n_frames": len(names), "map50": 0.5},
                                         "min_eval_frames": 1, "per_frame": per_frame}},
           {"split": split, "eval_gt": split / "eval_gt.json", "train": runs / "00_train_iter0"}, iter=0)


def naive(fo, name: str, manifest: pd.DataFrame, boxes: pd.DataFrame, gt: list[dict], preds: list[dict],
          worst: list[str], failures: list[str]) -> None:
    """The same fields, one sample at a time: add each sample, then set its eval fields and save it."""
    from bddengine.integrations.fiftyone import match_eval_boxes, relative_box, slice_tags

    ds = fo.Dataset(name)
    by_frame = dict(tuple(boxes.groupby("name")))
    for row in manifest.itertuples(index=False):  # what collect writes
        b = by_frame.get(row.name, boxes.iloc[:0])
        sample = fo.Sample(filepath=row.path, tags=[*slice_tags(row.weather, row.timeofday, row.scene), "labeled"],
                           frame_name=row.name, video=row.video, weather=row.weather, timeofday=row.timeofday,
                           scene=row.scene, labeled=True)
        sample.metadata = fo.ImageMetadata(width=W, height=H)
        sample["ground_truth"] = fo.Detections(detections=[
            fo.Detection(label=r.category, bounding_box=[r.x1 / W, r.y1 / H, (r.x2 - r.x1) / W, (r.y2 - r.y1) / H],
                         iscrowd=bool(r.ignored), label_id=str(r.label_id))
            for r in b.itertuples(index=False)])
        ds.add_samples([sample], progress=False)
    matches = match_eval_boxes(gt, preds, score_threshold=SCORE)  # what eval writes
    pred_by = {f["name"]: f for f in preds}
    worst_set, failure_set = set(worst), set(failures)
    for sample in ds.iter_samples(progress=False):
        m = matches[sample.frame_name]
        labels = pred_by[sample.frame_name]["labels"]
        sample["pred_iter0"] = fo.Detections(detections=[
            fo.Detection(label=lab["category"], bounding_box=relative_box(lab["box2d"], W, H),
                         confidence=lab["score"], **({"eval_iter0": s} if s else {}))
            for lab, s in zip(labels, m.pred, strict=True)])
        sample["eval_iter0_tp"], sample["eval_iter0_fp"], sample["eval_iter0_fn"] = m.tp, m.fp, m.fn
        for det in sample.ground_truth.detections:
            state = m.gt.get(det.label_id)
            if state:
                det["eval_iter0"] = state
        sample["pool"] = "eval"
        sample.tags.append("pool:eval")
        if sample.frame_name in worst_set:
            sample.tags += ["worst-slice/iter0", "worst-slice"]
        if sample.frame_name in failure_set:
            sample.tags += ["worst-slice-failure/iter0", "worst-slice-failure"]
        sample.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--boxes", type=int, default=15, help="ground-truth boxes per frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

    from bddengine.config import EngineConfig
    from bddengine.integrations.fiftyone import sync_runs

    try:
        import fiftyone as fo

        fo.list_datasets()
    except Exception as exc:  # noqa: BLE001 - no MongoDB: say how to start one
        print(f"mirror benchmark needs MongoDB: {exc}\nstart one with "
              "`eval \"$(bash tools/local-mongod.sh start)\"` (or set FIFTYONE_DATABASE_URI)")
        return 1
    manifest, boxes, gt, preds = make_frames(args.frames, args.boxes, args.seed)
    n_pred = sum(len(f["labels"]) for f in preds)
    token = uuid.uuid4().hex[:8]
    prefix, naive_name = f"bddengine-bench-{token}", f"bddengine-bench-naive-{token}"
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bddengine-bench-mirror-") as tmp:
        runs = Path(tmp) / "runs"
        make_runs(runs, manifest, boxes, gt, preds)
        eval_dir = next(runs.glob("*_eval_iter0"))
        worst = list(json.loads((eval_dir / "worst_slice.json").read_text())["per_frame"])
        failures = [f["name"] for f in json.loads((eval_dir / "failures.json").read_text())]
        cfg = EngineConfig.model_validate({"name": "mirror", "runs_dir": str(runs),
                                           "data": {"root": str(Path(tmp) / "world"), "synthetic": True},
                                           "fiftyone": {"enabled": True, "dataset_prefix": prefix}})
        try:
            t0 = time.perf_counter()
            report = sync_runs(cfg, full=True)
            ours_s = time.perf_counter() - t0
            made.append(report.dataset)
            t0 = time.perf_counter()
            made.append(naive_name)
            naive(fo, naive_name, manifest, boxes, gt, preds, worst, failures)
            naive_s = time.perf_counter() - t0
            ds, plain = fo.load_dataset(report.dataset), fo.load_dataset(naive_name)
            same = (len(ds) == len(plain) == args.frames
                    and ds.count("pred_iter0.detections") == plain.count("pred_iter0.detections") == n_pred
                    and ds.sum("eval_iter0_fn") == plain.sum("eval_iter0_fn")
                    and ds.count_sample_tags().get("worst-slice-failure", 0)
                    == plain.count_sample_tags().get("worst-slice-failure", 0))
            n_views = len(report.views)
        finally:
            for name in made:
                if fo.dataset_exists(name):
                    fo.delete_dataset(name)
    ratio = naive_s / ours_s
    print(f"{args.frames} frames, {len(boxes):,} GT boxes ({args.boxes}/frame), {n_pred:,} predictions; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"bddengine mirror (sync_runs: collect + split + eval, {n_views} saved views): {ours_s:7.2f} s  "
          f"({args.frames / ours_s:.0f} samples/s)")
    print(f"naive: add_samples per sample, then save per sample:             {naive_s:7.2f} s  "
          f"({args.frames / naive_s:.0f} samples/s)")
    print(f"ratio naive / ours: {ratio:.2f}x  (goal >= {GOAL}x)")
    if not same:
        print("THE TWO DATASETS DIFFER (sample, prediction, FN or failure-tag counts)")
    ok = record("mirror: naive per-sample loop / sync_runs", ratio, GOAL,
                note=f"{args.frames} frames, {args.boxes} GT + {n_pred / args.frames:.0f} predicted boxes each")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
