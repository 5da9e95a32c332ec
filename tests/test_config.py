from pathlib import Path

import pytest

from bddengine.config import ConfigError, EngineConfig, apply_overrides, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, EngineConfig)
    assert cfg.seed == 42


def test_every_config_starts_with_the_command_that_uses_it() -> None:
    for path in (REPO / "configs").glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("#") and "bddengine" in first, path


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("collect:\n  labeled_targte: 5\nseed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert str(p) in msg and "collect.labeled_targte" in msg and "unknown key" in msg


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("seed: notanint\ncollect:\n  min_per_bucket: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "seed" in str(err.value) and "collect.min_per_bucket" in str(err.value)


def test_overrides_are_validated_and_applied(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("seed: 1\n")
    cfg = load_config(p, ["collect.labeled_target=123", "data.root=/x"])
    assert cfg.collect.labeled_target == 123 and cfg.data.root == Path("/x")
    with pytest.raises(ConfigError, match="collect.labeled_target"):
        load_config(p, ["collect.labeled_target=abc"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(p, ["nonsense"])


def test_override_into_scalar_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"seed": 3}, ["seed.x=1"])


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "b.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_collect_splits_must_have_label_files(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("collect:\n  splits: [train, test]\n")
    with pytest.raises(ConfigError, match="test"):
        load_config(p)


def test_contrasts_default_to_random_controls_and_are_checked() -> None:
    from bddengine.config import default_contrasts

    assert default_contrasts(["prototype", "random", "prototype-detector", "random-slice"]) == [
        ("prototype", "random"), ("prototype-detector", "random"), ("random-slice", "random")]
    assert default_contrasts(["prototype", "random-slice"]) == []
    cfg = EngineConfig.model_validate({"flywheel": {"arms": ["prototype", "random-slice"]},
                                       "report": {"contrasts": [["prototype", "random-slice"]]}})
    assert cfg.report.contrasts == [("prototype", "random-slice")]
    with pytest.raises(ValueError, match=r"report.contrasts \[prototype, random\].*not in flywheel.arms"):
        EngineConfig.model_validate({"flywheel": {"arms": ["prototype"]},
                                     "report": {"contrasts": [["prototype", "random"]]}})
    with pytest.raises(ValueError, match="its own control"):
        EngineConfig.model_validate({"flywheel": {"arms": ["prototype"]},
                                     "report": {"contrasts": [["prototype", "prototype"]]}})
