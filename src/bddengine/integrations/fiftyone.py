"""Mirror run folders into persistent FiftyOne datasets.

The run folders stay the source of truth; FiftyOne is the place to look at them.
Each collect run gets one dataset (``<prefix>-<name>-<NN_collect>``); every later
run descending from that collect run adds its fields, tags and brain runs to it:

- ``collect``: one sample per frame, slice tags, ``ground_truth`` boxes.
- ``embed``: ``<model>_embedding``, a similarity index ``<model>_sim`` (sort by
  similarity) and a 2-D map ``<model>_viz`` (UMAP when umap-learn is installed,
  else PCA), both from the stored vectors.
- ``split``: a ``pool`` field (train / val / eval / mining / excluded), ``pool:*`` tags.
- ``eval``: predictions ``pred_iter<N>[_<tag>]`` with per-box TP / FP / FN, per-frame
  counts, ``worst-slice/<label>`` and ``worst-slice-failure/<label>`` tags.
- ``mine``: ``mined/<arm>`` tags and ``mined_<arm>_rank``.
- ``autolabel``: ``autolabel_<arm>`` boxes with their route, ``review/<arm>`` tags.

``dataset.info["bddengine_mirror"]`` records which run each field, tag and brain run
came from, so `sync_runs` can replace what a re-run changed, remove what belongs to
deleted run folders and report any mismatch. Saved views (one per slice, the worst
slice and its failures, mined frames, review queues, pools) are rebuilt on each sync.

FiftyOne is imported lazily: it is slow to import and needs a MongoDB server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bddengine.bdd.categories import ATTRIBUTES_KNOWN
from bddengine.errors import StageInputError
from bddengine.runs import CONFIG_FILE, RunRef, list_runs
from bddengine.runs.layout import AUTOLABEL, COLLECT, EMBED, EVAL, MINE, SPLIT
from bddengine.runs.lineage import collect_of, recorded_input

BOX_FIELD = "ground_truth"
INFO_KEY = "bddengine_mirror"
RUNS_KEY = "bddengine_runs"
MIRROR_VERSION = 2
"""Bumped when the mirror's layout changes; an older dataset is rebuilt on sync."""
MIRRORED_STAGES: tuple[str, ...] = ("collect", "embed", "split", "eval", "mine", "autolabel")
POOL_TABLES = {"train": SPLIT.train_pool, "val": SPLIT.val_pool, "eval": SPLIT.eval_pool,
               "mining": SPLIT.mining_pool, "excluded": SPLIT.excluded}
WORST_TAG, FAILURE_TAG = "worst-slice", "worst-slice-failure"
UNKNOWN_TAG = "attributes:unknown"
"""Tags a frame no label file names instead of its weather/timeofday/scene tags."""
COLLECT_FIELDS = frozenset({
    "id", "filepath", "tags", "metadata", "created_at", "last_modified_at",
    "frame_name", "video", "weather", "timeofday", "scene", "labeled", BOX_FIELD,
})
DEFAULT_FAILURE_SCORE = 0.25
"""Score threshold of the per-frame counts when an eval run's config does not say."""
_MONGO_HELP = ("start MongoDB (`eval \"$(tools/local-mongod.sh start)\"` from the repository root, "
               "or set FIFTYONE_DATABASE_URI), or disable the mirror with "
               "--set fiftyone.enabled=false (README, 'Explore in the FiftyOne App')")


class FiftyOneUnavailable(StageInputError):
    """FiftyOne cannot reach its database."""


