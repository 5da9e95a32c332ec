"""One process at a time per runs folder and stage: a lock file holding the holder's PID.

Two copies of the same stage on one runs folder raced: the second deleted the
first's live temporary folder, or both committed an identical run. A stage now
takes ``<runs_dir>/.lock_<stage>[_iter<k>][_<tag>]`` before it touches its folders.
The lock is an ``flock`` on that file, so the kernel releases it when the holder
dies, however it dies (a ``kill -9`` leaves no stale lock to break by hand); the
file holds the holder's PID and command for the message a second copy prints, and
is removed when the lock is released (a file left by a killed holder is reused).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_PREFIX = ".lock_"


class StageBusy(RuntimeError):
    """Another live process holds this stage's lock; the message names it."""


@dataclass
class StageLock:
    """A held lock; `release` it (or let the process end)."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: a waiter re-checks the path
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = -1


def acquire(runs_dir: Path, key: str, *, wait_s: float = 0.0) -> StageLock:
    """Take the lock of ``key`` (e.g. ``train_iter0``) on ``runs_dir``.

    Args:
        runs_dir: the runs folder.
        key: the stage and what tells its runs apart (iteration, tag).
        wait_s: how long to wait for a busy lock before giving up.

    Raises:
        StageBusy: another live process holds it; the message says which and what to do.
    """
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{LOCK_PREFIX}{key}"
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder released and removed the file meanwhile: take the new one
            continue
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StageBusy(
                    f"{key} is already running on {runs_dir} ({holder}); two copies would overwrite each "
                    "other's work. Wait for it to finish (then re-run: an identical run is reused), or "
                    "stop that process first") from None
            os.close(fd)
            time.sleep(0.2)
    try:  # who holds it, for a second copy's message; the lock holds without it (e.g. a full disk)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()}: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}\n".encode(), 0)
    except OSError:
        pass
    return StageLock(path, fd)
