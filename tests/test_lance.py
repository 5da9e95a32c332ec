"""The LanceDB mining index: exact top-k on a small pool and through a trained index, the exclusions as one
row set filtered on the index's candidates, pinned versions, the recall floor, appends that are one write and
encode only new frames, check's row for a bad URI, and no credentials written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lancedb")

from bddengine import preflight  # noqa: E402
from bddengine.config import load_config  # noqa: E402
from bddengine.stages import collect, embed  # noqa: E402
from bddengine.stages import mine as mine_stage  # noqa: E402
from bddengine.vectors.lance import LanceIndex, LanceSettings, commit_frames  # noqa: E402
from conftest import TINY_CLIP, write_config  # noqa: E402
from test_mine import config, make_runs, mined_names  # noqa: E402

SECRET = "wJalrXUtnFEMI-not-a-real-key-0123456789"


def lance_embed(runs: Path, uri: Path, *, extra: int = 0, tag: str = "02_embed", **settings) -> dict:
    """Write the hand-made runs' frames (plus ``extra`` filler frames outside every pool) into a table."""
    embed_dir, split = runs / "02_embed", runs / "03_split"
    vectors = np.load(embed_dir / "embeddings.npy")
    pools = pd.concat([pd.read_parquet(split / f"{p}_pool.parquet") for p in ("train", "val", "eval", "mining")])
    meta = pools.sort_values("embedding_row")[["name", "video"]].reset_index(drop=True)
    if extra:
        rng = np.random.default_rng(1)
        more = rng.normal(size=(extra, vectors.shape[1])).astype(np.float32)
        vectors = np.concatenate([vectors, more / np.linalg.norm(more, axis=1, keepdims=True)])
        meta = pd.concat([meta, pd.DataFrame({"name": [f"fill{i}" for i in range(extra)], "video": "fill"})],
                         ignore_index=True)
    rec = commit_frames(LanceSettings(uri=str(uri), **settings), meta, vectors, trained_rows=None, tag=tag)
    result = json.loads((embed_dir / "result.json").read_text())
    (embed_dir / "result.json").write_text(json.dumps(result | {"lance": rec}))
    return rec


def lance_config(runs: Path, **mine):
    return config(runs, approximate_index="lancedb", **mine)


