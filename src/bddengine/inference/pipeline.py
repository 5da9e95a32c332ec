"""The pipeline's pieces and its one entry point, `infer`.

A `FrameSource` lists frames (name, path); a `Decode` says how a worker turns a
frame's file into model input and how inputs become a batch; a `Model` maps a
`Batch` to one result per frame name; a `Backend` runs decode and model over the
source. Backends may hand batches back in any order (a cluster finishes them
when it does), so results are keyed by frame name, never by position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FrameSource:
    """Frames to run over: unique names and their image paths, in the order batches are cut."""

    names: tuple[str, ...]
    paths: tuple[str, ...]

    def __init__(self, names: Sequence[str], paths: Sequence[str]) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in names))
        object.__setattr__(self, "paths", tuple(str(p) for p in paths))
        if len(self.names) != len(self.paths):
            raise ValueError(f"{len(self.names)} frame names but {len(self.paths)} paths")
        if len(set(self.names)) != len(self.names):
            dup = next(n for i, n in enumerate(self.names) if n in self.names[:i])
            raise ValueError(f"frame {dup!r} listed twice: results are keyed by frame name")

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame) -> FrameSource:
        """The ``name`` and ``path`` columns of a manifest (collect's, or a pool table)."""
        return cls(manifest["name"].astype(str).tolist(), manifest["path"].astype(str).tolist())

    def __len__(self) -> int:
        return len(self.names)

    def batches(self, size: int) -> Iterator[FrameSource]:
        """Consecutive runs of at most ``size`` frames, in source order."""
        for start in range(0, len(self), size):
            yield FrameSource(self.names[start:start + size], self.paths[start:start + size])


@dataclass(frozen=True)
class Decode:
    """How frames become model input: ``read`` one file (in a worker), ``collate`` a batch of them.

    Both run in worker processes, so they must pickle (module-level functions or
    dataclass instances). ``read=None``: the model reads the files itself (ultralytics
    decodes and letterboxes inside its predictor), and a batch's inputs are its paths.

    Attributes:
        read: path -> one frame's model input; raises ``ImageDecodeError`` naming the file.
        collate: the read frames of a batch -> the model's batch input.
        pin_memory: pin batches in page-locked memory (a model on a GPU).
    """

    read: Callable[[str], Any] | None = None
    collate: Callable[[list[Any]], Any] = list
    pin_memory: bool = False


FILES = Decode()
"""The model reads the image files itself."""


@dataclass
class Batch:
    """Consecutive frames of a source with their decoded inputs."""

    names: list[str]
    paths: list[str]
    inputs: Any
    """``Decode.collate`` of the read frames; the paths when ``Decode.read`` is None."""


class Model(Protocol):
    """The model step: a batch in, a result per frame name out."""

    def __call__(self, batch: Batch) -> dict[str, Any]:
        """Results keyed by the batch's frame names; a frame the model could not read is left out."""
        ...


class Backend(Protocol):
    """Where the work runs: this process (``local``), a thread pool, a cluster."""

    def run(self, source: FrameSource, decode: Decode, model: Model, *, batch_size: int,
            workers: int) -> Iterator[tuple[list[str], dict[str, Any]]]:
        """Run ``decode`` and ``model`` over ``source``.

        Each batch is a consecutive run of ``batch_size`` frames of ``source`` (the last
        may be shorter), cut as `FrameSource.batches` cuts them: what a model computes can
        depend on which frames share its batch (an encoder's numerics, ultralytics'
        letterbox), so every backend batches alike. Batches may come back in any order.

        Args:
            workers: decode processes, where the backend has any (0: decode in the caller).

        Yields:
            Per batch: its frame names, and the model's results keyed by name.
        """
        ...
