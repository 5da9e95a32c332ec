"""Which frames need encoding: the frame list's identity and reuse of earlier vectors.

A frame is the same frame when its name, file size and mtime are unchanged; its
vector from an earlier embed run with the same model id can then be reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bddengine.errors import StageInputError

FRAME_KEY = ("name", "bytes", "mtime_ns")


def stat_frames(names: Sequence[str], paths: Sequence[str]) -> pd.DataFrame:
    """Name, path, size and mtime of every frame, in the given order.

    Raises:
        StageInputError: a file is missing (the collect run is stale).
    """
    sizes, mtimes = [], []
    for path in paths:
        try:
            st = Path(path).stat()
        except OSError as exc:
            raise StageInputError(
                f"frame image {path} is missing ({exc.strerror}): the collect run is out of date "
                "with the dataset; re-run `bddengine collect --force`"
            ) from None
        sizes.append(st.st_size)
        mtimes.append(st.st_mtime_ns)
    return pd.DataFrame({
        "name": list(names), "path": [str(p) for p in paths],
        "bytes": np.asarray(sizes, dtype=np.int64), "mtime_ns": np.asarray(mtimes, dtype=np.int64),
    })


def frame_list_hash(frames: pd.DataFrame) -> str:
    """SHA-256 of the ordered (name, size, mtime) list: changes when any frame does."""
    h = hashlib.sha256()
    for name, size, mtime in zip(*(frames[c] for c in FRAME_KEY), strict=True):
        h.update(f"{name}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()


@dataclass
class Reuse:
    """Cached vectors placed at their rows of the new frame list."""

    vectors: np.ndarray
    """``[n_frames, dim]`` float32; rows not found are zero."""
    found: np.ndarray
    """``[n_frames]`` bool: the row came from the cache."""
    source: str | None = None
    """The run the vectors came from."""

    @property
    def n_reused(self) -> int:
        return int(self.found.sum())

    @classmethod
    def empty(cls, n_frames: int, dim: int) -> Reuse:
        """Nothing cached: every frame must be encoded."""
        return cls(np.zeros((n_frames, dim), dtype=np.float32), np.zeros(n_frames, dtype=bool))


def reuse_vectors(frames: pd.DataFrame, cached_frames: pd.DataFrame, cached: np.ndarray) -> Reuse:
    """Look up each frame's (name, size, mtime) among an earlier run's frames.

    Args:
        frames: the frames to embed (``stat_frames`` columns).
        cached_frames: an earlier run's frames, aligned with ``cached``.
        cached: that run's ``[m, dim]`` embeddings.

    Returns:
        The reused vectors as float32 and which rows they fill.
    """
    if len(cached_frames) != len(cached):
        raise ValueError(f"cache misaligned: {len(cached_frames)} frames, {len(cached)} vectors")
    index = {key: i for i, key in enumerate(zip(*(cached_frames[c] for c in FRAME_KEY), strict=True))}
    rows = np.array([index.get(key, -1) for key in zip(*(frames[c] for c in FRAME_KEY), strict=True)],
                    dtype=np.int64)
    found = rows >= 0
    vectors = np.zeros((len(frames), cached.shape[1]), dtype=np.float32)
    if found.any():
        vectors[found] = np.asarray(cached[rows[found]], dtype=np.float32)
    return Reuse(vectors, found)
