"""Stage ``collect``: read det_20 labels, join them to images, subsample by slice.

load config -> check the dataset -> parse labels -> stratified labeled sample +
unlabeled candidate pool -> write manifest, boxes, provenance, slice index, chart ->
mirror into FiftyOne -> result.json.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bddengine.bdd.categories import ATTRIBUTES_KNOWN, CLASSES, UNDEFINED, column_name, known_attributes
from bddengine.bdd.loader import (
    JoinStats,
    LabelFileError,
    MalformedReport,
    frames_to_tables,
    index_images,
    join_stats,
    load_label_file,
)
from bddengine.bdd.validate import NOTE_CLIPPED, OUTSIDE_IMAGE
from bddengine.config import CollectConfig, EngineConfig, config_dict, fingerprint
from bddengine.curation.pools import stratum_allocation, take_by_video
from bddengine.curation.sampling import BucketAllocation
from bddengine.curation.slice_index import plot_slice_distribution, slice_index, write_slice_index
from bddengine.errors import StageInputError
from bddengine.runs import RunRef, StageRun
from bddengine.runs.layout import COLLECT
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged

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
    if cfg.fiftyone.enabled:  # seconds now, rather than after parsing every label file
        check_mirror_database()
    images = index_images(cfg.data.root)
    label_stats = {s: _file_stat(p) for s, p in label_paths.items()}
    fp = fingerprint(config_dict(c), str(cfg.data.root), cfg.seed, label_stats, len(images))
    inputs = {f"labels_{s}": str(p) for s, p in label_paths.items()} | {"images": str(cfg.data.root / "images")}
    job = Job("collect", fp, cfg.seed, _outcome, inputs=inputs)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    collected = collect_frames(label_paths, images, c, root=cfg.data.root, seed=cfg.seed)
    return execute(cfg, job, lambda run: write_collect(run, cfg, collected, label_paths))


def check_mirror_database() -> None:
    """Stop before any work when the FiftyOne mirror's MongoDB cannot be reached.

    Raises:
        StageInputError: naming what was tried.
    """
    from bddengine.integrations.fiftyone import database_status

    db = database_status()
    if not db.found:
        raise StageInputError(f"fiftyone.enabled: the mirror needs MongoDB: {db.detail}")


@dataclass
class Collected:
    """The frames of one collect run, before anything is written.

    Attributes:
        manifest: one row per collected frame (labeled and unlabeled), with image sizes.
        boxes: the labeled frames' boxes, clipped to their images.
        malformed: what the label parser could not use, by reason.
        join: how labels and images matched (`bddengine.bdd.loader.JoinStats`).
        allocations: pool -> how many frames each stratum got.
        n_dropped: labeled frames dropped for an undefined attribute.
        bad_images: images skipped as unusable (path and reason).
    """

    manifest: pd.DataFrame = field(repr=False)
    boxes: pd.DataFrame = field(repr=False)
    malformed: MalformedReport
    join: JoinStats
    allocations: dict[str, list[BucketAllocation]]
    n_dropped: int
    bad_images: list[dict[str, str]]


def collect_frames(
    label_paths: dict[str, Path], images: dict[str, tuple[Path, str]], c: CollectConfig, *, root: Path, seed: int
) -> Collected:
    """Parse the labels, join them to the images, and take the stratified labeled and unlabeled samples.

    Raises:
        StageInputError: a label file is unreadable, or no labeled frame has an image.
    """
    frames, boxes, malformed = parse_label_files(label_paths, images)
    join = join_stats(frames["name"], images)
    if join.n_matched == 0:
        raise StageInputError(
            f"none of the {join.n_label_frames} labeled frames has an image under "
            f"{root}/images/{{100k,10k}}/*/ ({join.n_images} images found): "
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
        seed=seed,
    )
    manifest, bad_images = add_image_sizes(manifest)
    boxes = boxes[boxes["name"].isin(manifest.loc[manifest["has_gt"], "name"])].reset_index(drop=True)
    boxes, manifest = clip_to_images(boxes, manifest, malformed)
    return Collected(manifest, boxes, malformed, join, allocations, n_dropped, bad_images)


def write_collect(run: StageRun, cfg: EngineConfig, collected: Collected, label_paths: dict[str, Path]) -> Commit:
    """Write the manifest, boxes, provenance, slice index and chart; mirror the frames into FiftyOne when enabled."""
    manifest, boxes, malformed, join = collected.manifest, collected.boxes, collected.malformed, collected.join
    COLLECT.manifest.write(run, manifest)
    COLLECT.boxes.write(run, boxes)
    provenance = data_provenance(cfg.data.root, label_paths, join.to_dict())
    COLLECT.data_provenance.write(run, provenance)
    COLLECT.malformed.write(run, malformed.to_dict())
    COLLECT.bad_images.write(run, collected.bad_images)
    COLLECT.allocation.write(run, {
        pool_name: [a.to_dict() for a in allocs] for pool_name, allocs in collected.allocations.items()
    })
    index = slice_index(manifest)
    write_slice_index(run.dir, index)
    plot_slice_distribution(manifest, COLLECT.slice_distribution.at(run))
    fo_name = None
    if cfg.fiftyone.enabled:
        from bddengine.integrations.fiftyone import dataset_name, mirror_collect

        fo_name = mirror_collect(
            dataset_name(cfg.fiftyone.dataset_prefix, cfg.name, run.run_name, cfg.runs_dir), manifest, boxes,
            run=run.run_name, runs_dir=cfg.runs_dir,
        )
    metrics = collect_metrics(manifest, boxes, join.to_dict(), malformed, collected.n_dropped)
    metrics["n_bad_images"] = len(collected.bad_images)
    metrics["fiftyone_dataset"] = fo_name
    return Commit(outputs=COLLECT.outputs(), metrics=metrics)


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
        try:
            parsed = frames_to_tables(records, source_split=split, image_index=images, file=str(path))
        except LabelFileError as exc:
            raise StageInputError(str(exc)) from None
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
    """Frames table rows for images that no label file names: attributes unknown.

    Their weather, timeofday and scene read ``undefined`` and ``attributes_known`` is
    False: they join the mining pool but no slice count, chart or base rate.
    """
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
    out[ATTRIBUTES_KNOWN] = False
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
    candidates = frames[keep].reset_index(drop=True).assign(**{ATTRIBUTES_KNOWN: True})
    idx, labeled_alloc = sample_by_video(candidates, labeled_target, min_per_bucket, seed)
    labeled = candidates.iloc[idx].assign(labeled=True, has_gt=True)
    rest = candidates.drop(index=idx).assign(labeled=False, has_gt=True)
    pool = pd.concat([unlabeled_pool.assign(labeled=False, has_gt=False), rest], ignore_index=True)
    pidx, pool_alloc = sample_by_video(pool, unlabeled_target, min_per_bucket, seed + 1)
    manifest = pd.concat([labeled, pool.iloc[pidx]], ignore_index=True)
    return manifest, {"labeled": labeled_alloc, "unlabeled": pool_alloc}, int((~keep).sum())


def add_image_sizes(manifest: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Add ``width``/``height`` from each JPEG header; leave out images that cannot be used.

    An image is left out when its header cannot be read, its content is another
    format than its name says (a PNG renamed ``.jpg``), its size is 0, or it has no
    JPEG end-of-image marker near its end (a truncated file, which would otherwise
    fail only when a later stage decodes it). The pixels are not decoded.

    Returns:
        The manifest without those frames, and ``[{"name", "path", "reason"}]`` for them.
    """
    sizes, bad, keep = [], [], []
    for name, path in zip(manifest["name"], manifest["path"], strict=True):
        size, reason = image_size(path)
        keep.append(reason is None)
        if reason is None:
            sizes.append(size)
        else:
            bad.append({"name": name, "path": path, "reason": reason})
    kept = manifest[np.asarray(keep, dtype=bool)].reset_index(drop=True)
    return kept.assign(width=[w for w, _ in sizes], height=[h for _, h in sizes]), bad


