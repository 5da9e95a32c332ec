"""Run folders: numbering, atomic commit, and lookup of a stage's inputs.

Every stage writes one folder ``<runs_dir>/<NN>_<stage>[_iter<k>][_<tag>]/`` holding the
resolved config (``config.yaml``), a ``result.json`` and its artifacts. The folder
is built under a hidden temporary name and renamed into place only when the stage
completed, so an interrupted run leaves nothing half-written behind and can simply
be re-run. A stage finds its inputs through the newest complete run of the stage it
depends on, or an explicit run named by the user.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from bddengine.diskfull import disk_full, is_disk_full
from bddengine.lifecycle import alive
from bddengine.locks import StageLock, acquire

RESULT_FILE = "result.json"
CONFIG_FILE = "config.yaml"
TMP_PREFIX = ".tmp_"
RESUMABLE_MARKER = ".resumable"
_RUN_RE = re.compile(r"^(?P<num>\d{2,})_(?P<stage>[a-z]+)(?:_iter(?P<iter>\d+))?(?:_(?P<tag>[a-z0-9-]+))?$")

_VERSIONED_PACKAGES = (
    "bddengine", "numpy", "pandas", "pyarrow", "pydantic", "torch", "torchvision",
    "ultralytics", "open_clip_torch", "faiss-cpu", "fiftyone", "pycocotools",
)


class RunLookupError(LookupError):
    """No run folder satisfies a stage's input."""


@dataclass(frozen=True)
class RunRef:
    """A complete run folder."""

    path: Path
    number: int
    stage: str
    iter: int | None = None
    tag: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def result(self) -> dict[str, Any]:
        """The run's parsed ``result.json``."""
        return json.loads((self.path / RESULT_FILE).read_text())


def parse_run_name(path: Path) -> RunRef | None:
    """Parse ``<NN>_<stage>[_iter<k>][_<tag>]``; None for anything else."""
    m = _RUN_RE.match(path.name)
    if not m:
        return None
    it = m.group("iter")
    return RunRef(path, int(m.group("num")), m.group("stage"), int(it) if it else None, m.group("tag"))


def list_runs(runs_dir: Path) -> list[RunRef]:
    """All complete runs (a ``result.json`` with status complete), oldest first."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for entry in runs_dir.iterdir():
        ref = parse_run_name(entry)
        if ref is None or not (entry / RESULT_FILE).is_file():
            continue
        try:
            if ref.result().get("status") != "complete":
                continue
        except (OSError, json.JSONDecodeError):
            continue
        runs.append(ref)
    return sorted(runs, key=lambda r: r.number)


def latest_run(
    runs_dir: Path, stage: str, *, iter: int | None = None, tag: str | None = None
) -> RunRef | None:
    """Newest complete run of ``stage`` (optionally of one iteration and tag)."""
    for ref in reversed(list_runs(runs_dir)):
        if ref.stage != stage:
            continue
        if iter is not None and ref.iter != iter:
            continue
        if tag is not None and ref.tag != tag:
            continue
        return ref
    return None


def resolve_input(
    runs_dir: Path,
    stage: str,
    *,
    explicit: str | None = None,
    iter: int | None = None,
    tag: str | None = None,
    hint: str | None = None,
) -> RunRef:
    """Find the run a stage reads from.

    Args:
        runs_dir: the runs folder.
        stage: the stage whose output is needed (e.g. ``"collect"``).
        explicit: a run folder name or path given by the user (``--from``).
        iter: restrict to one iteration.
        tag: restrict to one tag (e.g. a mining strategy).
        hint: the command that produces such a run, for the error message.

    Raises:
        RunLookupError: nothing usable found; the message says what to run.
    """
    if explicit:
        path = Path(explicit)
        if not path.is_dir():
            path = runs_dir / explicit
        ref = parse_run_name(path)
        if ref is None or not (path / RESULT_FILE).is_file():
            raise RunLookupError(f"--from {explicit}: {path} is not a complete run folder")
        if ref.stage != stage:
            raise RunLookupError(f"--from {explicit}: expected a {stage!r} run, got {ref.stage!r}")
        return ref
    ref = latest_run(runs_dir, stage, iter=iter, tag=tag)
    if ref is None:
        what = stage + (f" --iter {iter}" if iter is not None else "") + (f" ({tag})" if tag else "")
        todo = hint or f"bddengine {stage}"
        raise RunLookupError(f"no complete {what!r} run under {runs_dir}: run `{todo}` first")
    return ref


def relative_inputs(runs_dir: Path, inputs: dict[str, str]) -> dict[str, str]:
    """``inputs`` with paths inside ``runs_dir`` written relative to it (``03_split``), others as given."""
    root = runs_dir.resolve()
    out = {}
    for key, value in inputs.items():
        try:
            out[key] = Path(value).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            out[key] = value
    return out


def package_versions() -> dict[str, str]:
    """Versions of the packages whose behaviour shapes the results."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_json(path: Path, obj: object) -> None:
    """Write an artifact as indented JSON (paths and other objects as strings)."""
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def clean_stale_tmp(runs_dir: Path, max_age_s: float = 0.0) -> list[Path]:
    """Remove temporary folders left by interrupted runs of dead processes."""
    removed = []
    if not runs_dir.is_dir():
        return removed
    for entry in runs_dir.iterdir():
        if not entry.name.startswith(TMP_PREFIX) or not entry.is_dir():
            continue
        if (entry / RESUMABLE_MARKER).is_file():
            continue  # an interrupted training that `--resume` can pick up
        pid = _tmp_owner(entry)
        if pid is not None and pid != os.getpid() and alive(pid):
            continue
        if time.time() - entry.stat().st_mtime < max_age_s:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _tmp_owner(path: Path) -> int | None:
    parts = path.name[len(TMP_PREFIX):].split("_")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None


