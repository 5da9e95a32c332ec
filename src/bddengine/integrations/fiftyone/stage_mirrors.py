"""One mirror per stage: the fields, tags and brain runs each kind of run adds to the dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bddengine.errors import StageInputError
from bddengine.integrations.fiftyone.base import BOX_FIELD, DEFAULT_FAILURE_SCORE, POOL_TABLES, _record
from bddengine.integrations.fiftyone.conversions import (
    FrameMatch,
    detection_doc,
    detections_doc,
    match_eval_boxes,
    relative_box,
    set_label_docs,
)
from bddengine.integrations.fiftyone.live import _write_embeddings
from bddengine.integrations.fiftyone.names import EvalNames, autolabel_names, mined_names, run_label
from bddengine.integrations.fiftyone.plan import embed_model
from bddengine.integrations.fiftyone.sync_report import SyncReport
from bddengine.runs import CONFIG_FILE, RunRef
from bddengine.runs.layout import AUTOLABEL, EMBED, EVAL, MINE, SPLIT
from bddengine.runs.lineage import recorded_input


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise StageInputError(f"{path} missing: re-run that stage with --force")
    return json.loads(path.read_text())


def _run_config(ref: RunRef) -> dict[str, Any]:
    try:
        return yaml.safe_load((ref.path / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _known(ds, names, ref: RunRef, what: str, report: SyncReport) -> set[str]:
    """Names that are samples of the dataset; the others are reported."""
    have = set(ds.values("frame_name"))
    names = list(names)
    unknown = [n for n in names if n not in have]
    if unknown:
        report.mismatches.append(f"{ref.name}: {len(unknown)} {what} frame(s) are not in {ds.name} "
                                 f"(first: {unknown[0]}); they are not shown")
    return {n for n in names if n in have}


def _sizes(ds) -> dict[str, tuple[int, int]]:
    names, widths, heights = ds.values(["frame_name", "metadata.width", "metadata.height"])
    return {n: (int(w), int(h)) for n, w, h in zip(names, widths, heights, strict=True)}


def _mirror_embed(fo, ds, ref: RunRef, runs_dir: Path, report: SyncReport) -> dict[str, Any]:

    key = embed_model(ref)
    frames = EMBED.frames.read(ref, columns=["name"])
    vectors = EMBED.embeddings.read(ref)
    try:
        done = _write_embeddings(fo, ds, frames["name"].tolist(), vectors, brain_key=f"{key}_sim",
                                 field=None, visualization_key=f"{key}_viz")
    except ValueError as exc:
        report.mismatches.append(f"{ref.name}: {exc}; not mirrored")
        return _record()
    return _record([done["field"]], brain_keys=[k for k in (done["similarity"], done["visualization"]) if k],
                   visualization_method=done["visualization_method"])


def _mirror_split(fo, ds, ref: RunRef, runs_dir: Path, report: SyncReport) -> dict[str, Any]:
    pool_of: dict[str, str] = {}
    for pool, table in POOL_TABLES.items():
        path = table.at(ref)
        if path.is_file():
            pool_of.update(dict.fromkeys(pd.read_parquet(path, columns=["name"])["name"], pool))
    known = _known(ds, pool_of, ref, "pool", report)
    ds.set_values("pool", {n: p for n, p in pool_of.items() if n in known}, key_field="frame_name")
    tags = []
    for pool in POOL_TABLES:
        names = [n for n, p in pool_of.items() if p == pool and n in known]
        if names:
            ds.select_by("frame_name", names).tag_samples(f"pool:{pool}")
            tags.append(f"pool:{pool}")
    return _record(["pool"], tags)


def _mirror_eval(fo, ds, ref: RunRef, runs_dir: Path, report: SyncReport) -> dict[str, Any]:
    names = EvalNames(run_label(ref))
    result = ref.result()
    split = recorded_input(runs_dir, result, "split")
    gt_path = SPLIT.eval_gt.at(split) if split else Path(str(result.get("inputs", {}).get("eval_gt", "")))
    preds = _read_json(EVAL.preds.at(ref))
    gt = _read_json(gt_path)
    worst = _read_json(EVAL.worst_slice.at(ref))
    failures = _read_json(EVAL.failures.at(ref))
    threshold = float((_run_config(ref).get("eval") or {}).get("failure_score", DEFAULT_FAILURE_SCORE))
    matches = match_eval_boxes(gt, preds, score_threshold=threshold)
    box_errors = _read_json(EVAL.box_errors.at(ref)) or {}  # eval runs made before it have none
    known = _known(ds, matches, ref, "eval", report)
    sizes = _sizes(ds)
    dets = {}
    for frame in preds:
        name = frame["name"]
        if name not in known:
            continue
        w, h = sizes[name]
        states = matches[name].pred
        errors = (box_errors.get(name) or {}).get("pred") or [None] * len(states)
        dets[name] = detections_doc([
            detection_doc(lab["category"], relative_box(lab["box2d"], w, h), confidence=float(lab["score"]),
                          **{names.eval_key: s}, **({names.error_key: e} if e else {}))
            for lab, s, e in zip(frame.get("labels") or [], states, errors, strict=True)
        ])
    for name in known - set(dets):
        dets[name] = detections_doc([])
    set_label_docs(fo, ds, names.pred_field, dets)
    for count, values in zip(names.counts, ("tp", "fp", "fn"), strict=True):
        ds.set_values(count, {n: getattr(matches[n], values) for n in known}, key_field="frame_name")
    _mark_ground_truth(ds, matches, known, names.eval_key)
    if box_errors:
        _mark_gt_errors(ds, gt, box_errors, known, names.error_key)
    worst_frames = [n for n in worst.get("per_frame", {}) if n in known]
    failure_frames = [f["name"] for f in failures if f["name"] in known]
    ds.select_by("frame_name", worst_frames).tag_samples(names.worst_tag)
    ds.select_by("frame_name", failure_frames).tag_samples(names.failure_tag)
    for name, m in worst.get("per_frame", {}).items():
        got = matches.get(name)
        if got is not None and (got.tp, got.fp, got.fn) != (m.get("tp"), m.get("fp"), m.get("fn")):
            report.mismatches.append(
                f"{ref.name}: {name} shows tp/fp/fn {got.tp}/{got.fp}/{got.fn} in the App but "
                f"{EVAL.worst_slice.file} has {m.get('tp')}/{m.get('fp')}/{m.get('fn')}")
    fields = [names.pred_field, *names.counts, f"{BOX_FIELD}.detections.{names.eval_key}"]
    if box_errors:
        fields.append(f"{BOX_FIELD}.detections.{names.error_key}")
    return _record(fields,
                   [names.worst_tag, names.failure_tag], label=run_label(ref), iter=ref.iter, tag=ref.tag,
                   error_types=bool(box_errors),
                   score_threshold=threshold, worst_slice=(worst.get("slice") or {}).get("key"),
                   n_worst=len(worst_frames), n_failures=len(failure_frames))


def _mark_gt_errors(ds, gt: list[dict[str, Any]], box_errors: dict[str, Any], known: set[str],
                    error_key: str) -> None:
    """Set ``ground_truth.detections.<error_key>`` to each GT box's TIDE type (``miss``, ``tp``, ...)."""
    by_id = {}
    for frame in gt:
        types = (box_errors.get(frame["name"]) or {}).get("gt") or []
        by_id[frame["name"]] = {str(lab.get("id")): t for lab, t in zip(frame.get("labels") or [], types,
                                                                       strict=False) if t}
    names, label_ids = ds.values(["frame_name", f"{BOX_FIELD}.detections.label_id"])
    values = {}
    for name, lids in zip(names, label_ids, strict=True):
        if name in known and lids:
            marks = [by_id.get(name, {}).get(str(lid)) if lid is not None else None for lid in lids]
            if any(marks):
                values[name] = marks
    if values:
        ds.set_values(f"{BOX_FIELD}.detections.{error_key}", values, key_field="frame_name", skip_none=True,
                      dynamic=True)


