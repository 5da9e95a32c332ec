"""The ``ray`` backend on a local Ray cluster: local's numbers, the run folder committed or absent.

One Ray instance for the module (``ray.init(num_cpus=2)``: one model actor, a CPU left for
the decode tasks); the backend finds it connected and leaves it so. Ray's start-up costs
seconds, so every Ray test lives here.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bddengine.config import load_config
from bddengine.inference import Batch, FrameSource, infer
from bddengine.stages import collect, embed
from conftest import write_config

ray = pytest.importorskip("ray")
# Ray's workers cannot import this test module (tests/ is on the driver's path only): its classes
# travel by value, as a user's own model step defined in a script would.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

RAY = {"backend": "ray", "actors": 1, "cpus_per_actor": 1}


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray instance for this module: 2 CPUs, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def collected(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray")
    cfg = load_config(write_config(root / "c.yaml", tiny_world, root / "runs"))
    collect.run(cfg, progress=False)
    return root / "runs"


def _embed_cfg(collected: Path, tmp_path: Path, arch: str, label: str, **compute):
    runs = tmp_path / label
    if not runs.exists():
        shutil.copytree(collected, runs)
    return load_config(write_config(tmp_path / f"{label}.yaml", Path("unused"), runs, compute=compute,
                                    embed={"clip_arch": arch, "pretrained": None, "batch_size": 8, "workers": 1}))


def test_embed_on_ray_gives_local_vectors(cluster, collected: Path, tiny_clip_arch: str, tmp_path: Path,
                                          monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cret-token")  # the environment's credential stays out of the run
    local = embed.run(_embed_cfg(collected, tmp_path, tiny_clip_arch, "local"), progress=False)
    on_ray = embed.run(_embed_cfg(collected, tmp_path, tiny_clip_arch, "ray", **RAY), progress=False)
    a, b = (np.load(r.location / "embeddings.npy") for r in (local, on_ray))
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    assert len({row.tobytes() for row in a}) == len(a)  # distinct frames: a misalignment would show
    frames = [pd.read_parquet(r.location / "frames.parquet")["name"].tolist() for r in (local, on_ray)]
    assert frames[0] == frames[1]
    assert json.loads((on_ray.location / "result.json").read_text())["metrics"]["n_encoded"] == len(a)
    written = [p for p in on_ray.location.rglob("*") if p.is_file() and p.suffix in (".json", ".yaml", ".log", ".md")]
    assert written and not [p for p in written if "s3cret" in p.read_text(errors="replace")]


def test_detector_pass_embeddings_and_slices_on_ray_give_local_results(cluster, collected: Path, detector: Path,
                                                                       tiny_world: Path) -> None:
    from bddengine.evaluation import build_match_cache
    from bddengine.integrations.ultralytics import embed_with_detector, load_detector, predict_frames
    from bddengine.stages.eval import slice_table

    manifest = pd.read_parquet(collected / "01_collect" / "manifest.parquet").iloc[:21]
    paths, names = manifest["path"].tolist(), manifest["name"].tolist()
    opts = {"imgsz": 64, "conf": 0.0, "iou": 0.7, "max_det": 10, "batch": 4, "device": "cpu", "progress": False}
    cfg = load_config(write_config(collected.parent / "r.yaml", tiny_world, collected, compute=RAY))
    runner = cfg.compute.runner()
    local = predict_frames(detector, paths, names, **opts)
    on_ray = predict_frames(detector, paths, names, backend=runner, **opts)
    assert [f["name"] for f in on_ray] == names and sum(len(f["labels"]) for f in local) > 0
    for a, b in zip(local, on_ray, strict=True):
        assert [x["category"] for x in a["labels"]] == [x["category"] for x in b["labels"]]
        for key in ("score", "box2d"):
            va = [x[key] if key == "score" else list(x[key].values()) for x in a["labels"]]
            vb = [x[key] if key == "score" else list(x[key].values()) for x in b["labels"]]
            np.testing.assert_allclose(vb, va, atol=1e-4, rtol=0)

    # the slice table from each backend's predictions, on the frames' ground truth
    gt = [f for split in ("train", "val") for f in json.loads(cfg.data.label_path(split).read_text())
          if f["name"] in set(names)]
    assert len(gt) == len(names)
    tables = [slice_table(build_match_cache(gt, p), gt, n_boot=20, seed=42, progress=False) for p in (local, on_ray)]
    pd.testing.assert_frame_equal(tables[1], tables[0], atol=1e-4)

    model, layer = load_detector(detector)
    source = FrameSource(names, paths)
    vectors = embed_with_detector(model, layer, source, imgsz=64, batch=4, device="cpu", progress=False)
    np.testing.assert_allclose(
        embed_with_detector(model, layer, source, imgsz=64, batch=4, device="cpu", backend=runner, progress=False),
        vectors, atol=1e-4, rtol=0)


def test_batches_are_cut_as_local_and_results_follow_names(cluster) -> None:
    source = FrameSource([f"frame-{i}" for i in range(7)], [f"/img/{i}.jpg" for i in range(7)])
    from bddengine.inference.ray_backend import RayBackend

    runner = RayBackend(actors=1)
    out = infer(source, _BatchOf(), _BatchOf(), batch_size=3, backend=runner)
    assert out == {n: [n for n in source.names[i // 3 * 3: i // 3 * 3 + 3]] for i, n in enumerate(source.names)}


class _BatchOf:
    """A decode that reads nothing, and a model step answering each frame with its batch's names."""

    read = None
    collate = list
    pin_memory = False

    def __call__(self, batch: Batch) -> dict[str, list[str]]:
        return {n: list(batch.names) for n in batch.names}


