"""Stage ``synth``: write the synthetic driving world in the BDD100K det_20 layout."""

from __future__ import annotations

from bddengine.config import EngineConfig
from bddengine.stages import StageInputError, StageOutcome
from bddengine.synth import generate_world


def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Generate the world under ``cfg.data.root``.

    Args:
        cfg: the engine config (``synth`` section, ``data.root``, ``seed``).
        force: replace an existing world.
        progress: show a progress bar.
    """
    root = cfg.data.root
    s = cfg.synth
    if not cfg.data.synthetic:
        raise StageInputError(
            f"data.root={root} is configured as a real dataset (data.synthetic: false); "
            "generate the synthetic world with --config configs/demo.yaml"
        )
    meta = root / "synth_meta.json"
    if meta.is_file() and not force:
        return StageOutcome(
            stage="synth",
            location=root,
            skipped=True,
            wrote=[f"{root} (already there: {meta.name}; --force regenerates)"],
            safe_to_delete=str(root),
        )
    result = generate_world(
        root,
        n_train=s.n_train,
        n_val=s.n_val,
        width=s.width,
        height=s.height,
        frames_per_video=s.frames_per_video,
        seed=cfg.seed,
        jpeg_quality=s.jpeg_quality,
        workers=s.workers,
        overwrite=force,
        progress=progress,
    )
    return StageOutcome(
        stage="synth",
        location=root,
        wrote=[
            f"{root}/images/100k/{{train,val}}/*.jpg",
            f"{root}/labels/det_20/det_{{train,val}}.json",
            f"{root}/synth_meta.json",
        ],
        numbers={
            "frames": result.n_frames,
            "videos": result.n_videos,
            "boxes": result.n_boxes,
            "frames/s": round(result.frames_per_s, 1),
            "wall time (s)": round(result.wall_time_s, 1),
            "seed": cfg.seed,
        },
        look_at=[f"a few frames in {root}/images/100k/train/"],
        safe_to_delete=f"{root} (then re-run `bddengine synth`)",
    )
