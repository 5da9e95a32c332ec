"""Run folders: lineage and the plan of what to mirror (which run fills each slot)."""

from __future__ import annotations

import yaml

from bddengine.integrations.fiftyone.base import MIRRORED_STAGES
from bddengine.integrations.fiftyone.names import run_label
from bddengine.runs import CONFIG_FILE, RunRef


def embed_model(ref: RunRef) -> str:
    """``clip`` or ``dinov2``: the model family of an embed run (its config.yaml)."""
    try:
        cfg = yaml.safe_load((ref.path / CONFIG_FILE).read_text()) or {}
        return str((cfg.get("embed") or {}).get("model") or "clip")
    except (OSError, yaml.YAMLError):
        return "clip"


def slot_of(ref: RunRef, embed_model: str | None = None) -> str:
    """The mirror slot a run fills; a newer run of the same slot replaces it."""
    if ref.stage in ("collect", "split"):
        return ref.stage
    if ref.stage == "embed":
        return f"embed:{embed_model or 'clip'}"
    return f"{ref.stage}:{run_label(ref)}"


def plan_slots(runs: list[RunRef], collect: str, lineage: dict[str, str | None],
               models: dict[str, str]) -> tuple[dict[str, RunRef], list[str]]:
    """Which run fills each mirror slot: the newest one descending from ``collect``.

    Args:
        runs: complete runs, oldest first.
        collect: the collect run whose dataset is synced.
        lineage: run name -> its collect run (None: unknown).
        models: embed run name -> model family.

    Returns:
        ``(plan, skipped)``: slot -> run, and a line for every run left out.
    """
    plan: dict[str, RunRef] = {}
    skipped: list[str] = []
    for ref in runs:
        if ref.stage not in MIRRORED_STAGES or ref.stage == "collect":
            continue
        origin = lineage.get(ref.name)
        if origin is None:
            skipped.append(f"{ref.name}: an input run folder is gone, so its frames cannot be placed")
            continue
        if origin != collect:
            skipped.append(f"{ref.name}: belongs to {origin}, not the newest collect run {collect}")
            continue
        plan[slot_of(ref, models.get(ref.name))] = ref
    return plan, skipped
