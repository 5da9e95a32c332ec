"""Write a pool of frames as an ultralytics YOLO detection dataset.

Layout (everything relative, so the folder can be moved)::

    yolo/
      dataset.yaml           train: images/train, val: images/val, names: {0: pedestrian, ...}
      images/train/<name>    symlink to the original JPEG (hardlink or copy if not possible)
      labels/train/<stem>.txt  one "class cx cy w h" line per box, normalised, 6 decimals

ultralytics finds a label by replacing the last ``/images/`` of the image path
*as listed* (the symlink, not its target) with ``/labels/`` and the extension
with ``.txt`` (``ultralytics.data.utils.img2label_paths``), so symlinked images
work. ``dataset.yaml`` has no ``path`` key: ``check_det_dataset`` then resolves
``train``/``val`` against the YAML's own folder, whereas ``path: .`` would be
taken relative to the working directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bddengine.bdd.categories import CLASS_ID, CLASSES
from bddengine.runs.layout import YOLO_DATASET_YAML


@dataclass
class ExportStats:
    """What one split's export wrote and skipped.

    Attributes:
        n_images: images linked (one per frame).
        n_empty: frames written with an empty label file (no target boxes).
        n_boxes: target lines written.
        n_ignored: ignored-category and crowd boxes left out.
        n_clipped: boxes that reached outside the image and were clipped.
        n_degenerate: boxes with no area left after clipping (left out).
        n_duplicate: identical lines written once (ultralytics would drop them
            with a warning).
        link_methods: how many images were symlinked, hardlinked or copied.
    """

    n_images: int = 0
    n_empty: int = 0
    n_boxes: int = 0
    n_ignored: int = 0
    n_clipped: int = 0
    n_degenerate: int = 0
    n_duplicate: int = 0
    link_methods: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for result.json."""
        return dict(self.__dict__)


