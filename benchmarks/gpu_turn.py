"""Benchmark: a real-size turn on one GPU, measured and projected against the seed's six hours on an RTX 4070.

The seed ran a turn on one RTX 4070 workstation in about six hours: curation + embedding
~20 min (36K frames), YOLOv8m 50 epochs on 2.5K frames ~2 h per iteration (two
iterations), auto-labelling 100 frames ~5 min, eval / mining / plots ~30 min. This runs
the engine's own stages on `configs/gpu.yaml` (the seed's shapes on the synthetic world:
1280x720, every class, YOLOv8m from its yaml at 640, batch 16, AMP, 2,500 training
frames, a 500-frame eval pool, ViT-B-32) for a few epochs and projects each stage to
the seed's sizes:

- on the CPU first: the world (``synth``, kept under ``--out`` for the next run), ``collect``;
- on the GPU: ``embed`` (every collected frame), then decode-only and model-only frames/s;
- on the CPU: ``split``;
- on the GPU: ``train`` for ``--epochs`` (time per epoch from ultralytics' results.csv),
  the ``eval`` detector pass, the detector labeller on 100 mining-pool frames;
- ``--check-cpu``: a YOLOv8n trained for a few epochs on the same split (it reaches a
  real mAP; YOLOv8m from scratch in a few epochs scores ~0 and proves nothing), evaluated
  on the GPU and on this machine's CPU; the largest per-slice mAP@0.5 difference must stay
  within `TOLERANCE`, fixed here before any run.

Without a CUDA device it says so in one line and exits 0 (``make bench`` shows it skipped).
``--dry-run`` runs every step on the CPU at tiny sizes (the test suite does, so it never rots).

::

    PYTHONPATH=src python benchmarks/gpu_turn.py --check-cpu            # ~5 min on one GPU
    PYTHONPATH=src python benchmarks/gpu_turn.py --long --check-cpu     # 10 epochs, ~10 min
    PYTHONPATH=src python benchmarks/gpu_turn.py --dry-run --check-cpu  # CPU, tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _results import record, skip

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "gpu.yaml"

SEED_GPU = "RTX 4070"
SEED_EMBED_FRAMES = 36_000   # 10K labeled + 26K unlabeled candidates (configs/default.yaml)
SEED_EPOCHS = 50
SEED_ITERATIONS = 2
SEED_AUTOLABEL_FRAMES = 100
SEED_S = {"curation + embed": 20 * 60, "train": SEED_ITERATIONS * 2 * 3600, "autolabel": 5 * 60,
          "eval": 30 * 60}
"""The seed's 4070 figures in seconds, per turn (train: 2 h per iteration; eval: eval, mining and plots)."""

TOLERANCE = 0.02
"""Largest per-slice mAP@0.5 difference allowed between the GPU and the CPU eval of one detector.

Fixed before any run. Both passes run the weights in FP32 (ultralytics predicts with half=False;
AMP is a training setting), but cuDNN picks other kernels and TF32 convolutions on Ampere and
later, so scores move by ~1e-3; a box at the IoU 0.5 edge or two near-tied scores can then
swap, which in a 20-frame slice moves one class's AP by a few hundredths of a rare class's
weight. Two points of mAP@0.5 is far below any delta the report calls significant.
"""
CHECK_MIN_MAP50 = 0.05
"""The check detector must reach this overall mAP@0.5 on the GPU, or agreement proves nothing."""