def _import_fiftyone():
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    try:
        import fiftyone as fo
    except Exception as exc:  # noqa: BLE001 - fiftyone raises many kinds on a missing DB
        raise FiftyOneUnavailable(
            f"FiftyOne could not start ({type(exc).__name__}: {exc}). {_MONGO_HELP[0].upper()}{_MONGO_HELP[1:]}"
        ) from exc
    return fo


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn a lost MongoDB into `FiftyOneUnavailable` with what to do."""
    try:
        yield
    except FiftyOneUnavailable:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__} {exc}".lower()
        if any(w in text for w in ("serverselectiontimeout", "connection refused", "mongod",
                                   "autoreconnect", "connectionfailure")):
            raise FiftyOneUnavailable(f"FiftyOne's database is unreachable ({exc}): {_MONGO_HELP}") from exc
        raise


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------


def project_id(runs_dir: Path) -> str:
    """A short hash of the absolute runs folder: two project folders never share a dataset name."""
    return hashlib.sha256(str(Path(runs_dir).resolve()).encode()).hexdigest()[:8]


def dataset_name(prefix: str, name: str, collect_run: str, runs_dir: Path) -> str:
    """The FiftyOne dataset of one collect run of the project at ``runs_dir`` (the name collect gives it)."""
    return f"{prefix}-{name}-{project_id(runs_dir)}-{collect_run}"


class ProjectMismatch(StageInputError):
    """A dataset of the right name belongs to another project folder; it is left alone."""


def check_owner(ds, runs_dir: Path) -> None:
    """Refuse to touch a dataset that records another project's runs folder.

    Raises:
        ProjectMismatch: the dataset's ``info`` names another runs folder (both are named).
    """
    theirs = ds.info.get(INFO_KEY, {}).get("runs_dir")
    ours = str(Path(runs_dir).resolve())
    if theirs and theirs != ours:
        raise ProjectMismatch(
            f"FiftyOne dataset {ds.name!r} belongs to the runs folder {theirs}, not to this one ({ours}); "
            "bddengine leaves it alone. Give this project another `name` or `fiftyone.dataset_prefix`, "
            "or use another database (FIFTYONE_DATABASE_NAME)")


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes: ``dawn/dusk`` -> ``dawn-dusk``.

    Saved-view names are built from slugs so that FiftyOne's own URL slug of a view
    equals its name (FiftyOne drops ``/`` from slugs rather than replacing it).
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def field_slug(text: str) -> str:
    """A slug usable in a field name: ``random-slice`` -> ``random_slice``."""
    return slug(text).replace("-", "_")


def run_label(ref: RunRef) -> str:
    """How a run is named in fields, tags and views.

    eval: ``iter<N>`` plus ``-<tag>``; mine / autolabel: the arm, prefixed with
    ``iter<N>-`` after iteration 0 (``prototype``, ``iter1-prototype``).
    """
    if ref.stage == "eval":
        return f"iter{ref.iter or 0}" + (f"-{ref.tag}" if ref.tag else "")
    arm = ref.tag or "default"
    return arm if not ref.iter else f"iter{ref.iter}-{arm}"


@dataclass(frozen=True)
class EvalNames:
    """Where one eval run shows up in the dataset."""

    label: str

    @property
    def pred_field(self) -> str:
        return f"pred_{field_slug(self.label)}"

    @property
    def eval_key(self) -> str:
        """The per-box attribute (``tp``/``fp``/``fn``) and the prefix of the per-frame counts."""
        return f"eval_{field_slug(self.label)}"

    @property
    def counts(self) -> list[str]:
        return [f"{self.eval_key}_{c}" for c in ("tp", "fp", "fn")]

    @property
    def worst_tag(self) -> str:
        return f"{WORST_TAG}/{self.label}"

    @property
    def failure_tag(self) -> str:
        return f"{FAILURE_TAG}/{self.label}"


def mined_names(label: str) -> tuple[str, str, str]:
    """(tag, rank field, similarity field) of one mine run."""
    return f"mined/{label}", f"mined_{field_slug(label)}_rank", f"mined_{field_slug(label)}_similarity"


def autolabel_names(label: str) -> tuple[str, str]:
    """(boxes field, review tag) of one autolabel run."""
    return f"autolabel_{field_slug(label)}", f"review/{label}"


def slot_of(ref: RunRef, embed_model: str | None = None) -> str:
    """The mirror slot a run fills; a newer run of the same slot replaces it."""
    if ref.stage in ("collect", "split"):
        return ref.stage
    if ref.stage == "embed":
        return f"embed:{embed_model or 'clip'}"
    return f"{ref.stage}:{run_label(ref)}"


def view_for_run(ref: RunRef) -> str | None:
    """The saved view that shows one run best (``bddengine app --run``)."""
    if ref.stage == "eval":
        return f"{WORST_TAG}-{slug(run_label(ref))}"
    if ref.stage == "mine":
        return f"mined-{slug(run_label(ref))}"
    if ref.stage == "autolabel":
        return f"autolabel-review-queue-{slug(run_label(ref))}"
    if ref.stage == "split":
        return "eval-pool"
    return None


# ---------------------------------------------------------------------------
# pure conversions
# ---------------------------------------------------------------------------


def slice_tags(weather: str, timeofday: str, scene: str) -> list[str]:
    """Tags that make every slice one click away in the App."""
    return [f"weather:{weather}", f"timeofday:{timeofday}", f"scene:{scene}"]


def detections_by_frame(boxes: pd.DataFrame, sizes: dict[str, tuple[int, int]]) -> dict[str, list[dict]]:
    """Boxes grouped per frame, in FiftyOne's relative ``[x, y, w, h]`` form.

    The BDD ``label_id`` is kept (when the boxes have one) so eval marks find their box.
    """
    out: dict[str, list[dict]] = {}
    cols = [boxes[c].to_numpy() for c in ("name", "category", "x1", "y1", "x2", "y2", "ignored")]
    ids = boxes["label_id"].astype(str).to_numpy() if "label_id" in boxes else [None] * len(boxes)
    for name, cat, x1, y1, x2, y2, ignored, label_id in zip(*cols, ids, strict=True):
        w, h = sizes[name]
        det = {"label": cat, "bounding_box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h],
               "iscrowd": bool(ignored)}
        if label_id is not None:
            det["label_id"] = label_id
        out.setdefault(name, []).append(det)
    return out


def relative_box(box2d: dict[str, float], width: int, height: int) -> list[float]:
    """A BDD ``box2d`` (pixels) as FiftyOne's relative ``[x, y, w, h]``."""
    x1, y1 = float(box2d["x1"]), float(box2d["y1"])
    return [x1 / width, y1 / height, (float(box2d["x2"]) - x1) / width, (float(box2d["y2"]) - y1) / height]


