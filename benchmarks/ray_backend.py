"""Benchmark: the ``ray`` backend keeps a model worker as busy as ``local`` does (ratio >= 0.8).

Claim: on the same frames, with the same encoder and batches, Ray Data's throughput per
model actor is at least 0.8x the local backend's (one model in this process fed by
DataLoader workers), so the hand-off through tasks, the object store and an actor pool
costs little; a cluster then scales by adding actors. Each model worker gets one CPU
(``torch`` threads 1 locally, ``cpus_per_actor: 1`` on Ray) and decoding one more, so
the two share the same 2 cores of this machine.

Generates synthetic 640x360 frames in a temp dir (deleted after), builds a random-init
encoder (no weights needed), starts a local Ray instance once (its start-up is printed,
not counted: a cluster is started once, not per stage), then per round times one whole
``infer`` call on each backend (Ray's includes starting the actor and shipping the model
to it, as every stage call pays) and takes the median of the per-round ratios::

    PYTHONPATH=src python benchmarks/ray_backend.py                 # 384 frames, ViT-B-32
    PYTHONPATH=src python benchmarks/ray_backend.py --frames 96 --arch ViT-S-32 --repeat 1
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import record, skip

from bddengine.embedding import Encoder, frame_decode, load_encoder, torch_threads
from bddengine.inference import FrameSource, infer


def make_frames(root: Path, n: int) -> list[str]:
    from bddengine.synth import generate_world

    generate_world(root, n_train=n, n_val=0, width=640, height=360, frames_per_video=3, seed=0, progress=False)
    return sorted(str(p) for p in root.rglob("*.jpg"))[:n]


def timed(source: FrameSource, decode, step: Encoder, backend, batch_size: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    with torch_threads(1):
        out = infer(source, decode, step, batch_size=batch_size, workers=1, backend=backend)
    return len(source) / (time.perf_counter() - t0), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=384)
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    try:
        import ray
    except ImportError:
        skip("ray is not installed (pip install -e '.[scale]')")
        return
    from bddengine.inference.ray_backend import RayBackend

    logging.getLogger().setLevel(logging.ERROR)  # open_clip's random-init warning
    model, spec = load_encoder("clip", args.arch, None, seed=0)
    step = Encoder(model.eval(), torch.device("cpu"))
    decode = frame_decode(spec.image_size, spec.mean, spec.std)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    print(f"{spec.arch} (random init), {args.frames} frames at 640x360, batch {args.batch_size}; "
          f"Ray started in {time.perf_counter() - t0:.1f} s (not counted); load average {os.getloadavg()[0]:.2f}")
    ratios, rows = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="bddengine-bench-ray-") as tmp:
            paths = make_frames(Path(tmp) / "world", args.frames)
            source = FrameSource([f"frame-{i}" for i in range(len(paths))], paths)
            with torch_threads(1), torch.inference_mode():
                model(torch.zeros(2, 3, spec.image_size, spec.image_size))  # warm-up, as the stage's first batch
            for _ in range(args.repeat):
                local_fps, local = timed(source, decode, step, "local", args.batch_size)
                ray_fps, on_ray = timed(source, decode, step, RayBackend(actors=1, cpus_per_actor=1),
                                        args.batch_size)
                worst = max(float(np.abs(local[n] - on_ray[n]).max()) for n in source.names)
                if worst > 1e-5:
                    sys.exit(f"ray's vectors differ from local's by {worst:g} (> 1e-5)")
                ratios.append(ray_fps / local_fps)
                rows.append((local_fps, ray_fps, worst))
                print(f"local {local_fps:.1f} frames/s, ray (1 actor) {ray_fps:.1f} frames/s, ratio "
                      f"{ratios[-1]:.2f}, max |diff| {worst:.1e}")
    finally:
        ray.shutdown()
    ratio = statistics.median(ratios)
    local_fps = statistics.median(r[0] for r in rows)
    ray_fps = statistics.median(r[1] for r in rows)
    print(f"median ratio {ratio:.2f} (goal >= 0.8): {'met' if ratio >= 0.8 else 'NOT met'}; "
          f"load average {os.getloadavg()[0]:.2f} after")
    record("ray_backend: frames/s per actor / local", ratio, 0.8,
           note=f"{len(paths)} frames, {spec.arch}, local {local_fps:.1f} vs ray {ray_fps:.1f} frames/s, "
                "1 actor, 2 cores")


if __name__ == "__main__":
    main()
