"""`bddengine check` and the same check at the start of `bddengine flywheel`.

A machine with nothing downloaded gets the full table and exit 2, with nothing
written; the synthetic configs need nothing beyond the packages; labeler weights come
from the labeler registry, so a new labeler is checked without touching the check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.config import load_config
from bddengine.preflight import turn_needs

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def nothing_downloaded(tmp_path: Path, monkeypatch) -> Path:
    """A fresh folder on a machine without weights, Hub cache, network or MongoDB."""
    import huggingface_hub.constants as hub

    from bddengine.embedding import models
    from bddengine.integrations import ultralytics
    from bddengine.labeling import labelers

    home = tmp_path / "fresh"
    home.mkdir()
    empty = tmp_path / "no-weights"
    monkeypatch.setattr(ultralytics, "weights_dir", lambda: empty)
    monkeypatch.setattr(labelers, "weights_dir", lambda: empty)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "no-hub-cache"))
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9")  # nothing listens there
    monkeypatch.chdir(home)
    return home


def _needs(config: str, *overrides: str) -> dict[str, object]:
    return {n.item: n for n in turn_needs(load_config(REPO / "configs" / config, list(overrides)))}


def test_default_config_on_a_fresh_machine_lists_everything_missing(nothing_downloaded: Path) -> None:
    needs = _needs("default.yaml")
    missing = {item for item, n in needs.items() if not n.found}
    assert missing == {"data.root", "embed weights (clip ViT-B-32)", "train.model yolov8m.pt",
                       "grounded labeler: autolabel.grounded_model", "grounded labeler: text encoder",
                       "MongoDB (fiftyone.enabled)"}
    assert "does not exist" in needs["data.root"].detail and "Getting BDD100K" in needs["data.root"].detail
    assert "laion2b_s34b_b79k" in needs["embed weights (clip ViT-B-32)"].detail
    assert ("https://github.com/ultralytics/assets/releases/download/" in
            needs["train.model yolov8m.pt"].detail)
    assert "mongodb://127.0.0.1:9" in needs["MongoDB (fiftyone.enabled)"].detail
    assert needs["package ultralytics"].found and needs["package faiss-cpu"].found

    result = runner.invoke(app, ["check", "--config", str(REPO / "configs" / "default.yaml")])
    assert result.exit_code == 2, result.output
    assert "missing" in result.output and "found" in result.output
    assert "6 of the" in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    assert list(nothing_downloaded.iterdir()) == []  # wrote nothing


def test_a_real_layout_is_found_item_by_item(nothing_downloaded: Path) -> None:
    root = nothing_downloaded / "bdd"
    for split in ("train", "val"):
        (root / "images" / "100k" / split).mkdir(parents=True)
        (root / "images" / "100k" / split / f"{split}1.jpg").write_bytes(b"x")
    (root / "labels" / "det_20").mkdir(parents=True)
    (root / "labels" / "det_20" / "det_train.json").write_text("[]")
    needs = _needs("default.yaml", f"data.root={root}")
    assert needs["data.root"].found and needs["images/100k/train"].found and needs["images/100k/val"].found
    assert needs["data.label_files.train"].found
    val = needs["data.label_files.val"]
    assert not val.found and str((root / "labels/det_20/det_val.json").resolve()) in val.detail


@pytest.mark.parametrize("config", ["demo.yaml", "smoke.yaml"])
def test_synthetic_configs_need_nothing_downloaded(nothing_downloaded: Path, config: str) -> None:
    path = str(REPO / "configs" / config)
    result = runner.invoke(app, ["check", "--config", path, "--set", "fiftyone.enabled=false"])
    assert result.exit_code == 0, result.output
    assert "ready:" in result.output and "missing" not in result.output
    assert list(nothing_downloaded.iterdir()) == []


def test_flywheel_stops_before_any_work(nothing_downloaded: Path) -> None:
    result = runner.invoke(app, ["flywheel", "--config", str(REPO / "configs" / "default.yaml")])
    assert result.exit_code == 2, result.output
    assert "nothing was run" in result.output and "bddengine check" in result.output
    assert re.search(r"1/\d+ collect", result.output) is None  # no step started
    assert list(nothing_downloaded.iterdir()) == []  # no runs folder, no turn profile


def test_labeler_weights_come_from_the_registry(nothing_downloaded: Path) -> None:
    """A registered labeler's own weights function decides what the check looks for; -human arms need none."""
    from bddengine.errors import StageInputError
    from bddengine.labeling.labelers import LabelerSpec
    from bddengine.labeling.registry import register, unregister

    weights = nothing_downloaded.parent / "fake.pt"
    weights.write_bytes(b"w")

    def build(a, weights, imgsz):
        raise AssertionError("the check builds no labeler")

    def missing(a, it):
        raise StageInputError("fake.pt: put it somewhere")

    found = LabelerSpec("fake-found", "a test labeler", weights=lambda a, it: {"weights": weights}, build=build)
    lost = LabelerSpec("fake-missing", "a test labeler", weights=missing, build=build)
    own = LabelerSpec("fake-iter", "a test labeler", weights=lambda a, it: {"weights": it()}, build=build)
    auto = "flywheel.arms=[prototype-auto]"
    try:
        for spec in (found, lost, own):
            register(spec)
        assert _needs("smoke.yaml", auto, "autolabel.labeler=fake-found")["fake-found labeler: weights"].detail == \
            str(weights)
        bad = _needs("smoke.yaml", auto, "autolabel.labeler=fake-missing")[
            "fake-missing labeler: autolabel.labeler=fake-missing"]
        assert not bad.found and bad.detail == "fake.pt: put it somewhere"
        it = _needs("smoke.yaml", auto, "autolabel.labeler=fake-iter")["fake-iter labeler: weights"]
        assert it.found and "trained by this turn" in it.detail
        human = _needs("smoke.yaml", "flywheel.arms=[prototype-human]", "autolabel.labeler=fake-missing")
        assert human["human labels (-human arms)"].found and not any("fake-missing" in item for item in human)
    finally:
        for spec in (found, lost, own):
            unregister(spec.name)