def detection_doc(label: str, bounding_box: list[float], **attributes: Any) -> dict[str, Any]:
    """One box as the document FiftyOne stores for a ``fo.Detection`` (None attributes left out).

    Building ``fo.Detection`` objects costs FiftyOne a validated mongoengine document
    per box; with tens of thousands of boxes that is most of a mirror's time. The
    documents are written with `set_label_docs`, and FiftyOne reads them back as
    ordinary ``Detection`` labels (tests/test_fiftyone_mirror.py compares the two routes).
    """
    from bson import ObjectId

    doc = {"_id": ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [], "label": str(label),
           "bounding_box": [float(v) for v in bounding_box]}
    doc.update({k: v for k, v in attributes.items() if v is not None})
    return doc


def detections_doc(detections: list[dict[str, Any]]) -> dict[str, Any]:
    """A frame's boxes (`detection_doc` each) as the document of a ``fo.Detections`` label."""
    return {"_cls": "Detections", "detections": detections}


def set_label_docs(fo, ds, field_name: str, docs: dict[str, dict[str, Any]]) -> None:
    """Set a ``Detections`` field from raw label documents, keyed by ``frame_name``.

    Declares the field first (FiftyOne cannot infer a label type from a document),
    then writes every document in one bulk update without building label objects;
    the boxes' own attributes (``label_id``, eval marks, routes) are declared by the
    sync's ``add_dynamic_sample_fields``.
    """
    if not ds.has_field(field_name):
        ds.add_sample_field(field_name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    if docs:
        ds.set_values(field_name, docs, key_field="frame_name", validate=False, expand_schema=False)


@dataclass
class FrameMatch:
    """The boxes of one eval frame, marked by bddengine's (official COCOeval) matching at IoU 0.5.

    Attributes:
        gt: GT label id -> ``tp`` (found by a prediction scoring at least the
            threshold), ``fn``, or ``ignored`` (crowd / ignored-category region).
        pred: one entry per prediction of the frame, in ``preds.json`` order:
            ``tp``, ``fp``, ``ignored`` (matched an ignored region), or None (not
            scored: outside the task, or past COCO's 100 detections per class).
        tp: predictions scoring at least the threshold that are TP.
        fp: predictions scoring at least the threshold that are FP.
        fn: GT boxes (not ignored) minus ``tp``.
    """

    gt: dict[str, str] = field(default_factory=dict)
    pred: list[str | None] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0


def match_eval_boxes(
    gt_frames: list[dict[str, Any]], pred_frames: list[dict[str, Any]], *, score_threshold: float
) -> dict[str, FrameMatch]:
    """Mark every GT and predicted box TP / FP / FN exactly as bddengine's evaluator matches them.

    Reuses the evaluator's matching (`bddengine.evaluation.coco.match_boxes`: IoU 0.5,
    classwise, crowd and ignored boxes as ignore regions) and maps COCO's annotation
    ids back to the BDD boxes. Per-frame counts follow
    `bddengine.evaluation.per_frame_metrics` at ``score_threshold``, so the App's
    numbers equal ``worst_slice.json``'s.

    Args:
        gt_frames: BDD ground-truth frames (``eval_gt.json``).
        pred_frames: BDD prediction frames (``preds.json``).
        score_threshold: predictions below it count neither as TP nor FP (the eval
            run's ``eval.failure_score``).

    Returns:
        frame name -> `FrameMatch`, for every GT frame.
    """
    from bddengine.bdd.categories import map_category
    from bddengine.evaluation.coco import frames_to_coco, match_boxes

    pair = frames_to_coco(gt_frames, pred_frames)
    # the annotation ids frames_to_coco gives: frames sorted by name, labels in order, from 1
    gt_key: list[tuple[str, str]] = []
    for frame in sorted(gt_frames, key=lambda f: f["name"]):
        for i, label in enumerate(frame.get("labels") or []):
            if map_category(label.get("category", "")) is not None and label.get("box2d") is not None:
                gt_key.append((frame["name"], str(label.get("id", i))))
    dt_key: list[tuple[str, int]] = []
    for frame in sorted(pred_frames, key=lambda f: f["name"]):
        for i, label in enumerate(frame.get("labels") or []):
            if map_category(label.get("category", "")) is not None:
                dt_key.append((frame["name"], i))
    out = {f["name"]: FrameMatch() for f in gt_frames}
    for f in pred_frames:
        out[f["name"]].pred = [None] * len(f.get("labels") or [])
    dt_score = {i + 1: float(a["score"]) for i, a in enumerate(pair.dt.dataset["annotations"])}
    ev = match_boxes(pair, marks_only=True)  # one area range ("all") and one threshold (0.5)
    for e in ev.evalImgs:
        if e is None:
            continue
        for d, dt_id in enumerate(e["dtIds"]):
            name, idx = dt_key[dt_id - 1]
            state = "ignored" if e["dtIgnore"][0, d] else ("tp" if e["dtMatches"][0, d] > 0 else "fp")
            out[name].pred[idx] = state
            if dt_score[dt_id] >= score_threshold and state != "ignored":
                setattr(out[name], state, getattr(out[name], state) + 1)
        for g, gt_id in enumerate(e["gtIds"]):
            name, label_id = gt_key[gt_id - 1]
            if e["gtIgnore"][g]:
                out[name].gt[label_id] = "ignored"
                continue
            matched = int(e["gtMatches"][0, g])
            found = matched > 0 and dt_score[matched] >= score_threshold
            out[name].gt[label_id] = "tp" if found else "fn"
            out[name].fn += 0 if found else 1
    return out


# ---------------------------------------------------------------------------
# run folders: lineage and the plan of what to mirror
# ---------------------------------------------------------------------------


def embed_model(ref: RunRef) -> str:
    """``clip`` or ``dinov2``: the model family of an embed run (its config.yaml)."""
    try:
        cfg = yaml.safe_load((ref.path / CONFIG_FILE).read_text()) or {}
        return str((cfg.get("embed") or {}).get("model") or "clip")
    except (OSError, yaml.YAMLError):
        return "clip"


def plan_slots(runs: list[RunRef], collect: str, lineage: dict[str, str | None],
               models: dict[str, str]) -> tuple[dict[str, RunRef], list[str]]:
    """Which run fills each mirror slot: the newest one descending from ``collect``.

    Args:
        runs: complete runs, oldest first.
        collect: the collect run whose dataset is synced.
        lineage: run name -> its collect run (None: unknown).
        models: embed run name -> model family.

    Returns:
        ``(plan, skipped)``: slot -> run, and a line for every run left out.
    """
    plan: dict[str, RunRef] = {}
    skipped: list[str] = []
    for ref in runs:
        if ref.stage not in MIRRORED_STAGES or ref.stage == "collect":
            continue
        origin = lineage.get(ref.name)
        if origin is None:
            skipped.append(f"{ref.name}: an input run folder is gone, so its frames cannot be placed")
            continue
        if origin != collect:
            skipped.append(f"{ref.name}: belongs to {origin}, not the newest collect run {collect}")
            continue
        plan[slot_of(ref, models.get(ref.name))] = ref
    return plan, skipped


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What a sync did to the FiftyOne dataset, and what did not add up."""

    dataset: str
    collect: str
    rebuilt: str | None = None
    mirrored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mismatch was found."""
        return not self.mismatches

    def lines(self, *, verbose: bool = True) -> list[str]:
        """The report as text lines; ``verbose=False`` keeps the summary and every problem."""
        out = [f"FiftyOne dataset {self.dataset!r} (from {self.collect}): {len(self.mirrored)} run(s) mirrored, "
               f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, {len(self.views)} saved views"]
        if self.rebuilt:
            out.append(f"  rebuilt from {self.collect}: {self.rebuilt}")
        sections = [("mirrored", self.mirrored), ("unchanged", self.unchanged)] if verbose else []
        sections += [("removed", self.removed), ("not mirrored", self.skipped), ("MISMATCH", self.mismatches)]
        for title, items in sections:
            out += [f"  {title}: {item}" for item in items]
        return out


# ---------------------------------------------------------------------------
# sync
# ---------------------------------------------------------------------------


def sync_runs(cfg, *, full: bool = False, progress: bool = False) -> SyncReport:
    """Make the newest collect run's FiftyOne dataset mirror every run folder under ``cfg.runs_dir``.

    Light by default: runs already mirrored are left alone, newer runs of a slot
    replace the older one's fields, and fields, tags and brain runs of run folders
    that no longer exist are removed. ``full`` rebuilds the dataset from scratch.
    Datasets of this runs folder whose collect run folder is gone are deleted.

    Args:
        cfg: the engine config (``runs_dir``, ``name``, ``fiftyone``).
        full: delete and rebuild the dataset.
        progress: show a progress bar.

    Raises:
        StageInputError: there is no complete collect run.
        FiftyOneUnavailable: MongoDB is unreachable.
    """
    runs = list_runs(Path(cfg.runs_dir))
    collects = [r for r in runs if r.stage == "collect"]
    if not collects:
        raise StageInputError(f"no complete collect run under {cfg.runs_dir}: run `bddengine collect` first")
    return _sync(cfg, runs, collects[-1], full=full, only=None, progress=progress)


def mirror_run(cfg, ref: RunRef, *, progress: bool = False) -> SyncReport:
    """Mirror one run (the end of a stage) into its collect run's dataset, with a light sync.

    ``ref`` fills its slot even when it is not the newest run of it; everything else
    follows `sync_runs` (creating the dataset from the collect run when it is missing).

    Raises:
        StageInputError: the run's collect run cannot be found.
        FiftyOneUnavailable: MongoDB is unreachable.
    """
    runs = list_runs(Path(cfg.runs_dir))
    origin = collect_of(ref, Path(cfg.runs_dir))
    collect = next((r for r in runs if r.name == origin), None)
    if collect is None:
        raise StageInputError(f"{ref.path}: its collect run ({origin or 'unknown'}) is gone; "
                              "nothing to mirror into (`bddengine app --sync` mirrors the newest one)")
    return _sync(cfg, runs, collect, full=False, only=ref, progress=progress)


def try_mirror_run(cfg, ref: RunRef) -> str:
    """`mirror_run` for the end of a stage: never raises, returns a line for the summary."""
    try:
        report = mirror_run(cfg, ref)
    except Exception as exc:  # noqa: BLE001 - the run is committed; the mirror must not fail it
        return (f"FiftyOne: {ref.name} not mirrored ({type(exc).__name__}: {exc}); "
                "`bddengine app --sync` mirrors it later")
    line = f"FiftyOne dataset {report.dataset!r}: `bddengine app --run {ref.name}`"
    if report.mismatches:
        line += f" ({len(report.mismatches)} mismatch(es): {report.mismatches[0]})"
    return line


def _sync(cfg, runs: list[RunRef], collect: RunRef, *, full: bool, only: RunRef | None,
          progress: bool) -> SyncReport:
    runs_dir = Path(cfg.runs_dir)
    lineage = {r.name: collect_of(r, runs_dir) for r in runs if r.stage in MIRRORED_STAGES}
    models = {r.name: embed_model(r) for r in runs if r.stage == "embed"}
    plan, skipped = plan_slots(runs, collect.name, lineage, models)
    if only is not None:
        plan[slot_of(only, models.get(only.name))] = only
    fo = _import_fiftyone()
    name = dataset_name(cfg.fiftyone.dataset_prefix, cfg.name, collect.name, runs_dir)
    report = SyncReport(dataset=name, collect=collect.name, skipped=skipped if only is None else [])
    with _database_errors():
        ds = _open_dataset(fo, name, collect, runs_dir, full=full, report=report)
        state = dict(ds.info.get(INFO_KEY, {}).get("slots", {}))
        _remove_stale_slots(ds, state, plan, runs_dir, report)
        _mirror_slots(fo, ds, state, plan, runs_dir, report, progress=progress)
        _check_fields(ds, state, report)
        primary = _primary_eval(state)
        _tag_primary(ds, state, primary)
        report.views = save_views(fo, ds, state, primary)
        ds.app_config.color_scheme = color_scheme(fo, state, primary)
        ds.add_dynamic_sample_fields()
        _save_state(ds, state, views=report.views)
        if only is None:
            _remove_stale_datasets(fo, cfg, runs_dir, name, report)
    return report


def _remove_stale_slots(ds, state: dict[str, dict], plan: dict[str, RunRef], runs_dir: Path,
                        report: SyncReport) -> None:
    """Remove what runs that are gone, superseded or moved to another collect run put in the dataset."""
    for slot, rec in list(state.items()):
        if slot == "collect" or (slot in plan and plan[slot].name == rec["run"]):
            continue
        _remove_record(ds, rec)
        del state[slot]
        why = (f"superseded by {plan[slot].name}" if slot in plan
               else "its run folder no longer exists" if not (runs_dir / rec["run"]).is_dir()
               else "its run no longer descends from this collect run")
        report.removed.append(f"{_what(rec)} (from {rec['run']}: {why})")
    _save_state(ds, state)


def _mirror_slots(fo, ds, state: dict[str, dict], plan: dict[str, RunRef], runs_dir: Path,
                  report: SyncReport, *, progress: bool) -> None:
    """Mirror every planned run not mirrored yet, in flywheel order; a run that fails is reported."""
    from rich.progress import Progress

    order = {s: i for i, s in enumerate(MIRRORED_STAGES)}
    todo = sorted(plan.items(), key=lambda kv: (order[kv[1].stage], kv[1].number))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("mirroring runs into FiftyOne", total=len(todo))
        for slot, ref in todo:
            bar.advance(task)
            rec = state.get(slot)
            fp = ref.result().get("fingerprint")
            if rec and rec["run"] == ref.name and rec.get("fingerprint") in (None, fp):
                rec["fingerprint"] = fp  # a stage that mirrored itself before commit left it empty
                report.unchanged.append(ref.name)
                continue
            if rec:  # replace, not append: a re-run may cover other frames
                _remove_record(ds, rec)
                del state[slot]
            try:
                new = MIRRORS[ref.stage](fo, ds, ref, runs_dir, report)
            except (StageInputError, ValueError, KeyError, OSError) as exc:
                report.mismatches.append(f"{ref.name}: not mirrored ({type(exc).__name__}: {exc})")
                _save_state(ds, state)
                continue
            new.update(run=ref.name, stage=ref.stage, fingerprint=fp)
            state[slot] = new
            report.mirrored.append(f"{ref.name}: {_what(new)}")
            _save_state(ds, state)


def _what(rec: dict[str, Any]) -> str:
    return ", ".join(rec["fields"] + rec["tags"] + rec["brain_keys"]) or "nothing"


def _open_dataset(fo, name: str, collect: RunRef, runs_dir: Path, *, full: bool, report: SyncReport):
    manifest_path = COLLECT.manifest.require(collect, "bddengine collect --force")
    boxes_path = COLLECT.boxes.require(collect, "bddengine collect --force")
    n_frames = len(pd.read_parquet(manifest_path, columns=["name"]))
    reason = None
    exists = fo.dataset_exists(name)
    if exists:
        check_owner(fo.load_dataset(name), runs_dir)
    if full:
        reason = "full re-sync requested"
    elif not exists:
        reason = "the dataset did not exist"
    else:
        ds = fo.load_dataset(name)
        meta = ds.info.get(INFO_KEY, {})
        if meta.get("version") != MIRROR_VERSION:
            reason = f"mirror layout {meta.get('version')} is not the current {MIRROR_VERSION}"
        elif len(ds) != n_frames:
            reason = f"it held {len(ds)} samples but {manifest_path} lists {n_frames}"
            report.mismatches.append(f"dataset {name} had {len(ds)} samples, {manifest_path} has {n_frames}: "
                                     "rebuilt from the collect run")
        else:
            if not meta.get("runs_dir"):  # a dataset mirrored before the runs folder was recorded
                ds.info = {**ds.info, INFO_KEY: {**meta, "runs_dir": str(runs_dir.resolve())}}
                ds.save()
            return ds
    mirror_collect(name, pd.read_parquet(manifest_path), pd.read_parquet(boxes_path), run=collect.name,
                   runs_dir=runs_dir, fingerprint=collect.result().get("fingerprint"))
    report.rebuilt = reason
    return fo.load_dataset(name)


def _record(fields: list[str] | None = None, tags: list[str] | None = None,
            brain_keys: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"fields": fields or [], "tags": tags or [], "brain_keys": brain_keys or [], **extra}


def _save_state(ds, state: dict[str, dict], *, views: list[str] | None = None) -> None:
    info = dict(ds.info)
    meta = dict(info.get(INFO_KEY, {}))
    meta["slots"] = state
    if views is not None:
        meta["views"] = views
    info[INFO_KEY] = meta
    info[RUNS_KEY] = {slot.replace(":", "_"): rec["run"] for slot, rec in state.items()}
    ds.info = info
    ds.save()


def _remove_record(ds, rec: dict[str, Any]) -> None:
    for name in rec["fields"]:
        if "." in name:  # a per-box attribute: delete it even if not declared in the schema
            try:
                ds.delete_sample_field(name)
            except (ValueError, AttributeError):
                pass
        elif ds.has_field(name):
            ds.delete_sample_field(name)
    if rec["tags"]:
        ds.untag_samples(rec["tags"])
    for key in rec["brain_keys"]:
        if ds.has_brain_run(key):
            ds.delete_brain_run(key)


def _check_fields(ds, state: dict[str, dict], report: SyncReport) -> None:
    recorded = {f.split(".")[0] for rec in state.values() for f in rec["fields"]}
    for name in ds.get_field_schema():
        if name not in COLLECT_FIELDS and name not in recorded:
            report.mismatches.append(f"field {name!r} is in {ds.name} but no run folder accounts for it "
                                     "(left as is; `bddengine app --sync` rebuilds the dataset)")


def _primary_eval(state: dict[str, dict]) -> str | None:
    """The eval slot whose worst slice the plain ``worst-slice`` tags and views show: the newest run."""
    evals = [(int(rec["run"].split("_")[0]), slot) for slot, rec in state.items() if rec["stage"] == "eval"]
    return max(evals)[1] if evals else None


def _tag_primary(ds, state: dict[str, dict], primary: str | None) -> None:
    ds.untag_samples([WORST_TAG, FAILURE_TAG])
    if primary is None:
        return
    names = EvalNames(state[primary]["label"])
    ds.match_tags(names.worst_tag).tag_samples(WORST_TAG)
    ds.match_tags(names.failure_tag).tag_samples(FAILURE_TAG)


def _remove_stale_datasets(fo, cfg, runs_dir: Path, current: str, report: SyncReport) -> None:
    prefix = dataset_name(cfg.fiftyone.dataset_prefix, cfg.name, "", runs_dir)
    for name in fo.list_datasets():
        if not name.startswith(prefix) or name == current:
            continue
        meta = fo.load_dataset(name).info.get(INFO_KEY, {})
        if meta.get("runs_dir") != str(runs_dir.resolve()):
            continue
        run = name[len(prefix):]
        if not (runs_dir / run).is_dir():
            fo.delete_dataset(name)
            report.removed.append(f"dataset {name} (its run folder {runs_dir / run} no longer exists)")


# ---------------------------------------------------------------------------
# one mirror per stage
# ---------------------------------------------------------------------------


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
    known = _known(ds, matches, ref, "eval", report)
    sizes = _sizes(ds)
    dets = {}
    for frame in preds:
        name = frame["name"]
        if name not in known:
            continue
        w, h = sizes[name]
        states = matches[name].pred
        dets[name] = detections_doc([
            detection_doc(lab["category"], relative_box(lab["box2d"], w, h), confidence=float(lab["score"]),
                          **{names.eval_key: s})
            for lab, s in zip(frame.get("labels") or [], states, strict=True)
        ])
    for name in known - set(dets):
        dets[name] = detections_doc([])
    set_label_docs(fo, ds, names.pred_field, dets)
    for count, values in zip(names.counts, ("tp", "fp", "fn"), strict=True):
        ds.set_values(count, {n: getattr(matches[n], values) for n in known}, key_field="frame_name")
    _mark_ground_truth(ds, matches, known, names.eval_key)
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
    return _record([names.pred_field, *names.counts, f"{BOX_FIELD}.detections.{names.eval_key}"],
                   [names.worst_tag, names.failure_tag], label=run_label(ref), iter=ref.iter, tag=ref.tag,
                   score_threshold=threshold, worst_slice=(worst.get("slice") or {}).get("key"),
                   n_worst=len(worst_frames), n_failures=len(failure_frames))


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


# ---------------------------------------------------------------------------
# saved views
# ---------------------------------------------------------------------------


def save_views(fo, ds, state: dict[str, dict], primary: str | None) -> list[str]:
    """(Re)build bddengine's saved views; returns their names (each equal to its URL slug).

    One per weather x timeofday x scene slice present, the pools, per eval run its
    worst slice and failures (plus plain ``worst-slice`` / ``worst-slice-failures``
    for the newest eval run), per mine run its mined frames, per autolabel run its
    review queue. Views the user saved under other names are left alone.
    """
    F = fo.ViewField
    views: list[tuple[str, Any, str]] = []
    schema = ds.get_field_schema()
    combos = sorted({tuple(v) for v in zip(*ds.values(["weather", "timeofday", "scene"]), strict=True)
                     if None not in v})  # frames whose attributes are unknown are in no slice
    for w, t, s in combos:
        views.append((f"slice-{slug(f'{w}-{t}-{s}')}",
                      ds.match((F("weather") == w) & (F("timeofday") == t) & (F("scene") == s)),
                      f"slice weather={w}, timeofday={t}, scene={s}"))
    if "pool" in schema:
        for pool in ("train", "eval", "mining"):
            views.append((f"{pool}-pool", ds.match(F("pool") == pool), f"the split's {pool} pool"))
    for slot, rec in sorted(state.items()):
        stage = rec["stage"]
        if stage == "eval" and rec["fields"]:
            names = EvalNames(rec["label"])
            worst, failures = _eval_views(ds, F, rec, schema)
            key = rec.get("worst_slice") or {}
            about = " / ".join(str(v) for v in key.values()) or "none qualified"
            suffixes = [f"-{slug(rec['label'])}"] + ([""] if slot == primary else [])
            for sfx in suffixes:
                views.append((f"{WORST_TAG}{sfx}", worst, f"{rec['run']}: worst slice {about}, predictions "
                              f"{names.pred_field} (score >= {rec['score_threshold']}) with TP/FP/FN"))
                views.append((f"{WORST_TAG}-failures{sfx}", failures, f"{rec['run']}: failure frames of the "
                              f"worst slice, most missed boxes first"))
        elif stage == "mine" and rec["fields"]:
            tag, rank_field, _ = mined_names(rec["label"])
            views.append((f"mined-{slug(rec['label'])}", ds.match_tags(tag).sort_by(rank_field),
                          f"{rec['run']}: mined frames in rank order"))
        elif stage == "autolabel" and rec["fields"]:
            box_field, tag = autolabel_names(rec["label"])
            views.append((f"autolabel-review-queue-{slug(rec['label'])}",
                          ds.match_tags(tag).filter_labels(box_field, F("route") != "drop", only_matches=False),
                          f"{rec['run']}: frames with boxes to review (dropped boxes hidden)"))
    wanted = {name for name, _, _ in views}
    for name in ds.info.get(INFO_KEY, {}).get("views", []):
        if name not in wanted and ds.has_saved_view(name):
            ds.delete_saved_view(name)
    saved = {v["name"]: v.get("description") for v in ds.list_saved_views(info=True)}
    for name, view, description in views:
        # unchanged views keep their identity, so an open App is not disturbed by a sync
        if saved.get(name, -1) != description or not _same_view(ds, name, view):
            ds.save_view(name, view, description=description, overwrite=True)
    return [name for name, _, _ in views]


def _same_view(ds, name: str, view) -> bool:
    try:
        return ds.load_saved_view(name) == view
    except Exception:  # noqa: BLE001 - a saved view whose fields are gone no longer loads
        return False


MARK_COLORS: dict[str, str] = {"tp": "#2ca02c", "fp": "#ff7f0e", "fn": "#d62728", "ignored": "#9e9e9e",
                               "accept": "#2ca02c", "review": "#f2c40f", "drop": "#9e9e9e"}
"""Box colours in the App: green found / accepted, orange false positive, red missed, yellow to review."""


def color_scheme(fo, state: dict[str, dict], primary: str | None):
    """Boxes coloured by their mark: each eval run's predictions by TP/FP, the ground truth by TP/FN
    of the newest eval run, auto-labels by route."""
    marks = [{"value": v, "color": MARK_COLORS[v]} for v in ("tp", "fp", "fn", "ignored")]
    routes = [{"value": v, "color": MARK_COLORS[v]} for v in ("accept", "review", "drop")]
    fields = []
    for slot, rec in sorted(state.items()):
        if rec["stage"] == "eval" and rec["fields"]:
            names = EvalNames(rec["label"])
            fields.append({"path": names.pred_field, "colorByAttribute": names.eval_key, "valueColors": marks})
            if slot == primary:
                fields.append({"path": BOX_FIELD, "colorByAttribute": names.eval_key, "valueColors": marks})
        elif rec["stage"] == "autolabel" and rec["fields"]:
            fields.append({"path": autolabel_names(rec["label"])[0], "colorByAttribute": "route",
                           "valueColors": routes})
    return fo.ColorScheme(color_by="value", fields=fields)


def _eval_views(ds, F, rec: dict[str, Any], schema: dict) -> tuple[Any, Any]:
    names = EvalNames(rec["label"])
    keep = [BOX_FIELD, names.pred_field, *names.counts, "frame_name", "video", "weather", "timeofday",
            "scene", "pool"]
    base = ds.filter_labels(names.pred_field, F("confidence") >= rec["score_threshold"], only_matches=False)
    base = base.select_fields([f for f in keep if f in schema])
    worst = base.match_tags(names.worst_tag).sort_by(names.counts[2], reverse=True)
    failures = base.match_tags(names.failure_tag).sort_by(names.counts[2], reverse=True)
    return worst, failures


# ---------------------------------------------------------------------------
# what collect and embed call while they run
# ---------------------------------------------------------------------------


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