DRY_RUN = [
    "synth.n_train=20", "synth.n_val=4", "synth.width=160", "synth.height=90", "synth.frames_per_video=2",
    "synth.workers=1",
    "collect.labeled_target=16", "collect.unlabeled_target=8", "collect.min_per_bucket=1",
    "collect.drop_undefined=false",
    "embed.batch_size=8", "embed.workers=0",
    "split.train_size=6", "split.eval_size=6", "split.eval_top_slices=3", "split.val_size=3",
    "split.min_per_bucket=1", "split.eval_include=[]",
    "train.model=yolov8n.yaml", "train.imgsz=64", "train.batch=4", "train.warmup_epochs=0", "train.workers=0",
    "train.amp=false",
    "eval.batch=8", "eval.n_boot=0", "eval.min_eval_frames=1",
    "autolabel.batch=8", "embed.clip_arch=gpu-turn-dry-run-vit",
]
"""Tiny sizes on the CPU (the devices are set to cpu separately): every step runs in seconds."""
DRY_RUN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
"""A 2-layer ViT registered with open_clip for the dry run (as tests/conftest.py's ``tiny_clip_arch``)."""


def register_dry_run_clip(folder: Path) -> None:
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gpu-turn-dry-run-vit.json"
    path.write_text(json.dumps(DRY_RUN_CLIP))
    open_clip.add_model_config(path)


# --- measuring -----------------------------------------------------------------------------------


class GpuSampler:
    """GPU utilisation (percent) sampled every half second while a block runs (nvidia-smi)."""

    def __init__(self, device: str) -> None:
        self.on = device.startswith("cuda") and shutil.which("nvidia-smi") is not None
        self.samples: list[float] = []
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5, check=True).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return

    @contextmanager
    def sampling(self) -> Iterator[GpuSampler]:
        thread = threading.Thread(target=self._poll, daemon=True) if self.on else None
        if thread:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if thread:
                thread.join()

    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


@dataclass
class Row:
    """One line of the table: a stage measured here and projected to the seed's sizes."""

    stage: str
    frames: str
    measured_s: float
    projected_s: float
    seed_s: float | None
    util: float | None = None
    note: str = ""


@dataclass
class Turn:
    """What the run measured."""

    device: str
    rows: list[Row] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def timed(call, *args, **kwargs) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = call(*args, **kwargs)
    return out, time.perf_counter() - t0


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- the stages ----------------------------------------------------------------------------------


def build_config(out: Path, *, dry_run: bool, device: str, epochs: int, extra: list[str] | None = None):
    from bddengine.config import load_config

    sets = [f"runs_dir={out / 'runs'}", f"data.root={out / 'world'}", f"train.epochs={epochs}",
            "fiftyone.enabled=false", *(DRY_RUN if dry_run else [])]
    sets += [f"{key}.device={device}" for key in ("embed", "train", "eval", "mine", "autolabel")]
    return load_config(CONFIG, sets + list(extra or []))


def run_turn(cfg, turn: Turn, *, sampler_device: str, decode_frames: int) -> dict[str, Any]:
    """synth -> collect (CPU) -> embed (GPU) -> split (CPU) -> train -> eval -> labeller (GPU)."""
    from bddengine.stages import collect, embed, eval, split, synth, train

    (_, synth_s) = timed(synth.run, cfg, progress=False)
    print(f"world: {cfg.data.root} ({synth_s:.0f} s; kept for the next run)", flush=True)
    shutil.rmtree(cfg.runs_dir, ignore_errors=True)  # this benchmark's own runs: every stage runs afresh
    collected, collect_s = timed(collect.run, cfg, progress=False)
    sampler = GpuSampler(sampler_device)
    with sampler.sampling():
        embedded, embed_s = timed(embed.run, cfg, progress=False)
    em = json.loads((embedded.location / "result.json").read_text())["metrics"]
    n = em["n_frames"]
    per_frame = (collect_s + em["encode_s"]) / n
    turn.rows.append(Row("curation + embed", f"{n:,}", collect_s + embed_s,
                         em["model_load_s"] + SEED_EMBED_FRAMES * per_frame, SEED_S["curation + embed"],
                         sampler.mean(), f"collect {collect_s:.1f} s + embed {embed_s:.1f} s; "
                         f"{em['frames_per_s']:,.0f} frames/s embedded"))
    embed_io = measure_embed_io(cfg, collected.location, em, min(decode_frames, n))
    _, split_s = timed(split.run, cfg, progress=False)
    print(f"split on the CPU in {split_s:.1f} s", flush=True)

    sampler = GpuSampler(sampler_device)
    with sampler.sampling():
        trained, train_s = timed(train.run, cfg, iter=0)
    train_row, train_io = train_figures(cfg, trained.location, train_s, sampler.mean())
    turn.rows.append(train_row)

    sampler = GpuSampler(sampler_device)
    with sampler.sampling():
        evaluated, eval_s = timed(eval.run, cfg, iter=0, progress=False)
    ev = json.loads((evaluated.location / "result.json").read_text())["metrics"]
    turn.rows.append(Row("eval", f"{ev['n_frames']:,}", eval_s, SEED_ITERATIONS * eval_s, SEED_S["eval"],
                         sampler.mean(), f"mAP@0.5 {ev['map50']:.3f} after {cfg.train.epochs} epoch(s); "
                         "seed figure also holds mining and plots"))

    labelled, label_s, n_label = label_frames(cfg, trained.location, sampler_device)
    turn.rows.append(Row("autolabel (detector)", f"{n_label}", label_s,
                         label_s * SEED_AUTOLABEL_FRAMES / max(n_label, 1), SEED_S["autolabel"], None,
                         f"{labelled:,} boxes"))
    turn.lines += [embed_io, train_io]
    return {"split": split_s}


