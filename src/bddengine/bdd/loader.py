"""Read BDD100K det_20 label files into a frames table and a boxes table.

The tables are pandas DataFrames (parquet is written through pyarrow by the
callers). Nothing malformed is dropped silently: every frame or label that is
skipped, and every value that is replaced, is counted in a `MalformedReport`
with a few examples, so a stage can print what it saw and what it did.

Typical use::

    frames = load_label_file(root / "labels/det_20/det_train.json")
    images = index_images(root)
    parsed = frames_to_tables(frames, source_split="train", image_index=images)
    parsed.frames, parsed.boxes, parsed.malformed, parsed.join
"""

from __future__ import annotations

import gc
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from bddengine.bdd.categories import (
    ATTRIBUTE_VALUES,
    CLASS_ID,
    CLASSES,
    FRAME_ATTRIBUTES,
    IGNORED_NAMES,
    LEGACY_NAMES,
    UNDEFINED,
    column_name,
    map_category,
)
from bddengine.bdd.validate import (  # noqa: F401  (the reasons and the report are part of this module's API)
    BAD_FRAME,
    BAD_LABEL,
    BAD_LABELS,
    BAD_TIMESTAMP,
    DUPLICATE_NAME,
    EMPTY_BOX,
    MAX_EXAMPLES,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTES,
    MISSING_BOX,
    MISSING_NAME,
    NAN_BOX,
    NON_FINITE_BOX,
    NON_NUMERIC_BOX,
    UNKNOWN_ATTRIBUTE_VALUE,
    UNKNOWN_CATEGORY,
    LabelFileError,
    MalformedExample,
    MalformedReport,
    box_problem,
    parse_flag,
    read_flags,
    short_repr,
)

IMAGE_BUNDLES: tuple[str, ...] = ("100k", "10k")
"""Image bundles, in priority order: a name found in both keeps its 100k path."""

IMAGE_SPLITS: tuple[str, ...] = ("train", "val", "test")

FRAME_COLUMNS: tuple[str, ...] = (
    "name",
    "path",
    "split",
    "video",
    *FRAME_ATTRIBUTES,
    "timestamp",
    *(column_name(c) for c in CLASSES),
    "n_ignored",
    "n_boxes",
)
"""Columns of `ParsedLabels.frames`, in order."""

BOX_COLUMNS: tuple[str, ...] = (
    "name",
    "category",
    "raw_category",
    "x1",
    "y1",
    "x2",
    "y2",
    "ignored",
    "occluded",
    "truncated",
    "label_id",
)
"""Columns of `ParsedLabels.boxes`, in order."""

# int and float only: bool is a subclass of int but `true` is not a coordinate.
_NUMBER_TYPES = frozenset((int, float))
_INT64 = 2**63

# raw category -> (class id, ignored); built once from categories.py so the hot
# loop does one dict lookup per label instead of calling map_category.
_CATEGORY_TABLE: dict[str, tuple[int, bool]] = {
    raw: (CLASS_ID[mapped[0]], mapped[1])
    for raw in (*CLASSES, *LEGACY_NAMES, *IGNORED_NAMES)
    if (mapped := map_category(raw)) is not None
}


@dataclass(frozen=True)
class JoinStats:
    """How label frames and image files matched up.

    Attributes:
        n_label_frames: frames in the labels.
        n_matched: label frames whose image file exists.
        n_labels_without_image: label frames with no image file.
        n_images: image files indexed.
        n_images_without_label: image files no label frame names; candidates
            for the unlabeled mining pool.
        images_without_label: their names, sorted.
    """

    n_label_frames: int
    n_matched: int
    n_labels_without_image: int
    n_images: int
    n_images_without_label: int
    images_without_label: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, int]:
        """JSON-ready counts (without the list of names)."""
        return {
            "n_label_frames": self.n_label_frames,
            "n_matched": self.n_matched,
            "n_labels_without_image": self.n_labels_without_image,
            "n_images": self.n_images,
            "n_images_without_label": self.n_images_without_label,
        }


