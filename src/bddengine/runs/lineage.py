"""Which runs a run was built from, with one rule.

Every ``result.json`` records the runs it read under ``inputs`` (stage -> path). A
recorded run is found at that path, else by its name under ``runs_dir`` (a moved or
copied runs folder); when it is in neither place the error names the missing run
and the command that makes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bddengine.errors import StageInputError
from bddengine.runs.folders import RESULT_FILE, RunRef, parse_run_name


def recorded_run(runs_dir: Path, value: str | Path | None) -> RunRef | None:
    """The complete run a recorded input path points at (the path, then its name in ``runs_dir``)."""
    if not value:
        return None
    recorded = Path(str(value))
    for path in (recorded, runs_dir / recorded.name):
        ref = parse_run_name(path)
        if ref is not None and (path / RESULT_FILE).is_file():
            return ref
    return None


def recorded_input(runs_dir: Path, result: dict[str, Any], stage: str) -> RunRef | None:
    """The run a parsed ``result.json`` records under ``inputs[stage]``, or None when it is gone."""
    return recorded_run(runs_dir, (result.get("inputs") or {}).get(stage))


def upstream(runs_dir: Path, ref: RunRef, stage: str) -> RunRef:
    """The ``stage`` run that ``ref`` was built from.

    Raises:
        StageInputError: ``ref`` records no such run, or the run is gone; the message
            says which and what to re-run.
    """
    result = ref.result()
    found = recorded_input(runs_dir, result, stage)
    if found is None:
        recorded = (result.get("inputs") or {}).get(stage)
        raise StageInputError(
            f"{ref.path}/{RESULT_FILE} names {stage} run {recorded!r}, which is gone: re-run "
            f"`bddengine {stage}` and the stages after it"
        )
    return found


def collect_of(ref: RunRef, runs_dir: Path) -> str | None:
    """The name of the collect run ``ref`` descends from, following recorded inputs back.

    Returns None when the chain is broken (an input run folder is gone).
    """
    if ref.stage == "collect":
        return ref.name
    frontier, seen = [ref], {ref.name}
    while frontier:
        parents: list[RunRef] = []
        for run in frontier:
            try:
                inputs = run.result().get("inputs", {})
            except (OSError, json.JSONDecodeError):
                continue
            for value in inputs.values():
                parsed = parse_run_name(Path(str(value)))
                if parsed is None:
                    continue
                if parsed.stage == "collect":
                    return parsed.name
                local = parse_run_name(runs_dir / parsed.name)
                if local is not None and parsed.name not in seen and (local.path / RESULT_FILE).is_file():
                    seen.add(parsed.name)
                    parents.append(local)
        frontier = parents
    return None
