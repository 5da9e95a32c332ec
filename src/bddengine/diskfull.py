"""A full disk is one clear message, not an OSError traceback."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from bddengine.errors import StageInputError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(StageInputError):
    """A write failed because the file system (or a quota) is full."""


def is_disk_full(exc: BaseException | None) -> bool:
    """True for an ``OSError`` saying no space (or quota) is left."""
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def free_bytes(folder: Path) -> int | None:
    """Bytes free on the file system holding ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def human(n: int | None) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if n is None:
        return "an unknown amount"
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def disk_full(exc: OSError, folder: Path, *, written: int | None = None, what: str = "the stage",
              kept: str | None = None) -> DiskFull:
    """The error to raise in place of ``exc``.

    Args:
        exc: the failed write.
        folder: where the stage was writing (named in the message).
        written: bytes it had written there when the disk filled (the least it needs).
        what: what was interrupted, for the message.
        kept: what was kept (e.g. a resumable folder); default: nothing was kept.
    """
    where = f" writing {exc.filename}" if exc.filename else ""
    need = (f"; it had written {human(written)} when the disk filled, so it needs more than that"
            if written else "")
    left = kept or "nothing half-written was left behind"
    return DiskFull(f"disk full{where}: {what} stopped ({exc.strerror or exc}). {folder} has "
                    f"{human(free_bytes(folder))} free{need}. {left[0].upper()}{left[1:]}; free some space "
                    "(or point the folder at a larger disk) and re-run")
