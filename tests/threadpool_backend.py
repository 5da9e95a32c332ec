"""A second inference backend, as a plugin module: decode on a thread pool, batches back as they finish.

Importing it registers ``threads`` (``compute.backend: threads``); nothing else in the
engine knows about it. The model runs one batch at a time (ultralytics' predictor is
not thread-safe), so batches finish, and come back, in whatever order the decoding does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from bddengine.inference import Batch, Decode, FrameSource, Model, register_backend


class ThreadPoolBackend:
    """Decode each batch on a pool of threads; the model under a lock."""

    def __init__(self, threads: int = 3) -> None:
        self.threads = threads

    def run(self, source: FrameSource, decode: Decode, model: Model, *, batch_size: int,
            workers: int) -> Iterator[tuple[list[str], dict[str, Any]]]:
        lock = threading.Lock()

        def one(chunk: FrameSource) -> tuple[list[str], dict[str, Any]]:
            names, paths = list(chunk.names), list(chunk.paths)
            inputs = paths if decode.read is None else decode.collate([decode.read(p) for p in paths])
            with lock:
                return names, model(Batch(names, paths, inputs))

        with ThreadPoolExecutor(self.threads) as pool:
            for done in as_completed([pool.submit(one, chunk) for chunk in source.batches(batch_size)]):
                yield done.result()


register_backend("threads", ThreadPoolBackend())
