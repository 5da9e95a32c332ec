"""Many turns: each (arm, seed) lineage mines, labels and trains again, and a re-run adds only what is missing."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.config import ConfigError, load_config
from bddengine.errors import StageInputError
from bddengine.flywheel import Step, plan_turn, skipped_by
from bddengine.runs import RunRef, parse_run_name
from bddengine.runs.lineage import run_command
from bddengine.runs.lineages import lineage_steps, trained_labels
from bddengine.stages.train import lineage_inputs

REPO = Path(__file__).resolve().parents[1]
ARMS = "flywheel.arms=[prototype-pyramid,random-human]"


def _cfg(*overrides: str):
    return load_config(REPO / "configs" / "demo.yaml", list(overrides))


# -- planning ---------------------------------------------------------------------------------------


def test_one_turn_is_todays_plan_and_later_turns_follow_it() -> None:
    one = plan_turn(_cfg(ARMS, "flywheel.seeds=2"))
    three = plan_turn(_cfg(ARMS, "flywheel.seeds=2", "flywheel.turns=3"))
    assert [s.title() for s in plan_turn(_cfg(ARMS, "flywheel.seeds=2", "flywheel.turns=1"))] == \
        [s.title() for s in one]
    # turn 1 is unchanged: the same calls with the same options, the report moves to the end
    assert [(s.title(), s.kwargs) for s in three[: len(one) - 1]] == [(s.title(), s.kwargs) for s in one[:-1]]
    assert three[-1].stage == "report"
    later = three[len(one) - 1: -1]
    assert len(later) == 2 * 2 * 2 * 4  # turns 2-3, two arms, two seeds, mine/autolabel/train/eval
    assert [s.title() for s in later[:8]] == [
        "mine --iter 1 --arm prototype-pyramid", "autolabel --iter 1 --arm prototype-pyramid",
        "train --iter 2 --arm prototype-pyramid", "eval --iter 2 --arm prototype-pyramid",
        "mine --iter 1 --arm prototype-pyramid --seed 43", "autolabel --iter 1 --arm prototype-pyramid --seed 43",
        "train --iter 2 --arm prototype-pyramid --seed 43", "eval --iter 2 --arm prototype-pyramid --seed 43",
    ]
    for s in later:  # every step names its lineage; a lineage's mine runs with its arm's strategy
        assert s.lineage == (s.kwargs["arm"], s.kwargs["seed"]) and s.arm == s.kwargs["arm"]
        assert s.cfg.mine.strategy == s.kwargs["arm"].split("-")[0]
    turn3 = [(s.stage, s.kwargs["iter"]) for s in later[16:20]]
    assert turn3 == [("mine", 2), ("autolabel", 2), ("train", 3), ("eval", 3)]


def test_the_plan_of_a_turn_does_not_depend_on_how_many_turns_follow() -> None:
    """So `--turns 5` after `--turns 3` repeats turns 1-3's calls exactly (each a no-op) and adds 4-5."""
    three = plan_turn(_cfg(ARMS, "flywheel.turns=3"))
    five = plan_turn(_cfg(ARMS, "flywheel.turns=5"))
    assert [(s.title(), s.kwargs) for s in five[: len(three) - 1]] == [(s.title(), s.kwargs) for s in three[:-1]]
    assert {s.kwargs["iter"] for s in five[len(three) - 1: -1]} == {3, 4, 5}


def test_a_lineage_whose_labels_added_nothing_goes_no_further() -> None:
    cfg = _cfg(ARMS, "flywheel.seeds=2", "flywheel.turns=3")
    steps = plan_turn(cfg)
    turn1 = {"prototype-pyramid": "09_autolabel_iter0_prototype-pyramid"}  # turn 1's labels: every seed stops
    skipped = {s.title() for s in steps if skipped_by(s, turn1)}
    assert all(s.arm == "prototype-pyramid" for s in steps if s.title() in skipped)
    assert not any(s.stage in ("mine", "autolabel") and s.lineage is None for s in steps if s.title() in skipped)
    assert len(skipped) == 2 * 2 + 2 * 2 * 4  # turn 1's train/eval per seed, then every later step
    own = {("random-human", 43): "30_autolabel_iter1_random-human-seed43"}  # one lineage's turn-2 labels
    assert skipped_by(Step("train", cfg, {}, arm="random-human", lineage=("random-human", 43)), own)
    assert not skipped_by(Step("train", cfg, {}, arm="random-human", lineage=("random-human", 42)), own)
    assert not skipped_by(Step("train", cfg, {}, arm="random-human"), own)


