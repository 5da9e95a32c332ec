"""Benchmark: the eval stage's detector pass costs at most 10% more than ultralytics' own predict.

Claim: `bddengine.integrations.ultralytics.predict_frames` (what ``bddengine eval`` runs: load the
weights, predict the eval pool in batches, turn every result into a BDD prediction
frame) runs at >= 0.9x the speed of ultralytics' ``YOLO(weights).predict`` streaming
over the same image files (a ``.txt`` list, which ultralytics reads ``batch`` images at
a time) with the same batch size, size, conf, NMS IoU and max_det: our glue costs under
10%.

The detector is a YOLOv8n trained for a few epochs on the benchmark's own synthetic
world (`_detector.prepare`; reused from an earlier benchmark of the same ``make
bench``), or ``--weights``; it must make predictions, or the benchmark stops: the
conversion of empty results costs nothing. Both sides run ``--rounds`` times,
alternating, after one warm-up; the fastest round of each counts. Both must return
the same boxes.

::

    PYTHONPATH=src python benchmarks/eval_pass.py
    PYTHONPATH=src python benchmarks/eval_pass.py --weights outputs/runs/05_train_iter0/ultralytics/weights/best.pt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from _detector import prepare, require_predictions
from _results import record

GOAL = 0.9


def ultralytics_predict(weights: Path, listing: Path, *, imgsz: int, conf: float, iou: float, max_det: int,
                        batch: int) -> int:
    """ultralytics' own route: one ``predict`` streaming over a ``.txt`` list of the files; returns the box count.

    A text file, not a Python list: ultralytics decodes a list source into memory up front
    and runs it as one batch, whatever ``batch`` says; a file list is read ``batch`` images
    at a time.
    """
    from ultralytics import YOLO

    model = YOLO(str(weights))
    n = 0
    for res in model.predict(str(listing), imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, batch=batch,
                             device="cpu", stream=True, verbose=False):
        n += len(res.boxes)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=520, help="eval frames (320x180)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=224)
    parser.add_argument("--conf", type=float, default=0.001)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", type=Path, default=None, help="a trained best.pt (default: train one)")
    args = parser.parse_args(argv)

    from bddengine.integrations.ultralytics import offline_ultralytics, predict_frames

    offline_ultralytics()
    world = prepare(args.frames, weights=args.weights)
    paths, names = world.eval_paths, [f["name"] for f in world.eval_gt]
    opts = {"imgsz": args.imgsz, "conf": args.conf, "iou": 0.7, "max_det": 100, "batch": args.batch}

    def ours() -> list[dict]:
        return predict_frames(world.weights, paths, names, device="cpu", progress=False, **opts)

    listing = world.root / f"eval_pass_{len(paths)}.txt"
    listing.write_text("\n".join(paths) + "\n")

    def theirs() -> int:
        return ultralytics_predict(world.weights, listing, **opts)

    predict_frames(world.weights, paths[: args.batch], names[: args.batch], device="cpu", progress=False, **opts)
    ours_s, theirs_s = [], []
    preds, n_theirs = [], 0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        preds = ours()
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_theirs = theirs()
        theirs_s.append(time.perf_counter() - t0)
    n_ours = require_predictions(preds, world.weights)
    ratio = min(theirs_s) / min(ours_s)
    load = os.getloadavg()[0]
    print(f"{len(paths)} frames at 320x180, detector {world.weights} ({world.trained['source']}), imgsz {args.imgsz}, "
          f"batch {args.batch}, conf {args.conf}; {n_ours:,} predictions (ultralytics: {n_theirs:,})")
    print(f"ultralytics YOLO.predict, streaming:       best {min(theirs_s):6.2f} s  "
          f"(rounds: {' '.join(f'{s:.2f}' for s in theirs_s)})")
    print(f"bddengine eval's predict_frames -> BDD:    best {min(ours_s):6.2f} s  "
          f"(rounds: {' '.join(f'{s:.2f}' for s in ours_s)})")
    print(f"ratio ultralytics / ours: {ratio:.2f}x  (goal >= {GOAL}: our glue costs under 10%)  "
          f"{len(paths) / min(ours_s):.0f} frames/s; load average {load:.1f} on {os.cpu_count()} CPUs")
    same = n_ours == n_theirs
    if not same:
        print(f"BOX COUNTS DIFFER: ours {n_ours} vs ultralytics {n_theirs}")
    ok = record("eval_pass: ultralytics predict / eval's predict_frames", ratio, GOAL,
                note=f"{len(paths)} frames, batch {args.batch}, {n_ours:,} predictions")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
