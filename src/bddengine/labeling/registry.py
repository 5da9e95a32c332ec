"""The labelers ``autolabel.labeler`` may name, registered once.

The config's allowed values come from ``LABELERS``: a new labeler is one module (a
class with ``label()`` and a `LabelerSpec` saying which weights it reads and how to
build it) plus one entry here.
"""

from __future__ import annotations

from bddengine.labeling.labelers import DETECTOR, GROUNDED, ORACLE, LabelerSpec

LABELERS: dict[str, LabelerSpec] = {spec.name: spec for spec in (GROUNDED, DETECTOR, ORACLE)}
"""Labeler name -> how to make it."""