@dataclass
class ParsedLabels:
    """The two tables built from one label file, and what was wrong with it.

    Attributes:
        frames: one row per frame, columns `FRAME_COLUMNS`.
        boxes: one row per kept box, columns `BOX_COLUMNS`.
        malformed: what was skipped or replaced, by reason.
        join: how these frames matched the image index. Its "images without
            label" side is relative to this file only; for several label files
            (train + val) call `join_stats` on all frame names together.
    """

    frames: pd.DataFrame
    boxes: pd.DataFrame
    malformed: MalformedReport
    join: JoinStats


def load_label_file(path: str | os.PathLike[str], *, kind: str = "label") -> list[dict[str, Any]]:
    """Read a det_20 label file (or predictions in the same format): a JSON list of frame records.

    Args:
        path: the label file, e.g. ``labels/det_20/det_train.json``.
        kind: ``"label"`` or ``"prediction"``: what the messages call the file and
            what they advise (download BDD100K again, or export the predictions again).

    Returns:
        The frame records as parsed (dicts, not validated; `frames_to_tables`
        checks them).

    Raises:
        LabelFileError: the file is missing or unreadable, is not valid JSON, or
            its top level is not a list. The message names the file.
    """
    path = Path(path)
    if kind == "prediction":
        what = "prediction file"
        redo = "re-export the predictions (a JSON list of BDD frames whose labels carry a score)"
        where = "Check the path: the label file comes first, then the predictions."
        expected = "Check that this is a prediction file in the BDD format"
    else:
        what, redo = "label file", "download or unzip it again"
        where = ("Check the path; BDD100K det_20 labels are labels/det_20/det_train.json and det_val.json "
                 "under the dataset root.")
        expected = "Check that this is a det_20 detection label file"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabelFileError(f"{what} not found: {path}. {where}") from None
    except OSError as err:
        raise LabelFileError(
            f"cannot read {what} {path}: {err.strerror or err}. Check that it is a readable file."
        ) from None
    try:
        with _gc_paused():
            frames = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        # orjson rejects the NaN/Infinity literals that Python's json writes, numbers
        # beyond the float range and nesting deeper than 1024; such a file may still be
        # readable, and its bad boxes are counted by frames_to_tables.
        frames = _load_slow(path, data, err, what=what, redo=redo)
    if not isinstance(frames, list):
        raise LabelFileError(
            f"{what} {path} holds a JSON {type(frames).__name__}, expected a list "
            f"of frame records (the det_20 format). {expected}."
        )
    return frames