def test_lancedb_mining_equals_exact_top_k_and_filters(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    exact = mine_stage.run(config(runs, k=100), progress=False)
    rec = lance_embed(runs, tmp_path / "lance", extra=20)  # filler frames: in the table, in no pool
    out = mine_stage.run(lance_config(runs, k=100), progress=False)
    got, want = mined_names(out), mined_names(exact)
    assert set(got) == set(want) and len(got) == 35  # every eligible frame, nothing the exact path excludes
    assert not {"planted_video", "planted_dup", "train_video"} & set(got) and not any(n.startswith("fill") for n in got)
    sims = [f["similarity"] for f in json.loads((out.location / "mined.json").read_text())["frames"]]
    ref = [f["similarity"] for f in json.loads((exact.location / "mined.json").read_text())["frames"]]
    np.testing.assert_allclose(sims, ref, atol=1e-5)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["index_type"] == "lancedb" and m["excluded"] == json.loads(
        (exact.location / "result.json").read_text())["metrics"]["excluded"]
    assert m["lance"]["version"] == rec["version"] and m["lance"]["rows"] == 63 and not m["lance"]["fallback_to_exact"]
    top5 = mine_stage.run(lance_config(runs, k=5), progress=False)  # the close frames tie: compare cosines
    sims5 = [f["similarity"] for f in json.loads((top5.location / "mined.json").read_text())["frames"]]
    np.testing.assert_allclose(sims5, ref[:5], atol=1e-5)
    assert all(n.startswith("close") for n in mined_names(top5))


def test_mine_through_a_trained_index_returns_the_exact_top_k_of_the_eligible_frames(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    exact = mine_stage.run(config(runs, k=5), progress=False)
    rec = lance_embed(runs, tmp_path / "lance", extra=600, index_min_rows=300, partition_rows=100)
    assert rec["index"] == "trained"  # 643 rows, 6 partitions: the search goes through IVF_PQ
    out = mine_stage.run(lance_config(runs, k=5), progress=False)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["lance"]["indexed"] and m["recall_at_k"] == 1.0 and not m["lance"]["fallback_to_exact"]
    assert all(n.startswith("close") for n in mined_names(out))  # 35 of 643 rows eligible: none of the rest
    sims = [f["similarity"] for f in json.loads((out.location / "mined.json").read_text())["frames"]]
    ref = [f["similarity"] for f in json.loads((exact.location / "mined.json").read_text())["frames"]]
    np.testing.assert_allclose(sims, ref, atol=1e-5)


def test_a_committed_run_reads_its_version_after_an_append(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    first = lance_embed(runs, tmp_path / "lance")
    before = mine_stage.run(lance_config(runs), progress=False)
    embed_result = json.loads((runs / "02_embed" / "result.json").read_text())
    index = LanceIndex.create_or_open(LanceSettings(uri=str(tmp_path / "lance")))
    rng = np.random.default_rng(3)
    more = rng.normal(size=(30, 8)).astype(np.float32)
    index.append(more / np.linalg.norm(more, axis=1, keepdims=True),
                 pd.DataFrame({"name": [f"new{i}" for i in range(30)], "video": "c0"}))
    assert len(index) == 38 + 5 + 30 and index.version > first["version"]
    again = mine_stage.run(lance_config(runs), force=True, progress=False)
    m = json.loads((again.location / "result.json").read_text())["metrics"]["lance"]
    assert (m["version"], m["rows"]) == (first["version"], 43)
    assert set(mined_names(again)) == set(mined_names(before))
    assert json.loads((runs / "02_embed" / "result.json").read_text()) == embed_result


def test_recall_below_the_floor_takes_the_exact_answer(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    lance_embed(runs, tmp_path / "lance")
    exact = mined_names(mine_stage.run(config(runs), progress=False))
    real = LanceIndex.search

    def poor(self, queries, k, *, where=()):  # an index that misses the best row
        hits = real(self, queries, k + 1, where=where)
        return type(hits)(hits.scores[:, 1:], hits.ids[:, 1:])

    monkeypatch.setattr(LanceIndex, "search", poor)
    monkeypatch.setattr(LanceIndex, "has_index", lambda self: True)
    out = mine_stage.run(lance_config(runs, recall_floor=0.95), progress=False)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["recall_at_k"] == pytest.approx(0.8) and m["lance"]["fallback_to_exact"]
    assert "recall_floor" in out.numbers["WARNING"]
    sims = [f["similarity"] for f in json.loads((out.location / "mined.json").read_text())["frames"]]
    assert len(sims) == len(exact) == 5 and all(s == pytest.approx(0.780869, abs=1e-5) for s in sims)  # exact top


def test_embed_appends_only_new_frames_and_encodes_only_them(tiny_clip_arch: str, tiny_world: Path,
                                                             tmp_path: Path, monkeypatch) -> None:
    world = Path(shutil.copytree(tiny_world, tmp_path / "world"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    encoded: list[int] = []
    real = embed.encode_frames

    def counting(model, spec, frames, *args, **kwargs):
        encoded.append(len(frames.names))
        return real(model, spec, frames, *args, **kwargs)

    monkeypatch.setattr(embed, "encode_frames", counting)

    def cfg(unlabeled: int):
        path = write_config(tmp_path / f"c{unlabeled}.yaml", world, tmp_path / "runs",
                            collect={"unlabeled_target": unlabeled},
                            embed={"clip_arch": TINY_CLIP, "pretrained": None, "batch_size": 16, "workers": 0},
                            mine={"approximate_index": "lancedb"})
        return load_config(path)

    small = cfg(10)
    collect.run(small, progress=False)
    first = embed.run(small, progress=False)
    rec1 = json.loads((first.location / "result.json").read_text())["lance"]
    assert encoded == [rec1["rows"]] and rec1["rows_added"] == rec1["rows"] and rec1["index"] == "none"
    big = cfg(20)
    collect.run(big, progress=False)
    second = embed.run(big, progress=False)
    rec2 = json.loads((second.location / "result.json").read_text())["lance"]
    n_new = rec2["rows"] - rec1["rows"]
    assert n_new > 0 and rec2["rows_added"] == n_new and encoded[1:] == [n_new]  # old frames never re-encoded
    assert rec2["version"] > rec1["version"]
    old = LanceIndex.at_version(LanceSettings(uri=rec1["uri"]), rec1["version"])
    assert len(old) == rec1["rows"]  # the first run's version reads as it did
    for path in (tmp_path / "runs").rglob("*"):  # the credential never reaches a run folder
        if path.is_file() and path.suffix in (".json", ".yaml", ".log", ".txt"):
            assert SECRET not in path.read_text(errors="ignore"), path


def test_uri_with_credentials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="environment"):
        config(tmp_path, approximate_index="lancedb", lance={"uri": f"s3://AKIA:{SECRET}@bucket/x"})


def test_check_reports_a_lance_uri_that_cannot_be_opened_in_seconds(tmp_path: Path) -> None:
    import time

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = config(tmp_path / "runs", approximate_index="lancedb", lance={"uri": str(blocker)})
    t0 = time.perf_counter()
    rows = preflight.lance_needs(bad)
    assert time.perf_counter() - t0 < 10 and len(rows) == 1 and not rows[0].found
    assert "writable folder" in rows[0].detail
    s3 = preflight.lance_needs(config(tmp_path / "runs", approximate_index="lancedb",
                                      lance={"uri": "s3://bddengine-no-such-bucket/x"}), timeout_s=3)
    assert len(s3) == 1 and not s3[0].found and time.perf_counter() - t0 < 20
    assert list(tmp_path.iterdir()) == [blocker]  # check writes nothing
    assert preflight.lance_needs(config(tmp_path / "runs")) == []  # the default index needs no table


def test_a_large_table_estimates_recall_on_a_row_sample(tmp_path: Path) -> None:
    from bddengine.vectors.base import Hits

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    settings = LanceSettings(uri=str(tmp_path / "l"), recall_sample_rows=10)  # 40 rows -> 1 in 4
    index = LanceIndex.create(settings, x, pd.DataFrame({"video": ["v"] * 40}))
    true = index.exact_search(x[:1], 10)
    assert index.recall_sample().every == 4 and (index.recall_sample().keeps(pd.DataFrame({"row": [0, 3, 4]}))
                                                 == [True, False, True]).all()

    def without(rank: int) -> Hits:  # the true top-10 lacking one row: the 11th takes its place
        more = index.exact_search(x[:1], 11)
        keep = [i for i in range(11) if i != rank]
        return Hits(more.scores[:, keep], more.ids[:, keep])

    assert index.recall_of(true, x[:1], 10).recall == 1.0
    sampled = [r for r in range(10) if true.ids[0, r] % 4 == 0]
    unseen = [r for r in range(10) if true.ids[0, r] % 4 != 0]
    assert sampled and unseen  # the data puts true neighbours on both sides of the sample
    est = index.recall_of(without(sampled[0]), x[:1], 10)
    assert (est.every, est.exact, est.recall) == (4, None, pytest.approx(1 - 4 * 1 / 10))  # one miss stands for 4
    assert index.recall_of(without(unseen[0]), x[:1], 10).recall == 1.0  # a miss outside the sample is unseen
    whole = LanceIndex(index.table, settings.__class__(uri=settings.uri))  # default: every row scanned
    full = whole.recall_of(without(unseen[0]), x[:1], 10)
    assert (full.every, full.recall) == (1, pytest.approx(0.9)) and full.exact is not None


def test_mine_records_a_sampled_recall_and_falls_back_to_the_whole_table(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    make_runs(runs)
    lance_embed(runs, tmp_path / "lance")  # 43 rows
    real_search, real_exact, real_scan = LanceIndex.search, LanceIndex.exact_search, LanceIndex._scan_top_k
    scans: list[list[str]] = []

    def poor(self, queries, k, *, where=()):  # an index that misses all ten tied "close" frames
        hits = real_search(self, queries, k + 10, where=where)
        return type(hits)(hits.scores[:, 10:], hits.ids[:, 10:])

    def exact_scan(self, queries, k, *, where=()):
        scans.append([f.sql() for f in where])
        return real_exact(self, queries, k, where=where)

    def sample_scan(self, queries, k, where):
        scans.append([f.sql() for f in where])
        return real_scan(self, queries, k, where)

    monkeypatch.setattr(LanceIndex, "search", poor)
    monkeypatch.setattr(LanceIndex, "exact_search", exact_scan)
    monkeypatch.setattr(LanceIndex, "_scan_top_k", sample_scan)
    monkeypatch.setattr(LanceIndex, "has_index", lambda self: True)
    lance = {"recall_sample_rows": 22}  # 43 rows -> rows whose number is a multiple of ceil(43 / 22) = 2
    out = mine_stage.run(lance_config(runs, recall_floor=0.95, lance=lance), progress=False)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["lance"]["recall_sample_every"] == 2 and m["recall_at_k"] < 0.95 and m["lance"]["fallback_to_exact"]
    assert "row % 2 = 0" in scans[0] and not any("%" in s for s in scans[1])  # the sample, then the whole table
    assert "1-in-2 row sample" in out.numbers["k-NN index"]
    sims = [f["similarity"] for f in json.loads((out.location / "mined.json").read_text())["frames"]]
    assert len(sims) == 5 and all(s == pytest.approx(0.780869, abs=1e-5) for s in sims)  # the whole table's top


def test_an_indexed_search_filters_its_candidates_and_prefilters_only_a_narrow_filter(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    from bddengine.vectors import KeepRows, NotIn
    from bddengine.vectors.exact import recall_at_k
    from bddengine.vectors.lance import ROW

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(30, 32)).astype(np.float32)
    x = centres[rng.integers(0, 30, 3000)] + 0.3 * rng.normal(size=(3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    videos = np.array([f"v{i // 10:03d}" for i in range(3000)])
    settings = LanceSettings(uri=str(tmp_path / "l"), index_min_rows=1000, partition_rows=500, nprobes=6,
                             refine_factor=40)
    index = LanceIndex.create(settings, x, pd.DataFrame({"video": videos}))
    assert index.refresh_index(None).action == "trained" and index.has_index()
    prefiltered: list[str] = []
    real_ann = LanceIndex._ann

    def ann(self, vec, limit, columns=(), where=None):
        if where:
            prefiltered.append(where)
        return real_ann(self, vec, limit, columns, where)

    monkeypatch.setattr(LanceIndex, "_ann", ann)
    held = NotIn("video", {f"v{v:03d}" for v in range(0, 300, 10)})  # 10% of rows
    wide = KeepRows(ROW, rng.random(3000) < 0.7)
    narrow = KeepRows(ROW, np.isin(np.arange(3000), rng.choice(3000, 25, replace=False)))  # 25 rows
    q = x[:8] + 0.05 * rng.normal(size=(8, 32)).astype(np.float32)
    for where, k in (([held], 20), ([wide], 20), ([held, wide], 20), ([narrow], 20), ([narrow], 40)):
        got, want = index.search(q, k, where=where), index.exact_search(q, k, where=where)
        kept = keep_mask_of(where, videos)
        assert got.ids.shape == want.ids.shape == (8, min(k, int(kept.sum())))
        assert kept[got.ids].all() and kept[want.ids].all()
        assert recall_at_k(got.ids, want.ids) >= 0.95
        np.testing.assert_allclose(got.scores, np.take_along_axis(q @ x.T, got.ids, 1), atol=1e-4)
        assert bool(prefiltered) == (where == [narrow])  # only the 25-row filter is left to LanceDB
        prefiltered.clear()


def keep_mask_of(where, videos: np.ndarray) -> np.ndarray:
    from bddengine.vectors import keep_mask

    return keep_mask(pd.DataFrame({"row": np.arange(len(videos)), "video": videos}), where, len(videos))


def test_a_row_set_filter_keeps_its_rows_and_writes_the_shorter_sql_list() -> None:
    from bddengine.vectors import KeepRows, NotIn

    f = KeepRows("row", np.array([True, False, True, True]))
    assert f.keeps(pd.DataFrame({"row": [0, 1, 3, 4, -1]})).tolist() == [True, False, True, False, False]
    assert f.share == 0.75 and f.sql() == "row >= 0 AND row < 4 AND row NOT IN (1)"
    assert KeepRows("row", np.array([False, True, False])).sql() == "row IN (1)"
    assert KeepRows("row", np.ones(3, bool)).sql() == "row >= 0 AND row < 3"
    assert KeepRows("row", np.zeros(3, bool)).sql() == "FALSE"
    held = NotIn("video", [f"v{i}" for i in range(50)] + [7])  # values compared as text, either way
    few, many = pd.DataFrame({"video": ["v1", "x", "7"]}), pd.DataFrame({"video": ["v1", "x", "7"] * 40})
    assert held.keeps(few).tolist() == [False, True, False] and held.keeps(many).tolist() == [False, True, False] * 40


def test_an_append_is_one_version_and_folding_it_in_rewrites_no_old_data(tmp_path: Path, monkeypatch) -> None:
    from bddengine.vectors import lance as lance_mod

    monkeypatch.setattr(lance_mod, "ADD_BATCH", 150)  # an append of 400 rows streams three batches
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    settings = LanceSettings(uri=str(tmp_path / "l"), index_min_rows=1000, partition_rows=500)
    index = LanceIndex.create(settings, x[:2000], pd.DataFrame({"video": ["a"] * 2000}))
    assert index.version == 1 and index.refresh_index(None).action == "trained"
    data = tmp_path / "l" / "frames.lance" / "data"
    before, version = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}, index.version
    index.append(x[2000:], pd.DataFrame({"video": ["b"] * 400}))
    assert index.version == version + 1 and len(index) == 2400
    assert index.refresh_index(2000).action == "optimized"
    assert index.table.index_stats("vector_idx").num_unindexed_rows == 0
    after = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    assert before.items() <= after.items() and len(after) == len(before) + 1  # old files kept as they were
    assert [f.count_rows() for f in index.table.to_lance().get_fragments()] == [2000, 400]
    hit = index.search(x[2300:2301], 1)
    assert hit.ids[0, 0] == 2300  # a new row, found through the index
