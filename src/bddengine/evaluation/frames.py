"""Per-frame scores, for picking failure frames (AP@0.5 of 0, or low recall)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bddengine.evaluation.ap import average_precision
from bddengine.evaluation.cache import FP, IGNORED, TP, MatchCache

_ONE = np.ones((1, 1), dtype=np.int64)


def per_frame_metrics(
    cache: MatchCache, names: Iterable[str], *, score_threshold: float = 0.0
) -> dict[str, dict[str, Any]]:
    """AP@0.5, recall and box counts of single frames, at IoU 0.5.

    Args:
        cache: from `build_match_cache`.
        names: GT frame names.
        score_threshold: only predictions scoring at least this count for
            ``n_pred``, ``tp``, ``fp`` and ``recall``; AP always uses them all.

    Returns:
        name -> ``{"ap50", "recall", "n_gt", "n_pred", "tp", "fp", "fn"}``:
        ``ap50`` is the frame's own AP@0.5 averaged over the classes with GT in
        it, ``recall`` is ``tp / n_gt``, both None when the frame has no GT.
        ``n_gt`` counts boxes that are not ignored (crowd and ignored boxes are
        left out); ``n_pred`` counts the scored predictions (at most 100 per
        class, as COCO keeps), including those on ignored boxes, which are
        neither ``tp`` nor ``fp``.

    Raises:
        KeyError: a name is not in the ground truth.
    """
    names = list(names)
    out: dict[str, dict[str, Any]] = {}
    for name, i in zip(names, cache.frame_indices(names), strict=True):
        n_gt = tp = fp = n_pred = 0
        aps: list[float] = []
        for k, matches in enumerate(cache.classes):
            gt = int(cache.n_gt[k, i])
            pos = matches.by_frame[matches.frame_ptr[i] : matches.frame_ptr[i + 1]]
            state = matches.state[0, pos]
            if gt:
                scored = state != IGNORED
                is_tp = state[scored] == TP
                aps.append(float(average_precision(is_tp, np.zeros(is_tp.size, np.int64), _ONE, [gt])[0][0]))
            kept = matches.score[pos] >= score_threshold
            n_pred += int(kept.sum())
            tp += int((state[kept] == TP).sum())
            fp += int((state[kept] == FP).sum())
            n_gt += gt
        out[name] = {
            "ap50": float(np.mean(aps)) if aps else None,
            "recall": tp / n_gt if n_gt else None,
            "n_gt": n_gt,
            "n_pred": n_pred,
            "tp": tp,
            "fp": fp,
            "fn": n_gt - tp,
        }
    return out
