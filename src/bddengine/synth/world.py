"""Generate a synthetic driving dataset in the BDD100K det_20 layout.

``generate_world`` writes ``<root>/images/100k/{train,val}/<name>.jpg`` and
``<root>/labels/det_20/det_{train,val}.json`` (plus ``synth_meta.json``). A frame
record is det_20's (``name``, ``attributes``, ``timestamp``, ``labels`` with ``id``,
``category``, ``attributes`` and ``box2d``) plus ``videoName`` and ``frameIndex``;
as in det_20, label ids are strings numbered per file, ``trafficLightColor`` is
``"R"``/``"Y"``/``"G"`` on lit traffic lights and ``"NA"`` elsewhere, ``crowd`` is
set on pedestrian labels, and a frame without boxes has no ``labels`` key. Work is
split by video: each video draws its attributes, camera, layout and objects from
its own generator seeded by ``(seed, split, video index)``, so the output is the
same for any number of workers. The folder appears atomically: everything is
written to a temporary sibling and renamed into place when complete.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bddengine.bdd.categories import CLASSES, IGNORED_NAMES
from bddengine.lifecycle import clean_dead_siblings, die_with_parent, tmp_sibling
from bddengine.synth.attributes import VideoConditions, sample_conditions, weather_time_cdf
from bddengine.synth.look import Shader, Textures, apply_frame_effects, make_glare, make_look
from bddengine.synth.objects import draw_static, is_static, render_things
from bddengine.synth.painter import Painter
from bddengine.synth.placement import sample_things
from bddengine.synth.scene import make_camera, render_background, sample_layout
from bddengine.synth.things import FrameCtx

SPLITS: tuple[str, ...] = ("train", "val")
_SPLIT_CODE = {"train": 0, "val": 1}
FRAME_INTERVAL_S = 0.5
"""Time between consecutive frames of a video: objects move a little, the scene stays."""
TIMESTAMP0_MS = 10_000
"""det_20 keyframes are taken at the 10th second of each video."""
GENERATOR_VERSION = 2
"""Bumped when a seed gives a different world (2: people on wide walk bands are placed in view)."""


@dataclass(frozen=True)
class SynthResult:
    """What ``generate_world`` wrote."""

    root: Path
    n_frames: dict[str, int]
    n_boxes: int
    n_videos: int
    wall_time_s: float
    frames_per_s: float


@dataclass(frozen=True)
class _Job:
    split: str
    index: int
    n_frames: int


@dataclass(frozen=True)
class _Settings:
    out_dir: str
    width: int
    height: int
    seed: int
    jpeg_quality: int
    weather_boost: tuple[tuple[str, float], ...] = ()
    classes: tuple[str, ...] | None = None


def _hex_name(rng: np.random.Generator) -> str:
    a, b = rng.integers(0, 2**32, size=2, dtype=np.uint64)
    return f"{int(a):08x}-{int(b):08x}"


def video_streams(seed: int, split: str, index: int) -> dict[str, np.random.Generator]:
    """Independent generators of one video: names, conditions, layout, look, frames."""
    keys = ("names", "conditions", "layout", "look", "frames")
    children = np.random.SeedSequence([seed, _SPLIT_CODE[split], index]).spawn(len(keys))
    return {k: np.random.default_rng(s) for k, s in zip(keys, children, strict=True)}


def render_video(
    cond: VideoConditions,
    *,
    width: int,
    height: int,
    n_frames: int,
    layout_rng: np.random.Generator,
    look_rng: np.random.Generator,
    frame_rng: np.random.Generator,
    textures: Textures | None = None,
) -> Iterator[tuple[Image.Image, list[dict]]]:
    """Render the frames of one video and their labels (without ids).

    The scene (camera, layout, objects) comes from ``layout_rng`` only, so the same
    ``layout_rng`` seed under different conditions gives the same scene in a
    different look: the tests compare contrast that way.

    Args:
        cond: the video's conditions (its ``look_*`` fields pick the rendering).
        width: image width in pixels.
        height: image height in pixels.
        n_frames: frames to render, ``FRAME_INTERVAL_S`` apart.
        layout_rng: draws camera, layout and objects.
        look_rng: draws the condition's free parameters (fog density, sun, clouds).
        frame_rng: draws per-frame noise, rain and snow offsets.
        textures: precomputed layers for this size (built when omitted).

    Yields:
        ``(image, labels)`` per frame.
    """
    textures = textures or Textures(width, height)
    cam = make_camera(width, height, layout_rng)
    layout = sample_layout(cond.look_scene, cam, layout_rng)
    things = sample_things(layout, layout_rng)
    look = make_look(cond, cam, look_rng)
    background = render_background(layout, look, textures, look_rng)
    glare = make_glare(look, cam)
    shader = Shader(look)
    # Parked cars, signs, lights and standing people are drawn once into the base.
    static = draw_static(background, Painter(background, cam, shader),
                         [th for th in things if is_static(th)], FrameCtx(look, layout, textures))
    moving = [th for th in things if not is_static(th)]
    for k in range(n_frames):
        # The last frame draws into the background itself: nothing needs it afterwards.
        image = background.copy() if k < n_frames - 1 else background
        painter = Painter(image, cam, shader)
        labels = render_things(image, painter, static, moving, k * FRAME_INTERVAL_S, FrameCtx(look, layout, textures))
        yield apply_frame_effects(image, look, textures, glare, frame_rng), labels


_TEXTURES: dict[tuple[int, int], Textures] = {}


def _textures(width: int, height: int) -> Textures:
    key = (width, height)
    if key not in _TEXTURES:
        _TEXTURES[key] = Textures(width, height)
    return _TEXTURES[key]


def _render_job(args: tuple[_Settings, _Job]) -> list[dict]:
    """Render and write one video's frames; return its frame records (labels without ids)."""
    st, job = args
    rngs = video_streams(st.seed, job.split, job.index)
    video_name = _hex_name(rngs["names"])
    frame_names = [_hex_name(rngs["names"]) for _ in range(job.n_frames)]
    cond = sample_conditions(rngs["conditions"], _pair_cdf(st.weather_boost))
    image_dir = Path(st.out_dir) / "images" / "100k" / job.split
    records = []
    frames = render_video(cond, width=st.width, height=st.height, n_frames=job.n_frames,
                          layout_rng=rngs["layout"], look_rng=rngs["look"], frame_rng=rngs["frames"],
                          textures=_textures(st.width, st.height))
    for k, (image, labels) in enumerate(frames):
        name = f"{frame_names[k]}.jpg"
        image.save(image_dir / name, "JPEG", quality=st.jpeg_quality)
        record = {
            "name": name,
            "videoName": video_name,
            "frameIndex": k,
            "attributes": cond.label_attributes(),
            "timestamp": TIMESTAMP0_MS + int(round(k * FRAME_INTERVAL_S * 1000)),
        }
        if st.classes is not None:
            labels = restrict_labels(labels, st.classes)
        if labels:  # det_20 omits "labels" on frames without boxes
            record["labels"] = labels
        records.append(record)
    return records


