"""The ``ray`` backend: Ray Data over a cluster; decode in tasks, the model in an actor pool.

The driver cuts the batches exactly as `FrameSource.batches` does (a model's numbers can
depend on which frames share a batch), so each Ray row is one whole batch: its index,
frame names and paths. Decode runs as Ray tasks (one row -> the collated inputs), the
model step in ``actors`` actors, each holding its own copy of the step: the step object
is shipped to the actor (cloudpickle, as Ray ships any argument) and the actor's
``__init__`` unpickles it there, so the model is loaded once per actor, not per batch.
Results are keyed by frame name; Ray hands batches back when they finish.

Ray is imported only when this backend runs. The driver connects for the one call and
disconnects after (`ray.shutdown`), which also cancels the job's tasks and actors: a
Ctrl-C or an error stops the cluster work, and the stage's run folder is removed as
with any other failure. When the caller has connected already (``ray.is_initialized()``,
e.g. a test session), the connection is used and left open, and the stream is closed.

Credentials never come from the config: a cluster address in ``compute.address`` names
host and port only, and a token comes from Ray's own environment variables
(``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``) or ``RAY_ADDRESS``; this module logs neither.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from bddengine.inference.pipeline import Batch, Decode, FrameSource, Model

MAX_BLOCKS = 256
"""At most this many Ray blocks for the batch list: enough for the decode tasks to spread."""


@dataclass(frozen=True)
class RayBackend:
    """A Ray cluster: ``actors`` model actors with ``gpus_per_actor`` GPUs and ``cpus_per_actor`` CPUs each.

    Attributes:
        address: the cluster (``host:port``, ``ray://host:port``, ``auto``); None: ``RAY_ADDRESS``
            from the environment when set, else a local Ray instance for the call.
        actors: model actors (each loads the model once).
        gpus_per_actor: GPUs per actor; None: 1 when the cluster has GPUs, else 0 (CPU).
        cpus_per_actor: CPUs per actor.
    """

    address: str | None = None
    actors: int = 1
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0

    def configure(self, settings: dict[str, Any]) -> RayBackend:
        """This backend with the ``compute`` section's settings (the keys it knows)."""
        return replace(self, **{k: v for k, v in settings.items() if k in self.__dataclass_fields__})

    def run(self, source: FrameSource, decode: Decode, model: Model, *, batch_size: int,
            workers: int) -> Iterator[tuple[list[str], dict[str, Any]]]:
        """See `bddengine.inference.Backend.run`; ``workers`` is not used (Ray schedules decode tasks)."""
        if not len(source):
            return
        import ray

        owned = not ray.is_initialized()
        if owned:
            _quiet_ray()
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)
        stream = None
        try:
            stream = self._stream(source, decode, model, batch_size)
            for row in stream:
                names, out = pickle.loads(row["results"])
                yield names, out
        except Exception as exc:  # noqa: BLE001 (re-raised: the step's own error, not Ray's wrapper)
            raise _user_error(exc) from None
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            if owned:
                ray.shutdown()

    def _stream(self, source: FrameSource, decode: Decode, model: Model, batch_size: int) -> Iterator[dict]:
        import ray
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the stage shows its own bar over frames
        ctx.print_on_execution_start = False
        chunks = [{"index": i, "names": list(c.names), "paths": list(c.paths)}
                  for i, c in enumerate(source.batches(batch_size))]
        ds = ray.data.from_items(chunks, override_num_blocks=min(len(chunks), MAX_BLOCKS))
        if decode.read is not None:
            # Ray would fuse the decode tasks into the model actors (same resources); a
            # per-task arguments function keeps them apart, so decoding runs beside the model
            ds = ds.map(_DecodeBatch(decode), ray_remote_args_fn=_one_cpu)
        else:
            ds = ds.map(_DecodeBatch(decode))  # nothing to decode: the step reads the files itself
        gpus = self.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        # the step goes to the object store once; each actor fetches it in __init__
        ds = ds.map(_ModelActor, fn_constructor_args=(ray.put(model),),
                    compute=ray.data.ActorPoolStrategy(size=self.actors),
                    num_cpus=self.cpus_per_actor, num_gpus=gpus)
        return ds.iter_rows()


class _DecodeBatch:
    """A Ray task's work: one batch row -> its names and the decoder's batch (pickled, any type)."""

    def __init__(self, decode: Decode) -> None:
        self.decode = decode

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        names, paths = [str(n) for n in row["names"]], [str(p) for p in row["paths"]]
        d = self.decode
        inputs = paths if d.read is None else d.collate([d.read(p) for p in paths])
        return {"index": row["index"], "batch": pickle.dumps((names, paths, inputs), protocol=5)}


class _ModelActor:
    """A Ray actor holding one copy of the model step; one decoded batch row -> its results."""

    def __init__(self, model: Any) -> None:
        import ray

        self.model: Model = ray.get(model) if isinstance(model, ray.ObjectRef) else model

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        names, paths, inputs = pickle.loads(row["batch"])
        out = self.model(Batch(names, paths, inputs))
        return {"index": row["index"], "results": pickle.dumps((names, out), protocol=5)}


def _one_cpu() -> dict[str, Any]:
    """A decode task's Ray arguments: one CPU."""
    return {"num_cpus": 1}


def _user_error(exc: BaseException) -> BaseException:
    """The step's own exception inside Ray's wrappers (an ``ImageDecodeError`` stays one), else ``exc``.

    Ray re-raises a task's error as a ``RayTaskError`` that is also an instance of the
    original class; Ray Data wraps that again. The message carries the task's traceback,
    whose last line is the step's own message, as with DataLoader workers.
    """
    from ray.exceptions import RayTaskError

    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, RayTaskError):
            return err.as_instanceof_cause()
        err = err.__cause__ or err.__context__
    return exc


def _quiet_ray() -> None:
    """Ray's own INFO lines (which name the cluster address) stay off the terminal and the logs."""
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)
