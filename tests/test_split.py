"""Split: pool assignment, eval balance, video hold-out, near-duplicates, the stage, ultralytics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from bddengine.bdd.categories import CLASSES, column_name
from bddengine.config import EngineConfig
from bddengine.curation.pools import (
    EXCLUDED,
    POOLS,
    REASON_DUP_EVAL,
    REASON_VIDEO,
    assign_pools,
    check_video_holdout,
    drop_eval_near_duplicates,
    eval_quotas,
    find_near_duplicates,
    stratum_allocation,
)
from bddengine.curation.sampling import allocate
from bddengine.errors import StageInputError
from bddengine.runs import StageRun
from bddengine.stages import split as split_stage

SLICES = [  # (weather, timeofday, scene), videos of that slice
    (("clear", "daytime", "city street"), 60),
    (("clear", "night", "city street"), 40),
    (("overcast", "daytime", "highway"), 30),
    (("rainy", "night", "residential"), 20),
    (("foggy", "dawn/dusk", "tunnel"), 3),
]


def make_frames(
    slices: list[tuple[tuple[str, str, str], int]] = SLICES,
    *,
    frames_per_video: int = 2,
    unlabeled_every: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """A manifest-like table: every frame of a video shares its slice; some frames unlabeled."""
    rng = np.random.default_rng(seed)
    rows = []
    for (weather, timeofday, scene), n_videos in slices:
        for v in range(n_videos):
            video = f"{abs(hash((weather, timeofday, scene))) % 10**8:08x}-{v:08x}"
            for f in range(frames_per_video):
                rows.append({
                    "name": f"{video}-{f}.jpg", "video": video, "weather": weather,
                    "timeofday": timeofday, "scene": scene,
                })
    frames = pd.DataFrame(rows)
    labeled = np.ones(len(frames), dtype=bool)
    labeled[rng.permutation(len(frames))[: len(frames) // unlabeled_every]] = False
    return frames.assign(labeled=labeled, has_gt=True)


# --- eval balance --------------------------------------------------------------------


def test_eval_quotas_equal_when_possible_and_redistributed_when_short() -> None:
    planned, allocated = eval_quotas([80, 80, 80, 80], 100)
    assert planned == allocated == [25, 25, 25, 25]
    planned, allocated = eval_quotas([80, 80, 10, 80], 100)
    assert planned == [25, 25, 25, 25]
    assert allocated == [30, 30, 10, 30]  # the short slice gives all it has, 15 spread over the rest
    assert eval_quotas([3, 1], 10) == ([5, 5], [3, 1])  # not enough anywhere: everything


def test_eval_pool_balanced_over_top_slices() -> None:
    frames = make_frames()
    a = assign_pools(frames, eval_size=40, eval_top_slices=4, val_size=10, train_size=60,
                     min_per_bucket=2, seed=1)
    quotas = a.eval_quotas
    assert [q.key for q in quotas] == [k for k, _ in SLICES[:4]]  # most common labeled slices
    assert [q.taken for q in quotas] == [10, 10, 10, 10]
    counts = Counter(tuple(r) for r in frames.iloc[a.indices("eval")][["weather", "timeofday", "scene"]]
                     .itertuples(index=False, name=None))
    assert [counts[q.key] for q in quotas] == [10, 10, 10, 10]
    assert frames["labeled"].to_numpy()[a.indices("eval")].all()


def test_eval_include_adds_a_rare_slice_and_skips_too_small_ones() -> None:
    frames = make_frames()  # foggy: 3 videos x 2 frames, at most 6 labeled
    a = assign_pools(frames, eval_size=40, eval_top_slices=2, val_size=10, train_size=60,
                     min_per_bucket=2, seed=1, eval_include=[{"weather": "rainy"}, {"weather": "foggy"}],
                     eval_include_min=7)
    assert [q.key for q in a.eval_quotas] == [SLICES[0][0], SLICES[1][0], ("rainy", "night", "residential")]
    eval_rows = frames.iloc[a.indices("eval")]
    assert (eval_rows["weather"] == "rainy").sum() >= 10
    assert not (eval_rows["weather"] == "foggy").any()


def test_included_slices_match_patterns_and_reject_unknown_attributes() -> None:
    from bddengine.curation.pools import included_slices

    per = {("clear", "day", "city"): 50, ("foggy", "day", "city"): 20, ("foggy", "night", "hwy"): 3}
    assert included_slices(per, [{"weather": "foggy"}], 5) == [("foggy", "day", "city")]
    assert included_slices(per, [{"weather": "foggy", "scene": "hwy"}], 1) == [("foggy", "night", "hwy")]
    assert included_slices(per, [{"weather": "foggy"}], 1, exclude=[("foggy", "day", "city")]) == [
        ("foggy", "night", "hwy")]
    with pytest.raises(ValueError, match="wether"):
        included_slices(per, [{"wether": "foggy"}], 1)


def test_eval_short_slice_gives_all_and_rest_is_redistributed() -> None:
    short_key = ("rainy", "night", "residential")
    frames = make_frames(
        [(k, n) for k, n in SLICES[:3]] + [(short_key, 2), (("foggy", "dawn/dusk", "tunnel"), 1)],
        frames_per_video=1, unlabeled_every=10**9,
    )
    a = assign_pools(frames, eval_size=40, eval_top_slices=4, val_size=4, train_size=20,
                     min_per_bucket=0, seed=3)
    assert [q.key for q in a.eval_quotas] == [k for k, _ in SLICES[:3]] + [short_key]
    short = a.eval_quotas[3]
    assert (short.available, short.planned, short.allocated, short.taken) == (2, 10, 2, 2)
    others = a.eval_quotas[:3]
    assert [q.planned for q in others] == [10, 10, 10]
    assert [q.allocated for q in others] == [q.taken for q in others] == [13, 13, 12]  # 38 spread equally
    assert len(a.indices("eval")) == 40


# --- train / val stratification ------------------------------------------------------


def test_train_pool_stratified_by_weather_timeofday() -> None:
    frames = make_frames()
    a = assign_pools(frames, eval_size=20, eval_top_slices=4, val_size=10, train_size=80,
                     min_per_bucket=5, seed=7)
    train = frames.iloc[a.indices("train")]
    got = Counter(zip(train["weather"], train["timeofday"], strict=True))
    want = {alloc.key: alloc.allocated for alloc in a.train_allocation}
    assert dict(got) == {k: v for k, v in want.items() if v}
    assert sum(want.values()) == 80
    # the allocation is collect's rule: proportional with a floor, on what eval and val left
    held_before = frames.iloc[np.concatenate([a.indices("eval"), a.indices("val")])]["video"]
    free = frames["labeled"].to_numpy() & ~np.isin(frames["video"], held_before)
    left = Counter(zip(frames["weather"][free], frames["timeofday"][free], strict=True))
    keys = sorted(left)
    assert [want[k] for k in keys] == allocate([left[k] for k in keys], 80, min_per_bucket=5)
    assert want[("foggy", "dawn/dusk")] == min(5, left[("foggy", "dawn/dusk")])  # floor keeps rare ones
    assert got[("clear", "daytime")] > got[("rainy", "night")]  # otherwise proportional


def test_stratum_allocation_matches_collect_rule() -> None:
    keys = [("a", "x")] * 90 + [("b", "y")] * 8 + [("c", "z")] * 2
    alloc = {a.key: a.allocated for a in stratum_allocation(keys, 20, 5)}
    assert alloc == {("a", "x"): 13, ("b", "y"): 5, ("c", "z"): 2}


def test_val_pool_exists_and_is_labeled() -> None:
    frames = make_frames()
    a = assign_pools(frames, eval_size=20, eval_top_slices=4, val_size=12, train_size=10_000,
                     min_per_bucket=2, seed=0)
    assert len(a.indices("val")) == 12  # picked before train, which takes all that is left
    for pool in ("train", "val", "eval"):
        assert frames["labeled"].to_numpy()[a.indices(pool)].all()


# --- video hold-out ------------------------------------------------------------------


def test_pools_hold_out_whole_videos() -> None:
    frames = make_frames(frames_per_video=3)
    a = assign_pools(frames, eval_size=25, eval_top_slices=4, val_size=11, train_size=70,
                     min_per_bucket=2, seed=5)
    assert set(a.pool) <= {*POOLS, EXCLUDED} and "" not in set(a.pool)
    per_video = pd.DataFrame({"video": frames["video"], "pool": a.pool})
    pooled = per_video[per_video["pool"] != EXCLUDED]
    assert (pooled.groupby("video")["pool"].nunique() == 1).all()
    # an excluded frame belongs to a video some pool holds
    held = set(pooled["video"][pooled["pool"] != "mining"])
    excluded = per_video[per_video["pool"] == EXCLUDED]
    assert set(excluded["video"]) <= held
    assert set(a.reason[a.pool == EXCLUDED]) <= {REASON_VIDEO}
    # quotas met exactly, at the cost of a few excluded frames of partly taken videos
    assert [len(a.indices(p)) for p in ("eval", "val", "train")] == [25, 11, 70]
    pools = {p: frames.iloc[a.indices(p)] for p in POOLS}
    assert check_video_holdout(pools)["ok"]
    # the mining pool keeps labeled leftovers and unlabeled frames of unheld videos
    mining = frames.iloc[a.indices("mining")]
    assert (~mining["labeled"]).any() and mining["labeled"].any()


def test_train_and_val_take_fully_labeled_videos_first() -> None:
    frames = make_frames(unlabeled_every=3)  # a third of the frames unlabeled, spread over videos
    a = assign_pools(frames, eval_size=40, eval_top_slices=4, val_size=20, train_size=80,
                     min_per_bucket=1, seed=2)
    # a mixed video held by train or val loses its unlabeled frame to the exclusions; with
    # 2-frame videos only an odd quota left over in a bucket takes one (5 buckets x 2 pools)
    mixed = set(frames.loc[~frames["labeled"], "video"])
    held = set(frames.iloc[np.concatenate([a.indices("val"), a.indices("train")])]["video"])
    assert len(held & mixed) <= 10
    excluded = frames.iloc[a.indices(EXCLUDED)]
    assert (~excluded["labeled"] & excluded["video"].isin(held)).sum() <= 10


def test_check_video_holdout_catches_a_planted_leak() -> None:
    frames = make_frames()
    a = assign_pools(frames, eval_size=20, eval_top_slices=4, val_size=10, train_size=60,
                     min_per_bucket=2, seed=1)
    pools = {p: frames.iloc[a.indices(p)] for p in POOLS}
    clean = check_video_holdout(pools)
    assert clean["ok"] and clean["n_overlapping_videos"] == 0
    assert clean["videos_per_pool"]["eval"] == pools["eval"]["video"].nunique()
    leaked = pools["eval"].iloc[[0]].assign(name="planted-other-frame.jpg")  # same video, new frame
    pools["train"] = pd.concat([pools["train"], leaked])
    report = check_video_holdout(pools)
    assert not report["ok"]
    assert report["video_overlaps"]["train&eval"] == 1 and report["n_overlapping_videos"] == 1
    assert report["examples"]["train&eval"] == [leaked["video"].iloc[0]]
    assert report["frame_overlaps"]["train&eval"] == 0
    # the same frame in two pools is caught too; plain video lists are accepted
    assert not check_video_holdout({"a": ["v1", "v2"], "b": ["v3", "v1"]})["ok"]
    assert check_video_holdout({"a": ["v1"], "b": ["v2"]})["ok"]


# --- near-duplicates -----------------------------------------------------------------


def _unit(rng: np.random.Generator, n: int, d: int = 64) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_near_duplicates_planted_pairs_found_across_blocks() -> None:
    rng = np.random.default_rng(0)
    query, ref = _unit(rng, 300), _unit(rng, 120)
    ref[33] = ref[0]  # one query near two references
    for q, r in [(5, 7), (150, 0), (299, 119)]:
        noisy = ref[r] + 0.02 * _unit(rng, 1)[0]
        query[q] = noisy / np.linalg.norm(noisy)
    planted = {(5, 7), (150, 0), (150, 33), (299, 119)}
    dups = find_near_duplicates(query.astype(np.float16), ref, 0.95, block=64)
    assert set(zip(dups.query.tolist(), dups.reference.tolist(), strict=True)) == planted
    assert (dups.similarity > 0.95).all() and dups.query_rows().tolist() == [5, 150, 299]
    assert dups.best_reference[5] == 7 and dups.best_similarity[5] > 0.95
    none = find_near_duplicates(query, ref, 0.999999)
    assert none.n_pairs == 0


def test_near_duplicates_scale_3k_by_1k() -> None:
    rng = np.random.default_rng(1)
    dups = find_near_duplicates(_unit(rng, 3000, 512), _unit(rng, 1000, 512), 0.95)
    assert dups.n_pairs == 0 and dups.best_reference.shape == (3000,)


def test_eval_near_duplicate_of_train_is_dropped() -> None:
    frames = make_frames()
    a = assign_pools(frames, eval_size=20, eval_top_slices=4, val_size=10, train_size=60,
                     min_per_bucket=2, seed=1)
    emb = _unit(np.random.default_rng(2), len(frames))
    eval_row, train_row = a.indices("eval")[3], a.indices("train")[10]
    emb[eval_row] = emb[train_row]
    dups = drop_eval_near_duplicates(a, frames, emb, 0.95)
    assert dups.n_pairs == 1
    assert a.pool[eval_row] == EXCLUDED and a.reason[eval_row] == REASON_DUP_EVAL
    assert a.pool[train_row] == "train"  # the train frame stays
    assert sum(q.final for q in a.eval_quotas) == 19 == len(a.indices("eval"))


def test_assignment_is_deterministic_for_a_seed() -> None:
    frames = make_frames()
    kw = dict(eval_size=20, eval_top_slices=4, val_size=10, train_size=60, min_per_bucket=2)
    one, two = assign_pools(frames, seed=11, **kw), assign_pools(frames, seed=11, **kw)
    assert (one.pool == two.pool).all()
    other = assign_pools(frames, seed=12, **kw)
    assert (one.pool != other.pool).any()


# --- the stage, on fake collect and embed runs -----------------------------------------


def write_fake_runs(
    tmp: Path, frames: pd.DataFrame, embeddings: np.ndarray, *, size: tuple[int, int] = (96, 64)
) -> tuple[Path, Path]:
    """A collect run (manifest, boxes, tiny JPEGs) and an embed run pointing at it."""
    rng = np.random.default_rng(0)
    images = tmp / "images"
    images.mkdir(exist_ok=True)
    width, height = size
    boxes = []
    for i, name in enumerate(frames["name"]):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(images / name)
        if i % 7 == 0:
            continue  # a frame with no boxes
        boxes.append((name, "car", "car", 10.0, 10.0, 50.0, 40.0, False))
        boxes.append((name, "traffic sign", "traffic sign", 60.0, 5.0, 90.0, 30.0, False))
        boxes.append((name, "pedestrian", "other person", 0.0, 0.0, 8.0, 20.0, True))
        boxes.append((name, "car", "car", 70.0, 30.0, 120.0, 70.0, False))  # clipped
    boxes = pd.DataFrame(boxes, columns=["name", "category", "raw_category", "x1", "y1", "x2", "y2",
                                         "ignored"])
    boxes = boxes.assign(occluded=False, truncated=False,
                         label_id=[str(i) for i in range(len(boxes))])
    manifest = frames.assign(path=[str(images / n) for n in frames["name"]], split="train",
                             width=width, height=height)
    for c in CLASSES:
        manifest[column_name(c)] = 0
    manifest["n_ignored"] = 0
    manifest["n_boxes"] = 0
    runs = tmp / "runs"
    with StageRun(runs, "collect", {}, 42, "collect-fp") as run:
        manifest.to_parquet(run.dir / "manifest.parquet", index=False)
        boxes.to_parquet(run.dir / "boxes.parquet", index=False)
        collect = run.commit(outputs={"manifest": "manifest.parquet"}, metrics={})
    embed = write_fake_embed(runs, collect.path, embeddings)
    return collect.path, embed


def write_fake_embed(runs: Path, collect: Path, embeddings: np.ndarray, fp: str = "embed-fp") -> Path:
    with StageRun(runs, "embed", {}, 42, fp, inputs={"collect": str(collect)}) as run:
        np.save(run.dir / "embeddings.npy", embeddings.astype(np.float16))
        return run.commit(outputs={"embeddings": "embeddings.npy"}, metrics={}).path


def _cfg(runs: Path, **split: object) -> EngineConfig:
    sizes = {"train_size": 40, "eval_size": 16, "eval_top_slices": 4, "val_size": 8, "min_per_bucket": 2}
    return EngineConfig.model_validate(
        {"runs_dir": str(runs), "fiftyone": {"enabled": False}, "split": sizes | split}
    )


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("split")
    frames = make_frames(
        [(("clear", "daytime", "city street"), 20), (("clear", "night", "city street"), 14),
         (("overcast", "daytime", "highway"), 10), (("rainy", "night", "residential"), 8),
         (("foggy", "dawn/dusk", "tunnel"), 2)]
    )
    write_fake_runs(tmp, frames, _unit(np.random.default_rng(3), len(frames)))
    outcome = split_stage.run(_cfg(tmp / "runs"), progress=False)
    assert not outcome.skipped
    return outcome.location, frames


def test_stage_writes_pools_and_reports(split_run: tuple[Path, pd.DataFrame]) -> None:
    run, frames = split_run
    assert run.name == "03_split"
    result = json.loads((run / "result.json").read_text())
    assert result["inputs"]["collect"].endswith("01_collect")
    for out in result["outputs"].values():
        assert (run / out).exists(), out
    pools = {p: pd.read_parquet(run / f"{p}_pool.parquet") for p in POOLS}
    excluded = pd.read_parquet(run / "excluded.parquet")
    assert sum(len(t) for t in pools.values()) + len(excluded) == len(frames)
    assert len(pools["eval"]) == 16 and len(pools["val"]) == 8 and len(pools["train"]) == 40
    assert "n_car" not in pools["mining"].columns and "labeled" not in pools["mining"].columns
    assert pools["mining"]["has_gt"].all()  # make_frames: every frame has hidden GT
    leak = json.loads((run / "leakage_check.json").read_text())
    assert leak["ok"] and all(v == 0 for v in leak["video_overlaps"].values())
    assert leak["videos_per_pool"]["train"] == pools["train"]["video"].nunique()
    assert leak["near_duplicates"]["train_val_vs_eval"]["n_pairs"] == 0
    m = result["metrics"]
    assert [q["final"] for q in m["eval_slices"]] == [4, 4, 4, 4]
    assert m["holdout_ok"] and m["n_frames"]["eval"] == 16
    table = pd.read_csv(run / "split_table.csv")
    assert list(table.columns) == ["weather", "timeofday", "scene", *POOLS, EXCLUDED, "total"]
    assert table["total"].sum() == len(frames) and table["eval"].sum() == 16
    assert (run / "split_distribution.png").stat().st_size > 10_000


def test_stage_eval_gt_in_bdd_format(split_run: tuple[Path, pd.DataFrame]) -> None:
    run, _ = split_run
    gt = json.loads((run / "eval_gt.json").read_text())
    eval_pool = pd.read_parquet(run / "eval_pool.parquet")
    assert [f["name"] for f in gt] == eval_pool["name"].tolist()
    frame = next(f for f in gt if f["labels"])
    assert set(frame["attributes"]) == {"weather", "timeofday", "scene"}
    cats = [lb["category"] for lb in frame["labels"]]
    assert cats == ["car", "traffic sign", "other person", "car"]  # ignored keeps its raw name
    assert all(lb["attributes"]["crowd"] is False for lb in frame["labels"])
    assert frame["labels"][3]["box2d"] == {"x1": 70.0, "y1": 30.0, "x2": 120.0, "y2": 70.0}  # unclipped


def test_stage_yolo_export(split_run: tuple[Path, pd.DataFrame]) -> None:
    run, _ = split_run
    yolo = run / "yolo"
    train = pd.read_parquet(run / "train_pool.parquet")
    images = sorted(p.name for p in (yolo / "images/train").iterdir())
    assert images == sorted(train["name"])
    assert all((yolo / "images/train" / n).is_symlink() for n in images)
    lines = [(yolo / "labels/train" / f"{Path(n).stem}.txt").read_text().splitlines() for n in images]
    assert sum(1 for x in lines if not x) >= 1  # frames with no boxes: empty files
    assert all(len(x) == 3 for x in lines if x)  # the ignored box is left out
    assert {line.split()[0] for x in lines for line in x} == {"2", "9"}
    assert "2 0.864583 0.734375 0.270833 0.531250" in {line for x in lines for line in x}  # clipped to 70..96 x 30..64
    data = yaml.safe_load((yolo / "dataset.yaml").read_text())
    assert "path" not in data and data["train"] == "images/train" and data["names"][9] == "traffic sign"


def test_stage_is_a_noop_when_nothing_changed(split_run: tuple[Path, pd.DataFrame]) -> None:
    run, _ = split_run
    again = split_stage.run(_cfg(run.parent), progress=False)
    assert again.skipped and again.location == run


def _split_before_planting(tmp_path: Path) -> tuple[np.ndarray, Path, Path, dict[str, int]]:
    """A four-slice world split once with distinct embeddings, for tests that then plant near-duplicates.

    Returns:
        (the embeddings, the collect run, the first split run, frame name -> embedding row).
    """
    frames = make_frames(
        [(("clear", "daytime", "city street"), 16), (("clear", "night", "city street"), 12),
         (("overcast", "daytime", "highway"), 10), (("rainy", "night", "residential"), 8)]
    )
    emb = _unit(np.random.default_rng(4), len(frames))
    collect, _ = write_fake_runs(tmp_path, frames, emb)
    first = split_stage.run(_cfg(tmp_path / "runs"), progress=False).location
    return emb, collect, first, {n: i for i, n in enumerate(frames["name"])}


def test_stage_drops_planted_near_duplicate(tmp_path: Path) -> None:
    emb, collect, first, idx = _split_before_planting(tmp_path)
    eval_name = pd.read_parquet(first / "eval_pool.parquet")["name"].iloc[0]
    train_name = pd.read_parquet(first / "train_pool.parquet")["name"].iloc[0]
    emb[idx[eval_name]] = emb[idx[train_name]]
    write_fake_embed(tmp_path / "runs", collect, emb, fp="embed-fp-2")
    second = split_stage.run(_cfg(tmp_path / "runs"), progress=False).location
    leak = json.loads((second / "leakage_check.json").read_text())["near_duplicates"]["train_val_vs_eval"]
    assert leak["n_pairs"] == 1 and leak["n_frames_dropped"] == 1
    assert leak["pairs"][0]["dropped"] == eval_name and leak["pairs"][0]["near"] == train_name
    assert eval_name not in set(pd.read_parquet(second / "eval_pool.parquet")["name"])
    assert eval_name in set(pd.read_parquet(second / "excluded.parquet")["name"])


def test_stage_rejects_embeddings_of_another_collect(tmp_path: Path) -> None:
    frames = make_frames([(("clear", "daytime", "city street"), 10)])
    emb = _unit(np.random.default_rng(0), len(frames))
    collect, _ = write_fake_runs(tmp_path, frames, emb)
    runs = tmp_path / "runs"
    with StageRun(runs, "collect", {}, 42, "newer") as run:  # a newer collect the embed run did not see
        for table in ("manifest.parquet", "boxes.parquet"):
            shutil.copy(collect / table, run.dir / table)
        run.commit(outputs={}, metrics={})
    with pytest.raises(StageInputError, match=r"embedded collect run .*01_collect.*03_collect"):
        split_stage.run(_cfg(runs), progress=False)
    write_fake_embed(runs, runs / "03_collect", emb[:-1])  # one row short
    with pytest.raises(StageInputError, match=r"shape \(19, 64\) but .* 20 rows"):
        split_stage.run(_cfg(runs), progress=False)
    assert not list(runs.glob("*_split"))


def test_stage_refuses_embeddings_that_cannot_tell_frames_apart(tmp_path: Path) -> None:
    frames = make_frames(SLICES[:4], frames_per_video=1)
    emb = np.ones((len(frames), 8), dtype=np.float32) / np.sqrt(8)  # every frame the same vector
    write_fake_runs(tmp_path, frames, emb)
    with pytest.raises(StageInputError, match="every eval frame has a near-duplicate.*random-init"):
        split_stage.run(_cfg(tmp_path / "runs"), progress=False)


def test_stage_stops_when_near_duplicates_take_more_than_the_allowed_share(tmp_path: Path) -> None:
    """Crowded embeddings must not leave a split with a handful of eval frames (default share 0.2)."""
    emb, collect, first, idx = _split_before_planting(tmp_path)
    runs = tmp_path / "runs"
    eval_names = pd.read_parquet(first / "eval_pool.parquet")["name"].tolist()
    train_name = pd.read_parquet(first / "train_pool.parquet")["name"].iloc[0]
    for name in eval_names[: len(eval_names) // 2]:  # half the eval pool copies one train frame
        emb[idx[name]] = emb[idx[train_name]]
    write_fake_embed(runs, collect, emb, fp="embed-fp-2")
    before = sorted(p.name for p in runs.iterdir())
    with pytest.raises(StageInputError) as err:
        split_stage.run(_cfg(runs), progress=False)
    msg = str(err.value)
    n = len(eval_names) // 2
    assert f"dropped {n} of {len(eval_names)} eval frames" in msg
    assert "split.near_dup_threshold=0.95" in msg and "split.near_dup_max_share=0.2" in msg
    assert "04_embed (model not recorded)" in msg and "embed.pretrained" in msg and "\n" not in msg
    assert sorted(p.name for p in runs.iterdir()) == before  # nothing written
    allowed = split_stage.run(_cfg(runs, near_dup_max_share=0.6), progress=False).location
    assert len(pd.read_parquet(allowed / "eval_pool.parquet")) == len(eval_names) - n


def test_eval_include_report_says_what_each_pattern_matched() -> None:
    from bddengine.curation.pools import eval_include_report

    per = {("clear", "day", "city"): 50, ("foggy", "day", "city"): 20, ("foggy", "night", "hwy"): 3}
    foggy, clear, snowy = eval_include_report(
        per, [{"weather": "foggy"}, {"weather": "clear"}, {"weather": "snowy", "timeofday": "night"}], 5,
        top=[("clear", "day", "city")])
    assert [(r["weather"], r["status"]) for r in foggy["slices"]] == [
        ("foggy", "added"), ("foggy", "too few labeled frames")]
    assert foggy["n_added"] == 1 and foggy["n_labeled"] == 23
    assert clear["slices"][0]["status"] == "already among the top slices" and clear["n_added"] == 0
    assert snowy["n_slices"] == 0
    assert snowy["summary"] == ("{weather: snowy, timeofday: night} matched nothing: no labeled frame has "
                                "weather=snowy and timeofday=night")


def test_stage_reports_every_eval_include_pattern(tmp_path: Path) -> None:
    frames = make_frames(
        [(("clear", "daytime", "city street"), 20), (("clear", "night", "city street"), 14),
         (("rainy", "night", "residential"), 8), (("foggy", "dawn/dusk", "tunnel"), 2)]
    )
    write_fake_runs(tmp_path, frames, _unit(np.random.default_rng(3), len(frames)))
    cfg = _cfg(tmp_path / "runs", eval_top_slices=2, eval_include_min=5,
               eval_include=[{"weather": "rainy"}, {"weather": "foggy"}, {"weather": "snowy"}])
    out = split_stage.run(cfg, progress=False)
    report = json.loads((out.location / "result.json").read_text())["metrics"]["eval_include"]
    rainy, foggy, snowy = report
    assert rainy["n_added"] == 1 and rainy["slices"][0]["eval_frames"] > 0
    assert foggy["n_added"] == 0 and "none with split.eval_include_min=5" in foggy["summary"]
    assert snowy["summary"] == "{weather: snowy} matched nothing: no labeled frame has weather=snowy"
    assert out.numbers["eval_include 3"] == snowy["summary"]
    assert out.numbers["eval_include 1"].startswith("{weather: rainy} matched 1 slice(s)")


def test_stage_on_real_collect_and_embed_runs(tiny_world: Path, tiny_clip_arch: str, tmp_path: Path) -> None:
    from bddengine.config import load_config
    from bddengine.stages import collect, embed
    from conftest import write_config

    path = write_config(
        tmp_path / "c.yaml", tiny_world, tmp_path / "runs",
        embed={"clip_arch": tiny_clip_arch, "pretrained": None, "workers": 0, "batch_size": 16},
        # this test is about the hand-over between stages; random-init embeddings cannot tell
        # frames apart, so near-duplicates are switched off (they are tested on planted vectors)
        split={"train_size": 14, "eval_size": 6, "eval_top_slices": 3, "val_size": 4,
               "min_per_bucket": 1, "near_dup_threshold": 1.0},
    )
    cfg = load_config(path)
    collect.run(cfg, progress=False)
    embed.run(cfg, progress=False)
    out = split_stage.run(cfg, progress=False)
    result = json.loads((out.location / "result.json").read_text())
    assert result["inputs"]["embed"].endswith("02_embed") and result["metrics"]["holdout_ok"]
    manifest = pd.read_parquet(tmp_path / "runs/01_collect/manifest.parquet")
    pools = {p: pd.read_parquet(out.location / f"{p}_pool.parquet") for p in POOLS}
    assert len(pools["train"]) == 14 and len(pools["val"]) == 4
    assert sum(map(len, pools.values())) + sum(result["metrics"]["excluded_by_reason"].values()) == len(manifest)
    for pool in ("train", "val"):
        assert len(list((out.location / "yolo/labels" / pool).glob("*.txt"))) == len(pools[pool])


# --- ultralytics reads the exported dataset, after the folder is moved -----------------

ULTRALYTICS_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, socket, sys
    attempts = []
    def _refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled in this test")
    socket.getaddrinfo = _refuse
    socket.socket.connect = lambda self, *a: _refuse(*a)

    from ultralytics import YOLO
    from ultralytics.utils import LOGGER, SETTINGS
    import ultralytics.data.utils as data_utils
    SETTINGS.update({"sync": False})
    # check_det_dataset always calls check_font("Arial.ttf"), which tries a download when
    # matplotlib has no Arial: the trainer never draws (plots=False), so skip it.
    data_utils.check_font = lambda *a, **k: None

    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    LOGGER.addHandler(Keep())

    yaml_path, project = sys.argv[1], sys.argv[2]
    os.chdir(project)  # anywhere but the dataset folder: paths must not depend on the cwd
    data = data_utils.check_det_dataset(yaml_path)
    model = YOLO("yolov8n.yaml")
    model.train(data=yaml_path, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
                val=True, project=project, name="t", exist_ok=True, verbose=False, amp=False)
    print("RESULT " + json.dumps({"train": data["train"], "val": data["val"], "names": data["names"],
                                  "log": records, "network_attempts": attempts}))
    """
)


def test_ultralytics_trains_on_the_moved_dataset(split_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    run, _ = split_run
    moved = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, moved, symlinks=True)  # absolute symlinks still reach the JPEGs
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path / "ycfg"),
           "YOLO_VERBOSE": "True", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", ULTRALYTICS_SCRIPT, str(moved / "yolo/dataset.yaml"), str(project)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    assert result["train"] == str((moved / "yolo/images/train").resolve())
    assert result["val"] == str((moved / "yolo/images/val").resolve())
    assert result["names"] == {str(i): c for i, c in enumerate(CLASSES)}
    text = output + "\n".join(result["log"])
    assert "No labels found" not in text and "Labels are missing" not in text
    assert not [line for line in text.splitlines() if "WARNING" in line and "label" in line.lower()], text
    labels = list((moved / "yolo/labels/train").glob("*.txt"))
    n_empty = sum(1 for f in labels if not f.read_text())
    assert f"{len(labels)} images, {n_empty} backgrounds, 0 corrupt" in text  # every label file found
    assert len(labels) == 40 and 0 < n_empty < 40
    assert result["network_attempts"] == []
    assert (project / "t/weights/last.pt").is_file()
