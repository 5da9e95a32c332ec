"""What a turn needs before it starts: files, weights, packages and services, found in seconds.

`turn_needs` lists everything the configured turn will read that does not come from
an earlier stage: the data layout and label files, the embed weights, the train
model, each retraining arm's labeler weights (asked of the labeler registry, text
encoder and SAM included), the packages, and MongoDB when ``fiftyone.enabled``. Each
item is found (and where) or missing (and what to do). ``bddengine check`` prints
them as one table; ``bddengine flywheel`` stops before any work when one is missing.

Nothing is written and nothing is downloaded; every lookup goes through the resolver
the stage itself uses (`resolve_weights`, `weights_status`, the labelers' weights),
and the heavy packages are imported only when the config needs them.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from bddengine.config import EngineConfig
from bddengine.errors import StageInputError
from bddengine.integrations.fiftyone import database_status

README_DATA = "README.md, section 'Getting BDD100K'"
ITERATION_DETECTOR = Path("<the iteration's own detector>")
"""Stands in for the detector a turn trains itself, which no check can look for beforehand."""
MIRRORED = frozenset({"collect", "embed", "split", "eval", "mine", "autolabel"})
ALL_STAGES = ("synth", "collect", "embed", "split", "train", "eval", "mine", "autolabel", "report")


@dataclass(frozen=True)
class Need:
    """One thing a stage of the turn needs.

    Attributes:
        stage: the first stage that needs it.
        item: what it is, e.g. ``train.model yolov8m.pt``.
        found: whether it is there.
        detail: where it is when found; what to do when missing.
    """

    stage: str
    item: str
    found: bool
    detail: str


class MissingNeeds(StageInputError):
    """Something the turn needs is missing; ``needs`` holds every item checked."""

    def __init__(self, needs: list[Need], what: str = "the turn") -> None:
        self.needs = needs
        missing = [n for n in needs if not n.found]
        super().__init__(
            f"{len(missing)} of the {len(needs)} things {what} needs are missing: "
            + " ".join(f"({i}) {n.item}: {n.detail}" for i, n in enumerate(missing, 1)))


def turn_needs(cfg: EngineConfig, stages: Collection[str] = ALL_STAGES) -> list[Need]:
    """Everything ``stages`` of the configured turn need that no earlier stage makes.

    Args:
        cfg: the validated config.
        stages: the stages to check for (default: the whole turn).
    """
    stages = set(stages)
    needs: list[Need] = []
    if stages & {"synth", "collect"}:
        needs += data_needs(cfg)
    if "embed" in stages:
        needs += embed_needs(cfg)
    if "train" in stages:
        needs += train_needs(cfg)
    if "mine" in stages:
        needs += index_needs(cfg)
        needs += lance_needs(cfg)
    if "autolabel" in stages and cfg.flywheel.arms:
        needs += labeler_needs(cfg)
    if "report" in stages and cfg.report.pdf:
        needs.append(package_need("report", "fpdf", "fpdf2"))
    if cfg.fiftyone.enabled and stages & MIRRORED:
        needs.append(package_need("collect", "fiftyone", "fiftyone"))
        needs.append(database_need())
    needs += device_needs(cfg, stages)
    needs += compute_needs(cfg, stages)
    return needs


@contextlib.contextmanager
def ultralytics_settings_aside() -> Iterator[None]:
    """Inside the block, a first import of ultralytics reads its settings from a temporary copy.

    Importing ultralytics writes ``settings.json`` into the user's config folder
    (``~/.config/Ultralytics``, or ``YOLO_CONFIG_DIR``) when it is missing or outdated;
    `bddengine check` promises to write nothing. ultralytics reads ``YOLO_CONFIG_DIR``
    once, at import: pointed at a temporary folder holding a copy of the user's file, it
    finds the same ``weights_dir`` the stages will use and writes only there. The
    imported module keeps that folder for the life of the process, so it goes at exit.
    """
    if "ultralytics" in sys.modules:  # settings read (and written) already: the import writes nothing more
        yield
        return
    aside = Path(tempfile.mkdtemp(prefix="bddengine-check-"))
    user = ultralytics_settings_file()
    with contextlib.suppress(OSError):
        if user.is_file():
            (aside / user.parent.name).mkdir()
            shutil.copyfile(user, aside / user.parent.name / user.name)
    before = os.environ.get("YOLO_CONFIG_DIR")
    os.environ["YOLO_CONFIG_DIR"] = str(aside)
    try:
        _import_ultralytics_quietly()
        yield
    finally:
        if before is None:
            os.environ.pop("YOLO_CONFIG_DIR", None)
        else:
            os.environ["YOLO_CONFIG_DIR"] = before
        if "ultralytics" in sys.modules:
            atexit.register(shutil.rmtree, aside, ignore_errors=True)
        else:
            shutil.rmtree(aside, ignore_errors=True)


def _import_ultralytics_quietly() -> None:
    """Import ultralytics' settings with what it says about the temporary copy kept off the terminal.

    An outdated copy makes ultralytics announce that it updated "its" settings file: true
    of the copy only, and nothing the user should act on. Its logger's handler, made
    during the import, is pointed back at the terminal for what ultralytics says later.
    """
    import io
    import logging

    real_out = sys.stdout
    quiet = io.StringIO()
    with contextlib.suppress(ImportError), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        from ultralytics.utils import LOGGER

        for handler in LOGGER.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is quiet:
                handler.setStream(real_out)


def ultralytics_settings_file() -> Path:
    """Where ultralytics keeps ``settings.json`` (its ``get_user_config_dir``, read without importing it)."""
    if env := os.environ.get("YOLO_CONFIG_DIR"):
        base = Path(env).expanduser()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path.home() / "AppData" / "Roaming"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "Ultralytics" / "settings.json"


def require(cfg: EngineConfig, stages: Collection[str] = ALL_STAGES, what: str = "the turn") -> list[Need]:
    """`turn_needs`, raising `MissingNeeds` when anything is missing."""
    needs = turn_needs(cfg, stages)
    if any(not n.found for n in needs):
        raise MissingNeeds(needs, what)
    return needs


# --- data ----------------------------------------------------------------------------------------


def data_needs(cfg: EngineConfig) -> list[Need]:
    """The dataset root, the image folders and the label files (a synthetic world is made by synth)."""
    root = cfg.data.root
    if cfg.data.synthetic:
        detail = (f"{root.resolve()} (a synthetic world; `synth` remakes it when its parameters changed)"
                  if root.is_dir() else f"made by `bddengine synth` at {root.resolve()} (data.synthetic: true)")
        return [Need("synth", "data.root (synthetic world)", True, detail)]
    todo = (f"download BDD100K as described in {README_DATA} and unzip it under {root.resolve()}, "
            "or point data.root at it")
    if not root.is_dir():
        return [Need("collect", "data.root", False, f"{root.resolve()} does not exist: {todo}")]
    needs = [Need("collect", "data.root", True, str(root.resolve()))]
    for split in cfg.collect.splits:
        folders = [root / "images" / size / split for size in ("100k", "10k")]
        n100, n10 = (_count_jpegs(f) for f in folders)
        if n100 + n10:
            detail = f"{n100:,} images under {folders[0].resolve()}" + (
                f", {n10:,} under images/10k/{split}" if n10 else "")
        else:
            detail = f"no image under {folders[0].resolve()}: unzip bdd100k_images_100k.zip there ({README_DATA})"
        needs.append(Need("collect", f"images/100k/{split}", bool(n100 + n10), detail))
        label = cfg.data.label_path(split)
        needs.append(Need("collect", f"data.label_files.{split}", label.is_file(),
                          f"{label.resolve()} ({label.stat().st_size / 2**20:.1f} MB)" if label.is_file() else
                          f"{label.resolve()} missing: unzip bdd100k_det_20_labels_trainval.zip so that it "
                          f"exists ({README_DATA}), or set data.label_files.{split}"))
    test = root / "images" / "100k" / "test"
    if test.is_dir():
        needs.append(Need("collect", "images/100k/test (optional)", True,
                          f"{_count_jpegs(test):,} images without labels: mining pool only, in no slice"))
    return needs


def _count_jpegs(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.lower().endswith((".jpg", ".jpeg")))
    except OSError:
        return 0


# --- weights -------------------------------------------------------------------------------------


def embed_needs(cfg: EngineConfig) -> list[Need]:
    """The embedding model's weights, and the package that builds it."""
    e = cfg.embed
    module, dist, arch = ("open_clip", "open_clip_torch", e.clip_arch) if e.model == "clip" else \
        ("timm", "timm", e.dinov2_arch)
    needs = [package_need("embed", module, dist)]
    if not needs[0].found:
        return needs
    from bddengine.embedding.models import weights_status

    found, detail = weights_status(e.model, arch, e.pretrained)
    needs.append(Need("embed", f"embed weights ({e.model} {arch})", found, detail))
    return needs


