"""The synthetic driving world: a procedural dataset in the BDD100K det_20 format."""

from bddengine.synth.world import SynthResult, generate_world

__all__ = ["SynthResult", "generate_world"]
