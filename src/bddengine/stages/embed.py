"""Stage ``embed``: one L2-normalised image embedding per collected frame.

load config -> resolve the collect run -> stat every frame (name, size, mtime) ->
fingerprint (frame list, model, dtype, collect run) -> no-op if unchanged -> reuse
vectors of unchanged frames from an earlier run with the same model -> load the
encoder -> encode the rest (the inference pipeline: JPEG decode in workers, model in batches)
-> write embeddings.npy + frames.parquet -> mirror into FiftyOne -> result.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bddengine.config import EmbedConfig, EngineConfig, fingerprint
from bddengine.embedding import (
    Encoder,
    EncoderSpec,
    ImageDecodeError,
    Reuse,
    cpu_count,
    frame_decode,
    frame_list_hash,
    load_encoder,
    pick_device,
    prepare_model,
    requested_model,
    reuse_vectors,
    stat_frames,
    torch_threads,
)
from bddengine.errors import StageInputError
from bddengine.inference import Backend, Bar, FrameSource, infer
from bddengine.runs import RunRef, StageRun, list_runs, resolve_input
from bddengine.runs.layout import COLLECT, EMBED
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged

LANCEDB = "lancedb"
"""The registered index embed writes a table for (``mine.approximate_index``)."""
LANCE_COLUMNS = ("video", "labeled", "weather", "timeofday", "scene", "attributes_known")
"""Manifest columns the LanceDB table keeps beside each frame's name and vector (its metadata filters)."""

RANDOM_INIT_WARNING = (
    "random-init weights (embed.pretrained: null): these embeddings only capture low-level "
    "image statistics (colour, brightness, layout); use pretrained weights for real curation"
)


def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Embed every frame of the newest collect run into a new run folder.

    Args:
        cfg: the engine config (``embed``, ``fiftyone``, ``runs_dir``, ``seed``).
        force: re-run even when an identical embed run exists (unchanged frames
            still reuse their cached vectors).
        progress: show a progress bar.

    Raises:
        StageInputError: no collect run, a frame is missing or unreadable, the
            model's weights are unavailable, or FiftyOne is unreachable.
    """
    e = cfg.embed
    collect = resolve_input(cfg.runs_dir, "collect", hint="bddengine collect")
    manifest = read_manifest(collect)
    frames = stat_frames(manifest["name"].tolist(), manifest["path"].tolist())
    frames_sha = frame_list_hash(frames)
    arch = e.clip_arch if e.model == "clip" else e.dinov2_arch
    image_size = e.image_size if e.model == "clip" else None
    request = requested_model(e.model, arch, e.pretrained, seed=cfg.seed, image_size=image_size)
    lance = lance_target(cfg)
    fp = fingerprint(request, frames_sha, e.dtype, collect.name,
                     *([{"lance": {"uri": lance.uri, "table": lance.table}}] if lance else []))
    job = Job("embed", fp, cfg.seed, _outcome, inputs={"collect": str(collect.path)})
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    fo_name, fo_note = fiftyone_target(cfg, collect)
    device = pick_device(e.device)
    encoder = prepare_encoder(cfg.runs_dir, frames, request, e, arch=arch, image_size=image_size, seed=cfg.seed)
    if encoder.reuse.source:
        job = replace(job, inputs=job.inputs | {"cache": str(cfg.runs_dir / encoder.reuse.source)})
    return execute(cfg, job, lambda run: embed_frames(
        run, e, frames, encoder, device, frames_sha=frames_sha, backend=cfg.compute.runner(),
        fiftyone=(fo_name, fo_note), runs_dir=cfg.runs_dir, progress=progress,
        lance=None if lance is None else (lance, lance_metadata(collect, frames), trained_rows(cfg.runs_dir, lance))))


def lance_target(cfg: EngineConfig):
    """The LanceDB table embed writes when mine searches with ``lancedb`` (None otherwise: nothing imported)."""
    if cfg.mine.approximate_index != LANCEDB:
        return None
    from bddengine.vectors.lance import LanceSettings

    return LanceSettings(**cfg.mine.lance.settings(cfg.runs_dir))


def lance_metadata(collect: RunRef, frames: pd.DataFrame) -> pd.DataFrame:
    """The table's metadata columns of ``frames``: name, video, collect's labeled flag and slice attributes."""
    path = COLLECT.manifest.at(collect)
    import pyarrow.parquet as pq

    have = set(pq.read_schema(path).names)
    meta = pd.read_parquet(path, columns=[c for c in ("name", *LANCE_COLUMNS) if c in have])
    return frames[["name"]].merge(meta, on="name", how="left")


def trained_rows(runs_dir: Path, lance: Any) -> int | None:
    """Rows the table's index was trained on, from the newest embed run that wrote the same table."""
    for ref in reversed(list_runs(runs_dir)):
        rec = ref.result().get("lance") if ref.stage == "embed" else None
        if rec and (rec.get("uri"), rec.get("table")) == (lance.uri, lance.table):
            return rec.get("trained_rows")
    return None


