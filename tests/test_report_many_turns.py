"""The report of a two-turn flywheel, on the fixture turn plus an iteration 2 for every lineage."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from PIL import Image

from bddengine.report.casestudy import WORD_BUDGET, count_words
from bddengine.runs import latest_run
from bddengine.runs.lineages import lineage_tag, train_tag
from bddengine.stages import report as report_stage
from test_report import STAGE_FIGURE_PX, _cfg, _commit, _eval_run, turn  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
def two_turns(turn, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """The fixture's runs copied, and turn 2 of each lineage: its own autolabel run, then iteration 2."""
    root = tmp_path_factory.mktemp("turns")
    runs = root / "runs"
    shutil.copytree(turn["runs"], runs)
    for rel, size in STAGE_FIGURE_PX.items():  # stage figures at the size real stages draw them (page budget)
        for h in runs.glob(rel.split("/")[0] + "*/" + rel.split("/")[1]):
            Image.new("RGB", size, (200, 60, 60)).save(h)
    split = latest_run(runs, "split")
    for arm, seeds in turn["arms"].items():
        for seed, preds in seeds.items():
            train1 = latest_run(runs, "train", iter=1, tag=train_tag(1, arm, seed, 42))
            cost = {"frames_to_humans": 20, "usd_human": 10.0, "usd_compute": 0.0, "human_labeler": True}
            auto = _commit(runs, "autolabel", iter=1, tag=lineage_tag(arm, seed),
                           files={"quality.json": {"cost": cost}}, metrics={"cost": cost})
            tr = _commit(runs, "train", iter=2, tag=train_tag(2, arm, seed, 42),
                         inputs={"split": split.path, "autolabel": auto.path, "train": train1.path},
                         metrics={"epochs": 1, "n_train_images": 140})
            # iteration 2 predicts as iteration 1 did: a turn that gained nothing
            _eval_run(runs, turn["gt"], preds, iter=2, tag=train_tag(2, arm, seed, 42), split=split, train=tr)
    cfg = _cfg(turn).model_copy(update={"runs_dir": runs})
    cfg.report.out_dir = root / "out"
    cfg.flywheel.turns, cfg.flywheel.seeds = 2, 2
    out = report_stage.run(cfg, progress=False)
    return root, cfg, out


def test_many_turns_section_table_figure_and_turns_json(two_turns) -> None:
    root, cfg, out = two_turns
    case = root / "out" / "case_study"
    md, appendix = (case / "case_study_v1.md").read_text(), (case / "case_study_appendix.md").read_text()
    doc = json.loads((case / "turns.json").read_text())
    headline = json.loads((case / "headline.json").read_text())
    assert md.startswith("# Case study: fixture, 2 turns of the data flywheel")
    section = md.split("### Many turns")[1].split("## 7.")[0]
    assert "![Learning curve](../figures/learning_curve.png)" in section
    assert (root / "out" / "figures" / "learning_curve.png").is_file()
    assert "## I. Many turns, per turn" in appendix
    arms = {p["arm"] for p in doc["curve"]}
    assert arms == {"prototype", "random"}  # random-slice never ran: no curve
    assert doc["baseline"] == "random" and doc["turns"] == 2
    # iteration 1 of the curve is the one-turn headline: the worst slice's delta and CI
    worst = {r["arm"]: r for r in headline["rows"] if r["worst"]}
    for arm in ("prototype", "random"):
        p1 = next(p for p in doc["curve"] if p["arm"] == arm and p["iter"] == 1)
        assert p1["gain"]["value"] == pytest.approx(worst[arm]["delta"], abs=1e-12)
        assert p1["gain"]["lo"] == pytest.approx(worst[arm]["ci_lo"], abs=1e-12)
    p2 = {p["arm"]: p for p in doc["curve"] if p["iter"] == 2}
    # prototype: (6 + 20) human frames per lineage by turn 2 -> the mean; random: 20 + 20
    assert p2["prototype"]["frames"] == 26 and p2["random"]["frames"] == 40
    # dollars: each lineage's autolabel bills (humans + labeler compute) plus its trainings at the GPU-hour rate
    rate = cfg.autolabel.usd_per_gpu_hour / 3600
    walls = {a: [json.loads((r / "result.json").read_text())["wall_time_s"] for r in sorted(cfg.runs_dir.iterdir())
                 if r.name.split("_", 1)[1].startswith(("train_iter1_" + a, "train_iter2_" + a))
                 and not r.name.split("_", 1)[1].startswith(f"train_iter1_{a}-slice")]
             for a in ("prototype", "random")}
    assert p2["prototype"]["usd"] == pytest.approx(3.0018 + 10.0 + sum(walls["prototype"]) * rate / 2)
    assert p2["random"]["usd"] == pytest.approx(10.0 + 10.0 + sum(walls["random"]) * rate)
    for arm in ("prototype", "random"):  # iteration 2 scored as iteration 1: no gain, a CI of exactly 0
        assert (p2[arm]["gain"]["value"], p2[arm]["gain"]["lo"], p2[arm]["gain"]["hi"]) == (0.0, 0.0, 0.0)
        # so the plateau rule fires at turn 2 exactly when turn 1's gain CI also included 0
        g1 = next(p for p in doc["curve"] if p["arm"] == arm and p["iter"] == 1)["gain"]
        plateau = g1["lo"] <= 0 <= g1["hi"]
        assert ("plateau" in doc["stop"][arm]["reasons"]) is plateau
        assert (f"**{arm}: stop from turn 2**" in section) is doc["stop"][arm]["stop"]
    for arm in ("prototype", "random"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {arm} |"))
        reach = doc["frames_to_target"][arm]
        assert ("not in 2 turns" in row) is (not reach["reached"])
    later = [a for a in doc["alerts"] if a["iter"] >= 2]
    assert ("later turns: none" in section) is (not later)
    for a in later:
        assert f"turn 2 {a['arm']} on {a['slice']}" in section
    last = {a: max((p for p in doc["curve"] if p["arm"] == a), key=lambda p: p["iter"]) for a in arms}
    for arm, p in last.items():  # the prototype lineages fixed the target slice: the worst slice moved
        moved = p["worst"] != doc["target_slice"]["label"]
        assert (f"{arm}'s at turn {p['iter']} is {p['worst']}" in section) is moved
    assert "The worst slice moved: prototype's at turn 2" in section
    assert count_words(md) <= WORD_BUDGET
    pdf = (case / "case_study_v1.pdf").read_bytes()
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) <= 4
    res = json.loads((out.location / "result.json").read_text())
    assert res["metrics"]["turns"]["arms"]["prototype"]["turn"] == 2
    assert any(k.startswith("turns prototype") for k in out.numbers)


def test_a_new_turn_rebuilds_the_report(two_turns) -> None:
    root, cfg, out = two_turns
    again = report_stage.run(cfg, progress=False)
    assert again.skipped and again.location == out.location
    tr = latest_run(cfg.runs_dir, "train", iter=2, tag="random")
    shutil.rmtree(latest_run(cfg.runs_dir, "eval", iter=2, tag="random").path)  # the lineage loses turn 2
    assert tr is not None
    fewer = report_stage.run(cfg, progress=False)
    assert not fewer.skipped
    doc = json.loads((root / "out" / "case_study" / "turns.json").read_text())
    assert [p["iter"] for p in doc["curve"] if p["arm"] == "random"] == [0, 1]
