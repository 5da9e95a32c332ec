"""Saved views and the App's colour scheme, rebuilt on each sync.

One view per slice, the worst slice and its failures, the mined frames, the review
queues and the pools.
"""

from __future__ import annotations

from typing import Any

from bddengine.integrations.fiftyone.base import BOX_FIELD, INFO_KEY, WORST_TAG
from bddengine.integrations.fiftyone.names import EvalNames, autolabel_names, mined_names, slug


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
                for t, view in _error_views(ds, F, rec, schema).items():
                    views.append((f"{WORST_TAG}-{t}{sfx}", view, f"{rec['run']}: worst slice {about}, "
                                  f"{ERROR_ABOUT[t]} (TIDE type {t!r}, any score)"))
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


ERROR_ABOUT = {"cls": "predictions of the wrong class", "loc": "predictions localized poorly",
               "both": "predictions of the wrong class and poorly localized",
               "dupe": "duplicate predictions", "bkg": "predictions on background", "miss": "missed boxes"}
"""What each TIDE error type's saved view shows."""


def _error_views(ds, F, rec: dict[str, Any], schema: dict) -> dict[str, Any]:
    """Per TIDE error type, the worst slice's frames with boxes of that type, only those boxes shown."""
    if not rec.get("error_types"):
        return {}
    names = EvalNames(rec["label"])
    keep = [f for f in (BOX_FIELD, names.pred_field, "frame_name", "weather", "timeofday", "scene") if f in schema]
    worst = ds.match_tags(names.worst_tag).select_fields(keep)
    out = {t: worst.filter_labels(names.pred_field, F(names.error_key) == t)
           for t in ("cls", "loc", "both", "dupe", "bkg")}
    out["miss"] = worst.filter_labels(BOX_FIELD, F(names.error_key) == "miss")
    return out


def _eval_views(ds, F, rec: dict[str, Any], schema: dict) -> tuple[Any, Any]:
    names = EvalNames(rec["label"])
    keep = [BOX_FIELD, names.pred_field, *names.counts, "frame_name", "video", "weather", "timeofday",
            "scene", "pool"]
    base = ds.filter_labels(names.pred_field, F("confidence") >= rec["score_threshold"], only_matches=False)
    base = base.select_fields([f for f in keep if f in schema])
    worst = base.match_tags(names.worst_tag).sort_by(names.counts[2], reverse=True)
    failures = base.match_tags(names.failure_tag).sort_by(names.counts[2], reverse=True)
    return worst, failures
