"""Mirror run folders into persistent FiftyOne datasets.

The run folders stay the source of truth; FiftyOne is the place to look at them.
Every mirrored dataset records the run it came from in ``dataset.info`` so a
mismatch between the two can be detected. FiftyOne is imported lazily: it is slow
to import and needs a MongoDB server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd

from bddengine.stages import StageInputError

BOX_FIELD = "ground_truth"


class FiftyOneUnavailable(StageInputError):
    """FiftyOne cannot reach its database."""


def _import_fiftyone():
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    try:
        import fiftyone as fo
    except Exception as exc:  # noqa: BLE001 - fiftyone raises many kinds on a missing DB
        raise FiftyOneUnavailable(
            f"FiftyOne could not start ({type(exc).__name__}: {exc}). Start a MongoDB for it "
            "(`eval \"$(../shared/tools/mongod-for-fiftyone.sh start)\"` where that script exists, "
            "or set FIFTYONE_DATABASE_URI), or disable the mirror with --set fiftyone.enabled=false"
        ) from exc
    return fo


def slice_tags(weather: str, timeofday: str, scene: str) -> list[str]:
    """Tags that make every slice one click away in the App."""
    return [f"weather:{weather}", f"timeofday:{timeofday}", f"scene:{scene}"]


def detections_by_frame(boxes: pd.DataFrame, sizes: dict[str, tuple[int, int]]) -> dict[str, list[dict]]:
    """Boxes grouped per frame, in FiftyOne's relative ``[x, y, w, h]`` form."""
    out: dict[str, list[dict]] = {}
    cols = [boxes[c].to_numpy() for c in ("name", "category", "x1", "y1", "x2", "y2", "ignored")]
    for name, cat, x1, y1, x2, y2, ignored in zip(*cols, strict=True):
        w, h = sizes[name]
        out.setdefault(name, []).append({
            "label": cat,
            "bounding_box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h],
            "iscrowd": bool(ignored),
        })
    return out


def _samples(fo, manifest: pd.DataFrame, boxes: pd.DataFrame) -> Iterator:
    sizes = dict(zip(manifest["name"], zip(manifest["width"], manifest["height"], strict=True), strict=True))
    visible = boxes[boxes["name"].isin(manifest.loc[manifest["labeled"], "name"])]
    dets = detections_by_frame(visible, sizes)
    for row in manifest.itertuples(index=False):
        sample = fo.Sample(
            filepath=row.path,
            tags=slice_tags(row.weather, row.timeofday, row.scene)
            + ["labeled" if row.labeled else "unlabeled"],
            frame_name=row.name,
            video=row.video,
            weather=row.weather,
            timeofday=row.timeofday,
            scene=row.scene,
            labeled=bool(row.labeled),
        )
        sample.metadata = fo.ImageMetadata(width=int(row.width), height=int(row.height))
        if row.labeled:
            sample[BOX_FIELD] = fo.Detections(
                detections=[fo.Detection(**d) for d in dets.get(row.name, [])]
            )
        yield sample


def mirror_collect(dataset_name: str, manifest: pd.DataFrame, boxes: pd.DataFrame, *, run: str = "") -> str:
    """Create (or replace) the persistent dataset of one collect run.

    Args:
        dataset_name: FiftyOne dataset name, built from the run name.
        manifest: the collect manifest (needs path, width, height, labeled, slice columns).
        boxes: the collect boxes; only labeled frames' boxes are shown.
        run: run folder name, stored in ``dataset.info``.

    Returns:
        The dataset name.
    """
    fo = _import_fiftyone()
    try:
        if fo.dataset_exists(dataset_name):
            fo.delete_dataset(dataset_name)
        ds = fo.Dataset(dataset_name)
        ds.persistent = True
        ds.add_samples(_samples(fo, manifest, boxes), num_samples=len(manifest), progress=False)
        ds.info = {"bddengine_runs": {"collect": run}, "n_frames": len(manifest)}
        ds.save()
    except FiftyOneUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        if "ServerSelectionTimeout" in type(exc).__name__ or "mongod" in str(exc).lower():
            raise FiftyOneUnavailable(
                f"FiftyOne's database is unreachable ({exc}); disable the mirror with "
                "--set fiftyone.enabled=false or start MongoDB (README, 'FiftyOne')"
            ) from exc
        raise
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
            f"FiftyOne's database is unreachable ({type(exc).__name__}: {exc}); disable the mirror "
            "with --set fiftyone.enabled=false or start MongoDB (README, 'FiftyOne')"
        ) from exc


def mirror_embeddings(
    dataset_name: str,
    names: list[str],
    embeddings,
    *,
    brain_key: str = "clip_sim",
    field: str | None = None,
    visualization_key: str | None = None,
    run: str = "",
) -> dict[str, str | None]:
    """Store per-frame embeddings on a collect dataset and index them for similarity.

    Sets ``field`` on every sample (matched by ``frame_name``), builds an sklearn
    similarity index under ``brain_key`` (the App's "sort by similarity"), and, when
    ``visualization_key`` is given, a 2-D map (UMAP when umap-learn is installed,
    else PCA). Brain runs of the same keys are replaced.

    Args:
        dataset_name: the collect run's dataset.
        names: frame names, aligned with ``embeddings`` rows.
        embeddings: ``[N, D]`` array (L2-normalised).
        brain_key: similarity index key, e.g. ``clip_sim``.
        field: sample field for the vectors; ``<brain_key without _sim>_embedding`` when None.
        visualization_key: brain key for the 2-D map; None skips it.
        run: the embed run's folder name, recorded in ``dataset.info``.

    Returns:
        ``{"field", "similarity", "visualization", "visualization_method"}``.
    """
    import importlib.util

    import numpy as np

    fo = _import_fiftyone()
    import fiftyone.brain as fob

    field = field or f"{brain_key.removesuffix('_sim')}_embedding"
    vectors = np.asarray(embeddings, dtype=np.float32)
    if len(names) != len(vectors):
        raise ValueError(f"{len(names)} names but {len(vectors)} embeddings")
    ds = fo.load_dataset(dataset_name)
    ds_names = ds.values("frame_name")
    row_of = {n: i for i, n in enumerate(names)}
    missing = [n for n in ds_names if n not in row_of]
    if missing:
        raise ValueError(
            f"{len(missing)} sample(s) of {dataset_name} have no embedding (first: {missing[0]}): "
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
        fob.compute_visualization(ds, embeddings=ordered, method=method, num_dims=2,
                                  brain_key=visualization_key, seed=0, progress=False)
    info = dict(ds.info)
    info.setdefault("bddengine_runs", {})["embed"] = run
    ds.info = info
    ds.save()
    return {"field": field, "similarity": brain_key, "visualization": visualization_key,
            "visualization_method": method}
