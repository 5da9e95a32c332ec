"""plan_turn: the stage calls of one flywheel turn, every arm and seed."""

import json
from pathlib import Path

import pytest

from bddengine.config import ConfigError, load_config, parse_arm, train_tag
from bddengine.flywheel import plan_turn

REPO = Path(__file__).resolve().parents[1]


def _cfg(*overrides: str):
    return load_config(REPO / "configs" / "demo.yaml", list(overrides))


def test_turn_runs_stages_in_registry_order_and_ends_with_the_report() -> None:
    steps = plan_turn(_cfg("flywheel.arms=[prototype,random]", "flywheel.mine_only=[random-slice]"))
    titles = [s.title() for s in steps]
    assert titles == [
        "synth", "collect", "embed", "split", "train --iter 0", "eval --iter 0",
        "mine --arm prototype", "mine --arm random", "mine --arm random-slice",
        "autolabel --arm prototype", "train --iter 1 --arm prototype", "eval --iter 1 --arm prototype",
        "autolabel --arm random", "train --iter 1 --arm random", "eval --iter 1 --arm random",
        "report",
    ]
    mine = {s.title(): s.cfg.mine.strategy for s in steps if s.stage == "mine"}
    assert mine == {"mine --arm prototype": "prototype", "mine --arm random": "random",
                    "mine --arm random-slice": "random-slice"}


def test_seeds_give_each_arm_repeated_trainings_with_their_own_tags() -> None:
    cfg = _cfg("flywheel.arms=[prototype-detector]", "flywheel.seeds=3")
    trains = [s for s in plan_turn(cfg) if s.stage == "train" and s.kwargs["iter"] == 1]
    assert [s.kwargs["seed"] for s in trains] == [42, 43, 44]
    assert all(s.cfg.mine.embedding == "detector" for s in trains)
    tags = [train_tag(1, s.kwargs["arm"], s.kwargs["seed"], cfg.seed) for s in trains]
    assert tags == ["prototype-detector", "prototype-detector-seed43", "prototype-detector-seed44"]


def test_real_data_turn_has_no_synth_step() -> None:
    cfg = load_config(REPO / "configs" / "default.yaml")
    assert plan_turn(cfg)[0].stage == "collect"


def test_force_reaches_every_step() -> None:
    assert all(s.kwargs["force"] for s in plan_turn(_cfg(), force=True))


@pytest.mark.parametrize("arm", ["protoype", "random-detector-x", ""])
def test_unknown_arm_is_a_config_error(arm: str) -> None:
    with pytest.raises(ConfigError, match="flywheel"):
        _cfg(f"flywheel.arms=[{arm!r}]")


def test_parse_arm() -> None:
    assert parse_arm("random-slice") == ("random-slice", "embed")
    assert parse_arm("random-slice-detector") == ("random-slice", "detector")


def test_turn_profile_records_each_step_its_cost_and_share(tmp_path: Path) -> None:
    from bddengine.flywheel import TurnProfile, measure_step, profile_path, read_turn_profile

    cfg = _cfg()
    steps = plan_turn(cfg)[:3]
    runs = tmp_path / "runs"
    path = profile_path(runs)
    assert path == tmp_path / "turn_profile.json"  # beside the runs folder, not among the run folders
    profile = TurnProfile(path, cfg.name, runs, [s.title() for s in steps])
    with measure_step() as cost:
        big = b"x" * 80_000_000  # touches 80 MB
        total = sum(range(2_000_000))
    del big
    profile.add(steps[0], cost, run="01_synth", skipped=False)
    with measure_step() as small:
        total += sum(range(10))
    profile.add(steps[1], small, run="02_collect", skipped=True)
    doc = json.loads(path.read_text())
    assert not doc["complete"] and doc["n_steps_planned"] == 3 and doc["runs_dir"] == str(runs.resolve())
    first, second = doc["steps"]
    assert (first["step"], first["run"], first["skipped"]) == ("synth", "01_synth", False)
    assert second["skipped"] and second["stage"] == "collect"
    assert first["cpu_s"] > 0 and first["wall_s"] > second["wall_s"]
    assert abs(first["share"] + second["share"] - 1) < 1e-3 and doc["wall_s"] == first["wall_s"] + second["wall_s"]
    assert first["peak_rss_mb"] >= 80
    if first["peak_rss_scope"] == "step":  # Linux: the peak is reset at each step
        assert second["peak_rss_mb"] < first["peak_rss_mb"] - 50
    assert read_turn_profile(runs, "05_eval_iter0") is None  # no eval step: not that turn's profile
    eval_step = next(s for s in plan_turn(cfg) if s.stage == "eval")
    profile.planned = [s.title() for s in steps[:2]] + [eval_step.title()]
    profile.add(eval_step, small, run="05_eval_iter0", skipped=False)
    doc = read_turn_profile(runs, "05_eval_iter0")
    assert doc is not None and doc["complete"] and len(doc["steps"]) == 3
    assert read_turn_profile(tmp_path / "other" / "runs", "05_eval_iter0") is None  # another runs folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp_")]
