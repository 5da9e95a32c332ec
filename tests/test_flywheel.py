"""plan_turn: the stage calls of one flywheel turn, every arm and seed."""

import json
from pathlib import Path

import pytest

from bddengine.config import ConfigError, load_config, parse_arm
from bddengine.flywheel import plan_turn
from bddengine.runs.lineages import train_tag

REPO = Path(__file__).resolve().parents[1]


def _cfg(*overrides: str):
    return load_config(REPO / "configs" / "demo.yaml", list(overrides))


def test_turn_runs_stages_in_registry_order_and_ends_with_the_report() -> None:
    steps = plan_turn(_cfg("flywheel.arms=[prototype,random]", "flywheel.mine_only=[random-slice]", "flywheel.seeds=1"))
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
    from bddengine.flywheel import TurnProfile, measure_step
    from bddengine.runs.turn_profile import profile_path, read_turn_profile

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


def test_label_sources_share_one_mine_run_per_mining_arm() -> None:
    from bddengine.config import default_contrasts, label_source, mining_arm, parse_arm_spec

    cfg = _cfg("autolabel.labeler=detector", "flywheel.arms=[prototype-human,prototype-pyramid,random-human]",
               "flywheel.mine_only=[prototype-detector]", "flywheel.seeds=2")
    titles = [s.title() for s in plan_turn(cfg)]
    assert [t for t in titles if t.startswith("mine")] == [
        "mine --arm prototype", "mine --arm random", "mine --arm prototype-detector"]
    assert [t for t in titles if t.startswith("autolabel")] == [
        "autolabel --arm prototype-human", "autolabel --arm prototype-pyramid", "autolabel --arm random-human"]
    assert titles.count("train --iter 1 --arm prototype-pyramid --seed 43") == 1
    assert parse_arm_spec("random-slice-detector-auto").mining == "random-slice-detector"
    assert mining_arm("prototype-pyramid") == "prototype" and parse_arm("random-human") == ("random", "embed")
    assert label_source("prototype", "oracle") == "human" and label_source("prototype", "detector") == "auto"
    assert label_source("prototype-pyramid", "grounded") == "pyramid"
    # one thing changes per contrast: the mining strategy at the same label source, or the label source
    assert default_contrasts(list(cfg.flywheel.arms), "detector") == [
        ("prototype-human", "random-human"), ("prototype-pyramid", "prototype-human")]


def test_machine_label_arms_need_a_machine_labeler() -> None:
    with pytest.raises(ConfigError, match="autolabel.labeler is oracle"):
        _cfg("autolabel.labeler=oracle", "flywheel.arms=[prototype-pyramid,random-human]")


def test_an_arm_that_added_nothing_is_not_retrained(tmp_path: Path, monkeypatch) -> None:
    """flywheel: the autolabel run added no box, so the arm's train and eval never run."""
    from typer.testing import CliRunner

    from bddengine import cli
    from bddengine.runs import StageRun
    from bddengine.stages import StageOutcome

    runs = tmp_path / "runs"
    called: list[str] = []

    def fake(name: str, cfg, **kwargs) -> StageOutcome:
        called.append(f"{name} {kwargs.get('arm') or ''}".strip())
        loc = None
        if name == "autolabel":
            n = 0 if kwargs["arm"] == "prototype-auto" else 5
            with StageRun(runs, "autolabel", {}, 42, f"fp-{kwargs['arm']}", iter=0, tag=kwargs["arm"]) as run:
                loc = run.commit(outputs={}, metrics={"n_train_boxes": n}).path
        return StageOutcome(stage=name, location=loc, skipped=False)

    monkeypatch.setattr(cli, "_run_stage", fake)
    result = CliRunner().invoke(cli.app, [
        "flywheel", "--config", str(REPO / "configs/demo.yaml"), "--set", f"runs_dir={runs}",
        "--set", "autolabel.labeler=detector", "--set", "flywheel.arms=[prototype-auto,random-human]",
        "--set", "flywheel.mine_only=[]", "--set", "flywheel.seeds=1", "--set", "fiftyone.enabled=false"])
    assert result.exit_code == 0, result.output
    assert "prototype-auto added nothing" in result.output
    assert "train prototype-auto" not in called and "eval prototype-auto" not in called
    assert "train random-human" in called and called[-1] == "report"
    profile = json.loads((tmp_path / "turn_profile.json").read_text())
    skipped = [s for s in profile["steps"] if s["note"] == "added nothing"]
    assert [s["step"] for s in skipped] == ["train --iter 1 --arm prototype-auto", "eval --iter 1 --arm prototype-auto"]
    assert profile["complete"]


def test_train_refuses_an_autolabel_run_without_boxes(tmp_path: Path) -> None:
    from bddengine.errors import StageInputError
    from bddengine.runs import StageRun
    from bddengine.stages import train

    runs = tmp_path / "runs"
    with StageRun(runs, "split", {}, 42, "fp-split") as run:
        run.commit(outputs={}, metrics={})
    with StageRun(runs, "autolabel", {}, 42, "fp-a", iter=0, tag="prototype-auto") as run:
        run.commit(outputs={}, metrics={"n_train_boxes": 0, "n_frames": 100, "n_boxes": {"accept": 0, "review": 7,
                                                                                        "drop": 40}})
    cfg = _cfg(f"runs_dir={runs}", "autolabel.labeler=detector")
    with pytest.raises(StageInputError, match="added no labeled box") as exc:
        train.run(cfg, iter=1, arm="prototype-auto")
    assert "review 7" in str(exc.value) and "--force" in str(exc.value)