def measure_embed_io(cfg, collect_run: Path, em: dict[str, Any], n: int) -> str:
    """Decode-only and model-only frames/s of the embed stage, beside its end-to-end frames/s."""
    import pandas as pd
    import torch

    from bddengine.embedding import load_encoder
    from bddengine.embedding.data import frame_decode
    from bddengine.embedding.encode import Encoder, pick_device, prepare_model
    from bddengine.inference import Batch, FrameSource, infer
    from bddengine.runs.layout import COLLECT

    e = cfg.embed
    source = FrameSource.from_manifest(pd.read_parquet(COLLECT.manifest.at(collect_run)).iloc[:n])
    device = pick_device(e.device)
    model, spec = load_encoder(e.model, e.clip_arch, e.pretrained, seed=cfg.seed, image_size=e.image_size)
    decoder = frame_decode(spec.image_size, spec.mean, spec.std, pin_memory=device.type == "cuda")
    batches: list[Batch] = []

    def keep(batch: Batch) -> dict[str, Any]:  # decode only: the pipeline's workers, no model
        batches.append(batch)
        return {}

    t0 = time.perf_counter()
    infer(source, decoder, keep, batch_size=e.batch_size, workers=e.workers)
    decode = n / (time.perf_counter() - t0)
    encoder = Encoder(prepare_model(model, device), device)
    encoder(batches[0])  # warm-up
    sync(str(device))
    t0 = time.perf_counter()
    for batch in batches:
        encoder(batch)
    sync(str(device))
    model_fps = n / (time.perf_counter() - t0)
    del model, encoder
    batches.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    e2e = em["frames_per_s"] or 0.0
    verdict = "decode-bound: the GPU waits for JPEGs" if decode < model_fps and e2e < 0.8 * model_fps else \
        "model-bound" if model_fps <= decode else "neither (the hand-off costs)"
    return (f"embed on {n} frames: decode {decode:,.1f} frames/s ({e.workers} workers), model {model_fps:,.1f} "
            f"frames/s, stage end to end {e2e:,.1f} frames/s -> {verdict}")


