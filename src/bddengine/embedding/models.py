"""Image encoders: open_clip (CLIP) and timm DINOv2, loaded without hanging offline.

``load_encoder`` returns the image tower alone (the CLIP text tower is dropped) and
an ``EncoderSpec`` saying what the model is and how its input must be prepared.
Weights come from a pretrained tag (the Hugging Face cache, downloading only when
the Hub answers), a local checkpoint file, or nowhere (``pretrained=None``: random
init, seeded, and recorded as such).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bddengine.errors import StageInputError

INPUT_SIZE = 224
"""Side of the square model input; DINOv2 (trained at 518) is run at 224 for speed."""
HUB_HOST = "huggingface.co"
CLIP_FILE = "open_clip_pytorch_model.bin"
DINOV2_TAG = "lvd142m"
PREPROCESS = "draft-centre-square-bicubic-v1"
"""Names the input transform (``data.load_frame``); bump it when that changes."""


class WeightsUnavailable(StageInputError):
    """Pretrained weights are neither cached, nor a file, nor downloadable."""


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder is and how its input is prepared (recorded in result.json)."""

    family: str
    arch: str
    pretrained: str | None
    random_init: bool
    dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    checkpoint: str | None = None
    """Size and mtime of a local checkpoint file, so a replaced file changes the id."""
    seed: int | None = None
    """The init seed; only set for random init, where it decides the weights."""
    quick_gelu: bool = False
    """The CLIP model uses QuickGELU (OpenAI's weights need it)."""

    def model_id(self) -> dict[str, Any]:
        """The request (``requested_model``) plus what loading the model told us."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        out["preprocess"] = PREPROCESS
        return out


def weights_ref(pretrained: str | None) -> tuple[str | None, str | None]:
    """``(tag or absolute checkpoint path, checkpoint size:mtime)``; an existing file wins."""
    if pretrained is None:
        return None, None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path.resolve()), _file_stamp(path)
    return pretrained, None


def requested_model(
    family: str, arch: str, pretrained: str | None, *, seed: int, image_size: int | None = None
) -> dict[str, Any]:
    """The model id as far as the config decides it, known without loading anything.

    Two runs whose requests are equal produce interchangeable vectors; this is what
    the stage fingerprints and matches cached vectors on.
    """
    ref, stamp = weights_ref(pretrained)
    request = {
        "family": family, "arch": arch, "pretrained": ref, "checkpoint": stamp,
        "random_init": pretrained is None, "seed": seed if pretrained is None else None,
        "preprocess": PREPROCESS,
    }
    if family == "clip" and stamp is not None and openai_checkpoint(str(ref)):
        request["quick_gelu"] = True  # vectors of the same file built with GELU must not be reused
    return request | ({"image_size": image_size} if image_size is not None else {})


def load_encoder(
    family: str, arch: str, pretrained: str | None, *, seed: int = 0, image_size: int | None = None
) -> tuple[nn.Module, EncoderSpec]:
    """Build an image encoder in eval mode on the CPU.

    Args:
        family: ``"clip"`` (open_clip) or ``"dinov2"`` (timm).
        arch: open_clip architecture (``ViT-B-32``) or timm name (``vit_small_patch14_dinov2``).
        pretrained: a pretrained tag, a local checkpoint path, or None for random init.
        seed: seeds the random init (only used when ``pretrained`` is None).
        image_size: CLIP input size override (None: the architecture's); pretrained
            position embeddings are resized by open_clip.

    Returns:
        The encoder (``[B, 3, S, S]`` -> ``[B, dim]``, not yet normalised) and its spec.

    Raises:
        WeightsUnavailable: the weights cannot be found; the message says how to provide them.
        StageInputError: unknown architecture or tag.
    """
    if pretrained is not None and not pretrained.strip():
        raise StageInputError("embed.pretrained is empty: give a tag, a checkpoint path, or null")
    if pretrained is None:
        torch.manual_seed(seed)
    if family == "clip":
        model, spec = _load_clip(arch, pretrained, image_size)
    elif family == "dinov2":
        model, spec = _load_dinov2(arch, pretrained)
    else:
        raise StageInputError(f"embed.model={family!r}: expected 'clip' or 'dinov2'")
    if pretrained is None:
        spec = EncoderSpec(**{**asdict(spec), "seed": seed})
    return model.eval().requires_grad_(False), spec


def weights_status(family: str, arch: str, pretrained: str | None) -> tuple[bool, str]:
    """Whether ``load_encoder`` would find its weights, without loading or downloading them.

    Random init needs nothing; a checkpoint path must be a file; a tag must be in the
    Hugging Face cache, or the Hub must answer (``load_encoder`` downloads it then).

    Returns:
        ``(found, detail)``: where the weights are, or what is missing and how to provide it.
    """
    if pretrained is None:
        return True, "random init (embed.pretrained: null): nothing to download"
    ref, checkpoint = weights_ref(pretrained)
    if checkpoint is not None:
        return True, str(ref)
    try:
        cached, howto, known = (_clip_cached if family == "clip" else _dinov2_cached)(arch, pretrained)
    except StageInputError as exc:
        return False, str(exc)
    if cached:
        return True, f"{pretrained}: in the Hugging Face cache ({cached})"
    if not known:
        return False, (f"embed.pretrained={pretrained!r} is neither a pretrained tag of {arch} nor an "
                       f"existing checkpoint file: {howto}")
    if hub_reachable():
        return True, f"{pretrained}: not cached; `embed` downloads it from {HUB_HOST}"
    return False, f"{arch} weights {pretrained!r}: not in the Hugging Face cache and {HUB_HOST} is unreachable. {howto}"


def _clip_cached(arch: str, tag: str) -> tuple[str | None, str, bool]:
    import open_clip

    if arch not in open_clip.list_models():
        raise StageInputError(f"embed.clip_arch={arch!r} is not an open_clip architecture "
                              "(e.g. ViT-B-32, ViT-B-16, ViT-L-14; see open_clip.list_models())")
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    howto = _clip_howto(arch, tag_cfg)
    if not tag_cfg:
        return None, howto, False
    if tag_cfg.get("hf_hub"):
        repo_id = tag_cfg["hf_hub"].strip("/").split("/")
        return _hub_cached("/".join(repo_id[:2]), "/".join(repo_id[2:]),
                           ("open_clip_model.safetensors", CLIP_FILE)), howto, True
    url = tag_cfg.get("url", "")
    file = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    return (str(file) if url and file.is_file() else None), howto, True


def _dinov2_cached(arch: str, tag: str) -> tuple[str | None, str, bool]:
    import timm

    howto = _dinov2_howto(arch)
    if not timm.is_model(arch) or "dinov2" not in arch:
        raise StageInputError(f"embed.dinov2_arch={arch!r} is not a timm DINOv2 model "
                              "(vit_small_patch14_dinov2 or vit_base_patch14_dinov2)")
    name = f"{arch}.{tag}"
    if name not in timm.list_pretrained(f"{arch}.*"):
        return None, howto, False
    repo_id = timm.models.get_pretrained_cfg(name).hf_hub_id or f"timm/{name}"
    return _hub_cached(repo_id, "", ("model.safetensors", "pytorch_model.bin")), howto, True


def _hub_cached(repo_id: str, subfolder: str, files: tuple[str, ...]) -> str | None:
    """The cached path of the first of ``files`` in a Hub repository, or None (never goes online)."""
    from huggingface_hub import try_to_load_from_cache

    for name in files:
        path = try_to_load_from_cache(repo_id, f"{subfolder}/{name}" if subfolder else name)
        if isinstance(path, str):
            return path
    return None


def _load_clip(arch: str, pretrained: str | None, image_size: int | None = None) -> tuple[nn.Module, EncoderSpec]:
    import open_clip

    if arch not in open_clip.list_models():
        raise StageInputError(
            f"embed.clip_arch={arch!r} is not an open_clip architecture "
            f"(e.g. ViT-B-32, ViT-B-16, ViT-L-14; see open_clip.list_models())"
        )
    pretrained, checkpoint = weights_ref(pretrained)
    if pretrained is not None and checkpoint is None and not open_clip.get_pretrained_cfg(arch, pretrained):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise WeightsUnavailable(
            f"embed.pretrained={pretrained!r} is neither an open_clip tag for {arch} "
            f"(known: {tags}) nor an existing checkpoint file: {_clip_howto(arch)}"
        )

    # OpenAI's weights were trained with QuickGELU; open_clip only warns when the arch lacks it (a
    # tag), and says nothing at all for a local file, whose tensors look the same either way
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) if checkpoint is None and pretrained else {}
    wants_quick_gelu = bool(tag_cfg.get("quick_gelu")) or (checkpoint is not None and openai_checkpoint(pretrained))
    quick_gelu = wants_quick_gelu and not open_clip.get_model_config(arch).get("quick_gelu")

    def create() -> nn.Module:
        with _open_clip_notes():
            return open_clip.create_model(arch, pretrained=pretrained, force_quick_gelu=quick_gelu,
                                          force_image_size=image_size)

    try:
        model = _build(create, from_hub=pretrained is not None and checkpoint is None)
    except WeightsUnavailable as exc:
        raise WeightsUnavailable(
            f"cannot load open_clip {arch} weights {pretrained!r}: {exc}. {_clip_howto(arch, tag_cfg)}"
        ) from None
    except RuntimeError as exc:  # a file that is not a matching checkpoint
        raise WeightsUnavailable(f"cannot load open_clip {arch} from {pretrained!r}: {exc}") from None
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {})
    size = _square(getattr(visual, "image_size", INPUT_SIZE))
    spec = EncoderSpec(
        family="clip", arch=arch, pretrained=pretrained, random_init=pretrained is None,
        dim=int(visual.output_dim), image_size=size, quick_gelu=wants_quick_gelu
        or bool(open_clip.get_model_config(arch).get("quick_gelu")),
        mean=tuple(float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        checkpoint=checkpoint,
    )
    return visual, spec


def openai_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether a local CLIP checkpoint holds OpenAI's weights, which need QuickGELU.

    Nothing in the tensors tells, so the file says it: OpenAI's own release is a
    TorchScript archive (``ViT-B-32.pt``, a zip with a ``code/`` folder), and a copy of
    open_clip's ``openai`` tag keeps ``openai`` in its name or folder (the Hugging Face
    cache keeps it under ``models--timm--vit_base_patch32_clip_224.openai``).
    """
    p = Path(path)
    if "openai" in p.name.lower() or any(
            part.startswith("models--") and "openai" in part.lower() for part in p.parts):
        return True
    return is_torchscript(p)


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), read from its zip listing only."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(name.split("/")[1:2] == ["code"] for name in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _load_dinov2(arch: str, pretrained: str | None) -> tuple[nn.Module, EncoderSpec]:
    import timm

    if not timm.is_model(arch) or "dinov2" not in arch:
        raise StageInputError(
            f"embed.dinov2_arch={arch!r} is not a timm DINOv2 model "
            "(vit_small_patch14_dinov2 or vit_base_patch14_dinov2)"
        )
    kwargs: dict[str, Any] = {"num_classes": 0, "img_size": INPUT_SIZE}  # pooled = CLS token
    pretrained, checkpoint = weights_ref(pretrained)
    name = arch
    if pretrained is not None:
        if checkpoint is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": pretrained}
        elif f"{arch}.{pretrained}" in timm.list_pretrained(f"{arch}.*"):
            name = f"{arch}.{pretrained}"
        else:
            raise WeightsUnavailable(
                f"embed.pretrained={pretrained!r} is neither a timm tag for {arch} (known: "
                f"{DINOV2_TAG}) nor an existing checkpoint file: {_dinov2_howto(arch)}"
            )

    def create() -> nn.Module:
        return timm.create_model(name, pretrained=pretrained is not None, **kwargs)

    try:
        model = _build(create, from_hub=pretrained is not None and checkpoint is None)
    except WeightsUnavailable as exc:
        raise WeightsUnavailable(f"cannot load timm {name} weights: {exc}. {_dinov2_howto(arch)}") from None
    except RuntimeError as exc:
        raise WeightsUnavailable(f"cannot load {arch} from {pretrained!r}: {exc}") from None
    data_cfg = model.pretrained_cfg
    spec = EncoderSpec(
        family="dinov2", arch=arch, pretrained=pretrained, random_init=pretrained is None,
        dim=int(model.num_features), image_size=INPUT_SIZE,
        mean=tuple(float(v) for v in data_cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(v) for v in data_cfg.get("std", (0.229, 0.224, 0.225))),
        checkpoint=checkpoint,
    )
    return model, spec