@dataclass
class EncoderPlan:
    """Which frames reuse cached vectors, and the encoder for the rest.

    Attributes:
        reuse: the cached vectors found (and where from); the rest are filled in by encoding.
        model_id: the full model id recorded in ``result.json``.
        model, spec: the loaded encoder (None when every frame reuses a cached vector).
        load_s: seconds spent loading it.
    """

    reuse: Reuse = field(repr=False)
    model_id: dict[str, Any]
    model: torch.nn.Module | None = field(default=None, repr=False)
    spec: EncoderSpec | None = None
    load_s: float = 0.0

    @property
    def todo(self) -> np.ndarray:
        """The rows to encode."""
        return np.flatnonzero(~self.reuse.found)


def prepare_encoder(
    runs_dir: Path, frames: pd.DataFrame, request: dict[str, Any], e: EmbedConfig, *, arch: str,
    image_size: int | None, seed: int,
) -> EncoderPlan:
    """Find cached vectors of unchanged frames, and load the encoder when some frame still needs one.

    The model loads before any run folder exists, so missing weights fail here.

    Raises:
        StageInputError: the model's weights are unavailable.
    """
    reuse, model_id = find_cached_vectors(runs_dir, frames, request, e.dtype)
    if reuse.found.all():
        return EncoderPlan(reuse, model_id)
    t0 = time.perf_counter()
    model, spec = load_encoder(e.model, arch, e.pretrained, seed=seed, image_size=image_size)
    load_s = time.perf_counter() - t0
    if reuse.vectors.shape[1] != spec.dim:  # nothing cached
        reuse = Reuse.empty(len(frames), spec.dim)
    return EncoderPlan(reuse, spec.model_id(), model, spec, load_s)


