"""Batch inference: frames from a manifest -> decode in workers -> model in batches -> results by name.

embed's encoder, eval's detector pass, mine's detector embeddings and the detector
labelers all run through `infer`. Where the work runs is a backend, chosen by name
(``compute.backend``) from `BACKENDS`; the stages never see which one.
"""

from bddengine.inference.backends import BACKENDS, backend_names, get_backend, register_backend
from bddengine.inference.pipeline import FILES, Backend, Batch, Decode, FrameSource, Model
from bddengine.inference.run import Bar, infer

__all__ = [
    "BACKENDS", "FILES", "Backend", "Bar", "Batch", "Decode", "FrameSource", "Model",
    "backend_names", "get_backend", "infer", "register_backend",
]
