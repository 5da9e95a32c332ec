"""Which runs a run was built from, with one rule.

Every ``result.json`` records the runs it read under ``inputs`` (stage -> run folder,
relative to ``runs_dir``). A recorded run is found by its name in the runs folder the
reading run lives in, so a moved or copied runs folder reads its own runs and never
another project's; when it is not there the error names the missing run and the
command that makes it.
"""

from __future__ import annotations

import json
import re
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
        gone = parse_run_name(Path(str(recorded))) if recorded else None
        make = run_command(gone) if gone is not None and gone.stage == stage else f"bddengine {stage}"
        # Re-making the gone run alone does not help: `ref` still names it. `make` may even be a
        # no-op (an identical run of that stage is left); the run that read it must be rebuilt.
        raise StageInputError(
            f"{ref.path}/{RESULT_FILE} names {stage} run {recorded!r}, which is gone, so {ref.name} cannot be "
            f"used: run `{make}`, then `{run_command(ref)}` (same --config), then the command you ran again. "
            f"`{make}` may say 'up to date' when an identical {stage} run is left; the next command then "
            "rebuilds from that one"
        )
    return found


_TRAIN_TAG = re.compile(r"(?:(?P<arm>.+)-)?seed(?P<seed>\d+)")


def run_command(ref: RunRef) -> str:
    """The command that makes a run like ``ref``: same stage, iteration, arm and seed.

    The flags are read back from the run's name (``07_train_iter1_prototype-seed43`` ->
    ``bddengine train --iter 1 --arm prototype --seed 43``; a lineage's own
    ``16_mine_iter1_prototype-pyramid-seed42`` -> ``bddengine mine --iter 1 --arm
    prototype-pyramid --seed 42``), so this works for a run whose folder is gone.
    """
    words = ["bddengine", ref.stage]
    if ref.iter is not None:
        words += ["--iter", str(ref.iter)]
    tag = ref.tag
    if tag and ref.stage in ("train", "eval"):
        m = _TRAIN_TAG.fullmatch(tag)
        arm, seed = (m["arm"], m["seed"]) if m else (tag, None)
        words += (["--arm", arm] if arm else []) + (["--seed", seed] if seed else [])
    elif tag and ref.stage in ("mine", "autolabel") and (ref.iter or 0) > 0 and (m := _TRAIN_TAG.fullmatch(tag)):
        words += ["--arm", m["arm"], "--seed", m["seed"]]  # a lineage's own run (turn 2 on)
    elif tag and ref.stage == "autolabel":
        words += ["--arm", tag]
    elif tag and ref.stage == "mine":
        words += ["--strategy", tag.removesuffix("-detector")]
        words += ["--embedding", "detector"] if tag.endswith("-detector") else []
    return " ".join(words)


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
