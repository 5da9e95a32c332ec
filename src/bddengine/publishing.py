"""Publish a run's files into a folder the user also owns, replacing only what was published before.

``report`` copies its case study and figures out of the run folder to
``<out_dir>/case_study`` and ``<out_dir>/figures``, where a user may keep files of
their own. Each published folder holds a manifest (``.bddengine-published.json``:
relative path -> SHA-256 of each file published there last time). A new publish
writes each file to a temporary name beside it and renames it into place; it
replaces a file only when the manifest lists it with its current content, removes
files of the last publish that this one no longer has, and leaves everything else
alone. A file it would overwrite that it did not publish (or that was edited since)
stops the publish before anything is written. A symlinked folder is followed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bddengine.errors import StageInputError
from bddengine.lifecycle import alive
from bddengine.weights_trust import sha256_file

MANIFEST = ".bddengine-published.json"


def published_files(target: Path) -> dict[str, set[str]]:
    """What the last publish put in ``target`` (relative path -> its SHA-256s); {} when none.

    A publish that was interrupted lists both the old and the new digest of each file.
    """
    try:
        files = json.loads((target / MANIFEST).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {str(k): {v} if isinstance(v, str) else {str(x) for x in v} for k, v in files.items()}


def _write_manifest(real: Path, files: dict[str, set[str]]) -> None:
    tmp = real / f".tmp-{os.getpid()}-{MANIFEST}"
    try:
        tmp.write_text(json.dumps({"files": {k: sorted(v) for k, v in sorted(files.items())}}, indent=2) + "\n")
        os.replace(tmp, real / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)


def publish_trees(pairs: list[tuple[Path, Path]]) -> list[Path]:
    """Publish every file under each ``src`` into its ``target`` (see the module docstring).

    All targets are checked before any is written.

    Returns:
        The folders written into (each ``target``, or where its symlink points).

    Raises:
        StageInputError: a ``target`` is not a folder (or a symlink to none), or a file to
            publish would replace one bddengine did not publish; nothing was written.
    """
    plans = [_plan(src, target) for src, target in pairs]
    for src, real, new, before in plans:
        _write(src, real, new, before)
    return [plan[1] for plan in plans]


def _plan(src: Path, target: Path) -> tuple[Path, Path, dict[str, str], dict[str, set[str]]]:
    real = target
    if target.is_symlink():
        real = target.resolve()
        if not real.is_dir():
            raise StageInputError(f"{target} is a symlink to {real}, which is not a folder: point it at a "
                                  f"folder (or remove the link) and re-run `bddengine report`")
    elif target.exists() and not target.is_dir():
        raise StageInputError(f"{target} is a file, not a folder: move it away and re-run `bddengine report`")
    new = {p.relative_to(src).as_posix(): sha256_file(p) for p in sorted(src.rglob("*")) if p.is_file()}
    before = published_files(real) if real.is_dir() else {}
    conflicts = []
    for rel, sha in new.items():
        dest = real / rel
        if dest.is_dir() and not dest.is_symlink():
            conflicts.append(f"{dest} (a folder)")
        elif dest.exists() or dest.is_symlink():
            current = sha256_file(dest) if dest.is_file() else None
            if current == sha:
                continue  # the same bytes: replacing them loses nothing
            if rel not in before:
                conflicts.append(f"{dest} (not published by bddengine)")
            elif current not in before[rel]:
                conflicts.append(f"{dest} (changed since bddengine published it)")
    if conflicts:
        raise StageInputError(
            f"not publishing into {real}: it would replace {len(conflicts)} file(s) bddengine does not own: "
            f"{'; '.join(conflicts[:5])}. Move or rename them and re-run `bddengine report` (the report run "
            "is kept, so it only publishes)")
    return src, real, new, before


def _write(src: Path, real: Path, new: dict[str, str], before: dict[str, set[str]]) -> None:
    real.mkdir(parents=True, exist_ok=True)
    for left in real.rglob(".tmp-*"):  # temporary copies of a publish that was killed
        pid = left.name.split("-")[1]
        if left.is_file() and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            left.unlink()
    # first list old and new digests, so an interrupted publish still owns every file it touched
    _write_manifest(real, {rel: before.get(rel, set()) | ({new[rel]} if rel in new else set())
                           for rel in set(before) | set(new)})
    for rel in new:
        dest = real / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".tmp-{os.getpid()}-{dest.name}"
        try:
            shutil.copyfile(src / rel, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    for rel, shas in before.items():
        dest = real / rel
        if rel not in new and dest.is_file() and not dest.is_symlink() and sha256_file(dest) in shas:
            dest.unlink()
            _remove_empty_parents(dest.parent, real)
    _write_manifest(real, {rel: {sha} for rel, sha in new.items()})


def _remove_empty_parents(folder: Path, top: Path) -> None:
    while folder != top and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
