"""Image embeddings: encoder loading, JPEG decoding, the model step, reuse.

The ``embed`` stage (``bddengine.stages.embed``) is the only writer; these modules
take flat arguments and touch no run folders, so they are testable on their own.
"""

from bddengine.embedding.cache import Reuse, frame_list_hash, reuse_vectors, stat_frames
from bddengine.embedding.data import FrameReader, ImageDecodeError, frame_decode, load_frame
from bddengine.embedding.encode import Encoder, cpu_count, pick_device, prepare_model, torch_threads
from bddengine.embedding.models import EncoderSpec, WeightsUnavailable, load_encoder, requested_model

__all__ = [
    "Encoder", "EncoderSpec", "FrameReader", "ImageDecodeError", "Reuse", "WeightsUnavailable",
    "cpu_count", "frame_decode", "frame_list_hash", "load_encoder",
    "load_frame", "pick_device", "prepare_model", "requested_model", "reuse_vectors", "stat_frames", "torch_threads",
]
