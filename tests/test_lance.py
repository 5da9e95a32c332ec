"""The LanceDB mining index: exact top-k on a small pool, the exclusions as prefilters, pinned versions,
the recall floor, appends that encode only new frames, check's row for a bad URI, and no credentials written."""

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


def lance_embed(runs: Path, uri: Path, *, extra: int = 0, tag: str = "02_embed") -> dict:
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
    rec = commit_frames(LanceSettings(uri=str(uri)), meta, vectors, trained_rows=None, tag=tag)
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
