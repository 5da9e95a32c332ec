"""The profile of a ``bddengine flywheel`` turn: where the file lives, and reading it back.

``bddengine flywheel`` writes it (`bddengine.flywheel.TurnProfile`) and the report reads
it; both find it here, beside the runs folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROFILE_FILE = "turn_profile.json"
"""Written by ``bddengine flywheel`` next to the runs folder (`profile_path`), rewritten after every step."""


def profile_path(runs_dir: Path) -> Path:
    """Where a turn over ``runs_dir`` keeps its profile: beside the runs folder, like the published report."""
    return Path(runs_dir).parent / PROFILE_FILE


def read_turn_profile(runs_dir: Path, eval0_run: str) -> dict[str, Any] | None:
    """The turn profile beside ``runs_dir`` when it belongs to the turn whose iteration-0 eval is
    ``eval0_run``; None when there is none, it is unreadable, or it is another runs folder's or turn's."""
    try:
        doc = json.loads(profile_path(runs_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("runs_dir") != str(Path(runs_dir).resolve()):
        return None
    steps = doc.get("steps")
    if not isinstance(steps, list) or not any(
            isinstance(s, dict) and s.get("stage") == "eval" and s.get("run") == eval0_run for s in steps):
        return None
    return doc
