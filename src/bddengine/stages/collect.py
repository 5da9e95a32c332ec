"""Stage ``collect``: read det_20 labels, join them to images, subsample by slice.

load config -> check the dataset -> parse labels -> stratified labeled sample +
unlabeled candidate pool -> write manifest, boxes, provenance, slice index, chart ->
mirror into FiftyOne -> result.json.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bddengine.bdd.categories import CLASSES, UNDEFINED, column_name
from bddengine.bdd.loader import (
    LabelFileError,
    MalformedReport,
    frames_to_tables,
    index_images,
    join_stats,
    load_label_file,
)
from bddengine.config import EngineConfig, config_dict, fingerprint
from bddengine.pools import stratum_allocation, take_by_video
from bddengine.runs import StageRun, find_same_run, write_json
from bddengine.sampling import BucketAllocation
from bddengine.slices import plot_slice_distribution, slice_index, write_slice_index
from bddengine.stages import StageInputError, StageOutcome

README_DATA = "README.md, section 'Getting BDD100K'"
STRATUM = ("weather", "timeofday")


def run(cfg: EngineConfig, *, force: bool = False, progress: bool = True) -> StageOutcome:
    """Collect the frames of one flywheel turn into a new run folder.

    Args:
        cfg: the engine config (``data``, ``collect``, ``fiftyone``, ``seed``).
        force: re-run even when an identical collect run exists.
        progress: show progress bars.

    Raises:
        StageInputError: the dataset is missing, unreadable, or nothing matched.
    """
    c = cfg.collect
    label_paths = {split: cfg.data.label_path(split) for split in c.splits}
    check_dataset(cfg.data.root, label_paths, synthetic=cfg.data.synthetic)
    images = index_images(cfg.data.root)
    label_stats = {s: _file_stat(p) for s, p in label_paths.items()}
    fp = fingerprint(config_dict(c), str(cfg.data.root), cfg.seed, label_stats, len(images))
    same = None if force else find_same_run(cfg.runs_dir, "collect", fp)
    if same is not None:
        return _outcome(same.path, same.result(), skipped=True)

    frames, boxes, malformed = parse_label_files(label_paths, images)
    join = join_stats(frames["name"], images)
    if join.n_matched == 0:
        raise StageInputError(
            f"none of the {join.n_label_frames} labeled frames has an image under "
            f"{cfg.data.root}/images/{{100k,10k}}/*/ ({join.n_images} images found): "
            f"check the folder layout ({README_DATA})"
        )
    frames = frames[frames["path"].notna()].reset_index(drop=True)
    pool = unlabeled_images(join.images_without_label, images)
    manifest, allocations, n_dropped = select_frames(
        frames,
        pool,
        labeled_target=c.labeled_target,
        unlabeled_target=c.unlabeled_target,
        min_per_bucket=c.min_per_bucket,
        drop_undefined=c.drop_undefined,
        seed=cfg.seed,
    )
    manifest = add_image_sizes(manifest)
    boxes = boxes[boxes["name"].isin(manifest.loc[manifest["has_gt"], "name"])].reset_index(drop=True)

    with StageRun(cfg.runs_dir, "collect", config_dict(cfg), cfg.seed, fp,
                  inputs={f"labels_{s}": str(p) for s, p in label_paths.items()}
                  | {"images": str(cfg.data.root / "images")}) as run:
        manifest.to_parquet(run.dir / "manifest.parquet", index=False)
        boxes.to_parquet(run.dir / "boxes.parquet", index=False)
        provenance = data_provenance(cfg.data.root, label_paths, join.to_dict())
        write_json(run.dir / "data_provenance.json", provenance)
        write_json(run.dir / "malformed.json", malformed.to_dict())
        write_json(run.dir / "allocation.json", {
            pool_name: [a.to_dict() for a in allocs] for pool_name, allocs in allocations.items()
        })
        index = slice_index(manifest)
        write_slice_index(run.dir, index)
        plot_slice_distribution(manifest, run.dir / "slice_distribution.png")
        fo_name = None
        if cfg.fiftyone.enabled:
            from bddengine.fiftyone_mirror import dataset_name, mirror_collect

            fo_name = mirror_collect(
                dataset_name(cfg.fiftyone.dataset_prefix, cfg.name, run.run_name, cfg.runs_dir), manifest, boxes,
                run=run.run_name, runs_dir=cfg.runs_dir,
            )
        metrics = collect_metrics(manifest, boxes, join.to_dict(), malformed, n_dropped)
        metrics["fiftyone_dataset"] = fo_name
        ref = run.commit(
            outputs={
                "manifest": "manifest.parquet",
                "boxes": "boxes.parquet",
                "data_provenance": "data_provenance.json",
                "malformed": "malformed.json",
                "allocation": "allocation.json",
                "slice_index_csv": "slice_index.csv",
                "slice_index_json": "slice_index.json",
                "slice_distribution": "slice_distribution.png",
            },
            metrics=metrics,
        )
    return _outcome(ref.path, ref.result(), skipped=False)


def check_dataset(root: Path, label_paths: dict[str, Path], *, synthetic: bool) -> None:
    """Fail early, writing nothing, when the dataset is not where the config says."""
    todo = (
        "generate it with `bddengine synth` (same --config)"
        if synthetic
        else f"download BDD100K as described in {README_DATA}, or point data.root at it"
    )
    if not root.is_dir():
        raise StageInputError(f"data.root={root} does not exist: {todo}")
    missing = [f"{s}: {p}" for s, p in label_paths.items() if not p.is_file()]
    if missing:
        raise StageInputError(f"label file(s) missing ({'; '.join(missing)}): {todo}")


def parse_label_files(
    label_paths: dict[str, Path], images: dict[str, tuple[Path, str]]
) -> tuple[pd.DataFrame, pd.DataFrame, MalformedReport]:
    """Parse every split's label file into one frames table and one boxes table."""
    frames, boxes, malformed = [], [], MalformedReport()
    for split, path in label_paths.items():
        try:
            records = load_label_file(path)
        except LabelFileError as exc:
            raise StageInputError(str(exc)) from None
        parsed = frames_to_tables(records, source_split=split, image_index=images, file=str(path))
        frames.append(parsed.frames)
        boxes.append(parsed.boxes)
        malformed = malformed.merge(parsed.malformed)
    all_frames = pd.concat(frames, ignore_index=True)
    dup = all_frames["name"].duplicated()
    if dup.any():
        raise StageInputError(
            f"{int(dup.sum())} frame name(s) appear in more than one label file "
            f"(first: {all_frames.loc[dup, 'name'].iloc[0]}): each frame must be labeled once"
        )
    return all_frames, pd.concat(boxes, ignore_index=True), malformed


