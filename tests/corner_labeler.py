"""A labeler with weights as a plugin module: one car in the top-left corner of every frame.

Importing it registers ``corner`` (``autolabel.labeler: corner``). Its weights file is the
one ``autolabel.detector_model`` names, a torch file holding the box's side length; its
entry says so, so ``bddengine check`` looks for that file and the autolabel stage checks
and hands it over. Nothing else in the engine knows about it.
"""

from __future__ import annotations

from pathlib import Path

from bddengine.labeling.labelers import LabelerSpec
from bddengine.labeling.registry import register


class CornerLabeler:
    """A car of side ``side`` pixels in the top-left corner, scored 0.9."""

    name = "corner"

    def __init__(self, side: float) -> None:
        self.side = side

    def label(self, frames, *, progress: bool = True):
        box = {"category": "car", "score": 0.9, "box2d": {"x1": 0.0, "y1": 0.0, "x2": self.side, "y2": self.side}}
        return {f["name"]: [{**box, "box2d": dict(box["box2d"])}] for f in frames}


def build(a, weights: dict[str, Path], imgsz: int) -> CornerLabeler:
    import torch

    state = torch.load(weights["weights"], map_location="cpu", weights_only=True)
    return CornerLabeler(float(state["side"]))


register(LabelerSpec("corner", "a car in the corner, its size read from a weights file", build=build,
                     weights_keys={"weights": "autolabel.detector_model"}))
