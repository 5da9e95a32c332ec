"""Shared fixtures: a tiny synthetic world generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the model hub
os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO / "tests" / "data" / "conformance" / "bdd100k-det-eval"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-frame synthetic world at 160x90 (train 48, val 12)."""
    from bddengine.synth import generate_world

    root = tmp_path_factory.mktemp("world") / "synth"
    generate_world(root, n_train=48, n_val=12, width=160, height=90, frames_per_video=2,
                   seed=42, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The real BDD100K conformance case, committed in tests/data/conformance/ (see its README)."""
    return CONFORMANCE


@pytest.fixture(scope="session")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init YOLOv8n with the ten BDD classes, saved as a weights file."""
    import ultralytics
    import yaml
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("detector")
    spec = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8.yaml").read_text())
    spec["nc"] = 10
    (root / "yolov8n.yaml").write_text(yaml.safe_dump(spec))
    YOLO(str(root / "yolov8n.yaml")).save(str(root / "scratch.pt"))
    return root / "scratch.pt"


TINY_CLIP = "bddtest-tiny-vit"
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a 2-layer ViT with open_clip so random-init encoding takes milliseconds."""
    import json

    import open_clip

    path = tmp_path_factory.mktemp("openclip") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(path)
    return TINY_CLIP


def write_config(path: Path, root: Path, runs: Path, name: str = "test", **sections: dict) -> Path:
    """A small YAML config pointing at a world and a runs folder."""
    import yaml

    cfg = {
        "name": name,
        "runs_dir": str(runs),
        "data": {"root": str(root), "synthetic": True},
        "synth": {"n_train": 48, "n_val": 12, "width": 160, "height": 90, "frames_per_video": 2},
        "collect": {"labeled_target": 30, "unlabeled_target": 20, "min_per_bucket": 2,
                    "drop_undefined": False},
        "fiftyone": {"enabled": False},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(cfg))
    return path


def fiftyone_reachable() -> bool:
    """True when FiftyOne's MongoDB answers (CI starts one; see .ci/run)."""
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if not uri:
        return False
    try:
        import pymongo

        pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000).admin.command("ping")
    except Exception:  # noqa: BLE001
        return False
    return True


def write_result(run: Path, inputs: dict | None = None, *, outputs: dict | None = None,
                 metrics: dict | None = None, **extra) -> Path:
    """A hand-written complete run folder: ``result.json`` as a committed run has it.

    The stage, iteration and tag come from the folder name (``04_eval_iter0``); inputs
    are stage -> run folder, stored as paths like the stages record them.
    """
    import json

    from bddengine.runs import RESULT_FILE, parse_run_name

    ref = parse_run_name(run)
    assert ref is not None, f"{run.name} is not a run folder name"
    run.mkdir(parents=True, exist_ok=True)
    doc = {"stage": ref.stage, "run": run.name, "iter": ref.iter, "tag": ref.tag, "status": "complete",
           "seed": 42, "fingerprint": f"fp-{run.name}",
           "inputs": {k: str(v) for k, v in (inputs or {}).items()},
           "outputs": outputs or {}, "metrics": metrics or {}, **extra}
    (run / RESULT_FILE).write_text(json.dumps(doc))
    return run


def recorded_reads(result: dict) -> set[str]:
    """The stages of the runs a ``result.json`` records as inputs (a file inside a run counts as that run)."""
    from bddengine.runs import parse_run_name

    stages = set()
    for value in result.get("inputs", {}).values():
        path = Path(str(value))
        ref = next((r for r in map(parse_run_name, (path, *path.parents)) if r is not None), None)
        if ref is not None:
            stages.add(ref.stage)
    return stages