JPEG_EOI = b"\xff\xd9"
_TAIL_BYTES = 4096
# what a file's name promises, checked against the format PIL reads from its first bytes
FORMAT_BY_SUFFIX = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


def image_size(path: str) -> tuple[tuple[int, int], str | None]:
    """``((width, height), None)`` for a usable image, ``((0, 0), reason)`` otherwise."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            is_jpeg = im.format == "JPEG"
            fmt = im.format
        suffix = Path(path).suffix.lower()
        expected = FORMAT_BY_SUFFIX.get(suffix)
        if expected is not None and fmt != expected:
            return (0, 0), (f"not a {expected} file: its content is {fmt or 'an unknown format'}, its name says "
                            f"{suffix} (convert it to {expected}, e.g. with PIL or ImageMagick, under the same name)")
        if width < 1 or height < 1:
            return (0, 0), f"image size {width}x{height}"
        if is_jpeg and not _has_jpeg_end(path):
            # no end marker near the end: truncated, or a trailer after it; only decoding tells
            try:
                with Image.open(path) as im:
                    im.load()
            except (OSError, SyntaxError, ValueError) as exc:
                return (0, 0), f"truncated JPEG (no end-of-image marker; decoding says: {exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        return (0, 0), f"cannot read the image header: {exc}"
    except ImportError:  # ultralytics' patched Image.open tries an optional HEIF plugin first
        return (0, 0), "cannot read the image header: not an image PIL can read"
    return (width, height), None


def _has_jpeg_end(path: str) -> bool:
    """Whether the file's last 4 KiB hold the JPEG end-of-image marker (FFD9).

    In JPEG data an 0xFF byte is always stuffed or a marker, so FFD9 there is the end.
    """
    with open(path, "rb") as f:
        f.seek(max(0, Path(path).stat().st_size - _TAIL_BYTES))
        return JPEG_EOI in f.read()


def clip_to_images(
    boxes: pd.DataFrame, manifest: pd.DataFrame, report: MalformedReport
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clip boxes to their image (counted); drop and count the ones clipping leaves empty.

    The shared rule of `bddengine.bdd.validate`: collect measures every image, so a
    box reaching outside it is clipped to it, and one wholly outside is left out.
    The manifest's box counts follow the boxes kept.
    """
    if boxes.empty:
        return boxes, manifest
    size = manifest.set_index("name")[["width", "height"]]
    w = boxes["name"].map(size["width"]).to_numpy(dtype=float)
    h = boxes["name"].map(size["height"]).to_numpy(dtype=float)
    xy = boxes[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)
    clipped = np.column_stack([np.clip(xy[:, 0], 0, w), np.clip(xy[:, 1], 0, h),
                               np.clip(xy[:, 2], 0, w), np.clip(xy[:, 3], 0, h)])
    changed = (clipped != xy).any(axis=1)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if not changed.any():
        return boxes, manifest
    for i in np.flatnonzero(changed):
        name, label_id = boxes["name"].iat[i], boxes["label_id"].iat[i]
        detail = f"{tuple(round(v, 2) for v in xy[i])} in {int(w[i])}x{int(h[i])}"
        if empty[i]:
            report.add(OUTSIDE_IMAGE, file="", frame=name, label_id=None if pd.isna(label_id) else label_id,
                       detail=detail)
        else:
            report.note(NOTE_CLIPPED, file="", frame=name, detail=detail)
    boxes = boxes.assign(x1=clipped[:, 0], y1=clipped[:, 1], x2=clipped[:, 2], y2=clipped[:, 3])
    boxes = boxes[~empty].reset_index(drop=True)
    if empty.any():
        manifest = recount_boxes(manifest, boxes)
    return boxes, manifest