def test_an_interrupted_ray_embed_leaves_no_run_folder_and_reruns_cleanly(cluster, collected: Path,
                                                                        tiny_clip_arch: str, tmp_path: Path,
                                                                        monkeypatch) -> None:
    from bddengine.inference import run as run_module

    cfg = _embed_cfg(collected, tmp_path, tiny_clip_arch, "stopped", **RAY)
    real = run_module._progress

    class CtrlC:  # the first batch back from the cluster meets a Ctrl-C
        def __init__(self, bar, total):
            self.inner = real(bar, total)

        def __enter__(self):
            self.inner.__enter__()

            def advance(_n: int) -> None:
                raise KeyboardInterrupt
            return advance

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(run_module, "_progress", CtrlC)
    with pytest.raises(KeyboardInterrupt):
        embed.run(cfg, progress=False)
    assert not list(cfg.runs_dir.glob("*_embed*")), "an interrupted cluster job left a run folder"
    deadline = time.monotonic() + 20  # Ray kills the stopped job's actor asynchronously
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == pytest.approx(2), "the stopped job's actor still holds its CPU"
    monkeypatch.setattr(run_module, "_progress", real)
    done = embed.run(cfg, progress=False)
    assert (done.location / "embeddings.npy").is_file()


def test_model_steps_pickle_for_the_actors_after_use(collected: Path, detector: Path) -> None:
    """Each model step is shipped to its actor whole (Ray uses cloudpickle), also after a local run left
    ultralytics' predictor, which holds a thread lock, on the model."""
    import cloudpickle

    from bddengine.integrations.ultralytics import DetectorEmbed, DetectorPass, load_detector, load_yolo
    from bddengine.labeling.labelers import UltralyticsLabeler

    path = pd.read_parquet(collected / "01_collect" / "manifest.parquet")["path"].iloc[0]
    model, layer = load_detector(detector)
    model.embed([path], imgsz=64, device="cpu", verbose=False, embed=[layer])
    assert model.predictor is not None
    steps = (DetectorPass(load_yolo(detector), imgsz=64, conf=0.1, iou=0.7, max_det=5, device="cpu"),
             DetectorEmbed(model, layer, imgsz=64, device="cpu"),
             UltralyticsLabeler(model, names=[str(i) for i in range(10)], class_map={"0": "car"}, imgsz=64))
    batch = Batch(["a"], [path], [path])
    for step in steps:
        shipped = pickle.loads(cloudpickle.dumps(step))
        assert type(shipped) is type(step) and step.model.predictor is None or step.model is model
        call = shipped._label_batch if isinstance(shipped, UltralyticsLabeler) else shipped
        assert list(call(batch)) == ["a"]
    assert model.predictor is not None  # shipping a step leaves the caller's model as it was
