"""The embed stage: alignment, norms, determinism, no-op re-runs, vector reuse, weights errors.

The stage tests use a tiny random-init open_clip architecture registered in conftest.py
(2 layers, width 64), so they exercise the real open_clip / DataLoader path in
seconds; no pretrained weights are needed (or reachable) anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bddengine.config import load_config
from bddengine.embedding import (
    Encoder,
    WeightsUnavailable,
    frame_decode,
    load_encoder,
    load_frame,
    models,
    reuse_vectors,
    stat_frames,
)
from bddengine.errors import StageInputError
from bddengine.inference import FrameSource, infer
from bddengine.stages import collect, embed
from conftest import TINY_CLIP, fiftyone_reachable, write_config

TINY = TINY_CLIP


@pytest.fixture(scope="module")
def tiny_arch(tiny_clip_arch: str) -> str:
    """The shared 2-layer ViT (conftest), registered with open_clip."""
    return tiny_clip_arch


@pytest.fixture()
def world(tiny_world: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny world, so tests may touch its images."""
    return Path(shutil.copytree(tiny_world, tmp_path / "world"))


def _cfg(tmp_path: Path, world: Path, name: str = "c.yaml", **embed_cfg):
    embed_cfg = {"clip_arch": TINY, "pretrained": None, "batch_size": 16, "workers": 0} | embed_cfg
    path = write_config(tmp_path / name, world, tmp_path / "runs", embed=embed_cfg)
    return load_config(path)


def _collected(tmp_path: Path, world: Path, **embed_cfg):
    cfg = _cfg(tmp_path, world, **embed_cfg)
    collect.run(cfg, progress=False)
    return cfg


def _embed_runs(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir() if "embed" in p.name)


def _jpeg(path: Path, w: int, h: int) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=92)
    return path


def _encode(model: torch.nn.Module, spec, paths: list[str], batch_size: int) -> np.ndarray:
    """``paths`` through the inference pipeline on the CPU, rows in ``paths`` order."""
    names = [f"frame-{i}" for i in range(len(paths))]
    vectors = infer(FrameSource(names, paths), frame_decode(spec.image_size, spec.mean, spec.std),
                    Encoder(model, torch.device("cpu")), batch_size=batch_size)
    return np.stack([vectors[n] for n in names])


# --- decoding ------------------------------------------------------------------------------------

def test_reduced_size_decode_matches_full_decode(tmp_path: Path, monkeypatch) -> None:
    from PIL import JpegImagePlugin

    path = _jpeg(tmp_path / "f.jpg", 1280, 720)
    decoded = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        out = real_draft(self, mode, size)
        decoded.append(self.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    mean, std = np.array([0.5, 0.4, 0.3], np.float32), np.array([0.2, 0.25, 0.3], np.float32)
    x = load_frame(str(path), 224, mean, std)
    assert decoded == [(640, 360)]  # libjpeg halved 1280x720; the short side stays >= 224
    monkeypatch.undo()
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    with Image.open(path) as im:  # the reference: full decode, resize short side, centre crop
        full = im.convert("RGB").resize((398, 224), Image.Resampling.BICUBIC)
        ref = np.asarray(full.crop((87, 0, 311, 224)), np.float32) / 255
    ref = ((ref - mean) / std).transpose(2, 0, 1)
    assert np.abs(x - ref).mean() < 0.05  # same picture, up to resampling differences
    decode = frame_decode(224, mean, std)
    assert decode.collate([decode.read(str(path))] * 2).shape == (2, 3, 224, 224)


def test_unreadable_frame_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    from bddengine.embedding import ImageDecodeError

    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        load_frame(str(bad), 224, np.zeros(3, np.float32), np.ones(3, np.float32))


# --- the encoders ------------------------------------------------------------------------------

def test_random_init_is_deterministic_and_batch_independent(tiny_arch: str, tmp_path: Path) -> None:
    paths = [str(_jpeg(tmp_path / f"{i}.jpg", 320 + 16 * i, 180)) for i in range(5)]
    outs = []
    for batch_size in (5, 2):
        model, spec = load_encoder("clip", tiny_arch, None, seed=7)
        outs.append(_encode(model, spec, paths, batch_size))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(outs[0], axis=1), 1.0, atol=1e-5)
    other, _ = load_encoder("clip", tiny_arch, None, seed=8)
    with torch.inference_mode():
        x = torch.randn(1, 3, 224, 224)
        assert not torch.allclose(model(x), other(x))  # the seed decides the weights


