"""Stage ``synth``: write the synthetic driving world in the BDD100K det_20 layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bddengine.bdd.categories import CLASSES
from bddengine.config import EngineConfig, SynthConfig
from bddengine.errors import StageInputError
from bddengine.stages import StageOutcome
from bddengine.synth import generate_world
from bddengine.synth.world import SynthResult, foreign_files


def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Generate the world under ``cfg.data.root``.

    Args:
        cfg: the engine config (``synth`` section, ``data.root``, ``seed``).
        force: replace an existing world (never a folder holding anything else).
        progress: show a progress bar.

    Raises:
        StageInputError: ``data.root`` is not empty and is not a world synth made.
    """
    root = cfg.data.root
    s = cfg.synth
    if not cfg.data.synthetic:
        raise StageInputError(
            f"data.root={root} is configured as a real dataset (data.synthetic: false); "
            "generate the synthetic world with --config configs/demo.yaml"
        )
    meta = root / "synth_meta.json"
    if meta.is_file() and not force and _same_params(meta, world_params(s, cfg.seed)):
        return StageOutcome(
            stage="synth",
            location=root,
            skipped=True,
            wrote=[f"{root} (already there: {meta.name}; --force regenerates)"],
            safe_to_delete=str(root),
        )
    refuse_foreign_files(root)
    result = generate_world(
        root,
        n_train=s.n_train,
        n_val=s.n_val,
        width=s.width,
        height=s.height,
        frames_per_video=s.frames_per_video,
        seed=cfg.seed,
        jpeg_quality=s.jpeg_quality,
        weather_boost=s.weather_boost,
        classes=s.classes,
        workers=s.workers,
        overwrite=force or meta.is_file(),  # a world made with other parameters is regenerated
        progress=progress,
    )
    return _outcome(root, result, seed=cfg.seed)


def world_params(s: SynthConfig, seed: int) -> dict[str, Any]:
    """The parameters a world is made from, as ``synth_meta.json`` records them (workers aside)."""
    return {"n_train": s.n_train, "n_val": s.n_val, "width": s.width, "height": s.height,
            "frames_per_video": s.frames_per_video, "seed": seed, "jpeg_quality": s.jpeg_quality,
            "weather_boost": dict(sorted(s.weather_boost.items())),
            "classes": [c for c in CLASSES if c in s.classes] if s.classes else None}


def refuse_foreign_files(root: Path) -> None:
    """Stop when ``root`` holds anything synth did not write: synth never deletes such files.

    Raises:
        StageInputError: naming up to five of them and what to do.
    """
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    foreign = foreign_files(root) if root.is_dir() else [root.name]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise StageInputError(
            f"data.root={root} is not empty and is not a synthetic world bddengine made (it holds "
            f"{shown}); synth never deletes files it did not write, --force included. Set data.root "
            "to an empty or new folder (--set data.root=data/synth), or move those files away")


def _outcome(root: Path, result: SynthResult, *, seed: int) -> StageOutcome:
    return StageOutcome(
        stage="synth",
        location=root,
        wrote=[
            f"{root}/images/100k/{{train,val}}/*.jpg",
            f"{root}/labels/det_20/det_{{train,val}}.json",
            f"{root}/synth_meta.json",
        ],
        numbers={
            "frames": " + ".join(f"{n:,} {split}" for split, n in result.n_frames.items()),
            "videos": result.n_videos,
            "boxes": result.n_boxes,
            "frames/s": round(result.frames_per_s, 1),
            "wall time (s)": round(result.wall_time_s, 1),
            "seed": seed,
        },
        look_at=[f"a few frames in {root}/images/100k/train/"],
        safe_to_delete=f"{root} (then re-run `bddengine synth`)",
    )


def _same_params(meta: Path, wanted: dict) -> bool:
    """True when the world on disk was generated with these parameters (workers aside)."""
    try:
        params = json.loads(meta.read_text())["params"]
    except (OSError, ValueError, KeyError):
        return False
    params.setdefault("weather_boost", {})
    params.setdefault("classes", None)
    return all(params.get(k) == v for k, v in wanted.items())
