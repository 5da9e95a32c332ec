"""Batched encoding: device choice, CPU threads, and the inference loop."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bddengine.errors import StageInputError


def pick_device(name: str) -> torch.device:
    """``auto`` -> the first GPU when there is one, else the CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise StageInputError(f"embed.device={name!r}: {exc} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = (f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch"
                 if torch.version.cuda is None else "run on a GPU machine")
        raise StageInputError(f"embed.device={name!r} but torch sees no GPU here: use device: auto or cpu "
                              f"(or {build})")
    return device


def cpu_count() -> int:
    """Cores this process may use (respects taskset / cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, restoring the old count after."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def encode_batches(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    n_frames: int,
    dim: int,
    device: torch.device,
    *,
    on_batch=None,
) -> np.ndarray:
    """Run the model over ordered batches and L2-normalise the outputs.

    On a GPU the model runs channels_last under fp16 autocast; on the CPU in fp32.

    Args:
        model: encoder, ``[B, 3, S, S]`` -> ``[B, dim]``, already on ``device``.
        batches: the inputs in frame order (e.g. a ``frame_loader``).
        n_frames: total frames the batches hold.
        dim: embedding dimension.
        device: where the model lives.
        on_batch: called with the batch size after each batch (progress).

    Returns:
        ``[n_frames, dim]`` float32, each row of unit L2 norm.
    """
    out = np.empty((n_frames, dim), dtype=np.float32)
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext()
    row = 0
    with torch.inference_mode(), autocast:
        for batch in batches:
            x = batch.to(device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            feats = F.normalize(model(x).float(), dim=-1)
            n = feats.shape[0]
            out[row:row + n] = feats.cpu().numpy()
            row += n
            if on_batch is not None:
                on_batch(n)
    if row != n_frames:
        raise RuntimeError(f"encoded {row} frames, expected {n_frames}")
    return out


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move the encoder to ``device`` (channels_last on a GPU)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
