"""The ``local`` backend: decode in DataLoader worker processes, the model in this process.

Batches come out in source order while the workers decode the next ones (each
keeps 4 batches in flight), so the model is never waiting on a JPEG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from bddengine.inference.pipeline import Batch, Decode, FrameSource, Model


class LocalBackend:
    """This machine: a DataLoader with ``workers`` niced decode processes feeding the model here."""

    def run(self, source: FrameSource, decode: Decode, model: Model, *, batch_size: int,
            workers: int) -> Iterator[tuple[list[str], dict[str, Any]]]:
        """See `bddengine.inference.Backend.run`; batches come back in source order."""
        from torch.utils.data import DataLoader  # torch only once there is work: config checks stay light

        if not len(source):
            return
        workers = min(workers, math.ceil(len(source) / batch_size))  # no idle decoders
        extra = {"prefetch_factor": 4, "worker_init_fn": lower_priority} if workers > 0 else {}
        loader = DataLoader(_Frames(source, decode.read), batch_size=batch_size, shuffle=False,
                            num_workers=workers, collate_fn=_Collate(decode), pin_memory=decode.pin_memory,
                            drop_last=False, **extra)
        for names, paths, inputs in loader:
            yield names, model(Batch(names, paths, inputs))


class _Frames:
    """Frame ``i`` as (name, path, decoded input): the path itself when there is no reader."""

    def __init__(self, source: FrameSource, read: Callable[[str], Any] | None) -> None:
        self.source = source
        self.read = read

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[str, str, Any]:
        path = self.source.paths[i]
        return self.source.names[i], path, path if self.read is None else self.read(path)


class _Collate:
    """(names, paths, the decoder's batch) from a batch of frames; a class so workers can pickle it."""

    def __init__(self, decode: Decode) -> None:
        self.collate = list if decode.read is None else decode.collate

    def __call__(self, items: list[tuple[str, str, Any]]) -> tuple[list[str], list[str], Any]:
        return [n for n, _, _ in items], [p for _, p, _ in items], self.collate([x for _, _, x in items])


def lower_priority(_worker_id: int) -> None:
    """Decoding needs a few percent of a core; the model's threads need whole cores.

    On a machine with as many busy threads as cores, a decoder preempting one of the
    model's threads stalls all of them at the next barrier; a niced decoder runs in
    the gaps instead, and the prefetched batches keep the model fed.
    """
    try:
        os.nice(10)
    except OSError:
        pass
