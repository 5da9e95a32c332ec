"""Mirror run folders into persistent FiftyOne datasets (see `sync`)."""

from bddengine.integrations.fiftyone.sync import (
    INFO_KEY,
    EvalNames,
    ProjectMismatch,
    SyncReport,
    collect_of,
    dataset_name,
    detection_doc,
    detections_by_frame,
    detections_doc,
    fiftyone_dataset_exists,
    match_eval_boxes,
    mirror_collect,
    mirror_embeddings,
    mirror_run,
    plan_slots,
    relative_box,
    run_label,
    set_label_docs,
    slice_tags,
    slug,
    sync_runs,
    try_mirror_run,
    view_for_run,
)

__all__ = [
    "INFO_KEY", "EvalNames", "ProjectMismatch", "SyncReport", "collect_of", "dataset_name", "detection_doc",
    "detections_by_frame", "detections_doc", "fiftyone_dataset_exists", "match_eval_boxes", "mirror_collect",
    "mirror_embeddings", "mirror_run", "plan_slots", "relative_box", "run_label", "set_label_docs", "slice_tags",
    "slug", "sync_runs", "try_mirror_run", "view_for_run",
]