def yolo_labels(boxes: pd.DataFrame, width: float, height: float) -> tuple[list[str], dict[str, int]]:
    """YOLO label lines for one frame's boxes.

    Ignored boxes (ignored categories and crowd regions) are not targets and are
    left out; boxes are clipped to the image; a box with no area left is
    dropped; coordinates are normalised ``cx cy w h`` with 6 decimals; class
    ids follow `CLASSES` ("traffic light" is 8, "traffic sign" is 9).

    Args:
        boxes: the frame's rows of ``boxes.parquet`` (``category``, ``ignored``,
            ``x1``, ``y1``, ``x2``, ``y2`` in pixels).
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        The lines (without newlines, duplicates removed, in input order) and the
        counts ``ignored``, ``clipped``, ``degenerate``, ``duplicate``.

    Raises:
        KeyError: a category outside the 10 classes (the message names it).
    """
    counts = {"ignored": 0, "clipped": 0, "degenerate": 0, "duplicate": 0}
    if boxes.empty:
        return [], counts
    ignored = boxes["ignored"].to_numpy(dtype=bool)
    counts["ignored"] = int(ignored.sum())
    kept = boxes[~ignored]
    unknown = sorted(set(kept["category"]) - set(CLASS_ID))
    if unknown:
        raise KeyError(f"categories {unknown} are not among the 10 classes {list(CLASSES)}")
    xy = kept[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
    clipped = np.column_stack([
        np.clip(xy[:, 0], 0, width), np.clip(xy[:, 1], 0, height),
        np.clip(xy[:, 2], 0, width), np.clip(xy[:, 3], 0, height),
    ])
    counts["clipped"] = int((np.abs(clipped - xy) > 0).any(axis=1).sum())
    cx = (clipped[:, 0] + clipped[:, 2]) / 2 / width
    cy = (clipped[:, 1] + clipped[:, 3]) / 2 / height
    w = (clipped[:, 2] - clipped[:, 0]) / width
    h = (clipped[:, 3] - clipped[:, 1]) / height
    lines: list[str] = []
    seen: set[str] = set()
    for cls, a, b, c, d in zip(kept["category"], cx, cy, w, h, strict=True):
        line = f"{CLASS_ID[cls]} {a:.6f} {b:.6f} {c:.6f} {d:.6f}"
        if round(c, 6) <= 0 or round(d, 6) <= 0:
            counts["degenerate"] += 1
        elif line in seen:
            counts["duplicate"] += 1
        else:
            seen.add(line)
            lines.append(line)
    return lines, counts


def link_image(src: str | os.PathLike[str], dst: Path) -> str:
    """Place ``src`` at ``dst``: a symlink to its absolute path, else a hardlink, else a copy.

    Returns:
        ``"symlink"``, ``"hardlink"`` or ``"copy"``.
    """
    src = Path(src).resolve()
    try:
        dst.symlink_to(src)
        return "symlink"
    except OSError:
        pass
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError:
        shutil.copy2(src, dst)
        return "copy"


def export_split(
    frames: pd.DataFrame,
    boxes: pd.DataFrame,
    root: Path,
    split: str,
    *,
    progress: Iterable | None = None,
) -> ExportStats:
    """Write one split (``train`` or ``val``) under ``root/images`` and ``root/labels``.

    Args:
        frames: the split's frames: ``name``, ``path`` (the JPEG), ``width``, ``height``.
        boxes: ``boxes.parquet`` rows (any frames; only this split's are used).
        root: the dataset folder (``yolo/``).
        split: the split's folder name.
        progress: optional wrapper for the frame loop (e.g. ``rich.progress.track``).

    Returns:
        What was written and skipped.

    Raises:
        ValueError: two frames share a file name stem.
    """
    stems = frames["name"].astype(str).map(lambda n: Path(n).stem)
    if stems.duplicated().any():
        raise ValueError(f"frame names collide on their stem, e.g. {stems[stems.duplicated()].iloc[0]!r}")
    image_dir = root / "images" / split
    label_dir = root / "labels" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    names = set(frames["name"].astype(str))
    by_frame = {name: group for name, group in boxes[boxes["name"].isin(names)].groupby("name", sort=False)}
    empty = boxes.iloc[0:0]
    stats = ExportStats()
    rows = frames[["name", "path", "width", "height"]].itertuples(index=False, name=None)
    for name, path, width, height in progress(rows) if progress else rows:
        name = str(name)
        method = link_image(path, image_dir / name)
        stats.link_methods[method] = stats.link_methods.get(method, 0) + 1
        lines, counts = yolo_labels(by_frame.get(name, empty), float(width), float(height))
        (label_dir / f"{Path(name).stem}.txt").write_text("".join(line + "\n" for line in lines))
        stats.n_images += 1
        stats.n_empty += not lines
        stats.n_boxes += len(lines)
        stats.n_ignored += counts["ignored"]
        stats.n_clipped += counts["clipped"]
        stats.n_degenerate += counts["degenerate"]
        stats.n_duplicate += counts["duplicate"]
    return stats


def write_dataset_yaml(root: Path, splits: dict[str, str] | None = None) -> Path:
    """Write ``root/dataset.yaml`` with paths relative to ``root`` itself and the 10 class names.

    No ``path`` key on purpose: ultralytics then resolves ``train``/``val``
    against the YAML's folder, so the dataset keeps working when moved.

    Args:
        root: the dataset folder.
        splits: ultralytics key -> image folder relative to ``root``; default
            ``{"train": "images/train", "val": "images/val"}``.
    """
    splits = splits or {"train": "images/train", "val": "images/val"}
    body = {**splits, "nc": len(CLASSES), "names": dict(enumerate(CLASSES))}
    header = (
        "# YOLO dataset written by `bddengine split`; paths are relative to this file's folder\n"
        "# (no `path:` key, so ultralytics resolves them against it). Train with:\n"
        "#   yolo detect train data=<this file> model=yolov8n.yaml\n"
    )
    out = root / YOLO_DATASET_YAML
    out.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return out


def label_path_for(image_path: str) -> str:
    """The label file ultralytics reads for an image path (mirrors ``img2label_paths``)."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def check_export(root: Path, split: str) -> list[str]:
    """Problems ultralytics would hit in one exported split: missing labels or broken links.

    Returns:
        Human-readable problems (empty when the split is sound).
    """
    problems = []
    for image in sorted((root / "images" / split).iterdir()):
        if not image.exists():
            problems.append(f"{image}: broken link")
        if not Path(label_path_for(str(image))).is_file():
            problems.append(f"{image}: no label file at {label_path_for(str(image))}")
    return problems