def train_needs(cfg: EngineConfig) -> list[Need]:
    """The model iteration 0 starts from: a weights file, or a model YAML (random init)."""
    needs = [package_need("train", "ultralytics", "ultralytics")]
    model = cfg.train.model
    if not needs[0].found:
        return needs
    if model.endswith((".yaml", ".yml")):
        return needs + [Need("train", f"train.model {model}", True, "a model YAML: trained from scratch, no weights")]
    from bddengine.integrations.ultralytics import resolve_weights

    try:
        path = resolve_weights(model, "train.model", otherwise=", or train from scratch with train.model: "
                               f"{Path(model).stem}.yaml")
    except StageInputError as exc:
        return needs + [Need("train", f"train.model {model}", False, str(exc))]
    return needs + [Need("train", f"train.model {model}", True, str(path))]


def labeler_needs(cfg: EngineConfig) -> list[Need]:
    """The weights of every labeler the retraining arms use, as the labeler registry resolves them.

    An arm's label source (`config.label_source`) says whether it labels with the hidden
    ground truth (``human``: no weights) or with ``autolabel.labeler``, whose registered
    ``weights`` resolves its files; so a new labeler needs nothing here.
    """
    from bddengine.config import label_source
    from bddengine.flywheel import arm_config
    from bddengine.labeling.labelers import MissingWeights
    from bddengine.labeling.registry import LABELERS

    needs: list[Need] = []
    seen: set[str] = set()
    for arm in cfg.flywheel.arms:
        a = arm_config(cfg, arm).autolabel
        how = label_source(arm, a.labeler)
        if how == "human":
            if "human" not in seen:
                seen.add("human")
                needs.append(Need("autolabel", "human labels (-human arms)", True,
                                  "the hidden ground truth stands in for a labeling vendor: no weights"))
            continue
        spec = LABELERS[a.labeler]  # a machine labeler: the config refuses -auto arms on the oracle
        if a.labeler in seen:
            continue
        seen.add(a.labeler)
        try:
            found, problems = spec.resolve(a, lambda: ITERATION_DETECTOR), []
        except MissingWeights as exc:
            found, problems = exc.found, exc.problems
        except StageInputError as exc:
            found, problems = {}, [(f"autolabel.labeler={a.labeler}", str(exc))]
        for role, path in found.items():
            detail = ("trained by this turn (autolabel.detector_model: iter)" if path == ITERATION_DETECTOR
                      else str(path))
            needs.append(Need("autolabel", f"{a.labeler} labeler: {role.replace('_', ' ')}", True, detail))
        needs += [Need("autolabel", f"{a.labeler} labeler: {key}", False, msg) for key, msg in problems]
        if not found and not problems:
            needs.append(Need("autolabel", f"{a.labeler} labeler", True, f"no weights: {spec.summary}"))
    return needs