def unlabeled_images(names: tuple[str, ...] | list[str], images: dict[str, tuple[Path, str]]) -> pd.DataFrame:
    """Frames table rows for images that no label file names: attributes unknown."""
    origins = [images[n][1] for n in names]
    table = {
        "name": list(names),
        "path": [str(images[n][0]) for n in names],
        "split": [o.split("/")[-1] for o in origins],
        "video": [n.rsplit(".", 1)[0] for n in names],
        "weather": UNDEFINED,
        "timeofday": UNDEFINED,
        "scene": UNDEFINED,
        "timestamp": None,
    }
    out = pd.DataFrame(table)
    for cls in CLASSES:
        out[column_name(cls)] = 0
    out["n_ignored"] = 0
    out["n_boxes"] = 0
    return out


def select_frames(
    frames: pd.DataFrame,
    unlabeled_pool: pd.DataFrame,
    *,
    labeled_target: int,
    unlabeled_target: int,
    min_per_bucket: int,
    drop_undefined: bool,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, list[BucketAllocation]], int]:
    """Stratified labeled sample plus the stratified unlabeled candidate pool.

    Args:
        frames: labeled frames that have an image.
        unlabeled_pool: images without labels (``unlabeled_images``).
        labeled_target: labeled frames to keep.
        unlabeled_target: unlabeled candidates to keep.
        min_per_bucket: floor per weather x timeofday bucket.
        drop_undefined: leave out labeled frames whose weather or timeofday is undefined.
        seed: sampling seed.

    Returns:
        The manifest (labeled rows first; ``labeled`` says whether the loop may see
        the labels, ``has_gt`` whether hidden ground truth exists), the per-bucket
        allocations of both pools, and how many frames were dropped as undefined.
    """
    keep = np.ones(len(frames), dtype=bool)
    if drop_undefined:
        keep = ((frames["weather"] != UNDEFINED) & (frames["timeofday"] != UNDEFINED)).to_numpy()
    candidates = frames[keep].reset_index(drop=True)
    idx, labeled_alloc = sample_by_video(candidates, labeled_target, min_per_bucket, seed)
    labeled = candidates.iloc[idx].assign(labeled=True, has_gt=True)
    rest = candidates.drop(index=idx).assign(labeled=False, has_gt=True)
    pool = pd.concat([unlabeled_pool.assign(labeled=False, has_gt=False), rest], ignore_index=True)
    pidx, pool_alloc = sample_by_video(pool, unlabeled_target, min_per_bucket, seed + 1)
    manifest = pd.concat([labeled, pool.iloc[pidx]], ignore_index=True)
    return manifest, {"labeled": labeled_alloc, "unlabeled": pool_alloc}, int((~keep).sum())