def _build(create, *, from_hub: bool) -> nn.Module:
    """Random init and local files never touch the network; tags may (see below)."""
    if from_hub:
        return _from_cache_or_hub(create)
    with hub_offline():
        return create()


def _from_cache_or_hub(create) -> nn.Module:
    """Build from the local Hub cache; go online only when the Hub answers.

    Offline, huggingface_hub retries each request for ~45 s before giving up; with
    offline mode forced, a cache miss fails in milliseconds instead.
    """
    try:
        with hub_offline():
            return create()
    except (OSError, RuntimeError):  # cache miss: LocalEntryNotFoundError is an OSError
        pass
    if not hub_reachable():
        raise WeightsUnavailable(f"not in the Hugging Face cache and {HUB_HOST} is unreachable (offline?)")
    try:
        return create()
    except (OSError, RuntimeError) as exc:
        raise WeightsUnavailable(f"not in the Hugging Face cache, and the download failed ({exc})") from None


RANDOM_INIT_NOTE = "No pretrained weights loaded"


class _Notes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _open_clip_notes() -> Iterator[None]:
    """Catch what open_clip logs on the root logger while it builds a model.

    open_clip calls ``logging.warning``, which (with no handler on the root logger) sets
    up Python's default one: a raw ``WARNING:root:`` line, and from then on every
    library's INFO record printed twice. Its random-init note is dropped (the embed
    summary says so in its own words); any other note goes on as a ``bddengine`` warning.
    """
    notes = _Notes()
    root = logging.getLogger()
    root.addHandler(notes)
    try:
        yield
    finally:
        root.removeHandler(notes)
        for record in notes.records:
            if not record.getMessage().startswith(RANDOM_INIT_NOTE):
                logging.getLogger("bddengine.embed").warning("open_clip: %s", record.getMessage())


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Force huggingface_hub into offline mode (cache only) for the block."""
    import huggingface_hub.constants as hub

    old = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = old


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face Hub accepts a TCP connection (and offline mode is off)."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _clip_howto(arch: str, tag_cfg: dict | None = None) -> str:
    hub_path = (tag_cfg or {}).get("hf_hub", "")
    source = f"https://{HUB_HOST}/{hub_path.rstrip('/')}" if hub_path else f"the open_clip model card of {arch}"
    return (
        f"Either run once with internet access (the weights land in the Hugging Face cache, "
        f"{_hf_cache()}; copy that folder or set HF_HOME to reuse it), or download "
        f"{CLIP_FILE} from {source} and set `embed.pretrained: /path/to/{CLIP_FILE}`, or set "
        "`embed.pretrained: null` for random-init embeddings (smoke tests only)."
    )


def _dinov2_howto(arch: str) -> str:
    return (
        f"Either run once with internet access (timm/{arch}.{DINOV2_TAG} lands in the Hugging "
        f"Face cache, {_hf_cache()}), or download its model.safetensors and set "
        "`embed.pretrained: /path/to/model.safetensors`, or set `embed.pretrained: null` "
        "for random-init embeddings (smoke tests only)."
    )


def _hf_cache() -> str:
    try:
        import huggingface_hub.constants as hub

        return hub.HF_HUB_CACHE
    except ImportError:
        return os.path.expanduser("~/.cache/huggingface/hub")


def _file_stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _square(size: int | tuple[int, int] | list[int]) -> int:
    if isinstance(size, int):
        return size
    h, w = size
    if h != w:
        raise StageInputError(f"non-square model input {size} is not supported by embed")
    return int(h)
