"""Benchmark: every slice with a 1000-resample CI costs at most 2x one overall evaluation.

Claim: scoring all weather x timeofday x scene slices (60+) with a 1000-resample
bootstrap CI each, through the match cache (`evaluate_slices`), takes no more
than twice one overall pycocotools evaluation (COCOeval evaluate + accumulate +
summarize) of the same frames.

Builds a synthetic BDD-like set from the conformance case (real boxes and real
detector output, jittered copies, extra low-score false positives, small traffic
lights and signs, random frame attributes), then times:

- overall: COCOeval evaluate + accumulate + summarize on prebuilt COCO objects;
- cache: `build_match_cache` (conversion, the same COCOeval run, extraction), once;
- slices: `evaluate_slices` over all combinations, 1000 resamples each;
- naive: a fresh pycocotools evaluation per slice, no CI (what the cache replaces);
- on real images (`--ultralytics-frames`): the eval stage's whole slice table
  (`bddengine.stages.eval.slice_table`: every full slice, every marginal and the
  overall row, each with its CI) from one detector run, against ultralytics'
  validator re-run once per row of that table (no CI). Both sides include the
  detector. Every frame sits in five rows (its full slice, its three marginals,
  overall), so the validator runs the detector five times per frame where the
  stage runs it once (and starts once per row): where the detector dominates, the
  ratio tends to 5x. The goal, 3x, leaves the stage's matching and 1000-resample
  CIs of every row at most two thirds of one detector pass. The detector must
  predict: a YOLOv8n trained for a few epochs on the train frames of
  the same synthetic world (car and truck, what a CPU detector learns in minutes;
  `_detector.py`, reused by the other benchmarks of one ``make bench``), or
  ``--weights``. Its prediction count is printed; with none the benchmark stops
  (exit 1), since both routes would then score empty output.

::

    PYTHONPATH=src python benchmarks/slice_eval.py                 # 600 frames
    PYTHONPATH=src python benchmarks/slice_eval.py --frames 2000 --boot 1000
    PYTHONPATH=src python benchmarks/slice_eval.py --weights <train run>/ultralytics/weights/best.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import record
from pycocotools.cocoeval import COCOeval

from bddengine.bdd.categories import ATTRIBUTE_VALUES, CLASSES, FRAME_ATTRIBUTES
from bddengine.evaluation import build_match_cache, evaluate_overall, evaluate_slices, slice_keys
from bddengine.evaluation.coco import frames_to_coco, official_scores, quiet, run_cocoeval

CONFORMANCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "conformance" / "bdd100k-det-eval"

# det_20 val frame counts per attribute value (docs/bdd100k-facts.md), in ATTRIBUTE_VALUES order.
VAL_COUNTS: dict[str, tuple[int, ...]] = {
    "weather": (5346, 1239, 769, 738, 738, 13, 1157),
    "timeofday": (5258, 3929, 778, 35),
    "scene": (6112, 2499, 1253, 49, 27, 7, 53),
}


def synthetic_set(n_frames: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A BDD-like GT / prediction pair of ``n_frames`` frames built from the conformance case."""
    rng = np.random.default_rng(seed)
    base_gt = json.loads((CONFORMANCE / "gt.json").read_text())
    base_pred = {f["name"]: f for f in json.loads((CONFORMANCE / "pred.json").read_text())}
    # flatter than BDD's own skew (square root of the counts), so 600 frames cover 60+ slices
    probs = {a: np.sqrt(VAL_COUNTS[a]) / np.sqrt(VAL_COUNTS[a]).sum() for a in FRAME_ATTRIBUTES}
    gt, pred = [], []
    for i in range(n_frames):
        src = base_gt[i % len(base_gt)]
        name = f"synth{i // len(base_gt):03d}-{src['name']}"
        attributes = {a: str(rng.choice(ATTRIBUTE_VALUES[a], p=probs[a])) for a in FRAME_ATTRIBUTES}
        gt_labels = [dict(lab, box2d=_jitter(lab["box2d"], rng, 1.5)) for lab in src["labels"]]
        pred_labels = [
            dict(lab, box2d=_jitter(lab["box2d"], rng, 2.5), score=_perturb(lab["score"], rng))
            for lab in base_pred[src["name"]]["labels"]
            if rng.random() > 0.1  # a missed detection now and then
        ]
        for category in ("traffic light", "traffic sign"):  # small objects, as in BDD
            for _ in range(rng.poisson(3)):
                box = _random_box(rng, 8, 40)
                gt_labels.append({"category": category, "box2d": box, "attributes": {}})
                if rng.random() < 0.7:
                    pred_labels.append({"category": category, "box2d": _jitter(box, rng, 2.0),
                                        "score": float(rng.beta(4, 2))})
        for _ in range(rng.poisson(40)):  # the low-score tail a detector at conf 0.001 emits
            pred_labels.append({"category": str(rng.choice(CLASSES)), "box2d": _random_box(rng, 10, 200),
                                "score": float(0.001 + rng.beta(0.6, 12))})
        gt.append({"name": name, "attributes": attributes, "labels": gt_labels})
        pred.append({"name": name, "labels": pred_labels})
    return gt, pred


