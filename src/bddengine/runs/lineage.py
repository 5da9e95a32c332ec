"""Which runs a run was built from, with one rule.

Every ``result.json`` records the runs it read under ``inputs`` (stage -> run folder,
relative to ``runs_dir``). A recorded run is found by its name in the runs folder the
reading run lives in, so a moved or copied runs folder reads its own runs and never
another project's; when it is not there the error names the missing run and the
command that makes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bddengine.errors import StageInputError
from bddengine.runs.folders import RESULT_FILE, RunRef, parse_run_name


def recorded_run(runs_dir: Path, value: str | Path | None) -> RunRef | None:
    """The complete run a recorded input names, looked up by its folder name in ``runs_dir``.

    Inputs are recorded relative to ``runs_dir`` (``03_split``); older runs recorded an
    absolute path, of which only the name is used. Either way a copied or moved project
    reads its own runs, never the folder it was copied from. None when the run is gone.
    """
    if not value:
        return None
    path = runs_dir / Path(str(value)).name
    ref = parse_run_name(path)
    return ref if ref is not None and (path / RESULT_FILE).is_file() else None


def recorded_input(runs_dir: Path, result: dict[str, Any], stage: str) -> RunRef | None:
    """The run a parsed ``result.json`` records under ``inputs[stage]``, or None when it is gone."""
    return recorded_run(runs_dir, (result.get("inputs") or {}).get(stage))


def upstream(ref: RunRef, stage: str) -> RunRef:
    """The ``stage`` run that ``ref`` was built from, in the runs folder ``ref`` lives in.

    A run read with ``--from`` from another folder finds its inputs beside it there.

    Raises:
        StageInputError: ``ref`` records no such run, or the run is gone; the message
            says which and what to re-run.
    """
    result = ref.result()
    found = recorded_input(ref.path.parent, result, stage)
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