def test_checkpoint_file_is_loaded(tiny_arch: str, tmp_path: Path) -> None:
    import open_clip

    torch.manual_seed(3)
    source = open_clip.create_model(tiny_arch)
    ckpt = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(source.state_dict(), ckpt)
    model, spec = load_encoder("clip", tiny_arch, str(ckpt), seed=0)
    assert not spec.random_init and spec.pretrained == str(ckpt.resolve()) and spec.checkpoint
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), source.visual.eval()(x))


def test_cached_tag_loads_without_network(tiny_arch: str, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants as hub
    import open_clip
    from open_clip import pretrained as oc_pretrained

    torch.manual_seed(5)
    source = open_clip.create_model(tiny_arch)
    snapshot = tmp_path / "hub" / "models--bddtest--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    torch.save(source.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setitem(oc_pretrained._PRETRAINED, tiny_arch, {"faketag": {"hf_hub": "bddtest/tiny/"}})
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: pytest.fail("went online"))
    model, spec = load_encoder("clip", tiny_arch, "faketag")
    assert (spec.pretrained, spec.random_init, spec.seed) == ("faketag", False, None)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), source.visual.eval()(x))


def test_missing_weights_fail_fast_and_say_how(tiny_arch: str, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # even where cached
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)  # even where online
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as err:
        load_encoder("clip", "ViT-B-32", "laion2b_s34b_b79k")
    assert time.perf_counter() - t0 < 10, "an offline miss must not wait on Hub retries"
    msg = str(err.value)
    assert "ViT-B-32" in msg and "laion2b_s34b_b79k" in msg and "embed.pretrained: /path/to/" in msg
    with pytest.raises(WeightsUnavailable, match="neither an open_clip tag"):
        load_encoder("clip", tiny_arch, str(tmp_path / "nope.bin"))
    with pytest.raises(WeightsUnavailable, match="lvd142m"):
        load_encoder("dinov2", "vit_small_patch14_dinov2", "laion2b_s34b_b79k")
    with pytest.raises(StageInputError, match="not an open_clip architecture"):
        load_encoder("clip", "ViT-Nope", None)


def test_dinov2_random_init(tmp_path: Path) -> None:
    model, spec = load_encoder("dinov2", "vit_small_patch14_dinov2", None, seed=0)
    assert (spec.family, spec.dim, spec.image_size, spec.random_init) == ("dinov2", 384, 224, True)
    paths = [str(_jpeg(tmp_path / f"{i}.jpg", 320, 180)) for i in range(2)]
    out = _encode(model, spec, paths, 2)
    assert out.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_reuse_matches_name_size_and_mtime() -> None:
    old = pd.DataFrame({"name": ["a", "b", "c"], "path": "x", "bytes": [1, 2, 3], "mtime_ns": [10, 20, 30]})
    vecs = np.eye(3, dtype=np.float32)
    new = pd.DataFrame({"name": ["c", "b", "d"], "path": "x", "bytes": [3, 2, 4], "mtime_ns": [30, 21, 40]})
    reuse = reuse_vectors(new, old, vecs)
    assert reuse.found.tolist() == [True, False, False]  # b changed mtime, d is new
    np.testing.assert_array_equal(reuse.vectors[0], vecs[2])


# --- the stage -----------------------------------------------------------------------------------

