"""Run a model step over a frame source on a registered backend, with one progress bar."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bddengine.inference.backends import get_backend
from bddengine.inference.pipeline import Backend, Decode, FrameSource, Model


@dataclass(frozen=True)
class Bar:
    """A progress bar: its label, a frames/s column, and whether it stays after the work."""

    label: str
    rate: bool = False
    transient: bool = True


def infer(source: FrameSource, decode: Decode, model: Model, *, batch_size: int, workers: int = 0,
          backend: str | Backend = "local", progress: Bar | None = None) -> dict[str, Any]:
    """Run ``model`` over every frame of ``source`` on ``backend``, in batches of ``batch_size``.

    Args:
        source: the frames.
        decode: how workers read and batch them.
        model: the model step.
        batch_size: frames per batch.
        workers: decode processes (``local``: DataLoader workers).
        backend: a registered backend name, or a backend set up with its settings
            (``cfg.compute.runner()``: ``compute.backend`` with the ``compute`` section).
        progress: a progress bar over frames; None: none.

    Returns:
        Frame name -> the model's result, for every frame the model returned one for.
    """
    results: dict[str, Any] = {}
    runner = get_backend(backend) if isinstance(backend, str) else backend
    batches = runner.run(source, decode, model, batch_size=batch_size, workers=workers)
    with _progress(progress, len(source)) as advance:
        for names, out in batches:
            results.update(out)
            advance(len(names))
    return results


@contextlib.contextmanager
def _progress(bar: Bar | None, total: int) -> Iterator[Callable[[int], None]]:
    if bar is None:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               *((TextColumn("{task.fields[rate]}"),) if bar.rate else ()), TimeRemainingColumn())
    # bound to the terminal stream now: a model step may send a library's prints to a log meanwhile
    console = Console(file=sys.stdout)
    with Progress(*columns, transient=bar.transient, console=console) as shown:
        task = shown.add_task(bar.label, total=total, rate="")
        t0 = time.perf_counter()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.perf_counter() - t0, 1e-9)
            shown.update(task, advance=n, rate=f"{rate:,.1f} frames/s")

        yield advance