def train_figures(cfg, run: Path, train_s: float, util: float | None) -> tuple[Row, str]:
    """Time per epoch from ultralytics' results.csv, projected to 50 epochs x 2 iterations."""
    from bddengine.runs.layout import TRAIN
    from bddengine.stages.train import read_curves

    result = json.loads((run / "result.json").read_text())["metrics"]
    curves = read_curves(TRAIN.curves.at(run))
    ends = [c["time"] for c in curves if "time" in c]
    if not ends:
        raise SystemExit(f"{TRAIN.curves.at(run)}: no per-epoch time column; cannot time an epoch")
    per_epoch = [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]
    steady = statistics.median(per_epoch[1:]) if len(per_epoch) > 1 else per_epoch[0]
    setup = max(train_s - ends[-1], 0.0)
    n = result["n_train_images"]
    projected = SEED_ITERATIONS * (setup + per_epoch[0] + (SEED_EPOCHS - 1) * steady)
    row = Row("train", f"{n:,} x {len(per_epoch)} ep", train_s, projected, SEED_S["train"], util,
              f"{steady:.1f} s/epoch steady (first {per_epoch[0]:.1f} s), setup {setup:.0f} s")
    decode = decode_train_fps(cfg, run, min(n, 256))
    mosaic = 4 if cfg.train.mosaic > 0 else 1
    trained_fps = n / steady
    starved = trained_fps >= 0.8 * decode / mosaic and (util is None or util < 70)
    line = (f"train: {trained_fps:,.1f} images/s per steady epoch (incl. its val pass); JPEG decode + resize "
            f"{decode:,.0f} images/s on {max(cfg.train.workers, 1)} workers = {decode / mosaic:,.0f} samples/s "
            f"({mosaic} images a mosaic sample); GPU busy "
            f"{'n/a' if util is None else f'{util:.0f}%'} -> "
            f"{'decode-bound: the GPU waits for data' if starved else 'not decode-bound'}")
    return row, line