def _perturb(score: float, rng: np.random.Generator) -> float:
    return float(np.clip(score * rng.uniform(0.85, 1.15), 0.001, 1.0))


def _jitter(box: dict[str, float], rng: np.random.Generator, sigma: float) -> dict[str, float]:
    x1, y1, x2, y2 = (float(box[k] + rng.normal(0, sigma)) for k in ("x1", "y1", "x2", "y2"))
    return {"x1": min(x1, x2), "y1": min(y1, y2), "x2": max(x1, x2), "y2": max(y1, y2)}


def _random_box(rng: np.random.Generator, lo: float, hi: float) -> dict[str, float]:
    w, h = (float(v) for v in rng.uniform(lo, hi, 2))
    x, y = float(rng.uniform(0, 1280 - w)), float(rng.uniform(0, 720 - h))
    return {"x1": x, "y1": y, "x2": x + w, "y2": y + h}


def time_overall(gt: list[dict], pred: list[dict]) -> float:
    """Seconds for one overall COCOeval evaluate + accumulate + summarize (COCO objects prebuilt)."""
    pair = frames_to_coco(gt, pred)
    start = time.perf_counter()
    with quiet():
        ev = COCOeval(pair.gt, pair.dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - start


def time_naive_pycocotools_per_slice(
    gt: list[dict], pred: list[dict], keys: dict[str, dict]
) -> tuple[float, dict]:
    """Seconds for a fresh pycocotools evaluation of every slice (no CI), and its mAP@0.5 per slice."""
    members: dict[tuple, list[str]] = {}
    for name, key in keys.items():
        members.setdefault(tuple(key.items()), []).append(name)
    gt_by, pred_by = {f["name"]: f for f in gt}, {f["name"]: f for f in pred}
    map50: dict[tuple, float | None] = {}
    start = time.perf_counter()
    for key, names in members.items():
        summary, _ = official_scores(run_cocoeval(frames_to_coco([gt_by[n] for n in names],
                                                                 [pred_by[n] for n in names])))
        map50[key] = summary["AP50"]
    return time.perf_counter() - start, map50


def ultralytics_comparison(n_frames: int, boot: int, seed: int, workdir: Path, *, weights: Path | None,
                           imgsz: int) -> dict[str, Any]:
    """The eval stage's slice table vs the naive route on real images, with a detector that predicts.

    The world's ``n_frames`` val frames (320x180, never trained on) get random
    attributes (60+ slices); the detector is a YOLOv8n trained for a few epochs on
    the world's train frames (`_detector.prepare`), or ``weights``. Then times

    - ours: the detector once over all frames (``predict_frames``), one match
      cache, the eval stage's slice table (every full slice, every marginal and the
      overall row, each with ``boot``-resample CIs);
    - naive: ``model.val()`` once per row of that table, on that row's frames (no CI).

    Returns:
        Seconds of: the one detector run (``detect``), one overall COCOeval of its
        predictions (``overall``), the match cache (``cache``), the slice table from
        the cache (``table``), the naive route (``naive``); ``n_rows`` (rows of the
        table), ``n_full`` (full slices), ``frame_rows`` (frame visits of the naive
        route), ``n_preds`` (at conf 0.001), ``n_preds_25`` (score >= 0.25),
        ``map50`` and ``detector`` (how it was made).
    """
    import yaml
    from _detector import count_predictions, prepare, require_predictions
    from ultralytics import YOLO

    from bddengine.integrations.ultralytics import offline_ultralytics, predict_frames
    from bddengine.stages.eval import GROUPINGS, slice_table

    offline_ultralytics()
    world = prepare(n_frames, seed=seed, weights=weights)
    gt = [dict(f) for f in world.eval_gt]
    rng = np.random.default_rng(seed)
    for frame in gt:  # random attributes: 60+ slices, as many as a real eval pool has
        frame["attributes"] = {a: str(rng.choice(ATTRIBUTE_VALUES[a][:-1], p=_weights(a)))
                               for a in FRAME_ATTRIBUTES}
    images = world.root / "yolo/images/val"  # the YOLO export ultralytics' validator reads labels from

    names = [f["name"] for f in gt]
    # the process's one-time torch start-up (first convolutions, allocator) is paid before either side is
    # timed: otherwise the side timed first pays it and the other runs warm
    predict_frames(world.weights, world.eval_paths[:16], names[:16], imgsz=imgsz, conf=0.001, iou=0.7,
                   max_det=100, batch=16, device="cpu", progress=False)
    start = time.perf_counter()
    preds = predict_frames(world.weights, world.eval_paths, names, imgsz=imgsz, conf=0.001,
                           iou=0.7, max_det=100, batch=16, device="cpu", progress=False)
    detect_s = time.perf_counter() - start
    n_preds = require_predictions(preds, world.weights)
    overall_s = time_overall(gt, preds)
    start = time.perf_counter()
    cache = build_match_cache(gt, preds)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    table = slice_table(cache, gt, n_boot=boot, seed=seed)
    table_s = time.perf_counter() - start

    rows: dict[tuple, list[str]] = {}  # the same rows, as frame lists: full slices, marginals, overall
    for attrs in GROUPINGS:
        for name, key in slice_keys(gt, attrs).items():
            rows.setdefault((attrs, tuple(key.values())), []).append(str(images / name))
    rows[("overall",)] = [str(images / f["name"]) for f in gt]
    if len(rows) != len(table):
        raise SystemExit(f"the naive route has {len(rows)} rows but the slice table {len(table)}")
    model = YOLO(str(world.weights))
    start = time.perf_counter()
    for i, files in enumerate(rows.values()):
        listing = workdir / f"row{i}.txt"
        listing.write_text("\n".join(files))
        data = workdir / f"row{i}.yaml"
        data.write_text(yaml.safe_dump({"path": str(workdir), "train": str(listing), "val": str(listing),
                                        "names": dict(enumerate(CLASSES))}))
        model.val(data=str(data), imgsz=imgsz, batch=16, conf=0.001, iou=0.7, device="cpu", plots=False,
                  verbose=False, project=str(workdir / "val"), name=f"r{i}", exist_ok=True)
    naive_s = time.perf_counter() - start
    return {"detect": detect_s, "overall": overall_s, "cache": cache_s, "table": table_s, "naive": naive_s,
            "n_rows": len(table), "n_full": int((table["grouping"] == "slice").sum()),
            "frame_rows": sum(len(f) for f in rows.values()), "n_preds": n_preds,
            "n_preds_25": count_predictions(preds, min_score=0.25), "map50": evaluate_overall(cache)["map50"],
            "detector": world.trained}


def _weights(attribute: str) -> np.ndarray:
    counts = np.asarray(VAL_COUNTS[attribute][:-1], dtype=float) ** 0.5  # flatter: more slices
    return counts / counts.sum()


def time_error_decomposition(gt: list[dict], pred: list[dict], overall_s: float, boot: int, n_frames: int) -> bool:
    """The TIDE decomposition of every slice, marginal and overall (CIs for the worst slice and
    overall): the error typing the match cache adds, then the per-slice document; goal <= 1x
    one overall COCOeval."""
    from bddengine.evaluation.error_slices import error_document, slice_sets
    from bddengine.evaluation.errors import classify_errors
    from bddengine.stages.eval import GROUPINGS

    cache = build_match_cache(gt, pred, errors=True)
    pair = frames_to_coco(gt, pred)
    from bddengine.evaluation.coco import match_boxes

    ev = match_boxes(pair)
    start = time.perf_counter()
    classify_errors(pair, ev)
    typing_s = time.perf_counter() - start
    sets = slice_sets(gt, GROUPINGS)
    worst = min(sets[:-1], key=lambda s: (len(s[2]) < 15, evaluate_overall_of(cache, s[2])))[1]
    start = time.perf_counter()
    error_document(cache, gt, sets, worst=worst, height_edges=[32, 64, 128], n_boot=boot, seed=42)
    doc_s = time.perf_counter() - start
    total = typing_s + doc_s
    print(f"TIDE error typing (match cache extension):           {typing_s:8.2f} s")
    print(f"TIDE decomposition of {len(sets)} rows (CIs: worst + overall): {doc_s:8.2f} s")
    print(f"ratio error decomposition / one overall: {total / overall_s:.2f}x  (goal <= 1x)")
    return record("slice_eval: TIDE decomposition of every slice / one overall COCOeval", total / overall_s, 1.0,
                  op="<=", note=f"{n_frames} frames, {len(sets)} rows, CIs for the worst slice and overall, "
                  f"{boot} resamples")


def evaluate_overall_of(cache, names: list[str]) -> float:
    """mAP@0.5 of a set of frames (for picking the worst slice as the eval stage does)."""
    from bddengine.evaluation.slices import score_frames

    r = score_frames(cache, np.unique(cache.frame_indices(names)), {}, n_boot=0)
    return r.map50 if r.map50 is not None else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-naive", action="store_true", help="skip the per-slice pycocotools reference")
    parser.add_argument("--ultralytics-frames", type=int, default=520,
                        help="frames for the image-based comparison with ultralytics' validator (0: skip)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector for the image-based comparison, e.g. a smoke or demo run's best.pt "
                        "(default: train a YOLOv8n for a few epochs on the benchmark's world)")
    parser.add_argument("--imgsz", type=int, default=224, help="inference size of the image-based comparison")
    args = parser.parse_args(argv)

    gt, pred = synthetic_set(args.frames, args.seed)
    keys = slice_keys(gt, FRAME_ATTRIBUTES)
    n_slices = len({tuple(k.items()) for k in keys.values()})
    n_pred = sum(len(f["labels"]) for f in pred)
    n_gt = sum(len(f["labels"]) for f in gt)
    print(f"{args.frames} frames, {n_gt} GT boxes, {n_pred} predictions, {n_slices} slices, "
          f"{args.boot} resamples")

    overall_s = time_overall(gt, pred)
    start = time.perf_counter()
    cache = build_match_cache(gt, pred)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    slices = evaluate_slices(cache, keys, n_boot=args.boot)
    slices_s = time.perf_counter() - start
    start = time.perf_counter()
    for attribute in FRAME_ATTRIBUTES:
        evaluate_slices(cache, slice_keys(gt, [attribute]), n_boot=args.boot)
    marginal_s = time.perf_counter() - start

    print(f"overall mAP@0.5 {evaluate_overall(cache)['map50']:.4f}")
    print(f"one overall COCOeval (evaluate+accumulate+summarize): {overall_s:8.2f} s")
    print(f"build_match_cache (once: convert + COCOeval + cache):  {cache_s:8.2f} s")
    print(f"all {len(slices)} slices with {args.boot}-resample CIs:          {slices_s:8.2f} s")
    print(f"  marginal slices (per attribute) with CIs:            {marginal_s:8.2f} s")
    ok = record("slice_eval: all slices with CIs / one overall COCOeval", slices_s / overall_s, 2.0, op="<=",
                note=f"{args.frames} frames, {n_pred:,} synthetic predictions, {len(slices)} slices, {args.boot} "
                f"resamples")
    print(f"ratio all slices / one overall: {slices_s / overall_s:.2f}x  (goal <= 2x)")
    print(f"ratio cache build + all slices / one overall: {(cache_s + slices_s) / overall_s:.2f}x")
    ok = time_error_decomposition(gt, pred, overall_s, args.boot, args.frames) and ok

    if not args.skip_naive:
        naive_s, naive_map50 = time_naive_pycocotools_per_slice(gt, pred, keys)
        diff = max(abs((naive_map50[tuple(s.key.items())] or 0) - (s.map50 or 0)) for s in slices)
        print(f"naive pycocotools per slice (no CI):                 {naive_s:8.2f} s"
              f"  (max |mAP@0.5 diff| vs cache {diff:.1e})")
    if args.ultralytics_frames:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            t = ultralytics_comparison(args.ultralytics_frames, args.boot, args.seed, Path(tmp),
                                       weights=args.weights, imgsz=args.imgsz)
        one_eval = t["detect"] + t["overall"]
        scoring = t["cache"] + t["table"]
        ours = t["detect"] + scoring
        d = t["detector"]
        made = (f"YOLOv8n trained {d['epochs']} epochs on {d['n_train']} frames of the same world"
                f"{' (reused)' if d['reused'] else ''}" if d["source"] == "trained here"
                else f"--weights {d['weights']}")
        print(f"\non {args.ultralytics_frames} synthetic images, detector: {made}, at {args.imgsz} px: "
              f"{t['n_preds']:,} predictions at conf 0.001 ({t['n_preds_25']:,} at score >= 0.25), "
              f"overall mAP@0.5 {t['map50']:.3f}")
        print(f"the eval stage's slice table: {t['n_rows']} rows ({t['n_full']} full slices, the marginals, "
              f"overall); the naive route scores {t['frame_rows']:,} frame-rows "
              f"({t['frame_rows'] / args.ultralytics_frames:.1f} per frame)")
        print(f"one overall evaluation: detector once + COCOeval:          {one_eval:8.2f} s"
              f"  ({t['detect']:.2f} + {t['overall']:.2f})")
        print(f"ours: detector once + match cache + the table with CIs:   {ours:8.2f} s"
              f"  ({t['detect']:.2f} + {t['cache']:.2f} + {t['table']:.2f})")
        print(f"naive: ultralytics model.val() once per row (no CI):      {t['naive']:8.2f} s")
        print(f"ratio slice table / one overall evaluation (scoring only): {scoring / one_eval:.2f}x  (goal <= 2x)")
        print(f"ratio naive / ours, both with the detector: {t['naive'] / ours:.2f}x  (goal >= 3x; "
              f"{t['frame_rows'] / args.ultralytics_frames:.0f}x where the detector dominates both sides)")
        note = (f"{args.ultralytics_frames} images, {t['n_rows']} rows ({t['n_full']} full slices), "
                f"{t['n_preds']:,} predictions")
        ok = record("slice_eval (images): slice table with CIs / one overall evaluation", scoring / one_eval, 2.0,
                    op="<=", note=note) and ok
        ok = record("slice_eval (images): ultralytics val per table row / ours, detector on both sides",
                    t["naive"] / ours, 3.0, note=note + f" (mAP@0.5 {t['map50']:.3f})") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