def test_turns_and_target_slice_are_checked_config() -> None:
    with pytest.raises(ConfigError, match="turns"):
        _cfg("flywheel.turns=0")
    assert _cfg("flywheel.target_slice=snowy / dawn/dusk / highway").flywheel.target_slice == {
        "weather": "snowy", "timeofday": "dawn/dusk", "scene": "highway"}
    with pytest.raises(ConfigError, match="target_slice"):
        _cfg("flywheel.target_slice=snowy / night")
    with pytest.raises(ConfigError, match="target_slice"):
        _cfg("flywheel.target_slice={weather: snowy}")


# -- lineages on hand-made run folders ---------------------------------------------------------------


def _run(runs: Path, name: str, inputs: dict[str, str] | None = None, **metrics) -> RunRef:
    path = runs / name
    path.mkdir(parents=True)
    (path / "result.json").write_text(json.dumps({"status": "complete", "inputs": inputs or {}, "metrics": metrics}))
    ref = parse_run_name(path)
    assert ref is not None
    return ref


@pytest.fixture
def two_seeds(tmp_path: Path) -> Path:
    """Turn 1 of prototype-human with seeds 42 and 43 and their own turn-2 labels, as run folders."""
    runs = tmp_path / "runs"
    _run(runs, "03_split")
    _run(runs, "04_train_iter0", {"split": "03_split"})
    _run(runs, "05_eval_iter0", {"train": "04_train_iter0"})
    _run(runs, "09_autolabel_iter0_prototype-human", n_train_boxes=7)
    for n, seed in ((10, 42), (12, 43)):
        tag = "" if seed == 42 else f"-seed{seed}"
        _run(runs, f"{n}_train_iter1_prototype-human{tag}", {"autolabel": "09_autolabel_iter0_prototype-human"})
        _run(runs, f"{n + 1}_eval_iter1_prototype-human{tag}", {"train": f"{n}_train_iter1_prototype-human{tag}"})
    _run(runs, "14_autolabel_iter1_prototype-human-seed42", n_train_boxes=3)
    _run(runs, "15_autolabel_iter1_prototype-human-seed43", n_train_boxes=4)
    return runs


def test_each_seed_continues_its_own_training_on_its_own_labels(two_seeds: Path) -> None:
    cfg = _cfg("flywheel.arms=[prototype-human]", "flywheel.seeds=2", "flywheel.turns=2", f"runs_dir={two_seeds}")
    label, previous = lineage_inputs(cfg, 2, "prototype-human", 43)
    assert (label.name, previous.name) == ("15_autolabel_iter1_prototype-human-seed43",
                                           "12_train_iter1_prototype-human-seed43")
    label, previous = lineage_inputs(cfg, 2, "prototype-human", 42)
    assert (label.name, previous.name) == ("14_autolabel_iter1_prototype-human-seed42",
                                           "10_train_iter1_prototype-human")
    label, previous = lineage_inputs(cfg, 1, "prototype-human", 43)  # turn 1's labels are shared by the seeds
    assert (label.name, previous) == ("09_autolabel_iter0_prototype-human", None)
    with pytest.raises(StageInputError, match="lineage"):
        lineage_inputs(cfg, 2, None, 42)


def test_labels_accumulate_along_the_fine_tune_chain(two_seeds: Path) -> None:
    """Iteration 3 trained on turn 1's, turn 2's and turn 3's labels, oldest first; lineage_steps lists them."""
    runs = two_seeds
    _run(runs, "16_train_iter2_prototype-human-seed43", {"autolabel": "15_autolabel_iter1_prototype-human-seed43",
                                                         "train": "12_train_iter1_prototype-human-seed43"})
    _run(runs, "17_eval_iter2_prototype-human-seed43", {"train": "16_train_iter2_prototype-human-seed43"})
    _run(runs, "18_autolabel_iter2_prototype-human-seed43", n_train_boxes=2)
    third = _run(runs, "19_train_iter3_prototype-human-seed43", {
        "autolabel": "18_autolabel_iter2_prototype-human-seed43", "train": "16_train_iter2_prototype-human-seed43"})
    assert [r.name for r in trained_labels(third)] == [
        "09_autolabel_iter0_prototype-human", "15_autolabel_iter1_prototype-human-seed43",
        "18_autolabel_iter2_prototype-human-seed43"]
    cfg = _cfg("flywheel.arms=[prototype-human]", "flywheel.seeds=2", "flywheel.turns=3", f"runs_dir={runs}")
    steps = {(s.seed, s.iter): s for s in lineage_steps(cfg)}
    assert sorted(steps) == [(42, 0), (42, 1), (43, 0), (43, 1), (43, 2)]  # seed 42 has no iteration 2 yet
    assert steps[(43, 0)].eval_run.name == "05_eval_iter0" and steps[(43, 0)].autolabel_runs == ()
    assert steps[(43, 2)].eval_run.name == "17_eval_iter2_prototype-human-seed43"
    assert [r.name for r in steps[(43, 2)].autolabel_runs] == [
        "09_autolabel_iter0_prototype-human", "15_autolabel_iter1_prototype-human-seed43"]
    assert steps[(42, 1)].eval_run.name == "11_eval_iter1_prototype-human"