def recount_boxes(manifest: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """The manifest's per-class, ignored and total box counts of its GT frames, from ``boxes``."""
    manifest = manifest.copy()
    gt = manifest["has_gt"].to_numpy()
    names = manifest["name"]
    kept = boxes[~boxes["ignored"]]
    for cls in CLASSES:
        counts = kept.loc[kept["category"] == cls, "name"].value_counts()
        manifest.loc[gt, column_name(cls)] = names[gt].map(counts).fillna(0).astype(int).to_numpy()
    ignored = boxes.loc[boxes["ignored"], "name"].value_counts()
    manifest.loc[gt, "n_ignored"] = names[gt].map(ignored).fillna(0).astype(int).to_numpy()
    total = boxes["name"].value_counts()
    manifest.loc[gt, "n_boxes"] = names[gt].map(total).fillna(0).astype(int).to_numpy()
    return manifest


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
        "n_slices": int(known_attributes(manifest).groupby(["weather", "timeofday", "scene"]).ngroups),
        "n_attributes_unknown": int(len(manifest) - len(known_attributes(manifest))),
        "n_dropped_undefined": n_dropped_undefined,
        "join": join,
        "malformed": malformed.total,
        "malformed_by_reason": dict(malformed.counts),
        "weather": labeled["weather"].value_counts().to_dict(),
        "timeofday": labeled["timeofday"].value_counts().to_dict(),
        "scene": labeled["scene"].value_counts().to_dict(),
    }


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    path, result = ref.path, ref.result()
    m = result["metrics"]
    join = m["join"]
    rarest = sorted(m["weather"].items(), key=lambda kv: kv[1])[:1]
    look_at = [f"{COLLECT.slice_distribution.at(path)} (the long tail)", str(COLLECT.slice_index_csv.at(path))]
    if m.get("fiftyone_dataset"):
        look_at.append(f"FiftyOne dataset {m['fiftyone_dataset']!r}: `bddengine app`")
    return StageOutcome(
        stage="collect",
        location=path,
        skipped=skipped,
        wrote=[f"{COLLECT.manifest.at(path)}, {COLLECT.boxes.file}, {COLLECT.data_provenance.file}, slice_index.*"],
        numbers={
            "labels matched to images": f"{join['n_matched']:,} of {join['n_label_frames']:,}",
            "images without labels": f"{join['n_images_without_label']:,}",
            "collected": f"{m['n_labeled']:,} labeled + {m['n_unlabeled']:,} unlabeled frames",
            "slices (weather x timeofday x scene)": m["n_slices"],
            "frames with unknown attributes": f"{m.get('n_attributes_unknown', 0):,} (images without a label "
                                              "file: mining pool only, in no slice)",
            "rarest weather": ", ".join(f"{k} ({v})" for k, v in rarest),
            "malformed items": f"{m['malformed']} (see {COLLECT.malformed.file})",
            "unusable images skipped": f"{m.get('n_bad_images', 0)} (unreadable, truncated or not the format "
                                       f"their name says; see {COLLECT.bad_images.file})",
            "dropped as undefined": m["n_dropped_undefined"],
            "wall time (s)": result["wall_time_s"],
        },
        look_at=look_at,
        safe_to_delete=f"{path} (nothing else depends on it until `embed` runs)",
    )


def _file_stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]
