"""Mine: prototype, FAISS k-NN (exact and approximate), exclusions, strategies, precision, the stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.config import EngineConfig, load_config
from bddengine.errors import StageInputError
from bddengine.mining.core import (
    REASON_NEAR_DUP,
    exclusion_filters,
    exclusion_metadata,
    failed_classes,
    failure_prototype,
    gt_classes_by_frame,
    l2_normalize,
    lift,
    mine_random,
    mine_random_slice,
    nearest_similarity,
    precision_block,
    slice_mask,
)
from bddengine.runs import RunLookupError
from bddengine.stages import mine as mine_stage
from bddengine.vectors import knn_search
from bddengine.vectors.exact import BLAS_MIN_QUERIES, brute_force_knn, faiss_blas_path, recall_at_k
from conftest import write_result

REPO = Path(__file__).resolve().parents[1]
WORST = {"weather": "rainy", "timeofday": "night", "scene": "city street"}
OTHER = {"weather": "clear", "timeofday": "daytime", "scene": "highway"}
D = 8


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def axis(i: int) -> np.ndarray:
    v = np.zeros(D, dtype=np.float32)
    v[i] = 1.0
    return v


# ---------------------------------------------------------------- pure functions


def test_prototype_is_the_renormalised_mean_of_unit_vectors() -> None:
    proto = failure_prototype(np.array([[2.0, 0.0], [0.0, 5.0]]))  # lengths do not weigh in
    assert proto == pytest.approx([2 ** -0.5, 2 ** -0.5], abs=1e-6)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 16))
    proto = failure_prototype(x * rng.uniform(0.1, 10, size=(7, 1)))
    want = l2_normalize(x).mean(axis=0)
    assert proto == pytest.approx(want / np.linalg.norm(want), abs=1e-6)
    assert np.linalg.norm(proto) == pytest.approx(1.0) and proto.dtype == np.float32
    with pytest.raises(ValueError, match="no failure"):
        failure_prototype(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="cancel out"):
        failure_prototype(np.array([[1.0, 0.0], [-1.0, 0.0]]))


def test_faiss_exact_topk_equals_numpy_brute_force() -> None:
    rng = np.random.default_rng(1)
    pool = l2_normalize(rng.normal(size=(2000, 32)))
    queries = l2_normalize(rng.normal(size=(7, 32)))
    sims = queries @ pool.T
    top = np.sort(sims, axis=1)[:, ::-1][:, :26]
    assert (np.diff(top, axis=1) < -1e-6).all()  # no ties near the cut: the order is unique
    res = knn_search(pool, queries, 25, exact_max_pool=10_000)
    ref_scores, ref_ids = brute_force_knn(pool, queries, 25)
    assert res.index_type == "flat-ip" and res.recall is None
    np.testing.assert_array_equal(res.ids, ref_ids)
    np.testing.assert_array_equal(res.ids, np.argsort(-sims, axis=1)[:, :25])
    np.testing.assert_allclose(res.scores, ref_scores, atol=1e-5)
    assert knn_search(pool[:3], queries, 25, exact_max_pool=10).ids.shape == (7, 3)  # k capped at the pool
    many = l2_normalize(rng.normal(size=(BLAS_MIN_QUERIES + 3, 32)))
    for q in (many[:1], many[:3], many):  # each of exact_knn's three routes gives NumPy's neighbours
        np.testing.assert_array_equal(knn_search(pool, q, 25, exact_max_pool=10_000).ids,
                                      np.argsort(-(q @ pool.T), axis=1)[:, :25])
    import faiss

    before = faiss.cvar.distance_compute_blas_threshold
    with faiss_blas_path():  # the many-query path: one matrix product per block, same neighbours
        assert faiss.cvar.distance_compute_blas_threshold == 0
        np.testing.assert_array_equal(faiss.knn(queries.astype(np.float32), pool.astype(np.float32), 25,
                                                metric=faiss.METRIC_INNER_PRODUCT)[1], ref_ids)
    assert faiss.cvar.distance_compute_blas_threshold == before


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_above_exact_max_pool_reports_recall(kind: str) -> None:
    rng = np.random.default_rng(2)
    pool = l2_normalize(rng.normal(size=(800, 16)))
    query = l2_normalize(rng.normal(size=(1, 16)))
    res = knn_search(pool, query, 10, exact_max_pool=100, approximate=kind, seed=3, n_recall_queries=20)
    assert res.index_type == kind and res.n_recall_queries == 21
    assert res.recall is not None and 0.8 <= res.recall <= 1.0
    assert res.ids.shape == (1, 10) and (np.diff(res.scores[0]) <= 1e-6).all()
    assert recall_at_k(np.array([[1, 2, 3, -1]]), np.array([[1, 2, 5, 6]])) == 0.5


def test_exclusions_drop_held_videos_and_eval_near_duplicates() -> None:
    mining = pd.DataFrame({"name": list("abcde"), "video": ["v1", "ev", "tr", "v2", "v3"]})
    eval_vecs = l2_normalize(np.stack([axis(0), axis(1)]))
    vecs = l2_normalize(np.stack([axis(2), axis(3), axis(4), axis(0) + 0.01 * axis(5), axis(0) + axis(1)]))
    sim = nearest_similarity(vecs, eval_vecs)
    assert sim[3] > 0.99 and sim[4] == pytest.approx(2 ** -0.5, abs=1e-6)
    filters = exclusion_filters({"train": {"tr"}, "val": set(), "eval": {"ev"}}, 0.95)
    meta = exclusion_metadata(mining, sim)
    assert {k: (~f.keeps(meta)).tolist() for k, f in filters.items()} == {
        "video in train pool": [False, False, True, False, False],
        "video in val pool": [False] * 5,
        "video in eval pool": [False, True, False, False, False],
        REASON_NEAR_DUP: [False, False, False, True, False],
    }
    assert REASON_NEAR_DUP not in exclusion_filters({}, None)  # null: check off


def test_random_strategies_size_and_seed() -> None:
    a, b, c = mine_random(1000, 50, 42), mine_random(1000, 50, 42), mine_random(1000, 50, 7)
    assert len(a) == 50 == len(set(a.tolist())) and (a == b).all() and not (a == c).all()
    assert sorted(mine_random(5, 50, 42).tolist()) == [0, 1, 2, 3, 4]  # fewer than k: all of them
    rows = [WORST if i % 3 == 0 else OTHER for i in range(300)]
    frames = pd.DataFrame(rows)
    s1, s2, s3 = (mine_random_slice(frames, WORST, 20, seed) for seed in (42, 42, 8))
    assert len(s1) == 20 and (s1 % 3 == 0).all() and (s1 == s2).all() and set(s1) != set(s3)
    assert len(mine_random_slice(frames, WORST, 500, 42)) == 100  # the slice has only 100


def test_mining_precision_hand_made() -> None:
    frames = pd.DataFrame([
        {"name": "a", **WORST, "has_gt": True},
        {"name": "b", **WORST, "has_gt": True},
        {"name": "c", **{**WORST, "scene": "highway"}, "has_gt": True},
        {"name": "d", **OTHER, "has_gt": False},
    ])
    boxes = pd.DataFrame({"name": ["a", "a", "b", "c", "c"],
                          "category": ["car", "pedestrian", "pedestrian", "truck", "car"],
                          "ignored": [False, False, False, False, True]})
    gt = gt_classes_by_frame(boxes)
    assert gt == {"a": {"car", "pedestrian"}, "b": {"pedestrian"}, "c": {"truck"}}  # ignored box left out
    row = {"ap50/car": 0.1, "ap50/truck": 0.49, "ap50/pedestrian": 0.5, "ap50/bus": None, "ap50/rider": float("nan")}
    failed = failed_classes(row)
    assert failed == ["car", "truck"]
    block = precision_block(frames, WORST, gt, failed)
    assert block == {"n_frames": 4, "n_attributes_known": 4, "n_attributes_unknown": 0, "slice_match": 0.5,
                     "weather": 0.75, "timeofday": 0.75, "scene": 0.5, "n_with_gt": 3,
                     "has_failed_class": pytest.approx(2 / 3)}
    base = precision_block(pd.concat([frames, pd.DataFrame([{"name": "e", **OTHER, "has_gt": True}] * 4)]),
                           WORST, gt, failed)
    assert base["slice_match"] == 0.25 and base["has_failed_class"] == pytest.approx(2 / 7)
    assert lift(block, base)["slice_match"] == pytest.approx(2.0)
    assert precision_block(frames, WORST, gt, [])["has_failed_class"] is None


# ---------------------------------------------------------------- the stage on hand-made runs


def make_runs(runs: Path, *, n_close: int = 10, n_far: int = 25, worst: dict | None = WORST,
              failures: bool = True, emb_rows: int | None = None, empty_mining: bool = False) -> dict:
    """Collect, embed, split, train and eval runs with planted mining frames.

    Eval failure frames point at ``unit(x0 +- 0.6 x3)`` (prototype: x0). Mining: ``close``
    frames of the worst slice (cosine ~0.78 to x0, with cars), ``far`` frames of
    another slice, ``planted_video`` (exactly x0, but its video is an eval video),
    ``planted_dup`` (a copy of an eval failure frame) and ``train_video`` (a train video).
    """
    rng = np.random.default_rng(0)
    img = runs.parent / "img.jpg"
    Image.new("RGB", (64, 36), (120, 120, 140)).save(img)
    rows, vecs = [], []

    def add(pool: str, name: str, video: str, attrs: dict, vec: np.ndarray) -> None:
        rows.append({"pool": pool, "name": name, "path": str(img), "video": video, **attrs,
                     "has_gt": True, "embedding_row": len(vecs)})
        vecs.append(unit(vec))

    add("eval", "e0", "ev0", WORST, axis(0) + 0.6 * axis(3))
    add("eval", "e1", "ev1", WORST, axis(0) - 0.6 * axis(3))
    add("eval", "e2", "ev2", OTHER, axis(1))
    add("train", "t0", "tr0", OTHER, axis(2))
    add("val", "v0", "va0", OTHER, axis(2) + axis(1))
    for i in range(n_close):
        noise = rng.normal(size=4)
        add("mining", f"close{i}", f"c{i}", WORST, axis(0) + 0.8 * np.r_[np.zeros(4), unit(noise)])
    for i in range(n_far):
        add("mining", f"far{i}", f"f{i}", OTHER, np.r_[0, 0, rng.normal(size=D - 2)])
    add("mining", "planted_video", "ev2", WORST, axis(0))
    add("mining", "planted_dup", "dup", WORST, axis(0) + 0.6 * axis(3))
    add("mining", "train_video", "tr0", OTHER, axis(5))
    table = pd.DataFrame(rows)
    boxes = pd.DataFrame([{"name": r["name"], "category": "car" if r["name"].startswith(("close", "planted"))
                           else "pedestrian", "x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0, "ignored": False}
                          for r in rows])

    collect, embed, split = runs / "01_collect", runs / "02_embed", runs / "03_split"
    train, ev = runs / "04_train_iter0", runs / "05_eval_iter0"
    write_result(collect)
    boxes.to_parquet(collect / "boxes.parquet")
    write_result(embed, {"collect": collect}, outputs={"embeddings": "embeddings.npy"})
    np.save(embed / "embeddings.npy", np.stack(vecs)[: emb_rows or len(vecs)])
    write_result(split, {"collect": collect, "embed": embed})
    for pool in ("train", "val", "eval", "mining"):
        part = table[table["pool"] == pool].drop(columns="pool")
        (part.iloc[:0] if empty_mining and pool == "mining" else part).to_parquet(split / f"{pool}_pool.parquet")
    write_result(train, {"split": split})
    write_result(ev, {"train": train, "split": split})
    (ev / "worst_slice.json").write_text(json.dumps(
        {"slice": {"key": worst, "n_frames": 2, "map50": 0.1} if worst else None, "min_eval_frames": 2}))
    (ev / "failures.json").write_text(json.dumps([{"name": "e0"}, {"name": "e1"}] if failures else []))
    slice_row = {"grouping": "slice", **WORST, "n_frames": 2, "map50": 0.1, "ap50/car": 0.2,
                 "ap50/pedestrian": 0.8, "ap50/truck": None}
    (ev / "slice_table.json").write_text(json.dumps([slice_row, {"grouping": "overall", "weather": "*",
                                                                 "timeofday": "*", "scene": "*"}]))
    return {"table": table}


def config(runs: Path, **mine) -> EngineConfig:
    return EngineConfig.model_validate({"runs_dir": str(runs), "fiftyone": {"enabled": False},
                                        "mine": {"k": 5, **mine}})


def mined_names(outcome) -> list[str]:
    return [f["name"] for f in json.loads((outcome.location / "mined.json").read_text())["frames"]]


def test_stage_prototype_excludes_planted_frames_and_is_a_noop_on_rerun(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    out = mine_stage.run(config(runs), progress=False)
    assert out.location.name == "06_mine_iter0_prototype" and not out.skipped
    doc = json.loads((out.location / "mined.json").read_text())
    assert set(doc) == {"arm", "strategy", "embedding", "iter", "k", "worst_slice", "failed_classes", "frames"}
    assert (doc["arm"], doc["strategy"], doc["embedding"], doc["iter"], doc["k"]) == (
        "prototype", "prototype", "embed", 0, 5)
    assert doc["worst_slice"] == WORST and doc["failed_classes"] == ["car"]
    names = [f["name"] for f in doc["frames"]]
    assert len(names) == 5 and all(n.startswith("close") for n in names)  # planted frames never mined
    assert [f["rank"] for f in doc["frames"]] == [1, 2, 3, 4, 5]
    sims = [f["similarity"] for f in doc["frames"]]
    assert sims == sorted(sims, reverse=True) and all(0.7 < s < 0.857 for s in sims)
    assert all(f["matches_slice"] for f in doc["frames"])
    assert np.load(out.location / "prototype.npy") == pytest.approx(axis(0), abs=1e-6)
    res = json.loads((out.location / "result.json").read_text())
    m = res["metrics"]
    assert m["excluded"] == {"video in train pool": 1, "video in val pool": 0, "video in eval pool": 1,
                             REASON_NEAR_DUP: 1, "any": 3}
    assert m["n_mining_pool"] == 38 and m["n_eligible"] == 35 and m["index_type"] == "flat-ip"
    assert m["index_build_s"] == 0.0 and out.numbers["k-NN index"].startswith("flat-ip, no index built, search")
    assert m["precision"]["slice_match"] == 1.0 and m["precision"]["has_failed_class"] == 1.0
    assert m["base_rate"]["slice_match"] == pytest.approx(12 / 38)
    assert m["lift"]["slice_match"] == pytest.approx(38 / 12)
    prec = json.loads((out.location / "mining_precision.json").read_text())
    assert prec["mined"]["slice_match"] == 1.0 and prec["base_rate"]["n_frames"] == 38
    assert prec["slice_precision"] == 1.0 and prec["slice_base_rate"] == pytest.approx(12 / 38)
    assert prec["failed_class_lift"] == pytest.approx(38 / 12)  # only worst-slice frames hold cars
    with Image.open(out.location / "mined_frames_grid.png") as im:
        assert im.width >= 5 * 192
    assert "mined_frames_grid.png" in out.look_at[0]
    assert mine_stage.run(config(runs), progress=False).skipped  # same inputs: no-op
    again = mine_stage.run(config(runs), force=True, progress=False)
    assert again.location.name == "07_mine_iter0_prototype" and mined_names(again) == names
    # near-duplicate check off: the copy of an eval failure frame is now the best match
    off = mine_stage.run(config(runs, near_dup_threshold=None), progress=False)
    assert mined_names(off)[0] == "planted_dup" and "planted_video" not in mined_names(off)


def test_stage_random_strategies_are_seeded_and_same_k(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    a = mine_stage.run(config(runs, strategy="random"), progress=False)
    b = mine_stage.run(config(runs, strategy="random"), force=True, progress=False)
    cfg7 = config(runs, strategy="random").model_copy(update={"seed": 7})
    c = mine_stage.run(cfg7, progress=False)
    assert a.location.name.endswith("_random") and len(mined_names(a)) == 5
    assert mined_names(a) == mined_names(b) and mined_names(a) != mined_names(c)
    assert not {"planted_video", "planted_dup", "train_video"} & set(mined_names(a))
    doc = json.loads((a.location / "mined.json").read_text())
    assert all(isinstance(f["similarity"], float) for f in doc["frames"])  # cosine to the prototype
    rs = mine_stage.run(config(runs, strategy="random-slice", k=50), progress=False)
    names = mined_names(rs)
    assert rs.location.name.endswith("_random-slice") and sorted(names) == [f"close{i}" for i in range(10)]
    m = json.loads((rs.location / "result.json").read_text())["metrics"]
    assert m["short_of_k"] and m["n_slice_eligible"] == 10
    assert rs.numbers["mined"] == "10 of k=50 (only 10 eligible frames of the worst slice: took them all)"


def test_a_new_strategy_is_one_module_and_one_entry(tmp_path: Path) -> None:
    """A strategy in its own module that registers itself: the config accepts the name, the stage mines
    with it end to end, and its entry (not its name) makes its arms controls."""
    import importlib
    import sys

    from pydantic import ValidationError

    from bddengine.config import FlywheelConfig, default_contrasts
    from bddengine.mining.strategies import STRATEGIES, unregister

    runs = tmp_path / "runs"
    make_runs(runs)
    with pytest.raises(ValidationError, match="first-k"):
        config(runs, strategy="first-k")  # not registered yet
    try:
        importlib.import_module("first_k_strategy")  # the module's one register() call is the entry
        assert STRATEGIES["first-k"].control and not STRATEGIES["first-k"].targeted
        out = mine_stage.run(config(runs, strategy="first-k"), progress=False)
        assert FlywheelConfig().arms == ["prototype", "random", "random-slice", "first-k"]  # every arm by default
        # a control like random: every other arm is compared with it, with the same label source
        assert default_contrasts(["prototype", "first-k"]) == [("prototype", "first-k")]
        assert default_contrasts(["prototype-human", "first-k-human", "random-slice-human"]) == [
            ("prototype-human", "first-k-human"), ("random-slice-human", "first-k-human")]
    finally:
        unregister("first-k")
        sys.modules.pop("first_k_strategy", None)
    assert out.location.name == "06_mine_iter0_first-k"
    assert mined_names(out) == [f"close{i}" for i in range(5)]  # planted and held frames stay excluded
    assert json.loads((out.location / "result.json").read_text())["strategy"] == "first-k"
    with pytest.raises(ValidationError, match="first-k"):
        config(runs, strategy="first-k")  # gone again with its entry
    assert default_contrasts(["prototype", "random"]) == [("prototype", "random")]


def test_stage_approximate_index_reports_recall(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs, n_far=200)
    out = mine_stage.run(config(runs, exact_max_pool=10, approximate_index="hnsw"), progress=False)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["index_type"] == "hnsw" and 0.8 <= m["recall_at_k"] <= 1.0 and m["n_recall_queries"] == 101
    assert all(n.startswith("close") for n in mined_names(out))
    assert "recall@k" in out.numbers["k-NN index"] and out.numbers["k-NN index"].startswith("hnsw, build ")


def test_stage_falls_back_to_all_worst_slice_frames(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs, failures=False)
    out = mine_stage.run(config(runs), progress=False)
    assert "no failure frames" in out.numbers["prototype from"]
    assert np.load(out.location / "prototype.npy") == pytest.approx(axis(0), abs=1e-6)


def test_stage_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RunLookupError, match="bddengine eval --iter 0"):
        mine_stage.run(config(tmp_path / "none"), progress=False)
    cases = [({"worst": None}, "no worst slice"), ({"empty_mining": True}, "mining_pool.parquet is empty"),
             ({"emb_rows": 10}, "embeddings.npy has shape")]
    for i, (kwargs, message) in enumerate(cases):
        runs = tmp_path / f"runs{i}"
        make_runs(runs, **kwargs)
        with pytest.raises(StageInputError, match=message):
            mine_stage.run(config(runs), progress=False)
        assert not list(runs.glob("*_mine_*"))


def test_cli_maps_strategy_and_reports_errors(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"runs_dir": str(runs), "fiftyone": {"enabled": False}, "mine": {"k": 4}}))
    result = CliRunner().invoke(app, ["mine", "--config", str(path), "--strategy", "random-slice"])
    assert result.exit_code == 0, result.output
    assert "06_mine_iter0_random-slice" in result.output and "mined_frames_grid.png" in result.output
    result = CliRunner().invoke(app, ["mine", "--config", str(path), "--iter", "3"])
    assert result.exit_code == 2 and "bddengine eval --iter 3" in result.output


# ---------------------------------------------------------------- the stage on real run folders


@pytest.fixture(scope="module")
def real_runs(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """collect -> embed -> split -> train (1 epoch, 64 px) -> eval on the tiny world."""
    from bddengine.stages import collect, embed, split, train
    from bddengine.stages import eval as eval_stage

    tmp = tmp_path_factory.mktemp("mine_real")
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw |= {"runs_dir": str(tmp / "runs"), "fiftyone": {"enabled": False}}
    raw["data"]["root"] = str(tiny_world)
    raw["mine"] = {"k": 6, "near_dup_threshold": None}  # random-init embeddings: the check is off
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    for stage in (collect, embed, split):
        stage.run(cfg, progress=False)
    train.run(cfg, iter=0, progress=False)
    eval_stage.run(cfg, iter=0, progress=False)
    return path


@pytest.mark.parametrize("strategy", ["prototype", "random-slice"])
def test_stage_end_to_end_on_real_runs(real_runs: Path, strategy: str) -> None:
    cfg = load_config(real_runs, [f"mine.strategy={strategy}"])
    out = mine_stage.run(cfg, iter=0, progress=False)
    assert out.location.name.endswith(f"_mine_iter0_{strategy}")
    ev = next(cfg.runs_dir.glob("*_eval_iter0"))
    worst = json.loads((ev / "worst_slice.json").read_text())["slice"]["key"]
    doc = json.loads((out.location / "mined.json").read_text())
    split = next(cfg.runs_dir.glob("*_split"))
    mining = pd.read_parquet(split / "mining_pool.parquet")
    held = set().union(*(set(pd.read_parquet(split / f"{p}_pool.parquet")["video"]) for p in ("train", "val", "eval")))
    eligible = mining[~mining["video"].isin(held)]
    in_slice = int((eligible[list(worst)] == pd.Series(worst)).all(axis=1).sum())
    want = min(6, in_slice if strategy == "random-slice" else len(eligible))
    assert doc["worst_slice"] == worst and doc["strategy"] == strategy and len(doc["frames"]) == want
    if want == 0:  # the tiny world may hold no mining frame of the worst slice: said, not hidden
        assert "NONE of k=6" in out.numbers["mined"]
    assert {f["name"] for f in doc["frames"]} <= set(mining["name"])
    assert not {f["video"] for f in doc["frames"]} & held
    for f in doc["frames"]:
        assert f["matches_slice"] == all(f[a] == worst[a] for a in worst)
        assert Path(f["path"]).is_file()
    if strategy == "random-slice":
        assert all(f["matches_slice"] for f in doc["frames"])
    res = json.loads((out.location / "result.json").read_text())
    assert res["tag"] == strategy and res["metrics"]["n_mined"] == len(doc["frames"])
    assert (out.location / "mined_frames_grid.png").is_file()


def test_stage_detector_embedding_on_real_runs(real_runs: Path) -> None:
    cfg = load_config(real_runs, ["mine.embedding=detector"])
    out = mine_stage.run(cfg, iter=0, progress=False)
    assert out.location.name.endswith("_mine_iter0_prototype-detector")
    vecs = np.load(out.location / "detector_embeddings.npy")
    names = json.loads((out.location / "detector_embedding_names.json").read_text())
    assert vecs.shape[0] == len(names) and np.linalg.norm(vecs, axis=1) == pytest.approx(1.0, abs=1e-5)
    det = json.loads((out.location / "result.json").read_text())["detector"]
    assert det["n_computed"] == len(names) and det["layer"] == 9  # YOLOv8's last backbone layer (SPPF)
    # a second detector arm of the same detector reuses the vectors instead of recomputing
    again = mine_stage.run(load_config(real_runs, ["mine.embedding=detector", "mine.strategy=random"]),
                           iter=0, progress=False)
    det2 = json.loads((again.location / "result.json").read_text())["detector"]
    assert det2["n_computed"] == 0 and det2["reused_from"] == out.location.name


def test_mining_precision_leaves_out_frames_whose_attributes_are_unknown() -> None:
    """Images without a label file are neither hits nor misses; their count is reported beside."""
    undefined = {"weather": "undefined", "timeofday": "undefined", "scene": "undefined"}
    frames = pd.DataFrame([
        {"name": "a", **WORST, "has_gt": True, "attributes_known": True},
        {"name": "b", **OTHER, "has_gt": True, "attributes_known": True},
        {"name": "u1", **undefined, "has_gt": False, "attributes_known": False},
        {"name": "u2", **undefined, "has_gt": False, "attributes_known": False},
    ])
    block = precision_block(frames, WORST, {"a": {"car"}}, ["car"])
    assert (block["n_frames"], block["n_attributes_known"], block["n_attributes_unknown"]) == (4, 2, 2)
    assert block["slice_match"] == 0.5 and block["weather"] == 0.5  # not 1 of 4
    assert block["n_with_gt"] == 2 and block["has_failed_class"] == 0.5
    only_unknown = precision_block(frames.iloc[2:], WORST, {}, ["car"])
    assert only_unknown["slice_match"] is None and only_unknown["n_attributes_unknown"] == 2
    # a known `undefined` slice (drop_undefined: false) never matches an unknown frame
    assert slice_mask(frames, undefined).tolist() == [False, False, False, False]


def test_mine_summary_gives_the_unknown_count_beside_the_precision() -> None:
    from bddengine.stages.mine import _unknown_note

    mined = {"n_attributes_known": 70, "n_attributes_unknown": 30}
    pool = {"n_attributes_known": 450, "n_attributes_unknown": 150}
    assert _unknown_note(mined, pool) == ("; over the frames with known attributes: 70 mined (30 unknown), "
                                          "450 in the pool (150 unknown)")
    assert _unknown_note({"n_attributes_unknown": 0}, {"n_attributes_unknown": 0}) == ""


def test_pool_similarity_streams_a_large_pool_in_chunks_with_the_same_answer(monkeypatch) -> None:
    from bddengine.mining import core

    rng = np.random.default_rng(5)
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    ref = core.l2_normalize(rng.normal(size=(4, 16)).astype(np.float32))
    rows = rng.permutation(50)[:37]
    whole = core.pool_nearest_similarity(emb, rows, ref)
    reads: list[int] = []

    class Watched(np.ndarray):
        def __getitem__(self, key):
            reads.append(len(np.atleast_1d(key)) if isinstance(key, np.ndarray) else -1)
            return np.asarray(self)[key]

    monkeypatch.setattr(core, "STREAM_ROWS", 10)
    chunked = core.pool_nearest_similarity(emb.view(Watched), rows, ref)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    np.testing.assert_allclose(whole, core.nearest_similarity(core.l2_normalize(emb[rows]), ref), atol=0)
    assert reads == [10, 10, 10, 7]  # never more than a chunk of the pool at once