def decode_train_fps(cfg, run: Path, n: int) -> float:
    """Images/s that ``train.workers`` processes decode and resize the training JPEGs at (ultralytics' load)."""
    import cv2
    import torch
    import yaml

    from bddengine.runs.layout import TRAIN

    spec = yaml.safe_load(TRAIN.dataset_yaml.at(run).read_text())
    paths = sorted(p for folder in spec["train"] for p in Path(folder).iterdir() if p.suffix.lower() == ".jpg")[:n]
    size = cfg.train.imgsz

    class Decode(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> int:
            im = cv2.imread(str(paths[i]))
            h, w = im.shape[:2]
            r = size / max(h, w)
            return cv2.resize(im, (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR).shape[0]

    loader = torch.utils.data.DataLoader(Decode(), batch_size=16, num_workers=cfg.train.workers)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return len(paths) / (time.perf_counter() - t0)


def label_frames(cfg, train_run: Path, device: str) -> tuple[int, float, int]:
    """The detector labeller (the iteration's own detector) on 100 mining-pool frames: boxes, seconds, frames."""
    import pandas as pd

    from bddengine.labeling.registry import LABELERS
    from bddengine.runs import resolve_input
    from bddengine.runs.layout import SPLIT, TRAIN

    split = resolve_input(cfg.runs_dir, "split")
    pool = pd.read_parquet(SPLIT.mining_pool.at(split)).head(SEED_AUTOLABEL_FRAMES)
    frames = [{"name": n, "path": p} for n, p in zip(pool["name"], pool["path"], strict=True)]
    imgsz = cfg.autolabel.imgsz or cfg.train.imgsz
    t0 = time.perf_counter()
    labeler = LABELERS["detector"].build(cfg.autolabel, {"weights": TRAIN.best_weights.at(train_run)}, imgsz)
    boxes = labeler.label(frames, progress=False)
    sync(device)
    return sum(len(b) for b in boxes.values()), time.perf_counter() - t0, len(frames)


def check_cpu(out: Path, *, dry_run: bool, device: str, epochs: int) -> tuple[float, float, list[str]]:
    """A YOLOv8n trained briefly on the same split, evaluated on ``device`` and on the CPU.

    Returns:
        The largest per-slice mAP@0.5 difference, the overall mAP@0.5 on ``device``, and lines to print.
    """
    import pandas as pd

    from bddengine.runs.layout import EVAL
    from bddengine.stages import eval, train

    small = ["train.model=yolov8n.yaml", "train.cache=ram"]
    small += [] if dry_run else ["train.imgsz=512", "train.batch=32", "train.lr0=0.002", "train.warmup_epochs=1"]
    on_gpu = build_config(out, dry_run=dry_run, device=device, epochs=epochs, extra=small)
    on_cpu = build_config(out, dry_run=dry_run, device=device, epochs=epochs, extra=[*small, "eval.device=cpu"])
    if dry_run:  # the turn's detector: a second training would double the rehearsal's seconds
        seed, train_s = on_gpu.seed, 0.0
    else:
        seed = on_gpu.seed + 1  # its own runs (tag seed43) beside the turn's, on the turn's split
        _, train_s = timed(train.run, on_gpu, iter=0, seed=seed)
    tables, seconds = {}, {}
    for name, cfg in (("gpu", on_gpu), ("cpu", on_cpu)):
        # force: on a dry run both devices are the CPU, and the second would find the first's run
        ref, seconds[name] = timed(eval.run, cfg, iter=0, seed=seed, force=name == "cpu", progress=False)
        tables[name] = pd.read_csv(EVAL.slice_table_csv.at(ref.location))
    keys = ["grouping", "weather", "timeofday", "scene"]
    both = tables["gpu"].merge(tables["cpu"], on=keys, suffixes=("_gpu", "_cpu"), validate="one_to_one")
    if len(both) != len(tables["gpu"]) or len(both) != len(tables["cpu"]):
        raise SystemExit(f"the slice tables list different slices: {len(tables['gpu'])} on {device}, "
                         f"{len(tables['cpu'])} on cpu")
    diff = (both["map50_gpu"].fillna(-1) - both["map50_cpu"].fillna(-1)).abs()
    worst = both.loc[diff.idxmax()]
    overall = float(both.loc[both["grouping"] == "overall", "map50_gpu"].iloc[0])
    made = "the turn's detector (dry run)" if dry_run else f"YOLOv8n, {epochs} epoch(s) on {device} in {train_s:.0f} s"
    lines = [f"check: {made}; eval on {device} "
             f"{seconds['gpu']:.1f} s, on cpu {seconds['cpu']:.1f} s; overall mAP@0.5 {overall:.3f} ({device}) vs "
             f"{float(both.loc[both['grouping'] == 'overall', 'map50_cpu'].iloc[0]):.3f} (cpu)",
             f"check: {len(both)} slice-table rows; largest mAP@0.5 difference {float(diff.max()):.4f} "
             f"({'/'.join(str(worst[k]) for k in keys)}: {worst['map50_gpu']:.4f} vs {worst['map50_cpu']:.4f}); "
             f"tolerance {TOLERANCE}"]
    return float(diff.max()), overall, lines


# --- the table -----------------------------------------------------------------------------------


def table(turn: Turn) -> str:
    head = (f"| stage | frames | measured s | projected s (seed sizes) | seed {SEED_GPU} s | {SEED_GPU} / here "
            "| GPU busy | note |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in turn.rows:
        ratio = f"{r.seed_s / r.projected_s:.1f}x" if r.seed_s and r.projected_s > 0 else "-"
        util = "-" if r.util is None else f"{r.util:.0f}%"
        lines.append(f"| {r.stage} | {r.frames} | {r.measured_s:,.1f} | {r.projected_s:,.0f} | "
                     f"{r.seed_s:,.0f} | {ratio} | {util} | {r.note} |")
    total, seed = sum(r.projected_s for r in turn.rows), sum(r.seed_s or 0 for r in turn.rows)
    lines.append(f"| turn | | {sum(r.measured_s for r in turn.rows):,.1f} | {total:,.0f} ({total / 3600:.2f} h) | "
                 f"{seed:,.0f} ({seed / 3600:.2f} h) | {seed / total:.1f}x | | mining not timed |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes (seconds)")
    parser.add_argument("--long", action="store_true", help="10 training epochs instead of 2 (~10 min)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 2; --long: 10)")
    parser.add_argument("--check-cpu", action="store_true",
                        help="also: a YOLOv8n trained briefly, evaluated on the GPU and on the CPU")
    parser.add_argument("--check-epochs", type=int, default=None, help="the check detector's epochs (default 8)")
    parser.add_argument("--decode-frames", type=int, default=1024, help="frames of the decode / model timing")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/gpu_turn"),
                        help="world (kept) and runs (remade) of this benchmark")
    args = parser.parse_args(argv)

    import torch

    if args.dry_run:
        device = "cpu"
    elif not torch.cuda.is_available():
        reason = (f"no CUDA device here (torch {torch.__version__}): nothing measured; "
                  "on a GPU machine see docs/gpu.md, or rehearse on the CPU with --dry-run")
        print(f"gpu_turn: {reason}")
        skip(reason)
        return 0
    else:
        device = "cuda"
    epochs = 1 if args.dry_run else args.epochs or (10 if args.long else 2)
    check_epochs = 1 if args.dry_run else args.check_epochs or (15 if args.long else 8)
    from bddengine.integrations.ultralytics import offline_ultralytics

    offline_ultralytics()
    out = args.out
    if args.dry_run:
        register_dry_run_clip(out / "open_clip")
    cfg = build_config(out, dry_run=args.dry_run, device=device, epochs=epochs)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run on the CPU)"
    print(f"gpu_turn: {'DRY RUN, tiny sizes, ' if args.dry_run else ''}device {device} ({gpu}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; {cfg.synth.width}x{cfg.synth.height}, "
          f"{cfg.train.model} at {cfg.train.imgsz}, batch {cfg.train.batch}, amp {cfg.train.amp}, "
          f"{epochs} epoch(s); out {out}", flush=True)
    turn = Turn(device)
    t0 = time.perf_counter()
    run_turn(cfg, turn, sampler_device=device, decode_frames=args.decode_frames)
    diff = overall = None
    if args.check_cpu:
        diff, overall, lines = check_cpu(out, dry_run=args.dry_run, device=device, epochs=check_epochs)
        turn.lines += lines
    print(f"\n== gpu_turn: {'DRY RUN (CPU, tiny sizes: the projection means nothing)' if args.dry_run else gpu}, "
          f"{epochs} epoch(s); {time.perf_counter() - t0:,.0f} s in all")
    print(table(turn))
    for line in turn.lines:
        print(line)
    print(f"projection: train = {SEED_ITERATIONS} x (setup + {SEED_EPOCHS} epochs); curation + embed per frame x "
          f"{SEED_EMBED_FRAMES:,}; eval x {SEED_ITERATIONS}; autolabel per frame x {SEED_AUTOLABEL_FRAMES}")
    ok = True
    if args.check_cpu:
        agree = diff <= TOLERANCE
        real = args.dry_run or overall >= CHECK_MIN_MAP50
        print(f"check: {'PASS' if agree and real else 'FAIL'}: max per-slice mAP@0.5 difference {diff:.4f} "
              f"{'<=' if agree else '>'} {TOLERANCE}" + ("" if real else
              f"; but overall mAP@0.5 {overall:.3f} < {CHECK_MIN_MAP50}: train the check longer (--check-epochs)"))
        ok = agree and real
        if not args.dry_run:
            record("gpu_turn: max slice mAP@0.5 |cuda - cpu|", diff, TOLERANCE, op="<=",
                   note=f"YOLOv8n {check_epochs} epochs, overall mAP@0.5 {overall:.3f}")
    if not args.dry_run:
        total, seed = sum(r.projected_s for r in turn.rows), sum(r.seed_s or 0 for r in turn.rows)
        ok = record(f"gpu_turn: seed {SEED_GPU} turn / projected turn here", seed / total, 1.0,
                    note=f"{gpu}, {epochs} epochs measured") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
