"""Score a prediction file against a BDD100K label file, overall and per slice."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.bdd.loader import load_label_file
from bddengine.bdd.validate import NOTE_PRED_NOT_IN_GT, CheckedLabels, OnDuplicate, check_frames
from bddengine.evaluation.cache import MatchCache, build_match_cache
from bddengine.evaluation.coco import METRICS, UnknownFrameError
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


class ScoreError(ValueError):
    """Options or inputs that ``score`` cannot turn into a table; the message says what to change."""


def official_table(summary: dict[str, float | None], table: dict[str, dict[str, float | None]]) -> dict[str, list]:
    """The scores in the official evaluator's ``--out-file`` layout, to diff against it.

    ``{metric: [{class: percent}, {"OVERALL": percent}]}`` for the 12 COCO
    metrics, percent as the official evaluator writes them, None where it writes NaN.
    """
    def pct(v: float | None) -> float | None:
        return None if v is None else 100 * v

    return {
        metric: [{c: pct(table[c][metric]) for c in CLASSES}, {"OVERALL": pct(summary[metric])}]
        for metric in METRICS
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
    on_duplicate: OnDuplicate = "error",
    progress: bool = False,
) -> dict[str, Any]:
    """Score BDD predictions against BDD labels: the ``bddengine score`` document.

    Both files go through the shared label rules (`bddengine.bdd.validate`):
    what they leave out is counted under ``"checks"``.

    Args:
        gt_path: BDD label file (a JSON list of frames).
        pred_path: predictions in the same format, labels with ``score``.
        by: frame attributes (of weather, timeofday, scene) whose value
            combinations present in the GT are the slices; a frame without one
            belongs to its ``"undefined"`` value.
        min_frames: slices with fewer frames are left out.
        n_boot: bootstrap resamples for each slice's CI.
        seed: bootstrap seed.
        marginals: also add ``"marginals"``: the slices of each ``by`` attribute
            alone, in the same row format.
        on_duplicate: a frame listed twice in a file: ``error``, keep the
            ``last`` record (as the official evaluator does) or ``merge`` them.
        progress: show progress bars.

    Returns:
        ``{"protocol": "bdd100k-det", "overall": {"n_frames", "map50", "map",
        "ap50_per_class"}, "slices": [{"key", "n_frames", "map50", "map",
        "ci95"}, ...], "official": {metric: [{class: %}, {"OVERALL": %}]},
        "checks": {"gt": ..., "pred": ...}}``, fractions in 0-1 (``official`` in
        percent, as the official evaluator writes it), None where there is no GT.

    Raises:
        LabelFileError: a file is missing or not a JSON list of frames, holds a
            repeated frame (``on_duplicate="error"``) or an unreadable flag.
        UnknownFrameError: not one prediction frame is in the GT (a frame the GT
            lacks is left out, as the official evaluator does, and counted as a note).
        ScoreError: an option is out of range, no slice is left to score, or the
            prediction file holds no score at all (the arguments look swapped).
    """
    check_options(by=by, min_frames=min_frames, n_boot=n_boot)
    gt_records = load_label_file(gt_path)
    pred_records = load_label_file(pred_path, kind="prediction")
    check_not_swapped(gt_records, pred_records, gt_path=gt_path, pred_path=pred_path)
    gt = check_frames(gt_records, file=str(gt_path), predictions=False,
                      on_duplicate=on_duplicate, attributes=by)
    pred = check_frames(pred_records, file=str(pred_path), predictions=True,
                        on_duplicate=on_duplicate, attributes=())
    if not gt.frames:
        raise ScoreError(f"{gt_path}: no usable ground-truth frame ({gt.malformed.total} malformed records): "
                         "check that this is a BDD label file.")
    pred.frames = predictions_on(gt.frames, pred, file=str(pred_path), gt_path=gt_path)
    try:
        cache = build_match_cache(gt.frames, pred.frames, checked=True)
    except UnknownFrameError as err:
        raise UnknownFrameError(f"{pred_path}: {err} (ground truth: {gt_path})") from None
    overall = evaluate_overall(cache)
    options = {"n_boot": n_boot, "seed": seed, "min_frames": min_frames, "progress": progress}
    slices = evaluate_slices(cache, slice_keys(gt.frames, by), **options)
    if not slices:
        raise ScoreError(
            f"no slice by {','.join(by)} has --min-frames {min_frames} frames or more "
            f"({cache.n_frames} frames in {gt_path}): lower --min-frames or slice by fewer attributes."
        )
    doc: dict[str, Any] = {
        "protocol": PROTOCOL,
        "overall": {key: overall[key] for key in ("n_frames", "map50", "map", "ap50_per_class")},
        "slices": [s.to_dict() for s in slices],
    }
    if marginals:
        doc["marginals"] = [
            s.to_dict() for attribute in by
            for s in evaluate_slices(cache, slice_keys(gt.frames, [attribute]), **options)
        ]
    doc["official"] = official_table(overall["summary"], overall["table"])
    doc["checks"] = {"gt": gt.malformed.to_dict(), "pred": pred.malformed.to_dict()}
    return doc


def predictions_on(gt_frames: list[dict[str, Any]], pred: CheckedLabels, *, file: str,
                   gt_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The prediction frames that the ground truth has; the others are left out and counted.

    The official evaluator scores the GT frames only and drops a prediction frame the GT
    lacks without a word; here each is a note. When no prediction frame is in the GT the
    predictions were made for another file, and its table of zeros would mean nothing.

    Raises:
        UnknownFrameError: not one prediction frame is in the ground truth.
    """
    names = {f["name"] for f in gt_frames}
    kept = [f for f in pred.frames if f["name"] in names]
    unknown = [f["name"] for f in pred.frames if f["name"] not in names]
    if unknown and not kept:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UnknownFrameError(
            f"{file}: none of its frames is in the ground truth {gt_path} (e.g. {unknown[0]!r}{more}); "
            "score predictions against the label file they were made for."
        )
    for name in unknown:
        pred.malformed.note(NOTE_PRED_NOT_IN_GT, file=file, frame=name)
    return kept