def embed_frames(
    run: StageRun, e: EmbedConfig, frames: pd.DataFrame, encoder: EncoderPlan, device: torch.device, *,
    frames_sha: str, backend: str | Backend, fiftyone: tuple[str | None, str | None], runs_dir: Path, progress: bool,
    lance: tuple[Any, pd.DataFrame, int | None] | None = None,
) -> Commit:
    """Encode the frames no cache covers, write embeddings.npy and frames.parquet, and mirror them into FiftyOne.

    Args:
        fiftyone: the collect run's FiftyOne dataset to mirror into (None: skip) and why it is skipped.
        lance: the LanceDB table to write the frames into (settings, metadata, rows its index
            was trained on); None: no table.
    """
    fo_name, fo_note = fiftyone
    reuse, model_id, todo = encoder.reuse, encoder.model_id, encoder.todo
    threads = cpu_count()
    encode_s = 0.0
    if len(todo):
        t0 = time.perf_counter()
        reuse.vectors[todo] = encode_frames(
            encoder.model, encoder.spec, FrameSource.from_manifest(frames.iloc[todo]), device,
            batch_size=e.batch_size, workers=e.workers, threads=threads, backend=backend, progress=progress,
        )
        encode_s = time.perf_counter() - t0
    embeddings = reuse.vectors.astype(e.dtype)
    EMBED.embeddings.write(run, embeddings)
    EMBED.frames.write(run, frames)
    mirrored = None
    if fo_name:
        from bddengine.integrations.fiftyone import mirror_embeddings

        key = "clip" if e.model == "clip" else "dinov2"
        mirrored = mirror_embeddings(fo_name, frames["name"].tolist(), embeddings,
                                     brain_key=f"{key}_sim", visualization_key=f"{key}_viz",
                                     run=run.run_name, runs_dir=runs_dir)
    table = None
    if lance is not None:
        from bddengine.vectors.lance import commit_frames

        settings, meta, trained = lance
        table = commit_frames(settings, meta, embeddings.astype(np.float32), trained_rows=trained, tag=run.run_name)
    metrics = {
        "n_frames": len(frames),
        "n_encoded": int(len(todo)),
        "n_reused": reuse.n_reused,
        "reused_from": reuse.source,
        "embedding_dim": int(embeddings.shape[1]),
        "dtype": e.dtype,
        "random_init": bool(model_id["random_init"]),
        "device": str(device),
        "batch_size": e.batch_size,
        "workers": e.workers,
        "torch_threads": threads,
        "model_load_s": round(encoder.load_s, 3),
        "encode_s": round(encode_s, 3),
        "frames_per_s": round(len(todo) / encode_s, 2) if encode_s > 0 else None,
        "fiftyone_dataset": fo_name if mirrored else None,
        "fiftyone": mirrored,
        "fiftyone_note": fo_note,
    }
    return Commit(
        outputs=EMBED.outputs(),
        metrics=metrics,
        extra={
            "model": model_id,
            "random_init": bool(model_id["random_init"]),
            "embedding_dim": int(embeddings.shape[1]),
            "dtype": e.dtype,
            "frames_sha256": frames_sha,
            **({"lance": table} if table else {}),
        },
    )


def read_manifest(collect: RunRef) -> pd.DataFrame:
    """The collect run's frame names and image paths, in manifest order."""
    path = COLLECT.manifest.require(collect, "bddengine collect --force")
    manifest = pd.read_parquet(path, columns=["name", "path"])
    if manifest.empty:
        raise StageInputError(f"{path} has no frames: check the collect config (collect.*_target)")
    if manifest["name"].duplicated().any():
        dup = manifest.loc[manifest["name"].duplicated(), "name"].iloc[0]
        raise StageInputError(f"{path} lists frame {dup!r} twice: re-run `bddengine collect --force`")
    return manifest


def fiftyone_target(cfg: EngineConfig, collect: RunRef) -> tuple[str | None, str | None]:
    """The collect run's FiftyOne dataset to mirror into (None: skip), and why it is skipped.

    Checked before encoding, so a stopped MongoDB fails in seconds, not after the work.
    """
    if not cfg.fiftyone.enabled or not collect.result().get("metrics", {}).get("fiftyone_dataset"):
        return None, None
    from bddengine.integrations.fiftyone import dataset_name, fiftyone_dataset_exists

    # this project's dataset of that collect run, never the name a copied run folder recorded
    name = dataset_name(cfg.fiftyone.dataset_prefix, cfg.name, collect.name, cfg.runs_dir)

    if fiftyone_dataset_exists(name):
        return name, None
    return None, (f"FiftyOne dataset {name!r} of {collect.name} no longer exists: not mirrored "
                  "(`bddengine collect --force` recreates it, then re-run embed)")


