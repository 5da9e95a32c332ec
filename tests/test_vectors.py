"""Vector indexes: exact top-k, where filters against the mine stage's old masks, recall, append, the registry."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from bddengine.mining.core import REASON_NEAR_DUP, exclusion_filters, exclusion_metadata, l2_normalize
from bddengine.stages import mine as mine_stage
from bddengine.vectors import EXACT, INDEXES, NotAbove, NotIn, index_spec, is_exact, unregister
from bddengine.vectors.exact import BLAS_MIN_QUERIES, ExactIndex, brute_force_knn, recall_at_k
from bddengine.vectors.faiss_ann import HNSW, IVF
from test_mine import config, make_runs, mined_names

SRC = Path(__file__).resolve().parents[1] / "src" / "bddengine"


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return l2_normalize(rng.normal(size=(n, d)))


def test_exact_index_returns_the_exact_top_k_on_every_route() -> None:
    rng = np.random.default_rng(0)
    pool = unit_rows(rng, 1500, 24)
    index = ExactIndex.build(pool)
    for n_queries in (1, 3, BLAS_MIN_QUERIES + 5):  # NumPy, FAISS scan, FAISS BLAS blocks
        queries = unit_rows(rng, n_queries, 24)
        sims = queries @ pool.T
        top = np.sort(sims, axis=1)[:, ::-1][:, :21]
        assert (np.diff(top, axis=1) < -1e-6).all()  # no ties near the cut: one right answer
        hits = index.search(queries, 20)
        np.testing.assert_array_equal(hits.ids, np.argsort(-sims, axis=1)[:, :20])
        np.testing.assert_allclose(hits.scores, top[:, :20], atol=1e-5)
    assert index.search(queries, 5000).ids.shape == (len(queries), 1500)  # k capped at the rows
    assert index.check_recall(queries, 10, n_sample=50, seed=0).recall is None  # exact: nothing to check
    with pytest.raises(ValueError, match="width"):
        index.search(np.ones((1, 7), np.float32), 3)


def old_exclusion_masks(mining: pd.DataFrame, held: dict[str, set[str]], eval_similarity: np.ndarray,
                        threshold: float) -> dict[str, np.ndarray]:
    """The mine stage's masks before the filters (bddengine 0.x `mining.core.exclusion_masks`), verbatim."""
    videos = mining["video"].astype(str).to_numpy()
    masks = {f"video in {pool} pool": np.isin(videos, list(v)) for pool, v in held.items()}
    masks[REASON_NEAR_DUP] = np.asarray(eval_similarity) > threshold
    return masks


def small_pool(seed: int = 3):
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng, 300, 16)
    eval_vectors = np.concatenate([vectors[:12] + 0.01 * unit_rows(rng, 12, 16), unit_rows(rng, 20, 16)])
    mining = pd.DataFrame({"video": [f"v{i % 60}" for i in range(300)]})
    held = {"train": {"v1", "v2", "v3"}, "val": {"v4"}, "eval": {"v5", "v59", "nowhere"}}
    eval_sim = ExactIndex.build(l2_normalize(eval_vectors)).search(vectors, 1).scores[:, 0]
    return vectors, mining, held, eval_sim


def test_where_filters_exclude_what_the_old_masks_excluded() -> None:
    vectors, mining, held, eval_sim = small_pool()
    filters = exclusion_filters(held, 0.95)
    meta = exclusion_metadata(mining, eval_sim)
    old = old_exclusion_masks(mining, held, eval_sim, 0.95)
    assert old[REASON_NEAR_DUP].sum() >= 10 and old["video in train pool"].sum() == 15  # both reasons bite
    assert {r: (~f.keeps(meta)).tolist() for r, f in filters.items()} == {r: m.tolist() for r, m in old.items()}
    eligible = ~np.logical_or.reduce(list(old.values()))
    rows = np.flatnonzero(eligible)
    prototype = l2_normalize(vectors[:12].mean(axis=0, keepdims=True))
    # the old stage: search the eligible rows only, then map back
    old_scores, old_ids = brute_force_knn(vectors[rows], prototype, 25)
    hits = ExactIndex.build(vectors, meta).search(prototype, 25, where=list(filters.values()))
    np.testing.assert_array_equal(hits.ids, rows[old_ids])
    np.testing.assert_array_equal(hits.scores, old_scores)  # the same rows, the same product: bit for bit
    for factory in (HNSW, IVF):  # approximate indexes filter inside FAISS: never an excluded row
        approx = factory.build(vectors, meta, seed=1).search(prototype, 25, where=list(filters.values()))
        assert eligible[approx.ids[approx.ids >= 0]].all()
        assert recall_at_k(approx.ids, rows[old_ids]) >= 0.9
    assert NotIn("video", {"a'b"}).sql() == "video NOT IN ('a''b')" and NotAbove("s", 0.5).sql() == "NOT (s > 0.5)"
    with pytest.raises(ValueError, match="metadata"):
        ExactIndex.build(vectors).search(prototype, 3, where=[NotIn("video", {"v1"})])


