"""The batch-inference pipeline: a second backend gives local's results; results follow names, not order."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bddengine.config import ConfigError, load_config
from bddengine.inference import BACKENDS, Batch, Decode, FrameSource, Model, infer, register_backend
from bddengine.stages import collect, embed
from conftest import write_config


class ReversedBackend:
    """Local's batches, handed back last batch first and each batch's results in reverse."""

    def run(self, source: FrameSource, decode: Decode, model: Model, *, batch_size: int,
            workers: int) -> Iterator[tuple[list[str], dict[str, Any]]]:
        done = list(BACKENDS["local"].run(source, decode, model, batch_size=batch_size, workers=workers))
        for names, results in reversed(done):
            yield names[::-1], dict(reversed(results.items()))


@pytest.fixture(scope="module")
def backends() -> Iterator[list[str]]:
    """``threads`` (the plugin module) and ``reversed`` (this file), registered for these tests."""
    import threadpool_backend  # noqa: F401  (importing registers "threads")

    register_backend("reversed", ReversedBackend())
    yield ["threads", "reversed"]
    BACKENDS.pop("reversed")


@pytest.fixture(scope="module")
def collected(tiny_world: Path, tiny_clip_arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collect run of the tiny world, to embed from with each backend."""
    root = tmp_path_factory.mktemp("inference")
    cfg = load_config(write_config(root / "c.yaml", tiny_world, root / "runs"))
    collect.run(cfg, progress=False)
    return root / "runs"


def _embed(collected: Path, tmp_path: Path, arch: str, backend: str, workers: int) -> np.ndarray:
    runs = tmp_path / backend
    shutil.copytree(collected, runs)
    cfg = load_config(write_config(tmp_path / f"{backend}.yaml", Path("unused"), runs, compute={"backend": backend},
                                   embed={"clip_arch": arch, "pretrained": None, "batch_size": 16, "workers": workers}))
    out = embed.run(cfg, progress=False)
    frames = pd.read_parquet(out.location / "frames.parquet")
    manifest = pd.read_parquet(runs / "01_collect" / "manifest.parquet")
    assert frames["name"].tolist() == manifest["name"].tolist()
    return np.load(out.location / "embeddings.npy")


def _manifest(collected: Path) -> pd.DataFrame:
    return pd.read_parquet(collected / "01_collect" / "manifest.parquet")


@pytest.mark.parametrize("backend", ["threads", "reversed"])
def test_embed_gives_local_vectors_on_another_backend(backend: str, backends, collected: Path, tiny_clip_arch: str,
                                                      tmp_path: Path) -> None:
    local = _embed(collected, tmp_path, tiny_clip_arch, "local", workers=1)
    np.testing.assert_array_equal(_embed(collected, tmp_path, tiny_clip_arch, backend, workers=1), local)
    assert len({row.tobytes() for row in local}) == len(local)  # distinct frames: a misalignment would show


@pytest.mark.parametrize("backend", ["threads", "reversed"])
def test_detector_pass_and_embeddings_give_local_results_on_another_backend(backend: str, backends,
                                                                             collected: Path, detector: Path) -> None:
    from bddengine.integrations.ultralytics import embed_with_detector, load_detector, predict_frames

    manifest = _manifest(collected).iloc[:21]
    paths, names = manifest["path"].tolist(), manifest["name"].tolist()
    opts = {"imgsz": 64, "conf": 0.0, "iou": 0.7, "max_det": 10, "batch": 4, "device": "cpu", "progress": False}
    local = predict_frames(detector, paths, names, **opts)
    assert [f["name"] for f in local] == names and sum(len(f["labels"]) for f in local) > 0
    assert json.dumps(predict_frames(detector, paths, names, backend=backend, **opts)) == json.dumps(local)
    model, layer = load_detector(detector)
    source = FrameSource(names, paths)
    vectors = embed_with_detector(model, layer, source, imgsz=64, batch=4, device="cpu", progress=False)
    np.testing.assert_array_equal(
        embed_with_detector(model, layer, source, imgsz=64, batch=4, device="cpu", backend=backend, progress=False),
        vectors)
    assert len({row.tobytes() for row in vectors}) == len(vectors)


def test_results_are_keyed_by_name_whatever_order_batches_come_back(backends) -> None:
    source = FrameSource([f"frame-{i}" for i in range(7)], [f"/img/{i}.jpg" for i in range(7)])

    def model(batch: Batch) -> dict[str, str]:
        return {n: p for n, p in zip(batch.names, batch.inputs, strict=True)}

    seen = list(BACKENDS["reversed"].run(source, Decode(), model, batch_size=3, workers=0))
    assert [names for names, _ in seen] == [["frame-6"], ["frame-5", "frame-4", "frame-3"],
                                            ["frame-2", "frame-1", "frame-0"]]
    by_name = dict(zip(source.names, source.paths, strict=True))
    assert infer(source, Decode(), model, batch_size=3, backend="reversed") == by_name


def test_backend_is_checked_against_the_registry(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", tmp_path, tmp_path / "runs", compute={"backend": "spark"})
    with pytest.raises(ConfigError, match=r"compute\.backend.*'spark' is not one of \['local', 'ray'"):
        load_config(path)
    assert load_config(write_config(tmp_path / "d.yaml", tmp_path, tmp_path / "runs")).compute.backend == "local"


def test_a_frame_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' listed twice"):
        FrameSource(["a", "b", "a"], ["1.jpg", "2.jpg", "3.jpg"])