def test_stage_writes_aligned_unit_vectors_and_reruns_as_noop(tiny_arch: str, world: Path,
                                                              tmp_path: Path) -> None:
    cfg = _collected(tmp_path, world, workers=1)
    out = embed.run(cfg, progress=False)
    assert not out.skipped and out.location.name == "02_embed"
    assert any("random-init" in str(v) for v in out.numbers.values())
    manifest = pd.read_parquet(tmp_path / "runs" / "01_collect" / "manifest.parquet")
    emb = np.load(out.location / "embeddings.npy")
    frames = pd.read_parquet(out.location / "frames.parquet")
    assert emb.shape == (len(manifest), 32) and emb.dtype == np.float32
    assert frames["name"].tolist() == manifest["name"].tolist()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in emb}) == len(emb)  # distinct frames, distinct vectors
    rows = [0, 17, len(manifest) - 1]  # row i is frame i: re-encode a few frames on their own
    model, spec = load_encoder("clip", tiny_arch, None, seed=cfg.seed)
    alone = _encode(model, spec, manifest["path"].iloc[rows].tolist(), 2)
    np.testing.assert_allclose(emb[rows], alone, atol=1e-5)
    result = json.loads((out.location / "result.json").read_text())
    assert result["random_init"] is True
    want = {"family": "clip", "arch": tiny_arch, "pretrained": None, "random_init": True, "seed": 42}
    assert want.items() <= result["model"].items()
    assert result["embedding_dim"] == 32 and len(result["frames_sha256"]) == 64
    assert result["metrics"]["n_encoded"] == len(manifest) and result["metrics"]["n_reused"] == 0
    assert Path(result["inputs"]["collect"]).name == "01_collect"

    again = embed.run(cfg, progress=False)
    assert again.skipped and again.location == out.location
    assert _embed_runs(tmp_path / "runs") == ["02_embed"]


def test_changed_frames_reuse_cached_vectors(tiny_arch: str, world: Path, tmp_path: Path) -> None:
    cfg = _collected(tmp_path, world, dtype="float16")
    first = embed.run(cfg, progress=False)
    emb1 = np.load(first.location / "embeddings.npy")
    assert emb1.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(emb1.astype(np.float32), axis=1), 1.0, atol=2e-3)
    frames = pd.read_parquet(first.location / "frames.parquet")
    touched = frames["path"].iloc[3]
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # same pixels, new mtime

    second = embed.run(cfg, progress=False)
    m = json.loads((second.location / "result.json").read_text())["metrics"]
    assert (m["n_encoded"], m["n_reused"], m["reused_from"]) == (1, len(frames) - 1, "02_embed")
    emb2 = np.load(second.location / "embeddings.npy")
    keep = np.arange(len(frames)) != 3
    np.testing.assert_array_equal(emb2[keep], emb1[keep])
    np.testing.assert_allclose(emb2[3].astype(np.float32), emb1[3].astype(np.float32), atol=2e-3)

    forced = embed.run(cfg, force=True, progress=False)  # nothing changed: all vectors reused
    m = json.loads((forced.location / "result.json").read_text())["metrics"]
    assert (m["n_encoded"], m["n_reused"]) == (0, len(frames))


def test_missing_weights_write_no_run_folder(tiny_arch: str, world: Path, tmp_path: Path,
                                             monkeypatch) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    cfg = _collected(tmp_path, world, clip_arch="ViT-B-32", pretrained="openai")
    with pytest.raises(StageInputError, match="openai"):
        embed.run(cfg, progress=False)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["01_collect"]


def test_missing_image_is_reported(tiny_arch: str, world: Path, tmp_path: Path) -> None:
    cfg = _collected(tmp_path, world)
    manifest = pd.read_parquet(tmp_path / "runs" / "01_collect" / "manifest.parquet")
    Path(manifest["path"].iloc[0]).unlink()
    with pytest.raises(StageInputError, match="collect --force"):
        embed.run(cfg, progress=False)


