"""JPEG decoding for the encoders: reduced-size decode and preprocessing in the workers.

Each DataLoader worker opens a JPEG, asks libjpeg for a downscaled decode
(``Image.draft``: DCT scaling by 1/2, 1/4 or 1/8 while the shorter side stays at
least the model input), resizes the centred square crop straight to the input
size, and normalises it, so the main process only runs the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class ImageDecodeError(RuntimeError):
    """A frame's file cannot be read or decoded (the message names the file)."""


def load_frame(path: str, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Decode one frame into a normalised ``[3, size, size]`` float32 array.

    Equivalent to "resize the shorter side to ``size``, centre-crop ``size x size``"
    (the CLIP / timm eval transform), done as one bicubic resize of the centred
    square after a reduced-size JPEG decode.

    Args:
        path: image file.
        size: model input side.
        mean: per-channel mean, shape ``[3]``, on the 0..1 scale.
        std: per-channel std, shape ``[3]``.

    Raises:
        ImageDecodeError: the file is missing or not a readable image.
    """
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG only; a no-op for other formats
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) / 2, (h - side) / 2
            im = im.resize((size, size), Image.Resampling.BICUBIC,
                           box=(left, top, left + side, top + side))
            chw = np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1))  # uint8: cheap to move
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"cannot decode {path}: {exc}") from None
    except ImportError:  # ultralytics' patched Image.open tries an optional HEIF plugin first
        raise ImageDecodeError(f"cannot decode {path}: not an image PIL can read") from None
    out = chw.astype(np.float32)
    out *= (1.0 / (255.0 * std))[:, None, None]  # (x / 255 - mean) / std as one multiply-add
    out += (-mean / std)[:, None, None]
    return out


class FrameDataset(Dataset):
    """Frames by path, yielding normalised model inputs in the given order."""

    def __init__(self, paths: Sequence[str], size: int, mean: Sequence[float], std: Sequence[float]):
        self.paths = list(paths)
        self.size = size
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(load_frame(self.paths[i], self.size, self.mean, self.std))


def frame_loader(
    paths: Sequence[str],
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """An ordered DataLoader of ``[B, 3, size, size]`` batches decoded by ``workers`` processes."""
    dataset = FrameDataset(paths, size, mean, std)
    extra = {"prefetch_factor": 4, "worker_init_fn": _lower_priority} if workers > 0 else {}
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=pin_memory, drop_last=False, **extra,
    )


def _lower_priority(_worker_id: int) -> None:
    """Decoding needs a few percent of a core; the model's threads need whole cores.

    On a machine with as many busy threads as cores, a decoder preempting one of the
    model's threads stalls all of them at the next barrier; a niced decoder runs in
    the gaps instead, and the prefetched batches keep the model fed.
    """
    try:
        os.nice(10)
    except OSError:
        pass