def check_not_swapped(gt_records: list[Any], pred_records: list[Any], *, gt_path: str | os.PathLike[str],
                      pred_path: str | os.PathLike[str]) -> None:
    """Raise `ScoreError` when the prediction file carries no score at all but labels.

    Such a file is a label file; with the arguments swapped the official evaluator
    stops on the first label without a score, and a table of zeros would mislead.
    """
    n_pred, n_scored = _score_counts(pred_records)
    if n_pred == 0 or n_scored > 0:
        return
    gt_scored = _score_counts(gt_records)[1]
    hint = (f" while {gt_path} carries {gt_scored} scores" if gt_scored else "")
    raise ScoreError(
        f"{pred_path} holds {n_pred} labels and not one score{hint}: it looks like a label file, so the "
        "arguments look swapped. Give the label file first and the predictions second: "
        f"bddengine score {pred_path if gt_scored else 'LABELS.json'} "
        f"{gt_path if gt_scored else pred_path}."
    )


def _score_counts(records: list[Any]) -> tuple[int, int]:
    """(labels, labels with a "score" key) over the frame records."""
    n = scored = 0
    for record in records:
        labels = record.get("labels") if type(record) is dict else None
        if type(labels) is not list:
            continue
        for label in labels:
            n += 1
            scored += type(label) is dict and label.get("score") is not None
    return n, scored


def check_options(*, by: Sequence[str], min_frames: int, n_boot: int) -> None:
    """Raise `ScoreError` for an option out of range or an attribute BDD frames do not have."""
    unknown = [a for a in by if a not in FRAME_ATTRIBUTES]
    if not by or unknown:
        raise ScoreError(
            f"--by {','.join(by)!s}: {', '.join(map(repr, unknown)) or 'nothing'} is not a BDD frame "
            f"attribute; slice by one or more of {','.join(FRAME_ATTRIBUTES)}."
        )
    if len(set(by)) != len(by):
        raise ScoreError(f"--by {','.join(by)}: an attribute is listed twice; list each once.")
    if min_frames < 1:
        raise ScoreError(f"--min-frames {min_frames}: a slice needs at least 1 frame; use 1 or more.")
    if n_boot < 0:
        raise ScoreError(f"--n-boot {n_boot}: the number of bootstrap resamples is 0 (no CI) or more.")