def _load_slow(path: Path, data: bytes, err: Exception, *, what: str, redo: str) -> Any:
    """Python's json, for what orjson refuses; every way it can fail is a LabelFileError."""
    try:
        with _gc_paused():
            frames = json.loads(data)
    except RecursionError:
        raise LabelFileError(
            f"{what} {path} nests its JSON too deeply to read (a det_20 file nests 4 levels). "
            f"The file is not in the det_20 format, or it is corrupted: {redo}."
        ) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise LabelFileError(
            f"{what} {path} is not valid JSON ({err}). The file may be truncated "
            f"or corrupted: {redo}."
        ) from None
    try:
        # a lone UTF-16 surrogate escape ("\\ud800") reads into a str that cannot be written out
        json.dumps(frames, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LabelFileError(
            f"{what} {path} holds a \\u escape that is not a character (a lone UTF-16 "
            f"surrogate, {exc.object[exc.start:exc.end].encode('unicode_escape').decode()}): fix the "
            "string (frame names and categories must be valid Unicode), then run again."
        ) from None
    except (RecursionError, ValueError):
        pass  # deep nesting inside a valid document: frames_to_tables counts the bad records
    return frames


def index_images(root: str | os.PathLike[str]) -> dict[str, tuple[Path, str]]:
    """Find the BDD100K images under a dataset root.

    Scans ``<root>/images/{100k,10k}/{train,val,test}/*.jpg``; folders that do not
    exist are skipped. A name found in both bundles keeps its 100k path.

    Args:
        root: the BDD100K root (the folder that holds ``images/``).

    Returns:
        Image file name -> (path, origin), origin like ``"100k/train"``.
    """
    root = Path(root)
    index: dict[str, tuple[Path, str]] = {}
    for bundle in IMAGE_BUNDLES:
        for split in IMAGE_SPLITS:
            folder = root / "images" / bundle / split
            origin = f"{bundle}/{split}"
            try:
                entries = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    name = entry.name
                    if name.endswith(".jpg") and name not in index and entry.is_file():
                        index[name] = (Path(entry.path), origin)
    return index


def join_stats(
    label_names: Iterable[str],
    image_index: Mapping[str, Path | tuple[Path, str]],
) -> JoinStats:
    """Match label frame names against an image index.

    Args:
        label_names: frame names from one or more label files.
        image_index: image name -> path (or (path, origin) from `index_images`).

    Returns:
        The match counts, and the sorted names of images without a label.
    """
    names = set(label_names)
    matched = sum(1 for n in names if n in image_index)
    unlabeled = tuple(sorted(n for n in image_index if n not in names))
    return JoinStats(
        n_label_frames=len(names),
        n_matched=matched,
        n_labels_without_image=len(names) - matched,
        n_images=len(image_index),
        n_images_without_label=len(unlabeled),
        images_without_label=unlabeled,
    )


def frames_to_tables(
    frames: list[dict[str, Any]],
    *,
    source_split: str,
    image_index: Mapping[str, Path | tuple[Path, str]] | None = None,
    file: str = "",
) -> ParsedLabels:
    """Convert det_20 frame records into a frames table and a boxes table.

    One pass of plain Python collects the values; pandas sees each column once.

    Args:
        frames: records from `load_label_file`.
        source_split: value of the ``split`` column, e.g. ``"train"`` or ``"val"``.
        image_index: image name -> path, or (path, origin) as `index_images`
            returns. Frames without an image get a null ``path``. None means no
            images are known (every path is null).
        file: the label file the records came from, for malformed examples.

    Returns:
        The tables, the malformed report and the join counts. In the frames
        table a class column counts the frame's non-ignored boxes of that
        class, ``n_ignored`` the ignored-category and crowd boxes, and
        ``n_boxes`` all kept boxes (the class columns plus ``n_ignored``).
        String columns use pandas' ``str`` dtype (null is NaN), so ``path`` is
        a string column even when no image matched.
    """
    if image_index is None:
        image_index = {}
    report = MalformedReport()
    with _gc_paused():
        scan = _scan_frames(frames, image_index, report, file)
    frames_df = _frames_table(scan, source_split)
    boxes_df = _boxes_table(scan)
    # Images "without label" relative to this file only; see ParsedLabels.join.
    join = join_stats(scan.names, image_index)
    return ParsedLabels(frames=frames_df, boxes=boxes_df, malformed=report, join=join)


@dataclass
class _Scan:
    """Values collected by `_scan_frames`: the frame columns and the box columns."""

    names: list[str] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    weather: list[str] = field(default_factory=list)
    timeofday: list[str] = field(default_factory=list)
    scene: list[str] = field(default_factory=list)
    timestamps: list[int | None] = field(default_factory=list)
    # One entry per kept box; the box's frame is names[box_frame[i]].
    box_frame: list[int] = field(default_factory=list)
    box_class: list[int] = field(default_factory=list)
    box_ignored: list[bool] = field(default_factory=list)
    box_raw: list[str] = field(default_factory=list)
    box_x1: list[float] = field(default_factory=list)
    box_y1: list[float] = field(default_factory=list)
    box_x2: list[float] = field(default_factory=list)
    box_y2: list[float] = field(default_factory=list)
    box_occluded: list[bool] = field(default_factory=list)
    box_truncated: list[bool] = field(default_factory=list)
    box_id: list[Any] = field(default_factory=list)


def _scan_frames(
    frames: list[dict[str, Any]],
    image_index: Mapping[str, Path | tuple[Path, str]],
    report: MalformedReport,
    file: str,
) -> _Scan:
    """One pass over the records: validate, count what is malformed, collect values.

    The per-label path is the hot loop (1.3M labels for det_train): the common
    case runs on subscripts inside one try block, and every malformed label
    falls through to `_report_bad_label`, which works out the reason.
    """
    scan = _Scan()
    category_table = _CATEGORY_TABLE
    number_types = _NUMBER_TYPES
    allowed_weather = frozenset(ATTRIBUTE_VALUES["weather"])
    allowed_timeofday = frozenset(ATTRIBUTE_VALUES["timeofday"])
    allowed_scene = frozenset(ATTRIBUTE_VALUES["scene"])
    # Bound appends in locals: the cheapest way to grow eleven columns per box.
    add_frame = scan.box_frame.append
    add_class = scan.box_class.append
    add_ignored = scan.box_ignored.append
    add_raw = scan.box_raw.append
    add_x1 = scan.box_x1.append
    add_y1 = scan.box_y1.append
    add_x2 = scan.box_x2.append
    add_y2 = scan.box_y2.append
    add_occluded = scan.box_occluded.append
    add_truncated = scan.box_truncated.append
    add_id = scan.box_id.append
    seen: set[str] = set()

    for record in frames:
        if type(record) is not dict:
            report.add(BAD_FRAME, file=file, frame=None, detail=type(record).__name__)
            continue
        name = record.get("name")
        if type(name) is not str or not name:
            report.add(MISSING_NAME, file=file, frame=None, detail=short_repr(name))
            continue
        if name in seen:
            report.add(DUPLICATE_NAME, file=file, frame=name, detail="later record skipped")
            continue
        seen.add(name)
        frame_index = len(scan.names)
        scan.names.append(name)
        image = image_index.get(name)
        if image is None:
            scan.paths.append(None)
        else:
            scan.paths.append(str(image[0] if type(image) is tuple else image))
        video = record.get("videoName")
        scan.videos.append(video if type(video) is str and video else name.rsplit(".", 1)[0])
        timestamp = record.get("timestamp")
        if type(timestamp) is int and -_INT64 <= timestamp < _INT64:
            scan.timestamps.append(timestamp)
        else:
            scan.timestamps.append(None)
            if timestamp is not None:
                report.add(BAD_TIMESTAMP, file=file, frame=name, detail=short_repr(timestamp))

        attrs = record.get("attributes")
        if type(attrs) is dict:
            weather = attrs.get("weather", _MISSING)
            timeofday = attrs.get("timeofday", _MISSING)
            scene = attrs.get("scene", _MISSING)
            if type(weather) is not str or weather not in allowed_weather:
                weather = _bad_attribute(report, file, name, "weather", weather)
            if type(timeofday) is not str or timeofday not in allowed_timeofday:
                timeofday = _bad_attribute(report, file, name, "timeofday", timeofday)
            if type(scene) is not str or scene not in allowed_scene:
                scene = _bad_attribute(report, file, name, "scene", scene)
        else:
            report.add(MISSING_ATTRIBUTES, file=file, frame=name)
            weather = timeofday = scene = UNDEFINED
        scan.weather.append(weather)
        scan.timeofday.append(timeofday)
        scan.scene.append(scene)

        labels = record.get("labels")
        if type(labels) is not list:
            if labels is not None:  # {} or "" is not "no boxes": it is not a list of labels
                report.add(BAD_LABELS, file=file, frame=name, detail=type(labels).__name__)
            continue  # no "labels" key or null: a frame without boxes is valid
        for label in labels:
            try:
                raw = label["category"]
                class_id, ignored = category_table[raw]
                box = label["box2d"]
                x1 = box["x1"]
                y1 = box["y1"]
                x2 = box["x2"]
                y2 = box["y2"]
            except (KeyError, TypeError):
                _report_bad_label(report, file, name, label)
                continue
            # NaN fails every comparison, so a NaN box fails here too.
            if not (
                type(x1) in number_types
                and type(y1) in number_types
                and type(x2) in number_types
                and type(y2) in number_types
                and x2 > x1
                and y2 > y1
            ):
                _report_bad_label(report, file, name, label)
                continue
            label_attrs = label.get("attributes")
            if label_attrs is not None and type(label_attrs) is not dict:
                read_flags(label_attrs, file=file, frame=name, label_id=label.get("id"))  # raises
            if type(label_attrs) is dict:
                occluded = label_attrs.get("occluded", False)
                truncated = label_attrs.get("truncated", False)
                crowd = label_attrs.get("crowd", False)
                if (
                    (occluded is not True and occluded is not False)
                    or (truncated is not True and truncated is not False)
                    or (crowd is not True and crowd is not False)
                    or "ignored" in label_attrs
                ):
                    # strings, 0/1 and the `ignored` flag: the official pydantic reading (or an error)
                    crowd, flag_ignored, occluded, truncated = read_flags(
                        label_attrs, file=file, frame=name, label_id=label.get("id")
                    )
                    crowd = crowd or flag_ignored
                add_occluded(occluded)
                add_truncated(truncated)
                add_ignored(ignored or crowd)
            else:
                add_occluded(False)
                add_truncated(False)
                add_ignored(ignored)
            add_frame(frame_index)
            add_class(class_id)
            add_raw(raw)
            add_x1(x1)
            add_y1(y1)
            add_x2(x2)
            add_y2(y2)
            add_id(label.get("id"))
    _drop_non_finite(scan, report, file)
    return scan


def _drop_non_finite(scan: _Scan, report: MalformedReport, file: str) -> None:
    """Count and drop boxes with an infinite coordinate (or an int beyond the float range).

    Only a file read by Python's json (see `load_label_file`) can hold them, so the
    check is one vectorized pass; the hot loop stays free of it.
    """
    coords = [_safe_floats(c) for c in (scan.box_x1, scan.box_y1, scan.box_x2, scan.box_y2)]
    finite = np.isfinite(coords[0]) & np.isfinite(coords[1]) & np.isfinite(coords[2]) & np.isfinite(coords[3])
    scan.box_x1, scan.box_y1, scan.box_x2, scan.box_y2 = coords
    if finite.all():
        return
    for i in np.flatnonzero(~finite):
        box = tuple(float(c[i]) for c in coords)
        label_id = scan.box_id[i]
        report.add(NON_FINITE_BOX, file=file, frame=scan.names[scan.box_frame[i]],
                   label_id=None if label_id is None else str(label_id), detail=repr(box)[:80])
    keep = np.flatnonzero(finite)
    for name in ("box_frame", "box_class", "box_ignored", "box_raw", "box_occluded", "box_truncated", "box_id"):
        values = getattr(scan, name)
        setattr(scan, name, [values[i] for i in keep])
    scan.box_x1, scan.box_y1, scan.box_x2, scan.box_y2 = (c[keep] for c in coords)


def _safe_floats(values: list[float] | np.ndarray) -> np.ndarray:
    """float64 array of the values; an int beyond the float range becomes +-inf."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:
        return np.array([v if -1e308 < v < 1e308 else (math.inf if v > 0 else -math.inf) for v in values],
                        dtype=np.float64)


def _frames_table(scan: _Scan, source_split: str) -> pd.DataFrame:
    """The frames DataFrame; per-class counts come from a bincount over the boxes."""
    n_frames = len(scan.names)
    n_classes = len(CLASSES)
    frame_ids = _ints(scan.box_frame)
    class_ids = _ints(scan.box_class)
    ignored = _bools(scan.box_ignored)
    counts = np.bincount(frame_ids[~ignored] * n_classes + class_ids[~ignored], minlength=n_frames * n_classes).reshape(
        n_frames, n_classes
    )

    columns: dict[str, Any] = {
        "name": _strings(scan.names),
        "path": _strings(scan.paths),
        "split": _strings([source_split] * n_frames),
        "video": _strings(scan.videos),
        "weather": _strings(scan.weather),
        "timeofday": _strings(scan.timeofday),
        "scene": _strings(scan.scene),
        "timestamp": pd.array(scan.timestamps, dtype="Int64"),
    }
    for i, cls in enumerate(CLASSES):
        columns[column_name(cls)] = counts[:, i]
    columns["n_ignored"] = np.bincount(frame_ids[ignored], minlength=n_frames)
    columns["n_boxes"] = np.bincount(frame_ids, minlength=n_frames)
    return pd.DataFrame(columns)


def _boxes_table(scan: _Scan) -> pd.DataFrame:
    """The boxes DataFrame from the collected box columns."""
    try:
        label_ids = _strings(scan.box_id)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # det_20 ids are strings; older files use ints. Keep one column type.
        label_ids = _strings([v if v is None or type(v) is str else _id_text(v) for v in scan.box_id])
    # name and category are lookups by index: arrow's take is ~20x faster than
    # building 1.3M Python string references into a new column.
    frame_names = pa.array(scan.names, type=pa.large_string())
    class_names = pa.array(CLASSES, type=pa.large_string())
    return pd.DataFrame(
        {
            "name": _strings(frame_names.take(pa.array(_ints(scan.box_frame)))),
            "category": _strings(class_names.take(pa.array(_ints(scan.box_class)))),
            "raw_category": _strings(scan.box_raw),
            "x1": _floats(scan.box_x1),
            "y1": _floats(scan.box_y1),
            "x2": _floats(scan.box_x2),
            "y2": _floats(scan.box_y2),
            "ignored": _bools(scan.box_ignored),
            "occluded": _bools(scan.box_occluded),
            "truncated": _bools(scan.box_truncated),
            "label_id": label_ids,
        }
    )


try:
    _STR_DTYPE = pd.StringDtype(na_value=np.nan)
    """pandas' ``str`` dtype (the default string dtype from pandas 3): null is NaN."""
except TypeError:  # pandas < 2.3 has no NaN-variant; its "string" dtype uses pd.NA
    _STR_DTYPE = pd.StringDtype()


def _strings(values: list[str | None] | pa.Array) -> Any:
    """A str column, built through arrow (twice as fast as from a list directly).

    The explicit dtype keeps an all-null column (``path`` with no images) a
    string column, not object/null, so parquet files agree on its type.
    """
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.large_string())
    return pd.array(values, dtype=_STR_DTYPE)


