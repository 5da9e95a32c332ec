"""Batched encoding: device choice, CPU threads, and the encoders' model step."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bddengine.errors import StageInputError
from bddengine.inference import Batch


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


@dataclass
class Encoder:
    """The encoders' model step: a ``[B, 3, S, S]`` batch -> each frame's L2-normalised vector.

    On a GPU the model runs channels_last under fp16 autocast; on the CPU in fp32.

    Attributes:
        model: encoder, ``[B, 3, S, S]`` -> ``[B, dim]``, already on ``device`` (`prepare_model`).
        device: where the model lives.
    """

    model: nn.Module
    device: torch.device

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        """Frame name -> ``[dim]`` float32 of unit L2 norm."""
        cuda = self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            x = batch.inputs.to(self.device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            feats = F.normalize(self.model(x).float(), dim=-1).cpu().numpy()
        return dict(zip(batch.names, feats, strict=True))


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move the encoder to ``device`` (channels_last on a GPU)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
