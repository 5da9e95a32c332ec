"""FiftyOne and its MongoDB: imported lazily, a lost database turned into what to do,
and whether one answers before any work starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from bddengine.errors import StageInputError

MONGO_HELP = (
    "Start one: `eval \"$(tools/local-mongod.sh start)\"` (from the repository root; no internet "
    "needed), or run any MongoDB >= 6 and `export FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:27017`. "
    "See README, 'Explore in the FiftyOne App'."
)
"""What to do when no MongoDB answers (`bddengine check`, the collect stage, the App)."""
_MONGO_HELP = ("start MongoDB (`eval \"$(tools/local-mongod.sh start)\"` from the repository root, "
               "or set FIFTYONE_DATABASE_URI), or disable the mirror with "
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


class DatabaseStatus(NamedTuple):
    """Whether FiftyOne's MongoDB is there: where it is when found, what to do when not."""

    found: bool
    detail: str


def database_status(timeout_ms: int = 2000) -> DatabaseStatus:
    """FiftyOne's MongoDB: the server at ``FIFTYONE_DATABASE_URI`` answers, or FiftyOne has its own mongod.

    Seconds at most: ``bddengine check`` and the collect stage ask before any work starts.
    """
    off = " Or turn the mirror off: --set fiftyone.enabled=false."
    uri = os.environ.get("FIFTYONE_DATABASE_URI") or _configured_uri()
    if uri:
        try:
            import pymongo

            pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms).admin.command("ping")
        except Exception as exc:  # noqa: BLE001 - pymongo raises many kinds
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            return DatabaseStatus(False, f"no answer at {uri} ({first}). " + MONGO_HELP + off)
        return DatabaseStatus(True, f"answers at {uri}")
    spec = importlib.util.find_spec("fiftyone")
    own = Path(spec.origin).parent / "db" / "bin" / "mongod" if spec and spec.origin else None
    if own is not None and own.is_file():
        return DatabaseStatus(True, f"FiftyOne starts its own: {own}")
    return DatabaseStatus(False, "FIFTYONE_DATABASE_URI is unset and this FiftyOne install has no mongod of "
                          "its own. " + MONGO_HELP + off)


def _configured_uri() -> str | None:
    """``database_uri`` from FiftyOne's config file (``FIFTYONE_CONFIG_PATH`` or ~/.fiftyone/config.json)."""
    path = Path(os.environ.get("FIFTYONE_CONFIG_PATH") or Path.home() / ".fiftyone" / "config.json")
    try:
        uri = json.loads(path.read_text()).get("database_uri")
    except (OSError, ValueError, AttributeError):
        return None
    return uri if isinstance(uri, str) and uri else None
