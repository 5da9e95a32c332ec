"""Mining the unlabeled pool for frames like the worst slice's failures.

Pure functions on embedding matrices and frame tables; the ``mine`` stage does the
reading and writing. The pieces, in the order the stage uses them:

- `failure_prototype`: the mean of the L2-normalised failure-frame embeddings,
  re-normalised: one query vector standing for "what the model gets wrong".
- `exclusion_filters`: metadata filters (`bddengine.vectors.where`) a frame must pass
  to be mined (its video is not held by the train, val or eval pool, it does not
  near-duplicate an eval frame), over `exclusion_metadata`.
- k-NN search itself is `bddengine.vectors` (`SearchPlan`, run by the strategies).
- `mine_random`, `mine_random_slice`: the two baselines every prototype arm is
  compared with, drawing the same ``k``.
- `precision_block`, `failed_classes`: how well a set of mined frames matches the
  worst slice, and which of its classes the model failed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from bddengine.bdd.categories import ATTRIBUTES_KNOWN, CLASSES, FRAME_ATTRIBUTES, known_attributes
from bddengine.vectors.exact import ExactIndex
from bddengine.vectors.where import Filter, NotAbove, NotIn

REASON_VIDEO = "video in {pool} pool"
REASON_NEAR_DUP = "near-duplicate of an eval frame"
EVAL_SIMILARITY = "eval_similarity"
"""The metadata column holding a mining frame's highest cosine to an eval frame."""


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; an all-zero row stays zero).

    Raises:
        ValueError: ``vectors`` is not a 2-D matrix.
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a [N, D] matrix, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def failure_prototype(vectors: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised rows, re-normalised to unit length (``[D]`` float32).

    Raises:
        ValueError: no rows, or rows that cancel out (a zero mean has no direction).
    """
    x = l2_normalize(vectors)
    if not len(x):
        raise ValueError("no failure-frame embeddings to build a prototype from")
    mean = x.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-8:
        raise ValueError("the failure-frame embeddings cancel out: their mean is the zero vector")
    return (mean / norm).astype(np.float32)


def nearest_similarity(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per query row, its highest cosine to any reference row (-inf without references)."""
    if not len(reference) or not len(query):
        return np.full(len(query), -np.inf, dtype=np.float32)
    return ExactIndex(reference).search(query, 1).scores[:, 0]


STREAM_ROWS = 262_144
"""Pool rows `pool_nearest_similarity` reads at a time (512-d float32: 512 MiB)."""


def pool_nearest_similarity(embeddings: np.ndarray, rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`nearest_similarity` of ``embeddings[rows]`` (L2-normalised) to ``reference``, ``STREAM_ROWS`` rows at a
    time, so a mining pool of any size held in a memory-mapped embed file is never copied into memory whole.

    A pool of at most ``STREAM_ROWS`` rows is one chunk: the same arithmetic as one call.
    """
    out = np.empty(len(rows), dtype=np.float32)
    for lo in range(0, len(rows), STREAM_ROWS):
        out[lo:lo + STREAM_ROWS] = nearest_similarity(l2_normalize(embeddings[rows[lo:lo + STREAM_ROWS]]), reference)
    return out


def exclusion_metadata(mining: pd.DataFrame, eval_similarity: np.ndarray | None) -> pd.DataFrame:
    """What `exclusion_filters` read, one row per mining frame: its video and its nearest eval cosine."""
    meta = pd.DataFrame({"video": mining["video"].astype(str).to_numpy()})
    if eval_similarity is not None:
        meta[EVAL_SIMILARITY] = np.asarray(eval_similarity)
    return meta


def exclusion_filters(held_videos: Mapping[str, Iterable[str]], threshold: float | None) -> dict[str, Filter]:
    """One metadata filter per reason a mining frame must not be mined; a frame must pass them all.

    Args:
        held_videos: pool name (train, val, eval) -> its videos.
        threshold: near-duplicate cosine to an eval frame (strictly above is a
            duplicate); None: off.

    Returns:
        ``reason -> filter`` over `exclusion_metadata`; a frame may fail several.
    """
    filters: dict[str, Filter] = {REASON_VIDEO.format(pool=pool): NotIn("video", frozenset(map(str, held)))
                                  for pool, held in held_videos.items()}
    if threshold is not None:
        filters[REASON_NEAR_DUP] = NotAbove(EVAL_SIMILARITY, threshold)
    return filters


def mine_random(n: int, k: int, seed: int) -> np.ndarray:
    """``min(k, n)`` distinct rows of ``range(n)`` drawn uniformly, in draw order."""
    rng = np.random.default_rng(seed)
    return rng.choice(n, size=min(k, n), replace=False).astype(np.int64)


def slice_mask(frames: pd.DataFrame, key: Mapping[str, str]) -> np.ndarray:
    """Rows whose weather, timeofday and scene all equal ``key``'s (never a frame whose attributes are unknown)."""
    mask = np.ones(len(frames), dtype=bool)
    if ATTRIBUTES_KNOWN in frames.columns:
        mask &= frames[ATTRIBUTES_KNOWN].fillna(True).astype(bool).to_numpy()
    for a in FRAME_ATTRIBUTES:
        mask &= (frames[a].astype(str) == str(key[a])).to_numpy()
    return mask


def mine_random_slice(frames: pd.DataFrame, key: Mapping[str, str], k: int, seed: int) -> np.ndarray:
    """Up to ``k`` rows drawn uniformly among those of the slice ``key`` (all of them when fewer)."""
    rows = np.flatnonzero(slice_mask(frames, key))
    return rows[mine_random(len(rows), k, seed)]


def failed_classes(slice_row: Mapping[str, object], *, below: float = 0.5) -> list[str]:
    """Classes with ground truth in a slice (AP not null) whose ``ap50/<class>`` is under ``below``.

    Args:
        slice_row: one row of the eval's ``slice_table.json``.
        below: the AP@0.5 a class must reach not to count as failed.
    """
    out = []
    for c in CLASSES:
        ap = slice_row.get(f"ap50/{c}")
        if ap is None or (isinstance(ap, float) and np.isnan(ap)):
            continue  # no ground truth of this class in the slice
        if float(ap) < below:
            out.append(c)
    return out


def precision_block(
    frames: pd.DataFrame, key: Mapping[str, str], gt_classes: Mapping[str, set[str]],
    failed: Sequence[str],
) -> dict[str, object]:
    """How well ``frames`` match the worst slice: shares in 0-1, None when undefined.

    Args:
        frames: the frames (``name``, ``has_gt`` if known, the slice columns).
        key: the worst slice.
        gt_classes: frame name -> classes in its (hidden) ground truth.
        failed: the classes the model failed on in the worst slice.

    Returns:
        ``n_frames``; ``n_attributes_known`` and ``n_attributes_unknown`` (images without a
        label file, whose weather, timeofday and scene nobody recorded); ``slice_match``
        (all three attributes equal) and the per-attribute shares, over the frames whose
        attributes are known; ``n_with_gt`` and ``has_failed_class`` (share of the frames with ground
        truth holding at least one box of a failed class; None without failed classes
        or without ground truth).
    """
    n = len(frames)
    known = known_attributes(frames)
    n_known = len(known)
    share = lambda mask: float(np.mean(mask)) if n_known else None  # noqa: E731
    out: dict[str, object] = {"n_frames": n, "n_attributes_known": n_known,
                              "n_attributes_unknown": n - n_known, "slice_match": share(slice_mask(known, key))}
    for a in FRAME_ATTRIBUTES:
        out[a] = share((known[a].astype(str) == str(key[a])).to_numpy())
    names = frames["name"].astype(str).tolist()
    has_gt = frames["has_gt"].to_numpy(dtype=bool) if "has_gt" in frames else np.ones(n, dtype=bool)
    with_gt = [name for name, g in zip(names, has_gt, strict=True) if g]
    out["n_with_gt"] = len(with_gt)
    wanted = set(failed)
    hits = [bool(gt_classes.get(name, set()) & wanted) for name in with_gt]
    out["has_failed_class"] = float(np.mean(hits)) if hits and wanted else None
    return out


def lift(mined: Mapping[str, object], base: Mapping[str, object]) -> dict[str, float | None]:
    """Mined share / base-rate share for every share both blocks define (None where base is 0)."""
    out: dict[str, float | None] = {}
    for name in ("slice_match", *FRAME_ATTRIBUTES, "has_failed_class"):
        m, b = mined.get(name), base.get(name)
        out[name] = None if m is None or b is None or b == 0 else float(m) / float(b)
    return out


def gt_classes_by_frame(boxes: pd.DataFrame) -> dict[str, set[str]]:
    """Frame name -> the classes of its non-ignored ground-truth boxes."""
    kept = boxes[~boxes["ignored"].astype(bool)] if "ignored" in boxes else boxes
    return {str(name): set(group.astype(str)) for name, group in kept.groupby("name")["category"]}


ABBREVIATIONS: dict[str, str] = {
    "clear": "clear", "overcast": "ovc", "snowy": "snow", "rainy": "rain", "partly cloudy": "pcloudy",
    "foggy": "fog", "daytime": "day", "night": "night", "dawn/dusk": "dusk", "city street": "city",
    "highway": "hwy", "residential": "resid", "parking lot": "park", "tunnel": "tunnel",
    "gas stations": "gas", "undefined": "undef",
}


def slice_caption(row: Mapping[str, object]) -> str:
    """``weather/timeofday/scene`` of a frame, abbreviated for a thumbnail caption."""
    return "/".join(ABBREVIATIONS.get(str(row[a]), str(row[a])[:6]) for a in FRAME_ATTRIBUTES)