def test_a_labeler_module_names_its_weights_key_and_check_looks_for_the_file(nothing_downloaded: Path) -> None:
    """The plugin ``tests/corner_labeler.py`` registers itself; its entry's weights key is all ``check`` needs."""
    import importlib
    import sys

    from bddengine.labeling.registry import unregister

    weights = nothing_downloaded.parent / "corner.pt"
    weights.write_bytes(b"w")
    use = ("flywheel.arms=[prototype-auto]", "autolabel.labeler=corner")
    try:
        importlib.import_module("corner_labeler")  # the module's one register() call is the entry
        lost = _needs("smoke.yaml", *use, "autolabel.detector_model=bddtest-missing-corner.pt")
        found = _needs("smoke.yaml", *use, f"autolabel.detector_model={weights}")
    finally:
        unregister("corner")
        sys.modules.pop("corner_labeler", None)
    bad = lost["corner labeler: autolabel.detector_model"]
    assert not bad.found and "autolabel.detector_model=bddtest-missing-corner.pt: weights file not found" in bad.detail
    assert found["corner labeler: weights"].found and found["corner labeler: weights"].detail == str(weights.resolve())


def test_collect_stops_at_once_when_mongodb_does_not_answer(tiny_world: Path, tmp_path: Path, monkeypatch) -> None:
    from bddengine.errors import StageInputError
    from bddengine.stages import collect
    from conftest import write_config

    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9")
    cfg = load_config(write_config(tmp_path / "c.yaml", tiny_world, tmp_path / "runs", fiftyone={"enabled": True}))
    with pytest.raises(StageInputError, match=r"fiftyone.enabled: the mirror needs MongoDB: no answer at mongodb"):
        collect.run(cfg, progress=False)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_gpu_config_without_a_gpu_is_stopped_by_check(nothing_downloaded: Path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    needs = _needs("gpu.yaml")
    missing = {item for item, n in needs.items() if not n.found}
    assert missing == {"embed.device cuda", "train.device cuda", "eval.device cuda", "autolabel.device cuda"}
    assert "torch sees no GPU" in needs["embed.device cuda"].detail
    assert "train.device='cuda' but torch sees no GPU" in needs["train.device cuda"].detail
    result = runner.invoke(app, ["check", "--config", str(REPO / "configs" / "gpu.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "4 of the" in result.output and "train.device" in result.output
    # the same config on the CPU: nothing else is missing
    cpu = [f"{key}.device=cpu" for key in ("embed", "train", "eval", "mine", "autolabel")]
    assert all(n.found for n in _needs("gpu.yaml", *cpu).values())
    assert not any("device" in item for item in _needs("demo.yaml"))  # auto is never a need


def test_a_dead_ray_address_is_one_row_in_seconds_and_its_token_is_never_shown(nothing_downloaded: Path,
                                                                                monkeypatch) -> None:
    import time

    from bddengine.config import ConfigError
    from bddengine.preflight import compute_needs

    monkeypatch.setenv("RAY_ADDRESS", "ray://ops:s3cret-token@127.0.0.1:1")  # nothing listens on port 1
    cfg = load_config(REPO / "configs" / "demo.yaml", ["compute.backend=ray"])
    t0 = time.perf_counter()
    needs = compute_needs(cfg, ["embed"])
    assert time.perf_counter() - t0 < 5
    dead = [n for n in needs if not n.found]
    assert [n.item for n in dead] == ["Ray cluster (RAY_ADDRESS 127.0.0.1:1)"]
    assert "nothing answers at 127.0.0.1:1" in dead[0].detail
    result = runner.invoke(app, ["check", "--config", str(REPO / "configs" / "demo.yaml"), "--set",
                                 "compute.backend=ray", "--set", "fiftyone.enabled=false"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "1 of the" in result.output and "Ray cluster" in result.output and "s3cret" not in result.output
    assert not list(nothing_downloaded.iterdir())  # check writes nothing
    # the config's own address is probed the same way; a credential there is refused before anything runs
    needs = compute_needs(load_config(REPO / "configs" / "demo.yaml",
                                      ["compute.backend=ray", "compute.address=127.0.0.1:1"]), ["eval"])
    assert [n.item for n in needs if not n.found] == ["Ray cluster (compute.address 127.0.0.1:1)"]
    secret = nothing_downloaded.parent / "secret.yaml"
    secret.write_text("compute:\n  backend: ray\n  address: ray://ops:s3cret-token@head:10001\n")
    with pytest.raises(ConfigError, match="compute.address must name the cluster only") as refused:
        load_config(secret)
    assert "s3cret" not in str(refused.value)
    assert compute_needs(load_config(REPO / "configs" / "demo.yaml"), ["embed"]) == []  # local: no row


def test_training_on_several_gpus_names_gpus_that_check_looks_for(nothing_downloaded: Path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    needs = _needs("demo.yaml", "train.device=0,1")
    assert not needs["train.device 0,1"].found
    assert "train.device='0,1' but torch sees no GPU" in needs["train.device 0,1"].detail
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU: the second is missing
    assert "an index below 1" in _needs("demo.yaml", "train.device=0,1")["train.device 0,1"].detail
