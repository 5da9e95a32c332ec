"""What every part of the mirror shares: its fields, tags and ``dataset.info`` keys.

``_record`` and ``_save_state`` keep the record of which run each field, tag and brain
run came from, which every stage's mirror writes and `sync_runs` reads.
"""

from __future__ import annotations

from typing import Any

from bddengine.runs.layout import SPLIT

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
