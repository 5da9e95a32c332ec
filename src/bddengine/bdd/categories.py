"""BDD100K det_20 categories and the official category mapping.

The evaluated classes, their order (which is also the YOLO class id order), the
legacy names and the ignored classes follow the official BDD100K detection
protocol (bdd100k ``configs/det.toml``, scalabel ``eval/detect.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

CLASSES: tuple[str, ...] = (
    "pedestrian",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
    "traffic light",
    "traffic sign",
)
"""The 10 evaluated classes; the index is the YOLO class id."""

CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

LEGACY_NAMES: dict[str, str] = {
    "bike": "bicycle",
    "motor": "motorcycle",
    "person": "pedestrian",
    "van": "car",
    "caravan": "car",
}
"""Old category names that the official evaluator maps onto evaluated classes."""

IGNORED_NAMES: dict[str, str] = {
    "other person": "pedestrian",
    "other vehicle": "car",
    "trailer": "truck",
}
"""Categories mapped onto a class AND ignored: scored like COCO ``iscrowd`` regions."""

FRAME_ATTRIBUTES: tuple[str, ...] = ("weather", "timeofday", "scene")

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "weather": ("clear", "overcast", "snowy", "rainy", "partly cloudy", "foggy", "undefined"),
    "timeofday": ("daytime", "night", "dawn/dusk", "undefined"),
    "scene": (
        "city street",
        "highway",
        "residential",
        "parking lot",
        "tunnel",
        "gas stations",
        "undefined",
    ),
}
"""BDD's native frame-attribute values, most common first."""

UNDEFINED = "undefined"


def map_category(name: str) -> tuple[str, bool] | None:
    """Map a raw BDD category onto an evaluated class.

    Args:
        name: the ``category`` string of a label, e.g. ``"traffic light"`` or ``"van"``.

    Returns:
        ``(class_name, ignored)``, or ``None`` when the category is not part of the
        detection task (e.g. ``"lane"`` or ``"drivable area"`` in older label files).
    """
    if name in CLASS_ID:
        return name, False
    if name in LEGACY_NAMES:
        return LEGACY_NAMES[name], False
    if name in IGNORED_NAMES:
        return IGNORED_NAMES[name], True
    return None


def column_name(class_name: str) -> str:
    """Column-safe form of a class name: ``"traffic light"`` -> ``"n_traffic_light"``."""
    return "n_" + class_name.replace(" ", "_")


ATTRIBUTES_KNOWN = "attributes_known"
"""Optional bool column of a frames table: False for an image no label file names, whose
weather, timeofday and scene read ``undefined`` only because nobody recorded them."""


def known_attributes(frames: pd.DataFrame) -> pd.DataFrame:
    """The frames whose attributes are known (all of them without an ``attributes_known`` column)."""
    if ATTRIBUTES_KNOWN not in frames.columns:
        return frames
    return frames[frames[ATTRIBUTES_KNOWN].fillna(True).astype(bool).to_numpy()]