@dataclass
class StageRun:
    """One stage's run folder under construction; use as a context manager.

    Inside the ``with`` block, write artifacts under ``run.dir``. Call
    :meth:`commit` to write ``result.json`` and rename the folder into place; leaving
    the block without committing (an exception, Ctrl-C) deletes the folder, unless
    ``resumable`` is set: then the folder stays, marked, for a later ``resume_from``
    (and a fresh resumable run deletes the interrupted folders of its stage).

    Only one process at a time builds a run of a stage (and iteration, tag) on a
    runs folder: a second one gets `bddengine.locks.StageBusy`, naming the first.
    """

    runs_dir: Path
    stage: str
    config: dict[str, Any]
    seed: int
    fingerprint: str
    iter: int | None = None
    tag: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    resumable: bool = False
    resume_from: Path | None = None
    dir: Path = field(init=False)
    number: int = field(init=False)
    final: RunRef | None = field(init=False, default=None)
    _t0: float = field(init=False)
    _started: str = field(init=False)
    _lock: StageLock | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        key = self.stage + (f"_iter{self.iter}" if self.iter is not None else "") + (f"_{self.tag}" if self.tag else "")
        self._lock = acquire(self.runs_dir, key)  # one live copy of a stage per runs folder
        clean_stale_tmp(self.runs_dir)
        if self.resumable and self.resume_from is None:  # a fresh run replaces interrupted ones
            discard_resumable(self.runs_dir, self.stage, iter=self.iter, tag=self.tag)
        if self.resume_from is not None:
            self.number = int(self.resume_from.name[len(TMP_PREFIX):].split("_", 1)[0])
            self.dir = self.resume_from
            return
        self.number = max((r.number for r in _all_numbered(self.runs_dir)), default=0) + 1
        self.dir = self.runs_dir / f"{TMP_PREFIX}{self.run_name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    @property
    def run_name(self) -> str:
        name = f"{self.number:02d}_{self.stage}"
        if self.iter is not None:
            name += f"_iter{self.iter}"
        if self.tag:
            name += f"_{self.tag}"
        return name

    def __enter__(self) -> StageRun:
        try:
            self._t0 = time.perf_counter()
            self.dir.mkdir(parents=True, exist_ok=self.resume_from is not None)
            self._started = _now()
            (self.dir / CONFIG_FILE).write_text(yaml.safe_dump(self.config, sort_keys=False))
            if self.resumable:
                (self.dir / RESUMABLE_MARKER).write_text(self.fingerprint)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        written = folder_bytes(self.dir) if is_disk_full(exc) and self.dir.exists() else None
        try:
            if self.final is None and self.dir.exists() and not self.resumable:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if self._lock is not None:
                self._lock.release()
        if is_disk_full(exc):
            kept = (f"the interrupted run is kept in {self.dir} for `--resume`"
                    if self.resumable and self.dir.exists() else None)
            raise disk_full(exc, self.runs_dir, written=written, what=f"{self.run_name}", kept=kept) from exc

    def commit(
        self,
        *,
        outputs: dict[str, str],
        metrics: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> RunRef:
        """Write ``result.json`` and move the folder into place.

        Args:
            outputs: artifact name -> path relative to the run folder.
            metrics: the stage's key numbers.
            extra: further JSON-able fields for ``result.json``.
        """
        missing = [p for p in outputs.values() if not (self.dir / p).exists()]
        if missing:
            raise RuntimeError(f"{self.stage}: declared outputs were not written: {missing}")
        wall = time.perf_counter() - self._t0
        result = {
            "stage": self.stage,
            "run": self.run_name,
            "iter": self.iter,
            "tag": self.tag,
            "status": "complete",
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "inputs": relative_inputs(self.runs_dir, self.inputs),
            "outputs": outputs,
            "metrics": metrics,
            "wall_time_s": round(wall, 3),
            "disk_bytes": folder_bytes(self.dir),
            "started_at": self._started,
            "finished_at": _now(),
            "host": socket.gethostname(),
            "versions": package_versions(),
        }
        result.update(extra or {})
        (self.dir / RESUMABLE_MARKER).unlink(missing_ok=True)
        write_json(self.dir / RESULT_FILE, result)
        target = self.runs_dir / self.run_name
        while target.exists():  # another process took the number meanwhile
            self.number += 1
            target = self.runs_dir / self.run_name
            result["run"] = self.run_name
            write_json(self.dir / RESULT_FILE, result)
        os.rename(self.dir, target)
        self.final = parse_run_name(target)
        assert self.final is not None
        return self.final


def _all_numbered(runs_dir: Path) -> list[RunRef]:
    """Every numbered folder, complete or not, so numbers are never reused."""
    refs = []
    for entry in runs_dir.iterdir():
        ref = parse_run_name(entry)
        if ref is not None:
            refs.append(ref)
    return refs


def find_same_run(
    runs_dir: Path, stage: str, fingerprint: str, *, iter: int | None = None, tag: str | None = None
) -> RunRef | None:
    """The newest complete run of this stage, if it was made with the same fingerprint."""
    ref = latest_run(runs_dir, stage, iter=iter, tag=tag)
    if ref is not None and ref.result().get("fingerprint") == fingerprint:
        return ref
    return None


def find_resumable(
    runs_dir: Path, stage: str, fingerprint: str, *, iter: int | None = None, tag: str | None = None
) -> Path | None:
    """The newest interrupted (resumable) folder of this stage made with this fingerprint."""
    if not runs_dir.is_dir():
        return None
    found = []
    for entry in runs_dir.iterdir():
        marker = entry / RESUMABLE_MARKER
        if not entry.name.startswith(TMP_PREFIX) or not marker.is_file():
            continue
        ref = parse_run_name(Path(entry.name[len(TMP_PREFIX):].rsplit("_", 2)[0]))
        if ref is None or (ref.stage, ref.iter, ref.tag) != (stage, iter, tag):
            continue
        if marker.read_text().strip() == fingerprint:
            found.append((ref.number, entry))
    return max(found)[1] if found else None


def discard_resumable(runs_dir: Path, stage: str, *, iter: int | None = None, tag: str | None = None) -> int:
    """Delete interrupted folders of this stage/iter/tag (a fresh run replaces them)."""
    n = 0
    if not runs_dir.is_dir():
        return n
    for entry in runs_dir.iterdir():
        if not entry.name.startswith(TMP_PREFIX) or not (entry / RESUMABLE_MARKER).is_file():
            continue
        ref = parse_run_name(Path(entry.name[len(TMP_PREFIX):].rsplit("_", 2)[0]))
        owner = _tmp_owner(entry)
        if owner is not None and owner != os.getpid() and alive(owner):
            continue  # another live process's training: never delete it
        if ref is not None and (ref.stage, ref.iter, ref.tag) == (stage, iter, tag):
            shutil.rmtree(entry, ignore_errors=True)
            n += 1
    return n