def test_corrupt_image_in_a_worker_is_named(tiny_arch: str, world: Path, tmp_path: Path) -> None:
    cfg = _collected(tmp_path, world, workers=1)
    manifest = pd.read_parquet(tmp_path / "runs" / "01_collect" / "manifest.parquet")
    bad = Path(manifest["path"].iloc[5])
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(StageInputError) as err:
        embed.run(cfg, progress=False)
    assert str(err.value).startswith(f"cannot decode {bad}")  # not the worker's traceback
    assert _embed_runs(tmp_path / "runs") == []


def test_no_collect_run_says_what_to_run(tiny_arch: str, world: Path, tmp_path: Path) -> None:
    from bddengine.runs import RunLookupError

    with pytest.raises(RunLookupError, match="bddengine collect"):
        embed.run(_cfg(tmp_path, world), progress=False)


def test_stat_frames_names_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StageInputError, match="gone.jpg"):
        stat_frames(["gone.jpg"], [str(tmp_path / "gone.jpg")])


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_embeddings_mirrored_with_similarity_index(tiny_arch: str, world: Path, tmp_path: Path) -> None:
    import fiftyone as fo

    path = write_config(tmp_path / "c.yaml", world, tmp_path / "runs", name=f"e{os.getpid()}",
                        embed={"clip_arch": TINY, "pretrained": None, "workers": 0},
                        fiftyone={"enabled": True, "dataset_prefix": "bddengine-test"})
    cfg = load_config(path)
    collect.run(cfg, progress=False)
    out = embed.run(cfg, progress=False)
    result = json.loads((out.location / "result.json").read_text())
    name = result["metrics"]["fiftyone_dataset"]
    ds = fo.load_dataset(name)
    try:
        assert ds.has_brain_run("clip_sim") and ds.has_brain_run("clip_viz")
        assert ds.info["bddengine_runs"]["embed_clip"] == out.location.name  # one slot per embedding model
        emb = np.load(out.location / "embeddings.npy")
        names = pd.read_parquet(out.location / "frames.parquet")["name"].tolist()
        sample = ds.first()
        np.testing.assert_allclose(sample["clip_embedding"], emb[names.index(sample["frame_name"])],
                                   atol=1e-6)
        nearest = ds.sort_by_similarity(sample.id, k=1, brain_key="clip_sim").first()
        assert nearest.id == sample.id  # a frame is its own nearest neighbour
    finally:
        fo.delete_dataset(name)


def _activation(model: torch.nn.Module) -> str:
    return type(model.transformer.resblocks[0].mlp.gelu).__name__


def test_openai_weights_from_a_local_file_build_quick_gelu(tiny_arch: str, tmp_path: Path) -> None:
    """OpenAI's weights were trained with QuickGELU: a local copy of them must get it too."""
    import open_clip

    source = open_clip.create_model(tiny_arch, force_quick_gelu=True)
    folder = tmp_path / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc"
    folder.mkdir(parents=True)
    ckpt = folder / "open_clip_pytorch_model.bin"
    torch.save(source.state_dict(), ckpt)
    model, spec = load_encoder("clip", tiny_arch, str(ckpt))
    assert _activation(model) == "QuickGELU" and spec.model_id()["quick_gelu"] is True
    request = models.requested_model("clip", tiny_arch, str(ckpt), seed=0)
    assert request["quick_gelu"] is True  # never matches vectors an older GELU build made of this file
    assert all(spec.model_id()[k] == v for k, v in request.items())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), source.visual.eval()(x))
    other = tmp_path / "laion" / "open_clip_pytorch_model.bin"  # any other checkpoint keeps GELU
    other.parent.mkdir()
    torch.save(source.state_dict(), other)
    assert _activation(load_encoder("clip", tiny_arch, str(other))[0]) == "GELU"


def test_torchscript_archive_counts_as_openai(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    jit_file = tmp_path / "ViT-B-32.pt"
    scripted.save(str(jit_file))
    plain = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    assert models.openai_checkpoint(jit_file) and not models.openai_checkpoint(plain)