def _ints(values: list[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=len(values))


def _floats(values: list[float]) -> np.ndarray:
    return np.fromiter(values, dtype=np.float64, count=len(values))


def _bools(values: list[bool]) -> np.ndarray:
    return np.fromiter(values, dtype=bool, count=len(values))


def _report_bad_label(report: MalformedReport, file: str, frame: str, label: Any) -> None:
    """Work out why a label was not kept, and count it.

    Off the hot path: only labels that failed the fast checks come here.
    """
    if type(label) is not dict:
        report.add(BAD_LABEL, file=file, frame=frame, detail=type(label).__name__)
        return
    raw = label.get("category")
    box = label.get("box2d")
    label_id = _label_id(label)
    if type(raw) is not str or raw not in _CATEGORY_TABLE:
        if box is None:
            # e.g. "lane" or "drivable area" poly2d labels: not part of detection.
            report.non_detection += 1
        else:
            report.add(UNKNOWN_CATEGORY, file=file, frame=frame, label_id=label_id, detail=short_repr(raw))
        return
    if type(box) is not dict:
        report.add(MISSING_BOX, file=file, frame=frame, label_id=label_id, detail=short_repr(box))
        return
    coords = tuple(box.get(k) for k in ("x1", "y1", "x2", "y2"))
    reason = box_problem(box, allow_zero=False) or EMPTY_BOX
    report.add(reason, file=file, frame=frame, label_id=label_id, detail=short_repr(coords))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic objects.

    Parsing det_train makes ~5M dicts; with the collector on, its repeated
    full passes over them cost as much as the parsing itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _label_id(label: dict[str, Any]) -> str | None:
    """The label's id as a string (det_20 ids are strings; older files use ints)."""
    label_id = label.get("id")
    if label_id is None or type(label_id) is str:
        return label_id
    return str(label_id)


_MISSING = object()
"""An attribute key that is not there (counted apart from a bad value)."""


def _bad_attribute(report: MalformedReport, file: str, frame: str, key: str, value: object) -> str:
    """Count a missing frame attribute or one outside ATTRIBUTE_VALUES; it becomes "undefined"."""
    if value is _MISSING:
        report.add(MISSING_ATTRIBUTE, file=file, frame=frame, detail=key)
    else:
        report.add(UNKNOWN_ATTRIBUTE_VALUE, file=file, frame=frame, detail=f"{key}={short_repr(value)}")
    return UNDEFINED


def _id_text(value: object) -> str:
    """A non-string label id as text (an int too long for str() keeps its type name)."""
    try:
        return str(value)
    except ValueError:
        return f"<{type(value).__name__}>"