_PEOPLE = frozenset({"pedestrian", "rider"})
_DRAWN_ONLY = frozenset({"traffic light", "traffic sign"})


def restrict_labels(labels: list[dict], classes: tuple[str, ...]) -> list[dict]:
    """Keep the labels of ``classes``; other objects stay in the image as ignored regions.

    A person of a dropped class becomes ``other person`` and a vehicle ``other
    vehicle`` (BDD100K's ignored categories: detections on them are neither right
    nor wrong); dropped traffic lights and signs are simply not labelled.
    """
    out = []
    for lab in labels:
        cat = lab["category"]
        if cat in classes or cat in IGNORED_NAMES:
            out.append(lab)
        elif cat not in _DRAWN_ONLY:
            out.append({**lab, "category": "other person" if cat in _PEOPLE else "other vehicle"})
    return out


@functools.lru_cache(maxsize=4)
def _pair_cdf(weather_boost: tuple[tuple[str, float], ...]) -> np.ndarray | None:
    return weather_time_cdf(dict(weather_boost)) if weather_boost else None


def _plan(n_train: int, n_val: int, frames_per_video: int) -> list[_Job]:
    jobs = []
    for split, n in (("train", n_train), ("val", n_val)):
        for index in range(math.ceil(n / frames_per_video)):
            jobs.append(_Job(split, index, min(frames_per_video, n - index * frames_per_video)))
    return jobs


def _validate(n_train: int, n_val: int, width: int, height: int, frames_per_video: int, jpeg_quality: int,
              workers: int | None) -> None:
    errors = []
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        errors.append(f"n_train={n_train}, n_val={n_val}: need non-negative counts, at least one frame")
    if width < 32 or height < 32:
        errors.append(f"width={width}, height={height}: each must be at least 32 pixels")
    if frames_per_video < 1:
        errors.append(f"frames_per_video={frames_per_video}: must be at least 1")
    if not 1 <= jpeg_quality <= 100:
        errors.append(f"jpeg_quality={jpeg_quality}: must be in 1..100")
    if workers is not None and workers < 1:
        errors.append(f"workers={workers}: must be at least 1 (or None for all CPUs)")
    if errors:
        raise ValueError("generate_world: " + "; ".join(errors))