def test_recall_check_scores_an_approximate_index_against_exact_search() -> None:
    rng = np.random.default_rng(4)
    pool = unit_rows(rng, 4000, 32)
    queries = unit_rows(rng, 2, 32)
    good = HNSW.build(pool, seed=0).check_recall(queries, 10, n_sample=30, seed=0)
    assert good.n_queries == 32 and 0.9 <= good.recall <= 1.0
    crippled = IVF.build(pool, seed=0)
    crippled.index.nprobe = 1  # one of ~100 lists: most true neighbours are never looked at
    bad = crippled.check_recall(queries, 10, n_sample=30, seed=0)
    assert bad.n_queries == 32 and bad.recall < 0.6
    assert recall_at_k(np.array([[1, 2, 3, -1]]), np.array([[1, 2, 5, 6]])) == 0.5


def test_append_adds_rows_after_the_existing_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pool = unit_rows(rng, 400, 16)
    meta = pd.DataFrame({"video": [f"v{i % 7}" for i in range(400)]})
    queries = unit_rows(rng, 3, 16)
    where = [NotIn("video", {"v0", "v3"})]
    whole = ExactIndex.build(pool, meta).search(queries, 15, where=where)
    grown = ExactIndex.build(pool[:250], meta.iloc[:250])
    grown.append(pool[250:], meta.iloc[250:])
    assert len(grown) == 400
    np.testing.assert_array_equal(grown.search(queries, 15, where=where).ids, whole.ids)
    for factory in (HNSW, IVF):
        index = factory.build(pool[:300], seed=0)
        index.append(pool[300:])
        assert len(index) == 400 and index.search(pool[[350, 399]], 1).ids[:, 0].tolist() == [350, 399]
    with pytest.raises(ValueError, match="metadata"):
        grown.append(pool[:2])  # an index with metadata takes rows with metadata
    np.save(tmp_path / "embeddings.npy", pool)  # an embed run's folder
    np.testing.assert_array_equal(ExactIndex.open(tmp_path).search(queries, 5).ids,
                                  ExactIndex.build(pool).search(queries, 5).ids)


def test_index_names_are_spelled_once_in_the_registry() -> None:
    assert is_exact(EXACT) and not is_exact("hnsw") and not is_exact("no-such-index") and not is_exact(None)
    assert [n for n in INDEXES if index_spec(n).exact] == [EXACT]
    spelled = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if f'"{EXACT}"' in p.read_text()]
    assert spelled == ["vectors/registry.py"]


BRUTE_MODULE = '''
"""A brute-force index: every row scored with one NumPy product, filters applied to the scores."""

import numpy as np

from bddengine.vectors import Hits, IndexSpec, RecallCheck, keep_mask, register


class BruteIndex:
    def __init__(self, vectors, metadata=None):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.metadata = metadata

    @classmethod
    def build(cls, vectors, metadata=None, *, seed=42):
        return cls(vectors, metadata)

    @classmethod
    def open(cls, location, *, seed=42):
        return cls(np.load(location))

    def __len__(self):
        return len(self.vectors)

    def append(self, vectors, metadata=None):
        self.vectors = np.concatenate([self.vectors, vectors])

    def search(self, queries, k, *, where=()):
        scores = np.atleast_2d(queries) @ self.vectors.T
        scores[:, ~keep_mask(self.metadata, where, len(self))] = -np.inf
        k = min(k, int(np.isfinite(scores[0]).sum()))
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return Hits(np.take_along_axis(scores, ids, axis=1), ids)

    def check_recall(self, queries, k, *, n_sample, seed):
        exact = np.argsort(-(np.atleast_2d(queries) @ self.vectors.T), axis=1, kind="stable")[:, :k]
        found = self.search(queries, k).ids
        return RecallCheck(float(np.mean([len(set(f) & set(e)) / k for f, e in zip(found, exact)])), len(found))


register(IndexSpec("brute", BruteIndex, exact=False, summary="NumPy brute force, sorting every score"))
'''


def test_a_new_index_is_one_module_and_one_registry_entry(tmp_path: Path, monkeypatch) -> None:
    """A module that registers its index: the config accepts the name and mine searches with it, end to end."""
    runs = tmp_path / "runs"
    make_runs(runs, n_far=60)
    with pytest.raises(ValidationError, match="brute"):
        config(runs, approximate_index="brute")  # not registered yet
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "brute_index.py").write_text(BRUTE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    try:
        importlib.import_module("brute_index")  # the module's one register() call is the entry
        out = mine_stage.run(config(runs, approximate_index="brute", exact_max_pool=10), progress=False)
        exact = mine_stage.run(config(runs), force=True, progress=False)
    finally:
        unregister("brute")
        sys.modules.pop("brute_index", None)
    m = json.loads((out.location / "result.json").read_text())["metrics"]
    assert m["index_type"] == "brute" and m["recall_at_k"] == 1.0 and m["n_recall_queries"] == 1
    assert out.numbers["k-NN index"].startswith("brute, build ")
    # the close frames sit at one cosine to the prototype (ties up to rounding): which five is the index's call
    assert len(mined_names(out)) == 5 and all(n.startswith("close") for n in mined_names(out))
    assert all(n.startswith("close") for n in mined_names(exact))
    assert json.loads((exact.location / "result.json").read_text())["metrics"]["index_type"] == EXACT
    with pytest.raises(ValidationError, match="brute"):
        config(runs, approximate_index="brute")  # gone again with its entry
