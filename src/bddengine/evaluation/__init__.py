"""BDD100K detection scoring, overall and per slice, exactly as the official evaluator.

Typical use::

    cache = build_match_cache(gt_frames, pred_frames)   # COCOeval matching, once
    evaluate_overall(cache)["map50"]
    evaluate_slices(cache, slice_keys(gt_frames, ["weather", "timeofday"]))
    per_frame_metrics(cache, names)

or, from files, `score_files(gt_path, pred_path)`.
"""

from bddengine.evaluation.cache import MatchCache, build_match_cache
from bddengine.evaluation.coco import UnknownFrameError
from bddengine.evaluation.errors import ERROR_TYPES
from bddengine.evaluation.frames import per_frame_metrics
from bddengine.evaluation.score import PROTOCOL, evaluate_overall, score_files
from bddengine.evaluation.slices import SliceResult, evaluate_slices, slice_keys

__all__ = [
    "ERROR_TYPES",
    "PROTOCOL",
    "MatchCache",
    "SliceResult",
    "UnknownFrameError",
    "build_match_cache",
    "evaluate_overall",
    "evaluate_slices",
    "per_frame_metrics",
    "score_files",
    "slice_keys",
]
