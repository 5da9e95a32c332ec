"""JPEG decoding for the encoders: reduced-size decode and preprocessing in the workers.

Each decode worker opens a JPEG, asks libjpeg for a downscaled decode
(``Image.draft``: DCT scaling by 1/2, 1/4 or 1/8 while the shorter side stays at
least the model input), resizes the centred square crop straight to the input
size, and normalises it, so the main process only runs the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from bddengine.inference import Decode


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


@dataclass(frozen=True)
class FrameReader:
    """One frame's normalised model input, as a tensor (the reader a decode worker runs)."""

    size: int
    mean: np.ndarray
    std: np.ndarray

    def __call__(self, path: str) -> torch.Tensor:
        return torch.from_numpy(load_frame(path, self.size, self.mean, self.std))


def frame_decode(size: int, mean: Sequence[float], std: Sequence[float], *, pin_memory: bool = False) -> Decode:
    """The encoders' decode step: `load_frame` in the workers, ``[B, 3, size, size]`` batches."""
    reader = FrameReader(size, np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32))
    return Decode(read=reader, collate=default_collate, pin_memory=pin_memory)