# --- devices -------------------------------------------------------------------------------------


def device_needs(cfg: EngineConfig, stages: Collection[str]) -> list[Need]:
    """Each device key the stages use that names a GPU (``auto`` and ``cpu`` always run).

    Checked with the resolver the stage itself calls, so ``device: cuda`` on a machine
    whose torch sees no GPU stops the turn here rather than an hour in, at training.
    """
    keys: list[tuple[str, str, str]] = []
    if "embed" in stages:
        keys.append(("embed", "embed.device", cfg.embed.device))
    if "train" in stages:
        keys.append(("train", "train.device", cfg.train.device))
    if "eval" in stages:
        keys.append(("eval", "eval.device", cfg.eval.device))
    if "mine" in stages and (cfg.mine.embedding == "detector"
                             or any("-detector" in arm for arm in cfg.flywheel.mining_arms())):
        keys.append(("mine", "mine.device", cfg.mine.device))
    if "autolabel" in stages and cfg.flywheel.arms:
        keys.append(("autolabel", "autolabel.device", cfg.autolabel.device))
    needs = []
    for stage, key, value in keys:
        if value.strip().lower() in ("auto", "cpu"):
            continue
        needs.append(_device_need(stage, key, value))
    return needs


def _device_need(stage: str, key: str, value: str) -> Need:
    import torch

    from bddengine.embedding.encode import pick_device
    from bddengine.integrations.ultralytics import resolve_device

    try:
        if key == "embed.device":
            pick_device(value)
        else:
            resolve_device(value, key)
    except StageInputError as exc:
        return Need(stage, f"{key} {value}", False, str(exc))
    if value.strip().lower() == "mps":
        return Need(stage, f"{key} {value}", True, "Apple GPU")
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    return Need(stage, f"{key} {value}", True, f"torch {torch.__version__} sees {', '.join(names)}")


# --- the inference backend -----------------------------------------------------------------------

INFERRING = frozenset({"embed", "eval", "mine", "autolabel"})
RAY_PORTS = {"ray": 10001, "": 6379}
"""The default port by scheme: Ray Client's for ``ray://``, else the head node's GCS port."""


