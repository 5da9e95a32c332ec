"""Score a prediction file against a BDD100K label file, overall and per slice."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.bdd.loader import load_label_file
from bddengine.evaluation.cache import MatchCache, build_match_cache
from bddengine.evaluation.coco import UnknownFrameError
from bddengine.evaluation.slices import evaluate_slices, slice_keys

PROTOCOL = "bdd100k-det"


def evaluate_overall(cache: MatchCache) -> dict[str, Any]:
    """The official BDD100K detection scores over all frames (fractions in 0-1).

    Returns:
        ``{"n_frames", "map50", "map", "ap50_per_class", "ap_per_class",
        "summary", "table", "n_pred_dropped"}``: ``summary`` holds AP, AP50,
        AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl over the classes
        with GT, ``table[class]`` the same per class (None without GT).
    """
    table = cache.table
    return {
        "n_frames": cache.n_frames,
        "map50": cache.summary["AP50"],
        "map": cache.summary["AP"],
        "ap50_per_class": {c: table[c]["AP50"] for c in CLASSES},
        "ap_per_class": {c: table[c]["AP"] for c in CLASSES},
        "summary": dict(cache.summary),
        "table": {c: dict(row) for c, row in table.items()},
        "n_pred_dropped": cache.n_pred_dropped,
    }


def score_files(
    gt_path: str | os.PathLike[str],
    pred_path: str | os.PathLike[str],
    *,
    by: Sequence[str] = FRAME_ATTRIBUTES,
    min_frames: int = 1,
    n_boot: int = 1000,
    seed: int = 42,
    marginals: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Score BDD predictions against BDD labels: the ``bddengine score`` document.

    Args:
        gt_path: BDD label file (a JSON list of frames).
        pred_path: predictions in the same format, labels with ``score``.
        by: frame attributes whose value combinations present in the GT are the
            slices; a frame without one belongs to its ``"undefined"`` value.
        min_frames: slices with fewer frames are left out.
        n_boot: bootstrap resamples for each slice's CI.
        seed: bootstrap seed.
        marginals: also add ``"marginals"``: the slices of each ``by`` attribute
            alone, in the same row format.
        progress: show progress bars.

    Returns:
        ``{"protocol": "bdd100k-det", "overall": {"n_frames", "map50", "map",
        "ap50_per_class"}, "slices": [{"key", "n_frames", "map50", "map",
        "ci95"}, ...]}``, fractions in 0-1, None where there is no GT.

    Raises:
        LabelFileError: a file is missing or not a JSON list of frames.
        UnknownFrameError: a prediction frame is not in the GT (names it and the file).
    """
    gt_frames = load_label_file(gt_path)
    pred_frames = load_label_file(pred_path)
    try:
        cache = build_match_cache(gt_frames, pred_frames)
    except UnknownFrameError as err:
        raise UnknownFrameError(f"{pred_path}: {err} (ground truth: {gt_path})") from None
    overall = evaluate_overall(cache)
    options = {"n_boot": n_boot, "seed": seed, "min_frames": min_frames, "progress": progress}
    doc: dict[str, Any] = {
        "protocol": PROTOCOL,
        "overall": {key: overall[key] for key in ("n_frames", "map50", "map", "ap50_per_class")},
        "slices": [s.to_dict() for s in evaluate_slices(cache, slice_keys(gt_frames, by), **options)],
    }
    if marginals:
        doc["marginals"] = [
            s.to_dict() for attribute in by
            for s in evaluate_slices(cache, slice_keys(gt_frames, [attribute]), **options)
        ]
    return doc
