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

One module per part: `base` (fields, tags, the record in ``dataset.info``), `database`
(importing FiftyOne, a lost MongoDB), `names`, `conversions` (tables to FiftyOne
documents), `plan` (which run fills each slot), `sync_report`, `sync`, `stage_mirrors`
(what each stage's run adds), `views` (saved views) and `live` (what collect and embed
call while they run).
"""

from bddengine.integrations.fiftyone.base import INFO_KEY
from bddengine.integrations.fiftyone.conversions import (
    detection_doc,
    detections_by_frame,
    detections_doc,
    match_eval_boxes,
    relative_box,
    set_label_docs,
    slice_tags,
)
from bddengine.integrations.fiftyone.database import MONGO_HELP, DatabaseStatus, FiftyOneUnavailable, database_status
from bddengine.integrations.fiftyone.live import fiftyone_dataset_exists, mirror_collect, mirror_embeddings
from bddengine.integrations.fiftyone.names import (
    EvalNames,
    ProjectMismatch,
    dataset_name,
    run_label,
    slug,
    view_for_run,
)
from bddengine.integrations.fiftyone.plan import plan_slots
from bddengine.integrations.fiftyone.sync import mirror_run, sync_runs, try_mirror_run
from bddengine.integrations.fiftyone.sync_report import SyncReport
from bddengine.runs.lineage import collect_of

__all__ = [
    "INFO_KEY", "MONGO_HELP", "DatabaseStatus", "EvalNames", "FiftyOneUnavailable", "ProjectMismatch", "SyncReport",
    "collect_of", "database_status", "dataset_name", "detection_doc", "detections_by_frame", "detections_doc",
    "fiftyone_dataset_exists", "match_eval_boxes", "mirror_collect", "mirror_embeddings", "mirror_run", "plan_slots",
    "relative_box", "run_label", "set_label_docs", "slice_tags", "slug", "sync_runs", "try_mirror_run",
    "view_for_run",
]