def _mark_ground_truth(ds, matches: dict[str, FrameMatch], known: set[str], eval_key: str) -> None:
    """Set ``ground_truth.detections.<eval_key>`` to tp / fn / ignored on the eval frames' boxes.

    One list of marks per frame, aligned with its boxes (None: left unset), in one bulk write.
    """
    names, label_ids = ds.values(["frame_name", f"{BOX_FIELD}.detections.label_id"])
    values = {}
    for name, lids in zip(names, label_ids, strict=True):
        if name in known and lids:
            marks = [matches[name].gt.get(str(lid)) if lid is not None else None for lid in lids]
            if any(marks):
                values[name] = marks
    if values:
        ds.set_values(f"{BOX_FIELD}.detections.{eval_key}", values, key_field="frame_name", skip_none=True,
                      dynamic=True)


def _mirror_mine(fo, ds, ref: RunRef, runs_dir: Path, report: SyncReport) -> dict[str, Any]:
    doc = _read_json(MINE.mined.at(ref))
    tag, rank_field, sim_field = mined_names(run_label(ref))
    frames = {f["name"]: f for f in doc.get("frames", [])}
    known = _known(ds, frames, ref, "mined", report)
    ds.set_values(rank_field, {n: int(frames[n]["rank"]) for n in known}, key_field="frame_name")
    fields = [rank_field]
    sims = {n: float(frames[n]["similarity"]) for n in known if frames[n].get("similarity") is not None}
    if sims:
        ds.set_values(sim_field, sims, key_field="frame_name")
        fields.append(sim_field)
    ds.select_by("frame_name", sorted(known)).tag_samples(tag)
    return _record(fields, [tag], label=run_label(ref), strategy=doc.get("strategy"), n_mined=len(known))


def _mirror_autolabel(fo, ds, ref: RunRef, runs_dir: Path, report: SyncReport) -> dict[str, Any]:
    frames = _read_json(AUTOLABEL.autolabels.at(ref))
    queue = _read_json(AUTOLABEL.review_queue.at(ref))
    box_field, tag = autolabel_names(run_label(ref))
    known = _known(ds, [f["name"] for f in frames], ref, "auto-labeled", report)
    sizes = _sizes(ds)
    dets = {}
    for frame in frames:
        if frame["name"] not in known:
            continue
        w, h = sizes[frame["name"]]
        dets[frame["name"]] = detections_doc([
            detection_doc(lab["category"], relative_box(lab["box2d"], w, h),
                          confidence=float(lab["score"]) if lab.get("score") is not None else None,
                          route=lab.get("route"))
            for lab in frame.get("labels") or [] if lab.get("box2d")
        ])
    set_label_docs(fo, ds, box_field, dets)
    review = [q["name"] for q in queue if q["name"] in known]
    ds.select_by("frame_name", review).tag_samples(tag)
    return _record([box_field], [tag], label=run_label(ref), n_review=len(review))


MIRRORS: dict[str, Callable[..., dict[str, Any]]] = {
    "embed": _mirror_embed,
    "split": _mirror_split,
    "eval": _mirror_eval,
    "mine": _mirror_mine,
    "autolabel": _mirror_autolabel,
}
