"""What the mirror calls things: datasets, run labels, fields, tags and saved views."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from bddengine.errors import StageInputError
from bddengine.integrations.fiftyone.base import FAILURE_TAG, INFO_KEY, WORST_TAG
from bddengine.runs import RunRef


def project_id(runs_dir: Path) -> str:
    """A short hash of the absolute runs folder: two project folders never share a dataset name."""
    return hashlib.sha256(str(Path(runs_dir).resolve()).encode()).hexdigest()[:8]


def dataset_name(prefix: str, name: str, collect_run: str, runs_dir: Path) -> str:
    """The FiftyOne dataset of one collect run of the project at ``runs_dir`` (the name collect gives it)."""
    return f"{prefix}-{name}-{project_id(runs_dir)}-{collect_run}"


class ProjectMismatch(StageInputError):
    """A dataset of the right name belongs to another project folder; it is left alone."""


def check_owner(ds, runs_dir: Path) -> None:
    """Refuse to touch a dataset that records another project's runs folder.

    Raises:
        ProjectMismatch: the dataset's ``info`` names another runs folder (both are named).
    """
    theirs = ds.info.get(INFO_KEY, {}).get("runs_dir")
    ours = str(Path(runs_dir).resolve())
    if theirs and theirs != ours:
        raise ProjectMismatch(
            f"FiftyOne dataset {ds.name!r} belongs to the runs folder {theirs}, not to this one ({ours}); "
            "bddengine leaves it alone. Give this project another `name` or `fiftyone.dataset_prefix`, "
            "or use another database (FIFTYONE_DATABASE_NAME)")


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes: ``dawn/dusk`` -> ``dawn-dusk``.

    Saved-view names are built from slugs so that FiftyOne's own URL slug of a view
    equals its name (FiftyOne drops ``/`` from slugs rather than replacing it).
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def field_slug(text: str) -> str:
    """A slug usable in a field name: ``random-slice`` -> ``random_slice``."""
    return slug(text).replace("-", "_")


def run_label(ref: RunRef) -> str:
    """How a run is named in fields, tags and views.

    eval: ``iter<N>`` plus ``-<tag>``; mine / autolabel: the arm, prefixed with
    ``iter<N>-`` after iteration 0 (``prototype``, ``iter1-prototype``).
    """
    if ref.stage == "eval":
        return f"iter{ref.iter or 0}" + (f"-{ref.tag}" if ref.tag else "")
    arm = ref.tag or "default"
    return arm if not ref.iter else f"iter{ref.iter}-{arm}"


@dataclass(frozen=True)
class EvalNames:
    """Where one eval run shows up in the dataset."""

    label: str

    @property
    def pred_field(self) -> str:
        return f"pred_{field_slug(self.label)}"

    @property
    def eval_key(self) -> str:
        """The per-box attribute (``tp``/``fp``/``fn``) and the prefix of the per-frame counts."""
        return f"eval_{field_slug(self.label)}"

    @property
    def counts(self) -> list[str]:
        return [f"{self.eval_key}_{c}" for c in ("tp", "fp", "fn")]

    @property
    def error_key(self) -> str:
        """The per-box TIDE error type (``cls``, ``loc``, ``both``, ``dupe``, ``bkg``, ``miss``, ``tp``)."""
        return f"error_{field_slug(self.label)}"

    @property
    def worst_tag(self) -> str:
        return f"{WORST_TAG}/{self.label}"

    @property
    def failure_tag(self) -> str:
        return f"{FAILURE_TAG}/{self.label}"


def mined_names(label: str) -> tuple[str, str, str]:
    """(tag, rank field, similarity field) of one mine run."""
    return f"mined/{label}", f"mined_{field_slug(label)}_rank", f"mined_{field_slug(label)}_similarity"


def autolabel_names(label: str) -> tuple[str, str]:
    """(boxes field, review tag) of one autolabel run."""
    return f"autolabel_{field_slug(label)}", f"review/{label}"


def view_for_run(ref: RunRef) -> str | None:
    """The saved view that shows one run best (``bddengine app --run``)."""
    if ref.stage == "eval":
        return f"{WORST_TAG}-{slug(run_label(ref))}"
    if ref.stage == "mine":
        return f"mined-{slug(run_label(ref))}"
    if ref.stage == "autolabel":
        return f"autolabel-review-queue-{slug(run_label(ref))}"
    if ref.stage == "split":
        return "eval-pool"
    return None
