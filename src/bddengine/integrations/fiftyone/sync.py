"""Sync: bring a collect run's dataset in line with every run folder descending from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.errors import StageInputError
from bddengine.integrations.fiftyone.base import (
    COLLECT_FIELDS,
    FAILURE_TAG,
    INFO_KEY,
    MIRROR_VERSION,
    MIRRORED_STAGES,
    WORST_TAG,
    _save_state,
)
from bddengine.integrations.fiftyone.database import _database_errors, _import_fiftyone
from bddengine.integrations.fiftyone.live import mirror_collect
from bddengine.integrations.fiftyone.names import EvalNames, check_owner, dataset_name
from bddengine.integrations.fiftyone.plan import embed_model, plan_slots, slot_of
from bddengine.integrations.fiftyone.stage_mirrors import MIRRORS
from bddengine.integrations.fiftyone.sync_report import SyncReport
from bddengine.integrations.fiftyone.views import color_scheme, save_views
from bddengine.runs import RunRef, list_runs
from bddengine.runs.layout import COLLECT
from bddengine.runs.lineage import collect_of


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
