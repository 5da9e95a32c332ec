"""What collect and embed call while they run: the frames with their boxes, and the embeddings."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.bdd.categories import ATTRIBUTES_KNOWN
from bddengine.integrations.fiftyone.base import BOX_FIELD, INFO_KEY, MIRROR_VERSION, UNKNOWN_TAG, _record, _save_state
from bddengine.integrations.fiftyone.conversions import (
    detection_doc,
    detections_by_frame,
    detections_doc,
    set_label_docs,
    slice_tags,
)
from bddengine.integrations.fiftyone.database import (
    _MONGO_HELP,
    FiftyOneUnavailable,
    _database_errors,
    _import_fiftyone,
)
from bddengine.integrations.fiftyone.names import check_owner


def _samples(fo, manifest: pd.DataFrame) -> Iterator:
    """One box-less sample per frame; `_box_docs` adds the boxes in one bulk write."""
    for row in manifest.itertuples(index=False):
        known = bool(getattr(row, ATTRIBUTES_KNOWN, True))  # an image without a label file is in no slice
        sample = fo.Sample(
            filepath=os.path.abspath(row.path),
            tags=(slice_tags(row.weather, row.timeofday, row.scene) if known else [UNKNOWN_TAG])
            + ["labeled" if row.labeled else "unlabeled"],
            frame_name=row.name,
            video=row.video,
            weather=row.weather if known else None,
            timeofday=row.timeofday if known else None,
            scene=row.scene if known else None,
            labeled=bool(row.labeled),
        )
        sample.metadata = fo.ImageMetadata(width=int(row.width), height=int(row.height))
        yield sample


def _box_docs(manifest: pd.DataFrame, boxes: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """frame name -> its ``ground_truth`` document, for every labeled frame (an empty one too)."""
    sizes = dict(zip(manifest["name"], zip(manifest["width"], manifest["height"], strict=True), strict=True))
    labeled = manifest.loc[manifest["labeled"], "name"]
    dets = detections_by_frame(boxes[boxes["name"].isin(labeled)], sizes)
    return {name: detections_doc([detection_doc(**d) for d in dets.get(name, [])]) for name in labeled}


def mirror_collect(dataset_name: str, manifest: pd.DataFrame, boxes: pd.DataFrame, *, run: str = "",
                   runs_dir: Path | None = None, fingerprint: str | None = None) -> str:
    """Create (or replace) the persistent dataset of one collect run.

    Args:
        dataset_name: FiftyOne dataset name, built from the run name (`dataset_name`).
        manifest: the collect manifest (needs path, width, height, labeled, slice columns).
        boxes: the collect boxes; only labeled frames' boxes are shown.
        run: run folder name, stored in ``dataset.info``.
        runs_dir: the runs folder, recorded so a sync can tell its datasets apart.
        fingerprint: the collect run's fingerprint.

    Returns:
        The dataset name.

    Raises:
        ProjectMismatch: a dataset of that name records another runs folder (left alone).
    """
    fo = _import_fiftyone()
    with _database_errors():
        if fo.dataset_exists(dataset_name):
            if runs_dir is not None:
                check_owner(fo.load_dataset(dataset_name), runs_dir)
            fo.delete_dataset(dataset_name)
        ds = fo.Dataset(dataset_name)
        ds.persistent = True
        ds.add_samples(_samples(fo, manifest), num_samples=len(manifest), progress=False)
        set_label_docs(fo, ds, BOX_FIELD, _box_docs(manifest, boxes))
        state = {"collect": _record(stage="collect", run=run, fingerprint=fingerprint)}
        ds.info = {
            INFO_KEY: {"version": MIRROR_VERSION, "runs_dir": str(Path(runs_dir).resolve()) if runs_dir else None,
                       "slots": state, "views": []},
            "n_frames": len(manifest),
        }
        _save_state(ds, state)
        ds.add_dynamic_sample_fields()
    return dataset_name


def fiftyone_dataset_exists(dataset_name: str) -> bool:
    """Whether a dataset exists; raises ``FiftyOneUnavailable`` when the database is down.

    Stages call this before long work so a stopped MongoDB fails in seconds, not
    after the work is done.
    """
    fo = _import_fiftyone()
    try:
        return bool(fo.dataset_exists(dataset_name))
    except Exception as exc:  # noqa: BLE001
        raise FiftyOneUnavailable(
            f"FiftyOne's database is unreachable ({type(exc).__name__}: {exc}): {_MONGO_HELP}"
        ) from exc


def _write_embeddings(fo, ds, names: list[str], embeddings, *, brain_key: str, field: str | None,
                      visualization_key: str | None) -> dict[str, str | None]:
    import importlib.util

    import fiftyone.brain as fob
    import numpy as np

    field = field or f"{brain_key.removesuffix('_sim')}_embedding"
    vectors = np.asarray(embeddings, dtype=np.float32)
    if len(names) != len(vectors):
        raise ValueError(f"{len(names)} names but {len(vectors)} embeddings")
    ds_names = ds.values("frame_name")
    row_of = {n: i for i, n in enumerate(names)}
    missing = [n for n in ds_names if n not in row_of]
    if missing:
        raise ValueError(
            f"{len(missing)} sample(s) of {ds.name} have no embedding (first: {missing[0]}): "
            "the dataset belongs to another collect run"
        )
    ordered = vectors[[row_of[n] for n in ds_names]]  # dataset order, which the brain expects
    ds.set_values(field, {n: ordered[i] for i, n in enumerate(ds_names)}, key_field="frame_name")
    for key in (brain_key, visualization_key):
        if key and ds.has_brain_run(key):
            ds.delete_brain_run(key)
    fob.compute_similarity(ds, embeddings=ordered, backend="sklearn", metric="cosine",
                           brain_key=brain_key, progress=False)
    method = None
    if visualization_key:
        method = "umap" if importlib.util.find_spec("umap") is not None else "pca"
        brain_log = logging.getLogger("fiftyone.brain")  # its "Generating visualization..." line
        level = brain_log.level
        brain_log.setLevel(logging.WARNING)
        try:
            fob.compute_visualization(ds, embeddings=ordered, method=method, num_dims=2,
                                      brain_key=visualization_key, seed=0, progress=False)
        finally:
            brain_log.setLevel(level)
    return {"field": field, "similarity": brain_key, "visualization": visualization_key,
            "visualization_method": method}


def mirror_embeddings(
    dataset_name: str,
    names: list[str],
    embeddings,
    *,
    brain_key: str = "clip_sim",
    field: str | None = None,
    visualization_key: str | None = None,
    run: str = "",
    runs_dir: Path | None = None,
) -> dict[str, str | None]:
    """Store per-frame embeddings on a collect dataset and index them for similarity.

    Sets ``field`` on every sample (matched by ``frame_name``), builds an sklearn
    similarity index under ``brain_key`` (the App's "sort by similarity") from the
    stored vectors, and, when ``visualization_key`` is given, a 2-D map (UMAP when
    umap-learn is installed, else PCA). Brain runs of the same keys are replaced, and
    the embed slot of ``dataset.info`` records ``run``.

    Args:
        dataset_name: the collect run's dataset.
        names: frame names, aligned with ``embeddings`` rows.
        embeddings: ``[N, D]`` array (L2-normalised).
        brain_key: similarity index key, e.g. ``clip_sim``.
        field: sample field for the vectors; ``<brain_key without _sim>_embedding`` when None.
        visualization_key: brain key for the 2-D map; None skips it.
        run: the embed run's folder name, recorded in ``dataset.info``.
        runs_dir: the embed run's runs folder; a dataset of another one is refused.

    Returns:
        ``{"field", "similarity", "visualization", "visualization_method"}``.

    Raises:
        ProjectMismatch: the dataset records another runs folder (left alone).
    """
    fo = _import_fiftyone()
    with _database_errors():
        ds = fo.load_dataset(dataset_name)
        if runs_dir is not None:
            check_owner(ds, runs_dir)
        done = _write_embeddings(fo, ds, names, embeddings, brain_key=brain_key, field=field,
                                 visualization_key=visualization_key)
        state = dict(ds.info.get(INFO_KEY, {}).get("slots", {}))
        state[f"embed:{brain_key.removesuffix('_sim')}"] = _record(
            [done["field"]], brain_keys=[k for k in (brain_key, visualization_key) if k], stage="embed", run=run,
            fingerprint=None, visualization_method=done["visualization_method"])
        _save_state(ds, state)
    return done
