"""FiftyOne and its MongoDB: imported lazily, and a lost database turned into what to do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from bddengine.errors import StageInputError

_MONGO_HELP = ("start MongoDB (`eval \"$(../shared/tools/mongod-for-fiftyone.sh start)\"` where that "
               "script exists, or set FIFTYONE_DATABASE_URI), or disable the mirror with "
               "--set fiftyone.enabled=false (README, 'Explore in the FiftyOne App')")


class FiftyOneUnavailable(StageInputError):
    """FiftyOne cannot reach its database."""


def _import_fiftyone():
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    try:
        import fiftyone as fo
    except Exception as exc:  # noqa: BLE001 - fiftyone raises many kinds on a missing DB
        raise FiftyOneUnavailable(
            f"FiftyOne could not start ({type(exc).__name__}: {exc}). {_MONGO_HELP[0].upper()}{_MONGO_HELP[1:]}"
        ) from exc
    return fo


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn a lost MongoDB into `FiftyOneUnavailable` with what to do."""
    try:
        yield
    except FiftyOneUnavailable:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__} {exc}".lower()
        if any(w in text for w in ("serverselectiontimeout", "connection refused", "mongod",
                                   "autoreconnect", "connectionfailure")):
            raise FiftyOneUnavailable(f"FiftyOne's database is unreachable ({exc}): {_MONGO_HELP}") from exc
        raise