def compute_needs(cfg: EngineConfig, stages: Collection[str], timeout_s: float = 3.0) -> list[Need]:
    """``compute.backend: ray``: the package, and a cluster that answers at its address.

    The address (``compute.address``, else ``RAY_ADDRESS`` from the environment) is probed
    with a plain TCP connection that gives up after ``timeout_s``: starting a Ray session
    would start processes and write session files, and a dead address would hang it.
    Only host and port are shown: an address from the environment may carry a token.
    """
    if cfg.compute.backend != "ray" or not INFERRING & set(stages):
        return []
    needs = [package_need("embed", "ray", "ray")]
    address = cfg.compute.address or os.environ.get("RAY_ADDRESS") or None
    key = "compute.address" if cfg.compute.address else "RAY_ADDRESS"
    if address is None:
        return needs + [Need("embed", "Ray cluster", True, "none named (compute.address, RAY_ADDRESS): each "
                             "inference call starts a local Ray instance on this machine")]
    if address.strip().lower() in ("auto", "local"):
        return needs + [Need("embed", f"Ray cluster ({key}={address.strip()})", True,
                             "Ray looks for a cluster started on this machine (`ray start --head`) when it connects")]
    host, port = ray_endpoint(address)
    item = f"Ray cluster ({key} {host}:{port})"
    if port is None:
        return needs + [Need("embed", item, False, f"{key} does not name a host and port (host:port or "
                             "ray://host:port): fix it, or unset it to run on a local Ray instance")]
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        return needs + [Need("embed", item, False, f"nothing answers at {host}:{port} within {timeout_s:g} s "
                             f"({reason}): start the cluster (`ray start --head` on its head node), fix {key}, "
                             "or set compute.backend: local")]
    return needs + [Need("embed", item, True, f"{host}:{port} answers")]


def ray_endpoint(address: str) -> tuple[str, int | None]:
    """``(host, port)`` of a Ray address, without scheme, user or token; port None when it has none."""
    scheme, _, rest = address.strip().rpartition("://")
    rest = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port:
        return rest, RAY_PORTS.get(scheme.lower()) if rest else None
    return host.strip("[]"), int(port) if port.isdigit() else None


# --- packages and services -----------------------------------------------------------------------


def index_needs(cfg: EngineConfig) -> list[Need]:
    """The packages of the vector indexes mine may search with (the exact one and ``mine.approximate_index``),
    as their registry entries list them; so a new index needs nothing here."""
    from bddengine.vectors.registry import EXACT, index_spec

    packages = dict.fromkeys(p for name in (EXACT, cfg.mine.approximate_index) for p in index_spec(name).packages)
    return [package_need("mine", module, dist) for module, dist in packages]


def lance_needs(cfg: EngineConfig, timeout_s: float = 5.0) -> list[Need]:
    """The LanceDB table's URI opens (``mine.approximate_index: lancedb``): one row, in seconds, writing nothing.

    A local URI must be a folder, or not exist yet under a writable folder; any other
    URI is listed read-only in a daemon thread given ``timeout_s`` (a store that does
    not answer is reported, not waited for).
    """
    if cfg.mine.approximate_index != "lancedb" or importlib.util.find_spec("lancedb") is None:
        return []
    uri = cfg.mine.lance.settings(cfg.runs_dir)["uri"]
    item = f"mine.lance.uri {uri}"
    if "://" not in uri:
        path = Path(uri)
        if path.exists():
            ok = path.is_dir() and os.access(path, os.W_OK)
            return [Need("embed", item, ok, "a writable folder" if ok else "not a writable folder: set "
                         "mine.lance.uri to a folder embed can write, or to an s3:// URI")]
        parent = next(p for p in path.parents if p.exists())
        ok = parent.is_dir() and os.access(parent, os.W_OK)
        return [Need("embed", item, ok, f"embed creates it under {parent}" if ok else
                     f"{parent} is not writable: set mine.lance.uri to a folder embed can create")]
    import threading

    answer: list[str] = []

    def probe() -> None:
        try:
            from bddengine.vectors.lance import connect

            answer.append(f"answers ({len(list(connect(uri).table_names()))} tables)")
        except Exception as exc:  # noqa: BLE001 -- any failure is the row's answer
            answer.append(f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not answer:
        return [Need("embed", item, False, f"no answer in {timeout_s:.0f} s: check the URI, the network and the "
                     "store's credentials in the environment (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    ok = not answer[0].startswith("ERROR ")
    return [Need("embed", item, ok, answer[0] if ok else f"cannot be opened ({answer[0][6:]}): check the URI and "
                 "the store's credentials in the environment")]


def package_need(stage: str, module: str, dist: str) -> Need:
    """An importable package (looked up, not imported), with its installed version."""
    if importlib.util.find_spec(module) is None:
        return Need(stage, f"package {dist}", False, f"not installed: pip install {dist}")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "installed"
    return Need(stage, f"package {dist}", True, version)


def database_need(timeout_ms: int = 2000) -> Need:
    """FiftyOne's MongoDB: the server at ``FIFTYONE_DATABASE_URI`` answers, or FiftyOne has its own mongod."""
    db = database_status(timeout_ms)
    return Need("collect", "MongoDB (fiftyone.enabled)", db.found, db.detail)