def generate_world(root: Path, *, n_train: int, n_val: int, width: int = 640, height: int = 360,
                   frames_per_video: int = 3, seed: int = 42, jpeg_quality: int = 90,
                   weather_boost: dict[str, float] | None = None, classes: list[str] | None = None,
                   workers: int | None = None,
                   overwrite: bool = False, progress: bool = True) -> SynthResult:
    """Write a synthetic BDD100K-format detection dataset under ``root``.

    Example:
        >>> generate_world(Path("data/synth"), n_train=2000, n_val=500)  # doctest: +SKIP

    Args:
        root: the dataset folder to create (refused if it exists and is not empty,
            unless ``overwrite``).
        n_train: frames in ``det_train.json`` / ``images/100k/train``.
        n_val: frames in ``det_val.json`` / ``images/100k/val``.
        width: image width in pixels (BDD100K is 1280).
        height: image height in pixels (BDD100K is 720).
        frames_per_video: frames per video (the last video of a split may have fewer);
            frames of a video share ``videoName``, scene and attributes.
        seed: same seed and parameters give byte-identical labels and images.
        jpeg_quality: JPEG quality of the images.
        weather_boost: multiply the share of these weather values (e.g. ``{"foggy": 30}``)
            so that a small world holds enough of a rare condition; the default is BDD's shares.
        classes: label only these of the 10 classes (default: all); other people and
            vehicles become ignored regions, other lights and signs go unlabelled.
        workers: processes to render with (default: all CPUs).
        overwrite: replace an existing non-empty ``root`` (atomically), only when it is a
            world this generator made (`foreign_files` finds nothing else in it).
        progress: show a progress bar.

    Returns:
        Counts and timing of what was written.

    Raises:
        FileExistsError: ``root`` exists, is not empty, and ``overwrite`` is False.
        NotAWorldError: ``overwrite`` is set but ``root`` holds files this generator
            did not write (they are listed; nothing is deleted).
        ValueError: a parameter is out of range (all such problems are listed).
    """
    _validate(n_train, n_val, width, height, frames_per_video, jpeg_quality, workers)
    boost = tuple(sorted((weather_boost or {}).items()))
    unknown = sorted(set(classes or ()) - set(CLASSES))
    if unknown:
        raise ValueError(f"generate_world: classes {unknown} are not BDD classes; use some of {list(CLASSES)}")
    kept = None if classes is None else tuple(c for c in CLASSES if c in classes)
    weather_time_cdf(dict(boost))  # raises on an unknown weather value before anything is written
    root = Path(root)
    if root.exists():
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a folder; remove it or choose another root")
        if any(root.iterdir()) and not overwrite:
            raise FileExistsError(f"{root} exists and is not empty; pass overwrite=True to replace it")
        foreign = foreign_files(root)
        if foreign:
            raise NotAWorldError(root, foreign)
    root.parent.mkdir(parents=True, exist_ok=True)
    clean_dead_siblings(root)  # temporary trees of killed runs
    tmp = tmp_sibling(root)
    start = time.perf_counter()
    try:
        for split in SPLITS:
            (tmp / "images" / "100k" / split).mkdir(parents=True)
        (tmp / "labels" / "det_20").mkdir(parents=True)
        settings = _Settings(str(tmp), width, height, seed, jpeg_quality, boost, kept)
        jobs = _plan(n_train, n_val, frames_per_video)
        # Label files are numbered and encoded as videos arrive, while the workers still render.
        files = {s: _LabelFile() for s in SPLITS}
        names: set[str] = set()
        per_category: Counter = Counter()
        for job, recs in zip(jobs, _run_jobs(settings, jobs, workers, progress, n_train + n_val), strict=True):
            _add_frames(files[job.split], recs, names, per_category)
        for split, file in files.items():
            file.write(tmp / "labels" / "det_20" / f"det_{split}.json")
        n_boxes = sum(file.next_id for file in files.values())
        wall = time.perf_counter() - start
        n_frames = {s: file.frames for s, file in files.items()}
        fps = (n_train + n_val) / wall if wall > 0 else float("inf")
        meta = {
            "generator": "bddengine.synth",
            "version": GENERATOR_VERSION,
            "params": {"n_train": n_train, "n_val": n_val, "width": width, "height": height,
                       "frames_per_video": frames_per_video, "seed": seed, "jpeg_quality": jpeg_quality,
                       "weather_boost": dict(boost), "classes": list(kept) if kept else None,
                       "workers": workers or os.cpu_count()},
            "seed": seed,
            "counts": {"frames": n_frames, "videos": len(jobs), "boxes": n_boxes,
                       "boxes_per_category": dict(sorted(per_category.items()))},
            "wall_time_s": round(wall, 3),
            "frames_per_s": round(fps, 2),
        }
        (tmp / "synth_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        _commit(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthResult(root, n_frames, n_boxes, len(jobs), wall, fps)


WORLD_MARKER = "synth_meta.json"
"""The file that marks a folder as a world this generator made (``"generator": "bddengine.synth"``)."""


class NotAWorldError(FileExistsError):
    """A folder to replace holds files the generator did not write."""

    def __init__(self, root: Path, foreign: list[str]) -> None:
        self.root, self.foreign = root, foreign
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        super().__init__(f"{root} is not a synthetic world bddengine made (it holds {shown}); "
                         "nothing was deleted. Point data.root at an empty or new folder, "
                         "or move those files away first")


def foreign_files(root: Path) -> list[str]:
    """Paths under ``root`` (relative) that a world written by `generate_world` would not hold.

    An empty list means the folder is such a world (or empty) and may be replaced.
    """
    marker = root / WORLD_MARKER
    try:
        own = json.loads(marker.read_text()).get("generator") == "bddengine.synth"
    except (OSError, ValueError, AttributeError):
        own = False
    expected = {WORLD_MARKER, "images", "images/100k", "labels", "labels/det_20",
                *(f"images/100k/{s}" for s in SPLITS), *(f"labels/det_20/det_{s}.json" for s in SPLITS)}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            rel = (base / name).as_posix()
            in_images = len(base.parts) == 3 and base.parts[:2] == ("images", "100k") and name.endswith(".jpg")
            if not (own and (rel in expected or in_images)):
                out.append(rel)
        dirnames[:] = [d for d in dirnames if (base / d).as_posix() in expected]
    return out


def _run_jobs(settings: _Settings, jobs: list[_Job], workers: int | None, progress: bool,
              total_frames: int) -> Iterator[list[dict]]:
    """Render jobs (in order), in worker processes unless one worker is asked for."""
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    args = [(settings, job) for job in jobs]
    if n_workers == 1:
        results: Iterator[list[dict]] = map(_render_job, args)
        yield from _with_progress(results, progress, total_frames)
        return
    # ProcessPoolExecutor rather than multiprocessing.Pool: each result cost the parent about
    # half the CPU (0.7 ms against 1.3 ms on a 2-core VM), so chunks can be half as big.
    context = multiprocessing.get_context()
    if context.get_start_method() == "fork":
        _textures(settings.width, settings.height)  # built once here, inherited by every worker
    executor = ProcessPoolExecutor(n_workers, mp_context=context, initializer=die_with_parent,
                                   initargs=(os.getpid(),))  # no worker outlives a killed parent
    try:
        # Submitting starts the workers, before the progress bar's refresh thread exists (fork + threads).
        # Chunks of a few videos: passing a result back costs the parent about a millisecond,
        # and small chunks leave little idle time at the end.
        results = executor.map(_render_job, args, chunksize=max(1, min(4, len(jobs) // (8 * n_workers))))
        yield from _with_progress(results, progress, total_frames)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)  # on a failure, stop at once


def _with_progress(results: Iterator[list[dict]], progress: bool, total: int) -> Iterator[list[dict]]:
    if not progress:
        yield from results
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]synth world"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("frames", total=total)
        for recs in results:
            bar.advance(task, len(recs))
            yield recs


@dataclass
class _LabelFile:
    """One det_20 label file, encoded frame by frame."""

    next_id: int = 0
    frames: int = 0
    encoded: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        # What json.dumps(records) writes; each record went through the C encoder already.
        path.write_text("[" + ", ".join(self.encoded) + "]")


def _add_frames(file: _LabelFile, records: list[dict], names: set[str], per_category: Counter) -> None:
    """Number labels (one running id per file, as det_20 does) and encode the frame records."""
    for rec in records:
        if rec["name"] in names:
            raise RuntimeError(f"duplicate frame name {rec['name']}: change the seed")
        names.add(rec["name"])
        labels = rec.get("labels")
        if labels:
            rec["labels"] = [{"id": str(file.next_id + i), **label} for i, label in enumerate(labels)]
            file.next_id += len(labels)
            per_category.update(label["category"] for label in labels)
    if records:
        file.encoded.append(json.dumps(records)[1:-1])  # the records, without the list's brackets
    file.frames += len(records)


def _commit(tmp: Path, root: Path) -> None:
    """Move the finished folder into place; an existing root is swapped out, then removed."""
    if root.exists():
        if any(root.iterdir()):
            old = tmp_sibling(root, "old")
            os.rename(root, old)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
            return
        root.rmdir()
    os.rename(tmp, root)
