"""Vouch for a weights file before anything unpickles it.

A ``.pt`` file is a pickle: loading it the ordinary way (what ultralytics does by
default) runs whatever code it carries. Before a stage hands a weights file to
ultralytics, `check_weights` decides whether the file may be loaded:

1. a path the user named with ``--trust-weights`` is loaded as is;
2. a file written by a run of this project must still have the SHA-256 that run
   recorded in its ``result.json`` (``weights_sha256``), or it is refused;
3. the file is read once with torch's restricted unpickler (``weights_only=True``,
   against ultralytics' allow-list of its own model classes): a file that loads
   that way holds no code, so the full load that follows builds the same objects;
4. a file that needs full unpickling is refused unless step 2 vouched for it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from bddengine.errors import StageInputError

SHA_KEY = "weights_sha256"
PICKLE_SUFFIXES = (".pt", ".pth")
_trusted: set[Path] = set()


def trust(paths: Iterable[str | Path]) -> None:
    """Load these files fully even when they need it (``--trust-weights``)."""
    _trusted.update(Path(p).expanduser().resolve() for p in paths)


def sha256_file(path: Path) -> str:
    """The file's SHA-256, hex."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_weights(run_dir: Path, rel_paths: Iterable[str]) -> dict[str, str]:
    """``{relative path: sha256}`` of weights files a run wrote, for its ``result.json``."""
    return {rel: sha256_file(run_dir / rel) for rel in rel_paths if (run_dir / rel).is_file()}


def recorded_sha(path: Path, runs_dir: Path | None) -> tuple[str, str] | None:
    """(run folder, recorded SHA-256) when ``path`` lies in a run of ``runs_dir`` that recorded it.

    Only runs directly under this project's runs folder count: a folder from elsewhere
    could record any digest for any file.
    """
    if runs_dir is None:
        return None
    path, runs_dir = Path(path).resolve(), Path(runs_dir).resolve()
    try:
        rel = path.relative_to(runs_dir)
    except ValueError:
        return None
    if len(rel.parts) < 2:
        return None
    run_dir = runs_dir / rel.parts[0]
    try:
        digests = json.loads((run_dir / "result.json").read_text()).get(SHA_KEY) or {}
    except (OSError, ValueError):
        return None
    inner = Path(*rel.parts[1:]).as_posix()
    return (str(run_dir), digests[inner]) if inner in digests else None


def restricted_load_problem(path: Path) -> str | None:
    """None when torch's restricted unpickler reads the file; else what it refused.

    Raises:
        StageInputError: the file is not a readable weights file at all.
    """
    import torch

    try:
        from ultralytics.nn.tasks import _SafeLoad
    except ImportError:  # another ultralytics: torch's own allow-list (plain state dicts)
        _SafeLoad = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _SafeLoad is not None and _SafeLoad.SUPPORTED:
                with _SafeLoad.loading(str(path)):
                    torch.load(str(path), map_location="cpu", weights_only=True)
            else:
                torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"(?:Unsupported [a-z]+|unsafe getattr)[^\n]*", str(exc))
        return found[0].rstrip(". ")[:300] if found else str(exc).splitlines()[0][:200]
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            return None  # an archive of TorchScript code, which is not Python pickle code
        raise StageInputError(f"{path} is not a readable weights file ({str(exc).splitlines()[0][:200]})") from exc
    except (EOFError, OSError, ValueError) as exc:
        raise StageInputError(f"{path} is not a readable weights file ({type(exc).__name__}: {exc})") from exc
    return None


def check_weights(path: Path | str, key: str, *, runs_dir: Path | None = None) -> str:
    """Refuse a weights file bddengine cannot vouch for; say how it was vouched for.

    Args:
        path: the file about to be loaded (anything but ``.pt``/``.pth`` passes).
        key: what named it (``train.model``, ``eval --from 03_train_iter0``), for the message.
        runs_dir: this project's runs folder, whose runs' recorded digests count.

    Returns:
        ``trusted`` (``--trust-weights``), ``safe`` (restricted load) or ``recorded``
        (needs full unpickling; the SHA-256 a run of this project recorded matches).

    Raises:
        StageInputError: the file changed since a run recorded it, or needs full
            unpickling and nothing vouches for it; the message says what to do.
    """
    path = Path(path)
    if path.suffix.lower() not in PICKLE_SUFFIXES or not path.is_file():
        return "not a pickle"
    if path.resolve() in _trusted:
        return "trusted"
    recorded = recorded_sha(path, runs_dir)
    if recorded is not None and sha256_file(path) != recorded[1]:
        raise StageInputError(
            f"{key}: {path} changed after {recorded[0]} wrote it (its SHA-256 differs from the one "
            f"recorded in {recorded[0]}/result.json), so bddengine will not unpickle it. Re-run the "
            f"stage that wrote it, or, if you changed the file yourself, pass --trust-weights {path}")
    problem = restricted_load_problem(path)
    if problem is None:
        return "safe"
    if recorded is not None:
        return "recorded"
    raise StageInputError(
        f"{key}: {path} cannot be read with torch's restricted unpickler ({problem}); loading it "
        "fully would run any code it carries, and bddengine did not write it. Use weights from a "
        "source you trust (ultralytics' own files load restricted), or, if you trust this file, "
        f"pass --trust-weights {path}")