def add_image_sizes(manifest: pd.DataFrame) -> pd.DataFrame:
    """Add ``width``/``height`` read from each JPEG header (the pixels are not decoded)."""
    sizes = [_image_size(p) for p in manifest["path"]]
    return manifest.assign(width=[w for w, _ in sizes], height=[h for _, h in sizes])


def _image_size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError) as exc:
        raise StageInputError(f"cannot read image {path}: {exc}; replace or remove the file") from None


def sample_by_video(
    frames: pd.DataFrame, target: int, min_per_bucket: int, seed: int
) -> tuple[np.ndarray, list[BucketAllocation]]:
    """Stratified sample by weather x timeofday that takes whole videos where they fit.

    Keeping a video's frames together keeps the labeled/unlabeled line from cutting
    through videos, so the split's video hold-out loses few frames.
    """
    if frames.empty:
        return np.zeros(0, dtype=np.int64), []
    keys = list(zip(*(frames[k] for k in STRATUM), strict=True))
    alloc = stratum_allocation(keys, target, min_per_bucket)
    quotas = {a.key: a.allocated for a in alloc}
    idx = take_by_video(keys, frames["video"].to_numpy(), np.ones(len(frames), dtype=bool), quotas,
                        seed=seed, usable_first=False)
    return idx, alloc


def data_provenance(root: Path, label_paths: dict[str, Path], join: dict[str, int]) -> dict:
    """SHA-256 and size of every label file, plus how labels and images matched."""
    return {
        "data_root": str(root.resolve()),
        "label_files": {
            split: {"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}
            for split, p in label_paths.items()
        },
        "join": join,
    }


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def collect_metrics(
    manifest: pd.DataFrame, boxes: pd.DataFrame, join: dict[str, int], malformed: MalformedReport,
    n_dropped_undefined: int,
) -> dict:
    """The numbers result.json and the summary report."""
    labeled = manifest[manifest["labeled"]]
    return {
        "n_frames": len(manifest),
        "n_labeled": len(labeled),
        "n_unlabeled": int((~manifest["labeled"]).sum()),
        "n_unlabeled_with_hidden_gt": int((~manifest["labeled"] & manifest["has_gt"]).sum()),
        "n_boxes_labeled": int(labeled["n_boxes"].sum()),
        "n_videos": int(manifest["video"].nunique()),
        "n_slices": int(manifest.groupby(["weather", "timeofday", "scene"]).ngroups),
        "n_dropped_undefined": n_dropped_undefined,
        "join": join,
        "malformed": malformed.total,
        "malformed_by_reason": dict(malformed.counts),
        "weather": labeled["weather"].value_counts().to_dict(),
        "timeofday": labeled["timeofday"].value_counts().to_dict(),
        "scene": labeled["scene"].value_counts().to_dict(),
    }


def _outcome(path: Path, result: dict, *, skipped: bool) -> StageOutcome:
    m = result["metrics"]
    join = m["join"]
    rarest = sorted(m["weather"].items(), key=lambda kv: kv[1])[:1]
    look_at = [f"{path}/slice_distribution.png (the long tail)", f"{path}/slice_index.csv"]
    if m.get("fiftyone_dataset"):
        look_at.append(f"FiftyOne dataset {m['fiftyone_dataset']!r}: `bddengine app`")
    return StageOutcome(
        stage="collect",
        location=path,
        skipped=skipped,
        wrote=[f"{path}/manifest.parquet, boxes.parquet, data_provenance.json, slice_index.*"],
        numbers={
            "labels matched to images": f"{join['n_matched']:,} of {join['n_label_frames']:,}",
            "images without labels": f"{join['n_images_without_label']:,}",
            "collected": f"{m['n_labeled']:,} labeled + {m['n_unlabeled']:,} unlabeled frames",
            "slices (weather x timeofday x scene)": m["n_slices"],
            "rarest weather": ", ".join(f"{k} ({v})" for k, v in rarest),
            "malformed items": f"{m['malformed']} (see malformed.json)",
            "dropped as undefined": m["n_dropped_undefined"],
            "wall time (s)": result["wall_time_s"],
        },
        look_at=look_at,
        safe_to_delete=f"{path} (nothing else depends on it until `embed` runs)",
    )


def _file_stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]