def find_cached_vectors(
    runs_dir: Path, frames: pd.DataFrame, request: dict[str, Any], dtype: str
) -> tuple[Reuse, dict[str, Any] | None]:
    """Vectors of unchanged frames from the newest embed run with the same model and dtype.

    Returns:
        The reuse table (nothing found when no such run exists) and that run's full
        model id (None when nothing was found).
    """
    for ref in reversed(list_runs(runs_dir)):
        if ref.stage != "embed":
            continue
        result = ref.result()
        model = result.get("model") or {}
        if result.get("dtype") != dtype or any(model.get(k) != v for k, v in request.items()):
            continue
        try:
            cached = EMBED.embeddings.read(ref, mmap_mode="r")
            cached_frames = EMBED.frames.read(ref)
            reuse = reuse_vectors(frames, cached_frames, cached)
        except (OSError, ValueError, KeyError):
            continue  # a damaged run is simply not a cache
        reuse.source = ref.name
        return reuse, model
    return Reuse.empty(len(frames), 0), None


def encode_frames(
    model: torch.nn.Module,
    spec: EncoderSpec,
    frames: FrameSource,
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    threads: int,
    backend: str | Backend,
    progress: bool,
) -> np.ndarray:
    """Decode ``frames`` in workers and encode them in batches: ``[N, dim]`` float32 in ``frames`` order."""
    decode = frame_decode(spec.image_size, spec.mean, spec.std, pin_memory=device.type == "cuda")
    bar = Bar(f"embed {spec.arch}", rate=True, transient=False) if progress else None
    try:
        with torch_threads(threads):
            vectors = infer(frames, decode, Encoder(prepare_model(model, device), device), batch_size=batch_size,
                            workers=workers, backend=backend, progress=bar)
    except ImageDecodeError as exc:
        # from a worker, the message carries the worker's traceback; its last line is ours
        reason = str(exc).strip().splitlines()[-1].split("ImageDecodeError: ", 1)[-1]
        # collect measured this file and found it whole (header, size, end marker), so
        # re-collecting would accept it again: the file itself has to change
        raise StageInputError(
            f"{reason}. collect's checks passed this file but its pixels do not decode: replace it "
            "with a good copy, or delete it; then `bddengine collect --force` counts a deleted image "
            "among the labels without an image, and embed runs on the rest."
        ) from None
    return np.stack([vectors[name] for name in frames.names])


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    path, result = ref.path, ref.result()
    m = result["metrics"]
    model = result["model"]
    weights = "random init" if model["random_init"] else model["pretrained"]
    numbers: dict[str, Any] = {}
    if model["random_init"]:
        numbers["WARNING"] = RANDOM_INIT_WARNING
    numbers |= {
        "model": f"{model['family']} {model['arch']} ({weights})",
        "frames": f"{m['n_frames']:,} x {m['embedding_dim']} ({m['dtype']})",
        "encoded / reused": f"{m['n_encoded']:,} / {m['n_reused']:,}"
        + (f" (from {m['reused_from']})" if m["reused_from"] else ""),
        "speed": (f"{m['frames_per_s']:,.1f} frames/s on {m['device']} (+ {m['model_load_s']:.1f} s "
                  "model load)") if m["frames_per_s"] else "-",
        "wall time (s)": result["wall_time_s"],
    }
    if lance := result.get("lance"):
        numbers["LanceDB table"] = (f"{lance['uri']} [{lance['table']}] version {lance['version']}: "
                                    f"{lance['rows']:,} rows, {lance['rows_added']:,} added, index {lance['index']}")
    look_at = [f"{EMBED.embeddings.at(path)} (rows follow {EMBED.frames.at(path)} and the manifest)"]
    if m.get("fiftyone_note"):
        look_at.append(m["fiftyone_note"])
    fo = m.get("fiftyone")
    if m.get("fiftyone_dataset") and fo:
        look_at.append(
            f"FiftyOne dataset {m['fiftyone_dataset']!r}: sort by similarity (brain key "
            f"{fo['similarity']!r}), embeddings map {fo['visualization']!r}: `bddengine app`"
        )
    return StageOutcome(
        stage="embed",
        location=path,
        skipped=skipped,
        wrote=[f"{EMBED.embeddings.at(path)}, {EMBED.frames.file}"],
        numbers=numbers,
        look_at=look_at,
        safe_to_delete=f"{path} (split and mine read it: re-run them after)",
    )
