"""Benchmark: reading a det_20 label file into tables costs at most 2x ``json.load``.

Claim: `load_label_file` + `frames_to_tables` on a det_train-sized file (80K
frames, ~1.3M boxes) takes no more than twice a bare ``json.load`` of the same
file, so the loader is never the slow part of the collect stage.

Writes a deterministic synthetic det_20 file into a temp dir (deleted after),
times the three readers and prints seconds and ratios::

    PYTHONPATH=src python benchmarks/parse.py            # 80K frames
    PYTHONPATH=src python benchmarks/parse.py --frames 5000 --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from _results import record

from bddengine.bdd.loader import frames_to_tables, load_label_file
from bddengine.synth.attributes import SCENE_COUNTS, TIMEOFDAY_COUNTS, WEATHER_COUNTS

# det_20 train box counts (docs/bdd100k-facts.md), as category weights; frame attributes
# follow the det_20 train counts the synthetic world uses.
CATEGORY_WEIGHTS: dict[str, int] = {
    "car": 700_703,
    "traffic sign": 238_270,
    "traffic light": 187_871,
    "pedestrian": 92_159,
    "truck": 27_892,
    "bus": 11_977,
    "bicycle": 7_124,
    "rider": 4_560,
    "motorcycle": 3_023,
    "other vehicle": 804,
    "other person": 210,
    "train": 128,
    "trailer": 71,
}
NO_LABELS_FRACTION = 137 / 69_863
"""Share of det_train frames with no ``labels`` key."""


def make_det20_frames(n_frames: int, boxes_per_frame: float, seed: int) -> list[dict]:
    """Build det_20-shaped frame records with BDD-like field shapes and proportions.

    Args:
        n_frames: frames to make.
        boxes_per_frame: mean boxes per labeled frame.
        seed: random seed (same seed, same records).

    Returns:
        The frame records.
    """
    rng = random.Random(seed)
    cats, cat_w = list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values())
    weathers, weather_w = list(WEATHER_COUNTS), list(WEATHER_COUNTS.values())
    times, time_w = list(TIMEOFDAY_COUNTS), list(TIMEOFDAY_COUNTS.values())
    scenes, scene_w = list(SCENE_COUNTS), list(SCENE_COUNTS.values())
    label_id = 0
    frames = []
    for _ in range(n_frames):
        name = f"{rng.getrandbits(32):08x}-{rng.getrandbits(32):08x}.jpg"
        frame: dict = {
            "name": name,
            "attributes": {
                "weather": rng.choices(weathers, weather_w)[0],
                "timeofday": rng.choices(times, time_w)[0],
                "scene": rng.choices(scenes, scene_w)[0],
            },
            "timestamp": 10000,
        }
        if rng.random() >= NO_LABELS_FRACTION:
            n_boxes = min(91, max(1, int(rng.expovariate(1 / boxes_per_frame)) + 1))
            labels = []
            for category in rng.choices(cats, cat_w, k=n_boxes):
                x1 = rng.uniform(0, 1200)
                y1 = rng.uniform(0, 650)
                attributes = {
                    "occluded": rng.random() < 0.45,
                    "truncated": rng.random() < 0.07,
                    "trafficLightColor": "NA",
                }
                if rng.random() < 0.01:
                    attributes["crowd"] = True
                labels.append(
                    {
                        "id": str(label_id),
                        "attributes": attributes,
                        "category": category,
                        "box2d": {
                            "x1": round(x1, 6),
                            "y1": round(y1, 6),
                            "x2": round(x1 + rng.uniform(2, 80), 6),
                            "y2": round(y1 + rng.uniform(2, 70), 6),
                        },
                    }
                )
                label_id += 1
            frame["labels"] = labels
        frames.append(frame)
    return frames


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` (its result is freed each time)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print seconds and ratios; exit 1 if the claim fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=80_000)
    parser.add_argument("--boxes-per-frame", type=float, default=16.3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bddengine-bench-") as tmp:
        path = Path(tmp) / "det_bench.json"
        start = time.perf_counter()
        frames = make_det20_frames(args.frames, args.boxes_per_frame, args.seed)
        n_boxes = sum(len(f.get("labels", ())) for f in frames)
        path.write_bytes(orjson.dumps(frames))
        del frames
        print(
            f"generated {args.frames:,} frames / {n_boxes:,} boxes, "
            f"{path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - start:.1f} s"
        )

        def bare_json() -> object:
            with path.open() as f:
                return json.load(f)

        def to_tables() -> object:
            return frames_to_tables(load_label_file(path), source_split="train", image_index={})

        def bare_json_gc_paused() -> object:
            gc.disable()
            try:
                return bare_json()
            finally:
                gc.enable()

        t_json = best_of(args.repeat, bare_json)
        t_json_nogc = best_of(args.repeat, bare_json_gc_paused)
        t_load = best_of(args.repeat, lambda: load_label_file(path))
        t_tables = best_of(args.repeat, to_tables)
        parsed = to_tables()
        assert len(parsed.boxes) == n_boxes, (len(parsed.boxes), n_boxes)
        assert parsed.malformed.total == 0, parsed.malformed.to_dict()

    print(f"best of {args.repeat}:")
    print(f"  json.load                           {t_json:7.2f} s   1.00x")
    print(f"  json.load, gc paused (for fairness) {t_json_nogc:7.2f} s   {t_json_nogc / t_json:.2f}x")
    print(f"  load_label_file (orjson)            {t_load:7.2f} s   {t_load / t_json:.2f}x")
    print(f"  load_label_file + frames_to_tables  {t_tables:7.2f} s   {t_tables / t_json:.2f}x")
    print(f"  parse-to-tables vs json.load with gc paused: {t_tables / t_json_nogc:.2f}x")
    ok = record("parse: load_label_file + frames_to_tables / json.load", t_tables / t_json, 2.0, op="<=",
                note=f"{args.frames:,} frames, {n_boxes:,} boxes, best of {args.repeat}")
    print(f"claim parse-to-tables <= 2x json.load: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
