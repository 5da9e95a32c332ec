"""The errors a user can fix, below every stage so that any layer may raise them.

The CLI turns each into one paragraph and exit code 2; the message says what was
wrong, which file or key, and what to do next.
"""

from __future__ import annotations

import errno
from pathlib import Path


class StageInputError(RuntimeError):
    """A stage's input data is missing or unusable; the message says what to do."""


# errno values that say the user's file system refuses the path, never that the engine misbehaved
_REFUSED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EROFS: "the file system is read-only"}


def path_refused(exc: BaseException, folder: Path | None = None) -> StageInputError | None:
    """The user error for an ``OSError`` raised because a path of the user's cannot be used, else None.

    A folder the user may not write to (or read), a read-only disk, or a path with a file
    where a folder should be (``runs_dir: notes.txt/runs``) are the user's to fix: whichever
    stage, lock or mirror hit them, they get one message naming the path and what to do.

    Args:
        exc: the exception that stopped the command.
        folder: where the command writes (runs_dir, data.root), named as the folder to change.
    """
    if not isinstance(exc, OSError) or exc.errno not in (*_REFUSED, errno.ENOTDIR, errno.EEXIST):
        return None
    if exc.errno == errno.EEXIST and not (exc.filename and Path(exc.filename).is_file()):
        return None  # only a file standing where a folder is made (mkdir) is the user's
    path = exc.filename or folder or "a path"
    where = f" (the command writes under {folder})" if folder is not None and str(folder) != str(path) else ""
    if exc.errno == errno.EEXIST:
        return StageInputError(
            f"{path} is a file where a folder is needed{where}: move that file away, or point the config "
            "(runs_dir, data.root, report.out_dir) at a folder")
    if exc.errno == errno.ENOTDIR:
        return StageInputError(
            f"{path}: part of this path is a file, not a folder{where}: move that file away, or point the "
            "config (runs_dir, data.root, report.out_dir) at a folder")
    return StageInputError(
        f"{path}: {_REFUSED[exc.errno]}{where}: give your user the right to read and write there (check the "
        "owner and permissions of the folder, e.g. `ls -ld` on it), or point the config (runs_dir, data.root, "
        "report.out_dir) at a folder you can write to")
