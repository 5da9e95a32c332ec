"""The labelers ``autolabel.labeler`` may name, registered once.

The config's allowed values come from ``LABELERS``, and what the engine decides about a
labeler (does it stand in for humans? which config key names its weights?) comes from
its `LabelerSpec`. A new labeler is one module (a class with ``label()`` and a
`LabelerSpec`) plus one entry: a name in ``BUILT_IN`` below, or a `register` call from
that module.
"""

from __future__ import annotations

from bddengine.labeling.labelers import DETECTOR, GROUNDED, ORACLE, LabelerSpec

BUILT_IN: tuple[LabelerSpec, ...] = (GROUNDED, DETECTOR, ORACLE)

LABELERS: dict[str, LabelerSpec] = {spec.name: spec for spec in BUILT_IN}
"""Labeler name -> how to make it."""


def register(spec: LabelerSpec, *, replace: bool = False) -> LabelerSpec:
    """Add a labeler under ``spec.name`` (a module's one entry, when it registers itself).

    Raises:
        ValueError: the name is taken (and ``replace`` is False).
    """
    if spec.name in LABELERS and not replace:
        raise ValueError(f"labeler {spec.name!r} is already registered ({LABELERS[spec.name].summary})")
    LABELERS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered labeler (the built-in ones included); an unknown name is ignored."""
    LABELERS.pop(name, None)


def labeler_spec(name: str) -> LabelerSpec | None:
    """The entry of ``name``; None when it is not registered."""
    return LABELERS.get(name)
