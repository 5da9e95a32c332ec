"""The inference backends by name: ``compute.backend`` is one of these.

A new backend (a Ray Data cluster, say) is one module with a class that has the
`bddengine.inference.Backend` ``run`` method, plus one entry here (or a
`register_backend` call in that module); no stage changes.
"""

from __future__ import annotations

from typing import Any

from bddengine.inference.local import LocalBackend
from bddengine.inference.pipeline import Backend
from bddengine.inference.ray_backend import RayBackend

BACKENDS: dict[str, Backend] = {
    "local": LocalBackend(),
    "ray": RayBackend(),  # imports ray only when it runs
}


def register_backend(name: str, backend: Backend) -> None:
    """Add ``backend`` under ``name`` (a module that is not listed in `BACKENDS` calls this on import).

    Raises:
        ValueError: ``name`` is taken.
    """
    if name in BACKENDS:
        raise ValueError(f"inference backend {name!r} is already registered")
    BACKENDS[name] = backend


def backend_names() -> list[str]:
    """The registered backends."""
    return list(BACKENDS)


def get_backend(name: str, settings: dict[str, Any] | None = None) -> Backend:
    """The backend registered as ``name``, set up with ``settings`` (the ``compute`` section).

    A backend with settings has a ``configure(settings) -> Backend`` method that picks the
    keys it knows; one without (``local``) is returned as registered.

    Raises:
        ValueError: no such backend (config validation catches it first: ``compute.backend``).
    """
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise ValueError(f"compute.backend={name!r} is not one of {backend_names()}") from None
    configure = getattr(backend, "configure", None)
    return configure(settings) if settings and configure is not None else backend