def test_a_lineage_run_names_the_command_that_remakes_it() -> None:
    for name, command in (
        ("16_mine_iter1_prototype-pyramid-seed42", "bddengine mine --iter 1 --arm prototype-pyramid --seed 42"),
        ("17_autolabel_iter2_random-human-seed43", "bddengine autolabel --iter 2 --arm random-human --seed 43"),
        ("18_train_iter2_random-human-seed43", "bddengine train --iter 2 --arm random-human --seed 43"),
        ("06_mine_iter0_random-slice", "bddengine mine --iter 0 --strategy random-slice"),
        ("09_autolabel_iter0_prototype-pyramid", "bddengine autolabel --iter 0 --arm prototype-pyramid"),
    ):
        assert run_command(parse_run_name(Path(name))) == command


# -- two turns of the smoke world ----------------------------------------------------------------------


def test_two_turn_smoke_flywheel_resumes_from_one_turn(tmp_path: Path, monkeypatch) -> None:
    """`--turns 1`, then `--turns 2` adds turn 2 only, then `--turns 2` again runs nothing new but the report."""
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["report"]["template"] = str(REPO / "case_study_template.md")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runs_dir = tmp_path / cfg["runs_dir"]
    runner = CliRunner()

    def flywheel(turns: int) -> dict[str, dict]:
        result = runner.invoke(app, ["flywheel", "--config", str(path), "--turns", str(turns)])
        assert result.exit_code == 0, result.output
        profile = json.loads((runs_dir.parent / "turn_profile.json").read_text())
        return {s["step"]: s for s in profile["steps"]}

    first = flywheel(1)
    before = sorted(p.name for p in runs_dir.iterdir())
    second = flywheel(2)
    after = sorted(p.name for p in runs_dir.iterdir())
    new = [n for n in after if n not in before]
    assert [n.split("_", 1)[1] for n in new] == [
        "mine_iter1_prototype-pyramid-seed42", "autolabel_iter1_prototype-pyramid-seed42",
        "train_iter2_prototype-pyramid", "eval_iter2_prototype-pyramid",
        "mine_iter1_random-human-seed42", "autolabel_iter1_random-human-seed42",
        "train_iter2_random-human", "eval_iter2_random-human", "report"]
    for step, done in first.items():  # every turn-1 run is re-used as it is
        if step != "report" and done["run"]:
            assert second[step]["run"] == done["run"] and second[step]["skipped"], step

    for arm in ("prototype-pyramid", "random-human"):
        run = {n.split("_", 1)[1]: runs_dir / n for n in after}
        turn1 = {f["name"] for f in json.loads((run[f"autolabel_iter0_{arm}"] / "autolabels.json").read_text())}
        mined2 = json.loads((run[f"mine_iter1_{arm}-seed42"] / "mined.json").read_text())["frames"]
        assert mined2 and not turn1 & {f["name"] for f in mined2}  # turn 2 mined none of turn 1's frames
        mine2 = json.loads((run[f"mine_iter1_{arm}-seed42"] / "result.json").read_text())
        assert mine2["metrics"]["excluded"]["labeled earlier in the lineage"] == len(turn1)
        assert mine2["inputs"]["eval"] == run[f"eval_iter1_{arm}"].name  # the lineage's iteration-1 model
        train2 = json.loads((run[f"train_iter2_{arm}"] / "result.json").read_text())
        labels = [run[f"autolabel_iter0_{arm}"].name, run[f"autolabel_iter1_{arm}-seed42"].name]
        assert train2["autolabels"] == labels and train2["inputs"]["train"] == run[f"train_iter1_{arm}"].name
        data = yaml.safe_load((run[f"train_iter2_{arm}"] / "dataset.yaml").read_text())
        assert data["train"][1:] == [str((runs_dir / n / "yolo/images/train").resolve()) for n in labels]
        assert train2["inputs"]["init_weights"] == f"{run[f'train_iter1_{arm}'].name}/ultralytics/weights/best.pt"

    third = flywheel(2)
    assert all(done["skipped"] for step, done in third.items() if step not in ("report", "synth")), third
    again = [n for n in sorted(p.name for p in runs_dir.iterdir()) if n not in after]
    assert all(n.endswith("_report") for n in again), again  # nothing re-made but the report

    # a target slice the eval pool barely holds is refused, naming the key
    result = runner.invoke(app, ["mine", "--config", str(path), "--set", "flywheel.target_slice=foggy / "
                                 "dawn/dusk / tunnel", "--strategy", "random"])
    assert result.exit_code == 2, result.output
    assert "flywheel.target_slice" in " ".join(result.output.split()) and "Traceback" not in result.output
