"""Processes and temporary folders that outlive a killed run.

A worker process started by a stage must not keep running when the stage is killed
(``kill -9`` gives the parent no chance to stop it), and a temporary folder whose
owner is dead is debris the next start removes. Both need the owner's PID, so
temporary names carry it (``<name>.tmp-<pid>-<token>``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux); a pool initializer.

    Args:
        parent_pid: the parent's PID when this process started; if the parent is
            already gone (it died before the request was made), exit at once.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def alive(pid: int) -> bool:
    """True when a process with this PID exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tmp_sibling(path: Path, kind: str = "tmp") -> Path:
    """``<path>.<kind>-<pid>-<token>``: a temporary name beside ``path`` that names its owner."""
    return path.parent / f"{path.name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}"


def clean_dead_siblings(path: Path, kinds: tuple[str, ...] = ("tmp", "old")) -> list[Path]:
    """Remove ``<path>.<kind>-<pid>-<token>`` folders whose owner process is dead."""
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        for kind in kinds:
            prefix = f"{path.name}.{kind}-"
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


@contextmanager
def interrupts_stick() -> Iterator[None]:
    """A Ctrl-C inside the block stops the stage even if library code swallowed it.

    ultralytics runs plotting and callbacks under a ``TryExcept`` that suppresses every
    exception, ``KeyboardInterrupt`` included: a Ctrl-C landing there was ignored and the
    run committed. The handler remembers the signal; leaving the block raises it again.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # Ctrl-C ignored on purpose (a background job of a shell, nohup): leave it ignored
        return
    hit = []

    def handler(signum, frame):  # noqa: ARG001
        hit.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if hit:
        raise KeyboardInterrupt
