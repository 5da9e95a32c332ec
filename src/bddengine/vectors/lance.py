"""A LanceDB table as the mining index: on disk or object storage, appended to, read at a pinned version.

Embedded (no server): `lancedb.connect(uri)` on a local path or an ``s3://``-style URI,
whose credentials the object store reads from the environment (``AWS_*`` and the
like); the engine never takes them as settings, so they never reach a config copy,
a result.json or a log.

One row per frame: ``row`` (its position in insertion order: the id searches return),
the frame's metadata columns, and ``vector`` (L2-normalised float32; metric ``dot``,
whose distance LanceDB reports as ``1 - cosine``).

The index, by rows in the table (`refresh_index`):

- below ``index_min_rows``: none; every search scans the rows (exact);
- the first time the table reaches it: IVF_PQ is trained (``trained``);
- after an append: the new rows are folded into the existing partitions
  (``optimized``: the index step of ``optimize()``, Lance's ``optimize_indices``)
  unless the table grew by more than ``retrain_growth`` (a share) since the index was
  trained, when it is retrained with ``replace=True`` (``retrained``): centroids and
  codebooks trained on far fewer rows than the table holds lose recall.

The fold leaves out ``optimize()``'s other two steps. Its compaction rewrites every
fragment under Lance's 1M-row target into larger ones: an append of 10% would rewrite
the whole table (20 GB at 10M rows, and as much again on disk until old versions go).
Its version cleanup would remove versions committed runs read. An append is one write
(`_batches`), so the table gains one version and data files of up to 1M rows per
append, and needs no compaction to stay in few fragments. `cleanup_versions` removes
only the versions no tag holds, and every embed run tags the version it committed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bddengine.vectors.base import Hits, RecallCheck
from bddengine.vectors.exact import as_queries, empty_top_k, merge_top_k, recall_at_k
from bddengine.vectors.where import EveryNth, Filter, KeepRows, keep_mask

ROW = "row"
VECTOR = "vector"
ADD_BATCH = 100_000
"""Rows per record batch of a write (`_batches`): a write holds one batch's arrow copy at a time."""
POSTFILTER_MARGIN = 1.25
"""A filtered search asks the index for this many times ``k / share`` rows (`LanceIndex._ann_filtered`)."""
POSTFILTER_MAX = 64
"""... and prefilters in LanceDB instead when it would need more than this many times ``k`` rows."""


@dataclass(frozen=True)
class LanceSettings:
    """Where the table lives and how it is indexed and searched (``mine.lance``).

    Attributes:
        uri: a local folder or an object-store URI (``s3://bucket/prefix``); None:
            a temporary folder (an index built for one search).
        table: the table's name in that database.
        index_min_rows: rows from which an IVF_PQ index is trained (below: exact scans).
        nprobes: IVF partitions searched per query.
        refine_factor: candidates re-ranked with full vectors, as a multiple of k.
        retrain_growth: retrain the index when the table has grown by more than this
            share since it was trained (else ``optimize()`` folds new rows in).
        partition_rows: rows per IVF partition when the index is trained
            (``num_partitions = rows / partition_rows``): larger trains faster and scans
            more rows per probe.
        recall_sample_rows: most rows the recall check scans exactly; a larger table is
            checked on a 1-in-m sample of its rows (`LanceIndex.recall_of`).
    """

    uri: str | None = None
    table: str = "frames"
    index_min_rows: int = 100_000
    nprobes: int = 32
    refine_factor: int = 30
    retrain_growth: float = 0.5
    partition_rows: int = 4096
    recall_sample_rows: int = 1_000_000


@dataclass(frozen=True)
class RecallEstimate:
    """`LanceIndex.recall_of`'s answer.

    Attributes:
        recall: recall@k, mean over the queries.
        every: 1 when measured against the whole filtered table, else the m of the 1-in-m row sample.
        exact: the whole table's exact answer (``every == 1`` only).
    """

    recall: float
    every: int
    exact: Hits | None


@dataclass(frozen=True)
class IndexUpdate:
    """What `refresh_index` did: ``none`` | ``trained`` | ``retrained`` | ``optimized``, and the rows trained on."""

    action: str
    trained_rows: int | None
    seconds: float = 0.0


def connect(uri: str):
    """The LanceDB database at ``uri`` (lancedb imported here: only a config that names it pays for it)."""
    import lancedb

    return lancedb.connect(uri)


def table_version_exists(uri: str, table: str, version: int) -> bool:
    """Whether ``table`` at ``uri`` still has ``version`` (False when the table or the version is gone)."""
    try:
        connect(uri).open_table(table, version=version)
    except Exception:  # noqa: BLE001 -- lancedb raises ValueError, RuntimeError or OSError by backend
        return False
    return True


def to_arrow(vectors: np.ndarray, metadata: pd.DataFrame | None, start: int):
    """Rows ``start..`` as a pyarrow table: ``row``, the metadata columns, then ``vector``."""
    import pyarrow as pa

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    cols: dict[str, Any] = {ROW: pa.array(np.arange(start, start + len(x), dtype=np.int64))}
    if metadata is not None:
        if len(metadata) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(metadata)} rows of metadata")
        for name in metadata.columns:
            cols[name] = pa.array(metadata[name].to_numpy())
    cols[VECTOR] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    return pa.table(cols)


class LanceIndex:
    """A LanceDB table of vectors and metadata, searched through its IVF_PQ index with metadata filters.

    A handle opened at a version is read-only and sees that version forever;
    `append` needs one opened at the latest version.
    """

    def __init__(self, table: Any, settings: LanceSettings, owned_dir: str | None = None) -> None:
        self.table, self.settings, self._owned_dir = table, settings, owned_dir

    # --- life -----------------------------------------------------------------------------------

    @classmethod
    def create_or_open(cls, settings: LanceSettings) -> LanceIndex | None:
        """The table at ``settings.uri`` at its latest version; None when it does not exist yet."""
        db = connect(str(settings.uri))
        if settings.table not in db.table_names():
            return None
        return cls(db.open_table(settings.table), settings)

    @classmethod
    def create(cls, settings: LanceSettings, vectors: np.ndarray, metadata: pd.DataFrame | None) -> LanceIndex:
        """A new table holding ``vectors`` (an existing one of that name is refused)."""
        owned = None
        if settings.uri is None:
            owned = tempfile.mkdtemp(prefix="bddengine-lance-")
            settings = replace(settings, uri=owned)
        table = connect(str(settings.uri)).create_table(settings.table, _batches(vectors, metadata, 0))
        return cls(table, settings, owned)

    @classmethod
    def at_version(cls, settings: LanceSettings, version: int) -> LanceIndex:
        """The table as it was at ``version`` (read-only).

        Raises:
            ValueError: the table or that version does not exist (any backend error is
                turned into this one, with the URI, table and version).
        """
        try:
            table = connect(str(settings.uri)).open_table(settings.table, version=version)
        except Exception as exc:  # noqa: BLE001 -- the backend's error type varies by store
            raise ValueError(f"LanceDB table {settings.table!r} at {settings.uri} has no version {version}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        return cls(table, settings)

    def __del__(self) -> None:
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    @property
    def version(self) -> int:
        return int(self.table.version)

    def __len__(self) -> int:
        return int(self.table.count_rows())

    def append(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None) -> None:
        """Add rows after the existing ones (``row`` continues the numbering) in one commit; the index is not
        touched. An interrupted append commits nothing: the table stays at its previous version."""
        if len(vectors):
            self.table.add(_batches(vectors, metadata, len(self)))

    def has_index(self) -> bool:
        return any(VECTOR in i.columns for i in self.table.list_indices())

    def refresh_index(self, trained_rows: int | None) -> IndexUpdate:
        """Train, retrain or fold new rows into the IVF_PQ index by the module's rule.

        Args:
            trained_rows: rows the current index was trained on (None: no index yet).
        """
        import time

        n, s = len(self), self.settings
        t0 = time.perf_counter()
        if n < s.index_min_rows:
            return IndexUpdate("none", None)
        if not self.has_index() or trained_rows is None:
            self._train(n)
            return IndexUpdate("trained", n, time.perf_counter() - t0)
        if n > trained_rows * (1 + s.retrain_growth):
            self._train(n)
            return IndexUpdate("retrained", n, time.perf_counter() - t0)
        self.table.to_lance().optimize.optimize_indices()  # optimize()'s index step alone: see the module's doc
        self.table.checkout_latest()
        return IndexUpdate("optimized", trained_rows, time.perf_counter() - t0)

    def _train(self, n: int) -> None:
        from lancedb.index import IvfPq

        dim = self.table.schema.field(VECTOR).type.list_size
        self.table.create_index(VECTOR, replace=True, config=IvfPq(
            distance_type="dot", num_partitions=max(1, n // self.settings.partition_rows),
            num_sub_vectors=_sub_vectors(dim)))

    def tag(self, name: str) -> None:
        """Hold the current version under ``name`` (moved if the tag exists): cleanup never removes it."""
        tags = self.table.tags
        if name in tags.list():
            tags.update(name, self.version)
        else:
            tags.create(name, self.version)

    # --- search ---------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> Hits:
        """Top-``k`` by cosine among the rows ``where`` keeps: through the index (``nprobes``, ``refine_factor``;
        the filters on its candidates, `_ann_filtered`), or an exact scan while the table has no index."""
        return self._search(queries, k, where, exact=False)

    def exact_search(self, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> Hits:
        """The same rows scanned without the index, streamed (`_scan_top_k`): the truth recall is measured on."""
        return self._search(queries, k, where, exact=True)

    def _search(self, queries: np.ndarray, k: int, where: Sequence[Filter], *, exact: bool) -> Hits:
        dim = self.table.schema.field(VECTOR).type.list_size
        q = as_queries(queries, dim, k)
        if exact or not self.has_index():
            return self._scan_top_k(q, k, where)
        found = [_rows_and_cosines(self._ann(vec, k)) if not where else self._ann_filtered(vec, k, where) for vec in q]
        width = min(len(i) for i, _ in found) if found else 0  # a filter may leave fewer than k rows
        return Hits(np.stack([s[:width] for _, s in found]).astype(np.float32),
                    np.stack([i[:width] for i, _ in found]).astype(np.int64))

    def _ann(self, vec: np.ndarray, limit: int, columns: Sequence[str] = (), where: str | None = None) -> Any:
        """One IVF_PQ search (``nprobes``, ``refine_factor``) for ``limit`` rows, best first, as an arrow table:
        ``row``, ``columns`` and ``_distance`` (metric ``dot``: 1 - cosine)."""
        query = self.table.search(vec, vector_column_name=VECTOR).distance_type("dot").limit(limit)
        if where:
            query = query.where(where, prefilter=True)
        query = query.nprobes(self.settings.nprobes).refine_factor(self.settings.refine_factor)
        return query.select([ROW, *columns, "_distance"]).to_arrow()

    def _ann_filtered(self, vec: np.ndarray, k: int, where: Sequence[Filter]) -> tuple[np.ndarray, np.ndarray]:
        """The top-``k`` rows ``where`` keeps: an unfiltered search over-fetches and its candidates are filtered.

        LanceDB's prefilter evaluates the SQL over every row of the table on every query (at 10M
        rows in ``benchmarks/scale.py``: 1.2 s of a 1.3 s query, and a 2.0 GiB peak against
        0.9 GiB); filtering the candidates costs a lookup per candidate. The search asks for
        ``POSTFILTER_MARGIN x k / share`` rows (``share``: the rows the filters keep, as far as
        known), so that at least ``k x refine_factor`` of the re-ranked candidates pass, as a
        prefiltered search would have had. Short of ``k`` kept rows it asks again for more, by
        the share it saw; when that would exceed ``POSTFILTER_MAX`` x k rows (a narrow filter),
        or the probed partitions hold no more, it prefilters in LanceDB after all.
        """
        columns = sorted({f.column for f in where} - {ROW})
        share = min([f.share for f in where if isinstance(f, KeepRows)], default=1.0)
        limit = int(np.ceil(k * POSTFILTER_MARGIN / max(share, 1 / POSTFILTER_MAX)))
        while limit <= k * POSTFILTER_MAX:
            found = self._ann(vec, limit, columns)
            kept = keep_mask(found.select([ROW, *columns]).to_pandas(), where, found.num_rows)
            if kept.sum() >= k:
                rows, cosines = _rows_and_cosines(found)
                return rows[kept][:k], cosines[kept][:k]
            if found.num_rows < limit:  # the probed partitions hold no more rows
                break
            seen = max(float(kept.mean()), 1 / POSTFILTER_MAX)
            limit = max(2 * limit, int(np.ceil(k * POSTFILTER_MARGIN / seen)))
        return _rows_and_cosines(self._ann(vec, k, where=" AND ".join(f"({f.sql()})" for f in where)))

    def recall_sample(self) -> EveryNth:
        """The rows the recall estimate scans exactly: all of them up to ``recall_sample_rows``, above that the
        rows whose ``row`` is a multiple of ``m = ceil(rows / recall_sample_rows)``."""
        return EveryNth(ROW, max(1, -(-len(self) // max(1, self.settings.recall_sample_rows))))

    def recall_of(self, found: Hits, queries: np.ndarray, k: int, *, where: Sequence[Filter] = ()) -> RecallEstimate:
        """Recall@k of the answer ``found`` (this index's search of ``queries``) against an exact scan.

        Up to ``recall_sample_rows`` rows: the exact top-k of the same filtered rows, compared directly.
        Above: the exact scan reads only the 1-in-m `recall_sample`, and each row it finds scoring above
        the answer's k-th score but missing from the answer stands for the m rows it was drawn from:
        recall = 1 - m * missed / k per query (each true neighbour the answer lacks is in the sample with
        probability 1/m, so the estimate is unbiased; one sampled miss moves it by m / k).
        """
        sample = self.recall_sample()
        q = np.atleast_2d(queries)
        if sample.every == 1:
            exact = self.exact_search(q, k, where=where)
            return RecallEstimate(recall_at_k(found.ids, exact.ids), 1, exact)
        probe = self._scan_top_k(q, k, [*where, sample])
        per_query = []
        for got, kth_of, ids, scores in zip(found.ids, found.scores, probe.ids, probe.scores, strict=True):
            kth = kth_of[-1] if len(got) else -np.inf
            missed = int(np.sum((scores > kth) & ~np.isin(ids, got)))
            per_query.append(max(0.0, 1.0 - sample.every * missed / max(1, len(got))))
        return RecallEstimate(float(np.mean(per_query)), sample.every, None)

    def _scan_top_k(self, queries: np.ndarray, k: int, where: Sequence[Filter]) -> Hits:
        """Exact top-``k`` rows of every query among the rows ``where`` keeps, in one streamed pass.

        SQL filters are applied by the scanner before the vectors are read (late materialization),
        so a 1-in-m sample reads ~1/m of the vectors, once for all queries, where a flat vector
        search with a prefilter reads the whole vector column once per query. Row sets
        (`KeepRows`) are applied to each batch here: their SQL would list every row.
        """
        masks = [f for f in where if isinstance(f, KeepRows)]
        expr = " AND ".join(f"({f.sql()})" for f in where if not isinstance(f, KeepRows)) or None
        best = empty_top_k(len(queries))
        scanner = self.table.to_lance().scanner(columns=[ROW, VECTOR], filter=expr, late_materialization=True,
                                                batch_size=65_536)
        for batch in scanner.to_batches():
            rows = batch.column(ROW).to_numpy()
            keep = keep_mask(pd.DataFrame({ROW: rows}), masks, len(rows)) if masks else slice(None)
            vec = batch.column(VECTOR).values.to_numpy().reshape(batch.num_rows, -1)[keep]
            if len(vec):
                best = merge_top_k(best, queries @ vec.T, rows[keep], k)
        return Hits(best[0].astype(np.float32), best[1].astype(np.int64))

    def check_recall(self, queries: np.ndarray, k: int, *, n_sample: int = 0, seed: int = 42,
                     where: Sequence[Filter] = ()) -> RecallCheck:
        """Recall@k of `search` against `exact_search` on the same filtered rows for ``queries``.

        ``n_sample`` table rows drawn with ``seed`` join the queries (0: the queries alone).
        """
        probe = np.atleast_2d(queries)
        if n_sample:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(len(self), size=min(n_sample, len(self)), replace=False))
            picked = self.table.search().where(f"{ROW} IN ({', '.join(map(str, rows))})").select(
                [VECTOR]).limit(len(rows)).to_arrow()
            probe = np.concatenate([probe, np.stack(picked[VECTOR].to_numpy(zero_copy_only=False))])
        if not self.has_index():
            return RecallCheck(1.0, len(probe))  # no index: every search is an exact scan
        return RecallCheck(recall_at_k(self.search(probe, k, where=where).ids,
                                       self.exact_search(probe, k, where=where).ids), len(probe))

    def column(self, name: str) -> np.ndarray:
        """One column of every row, in ``row`` order."""
        t = self.table.to_lance().to_table(columns=[ROW, name])
        order = np.argsort(t[ROW].to_numpy())
        return t[name].to_numpy(zero_copy_only=False)[order]


def cleanup_versions(settings: LanceSettings, older_than: timedelta = timedelta(days=7)) -> int:
    """Remove versions older than ``older_than`` that no tag holds; the bytes freed.

    Every embed run tags the version it committed, so a version a committed run
    records is never removed.
    """
    table = connect(str(settings.uri)).open_table(settings.table)
    stats = table.to_lance().cleanup_old_versions(older_than, error_if_tagged_old_versions=False)
    return int(stats.bytes_removed)


def commit_frames(settings: LanceSettings, metadata: pd.DataFrame, vectors: np.ndarray, *,
                  trained_rows: int | None, tag: str) -> dict[str, Any]:
    """Write an embed run's frames into the table: create it, or append the frames it lacks (by name).

    Frames already in the table are never written again (nor, upstream, encoded again);
    the index is then trained, retrained or optimized by `LanceIndex.refresh_index`'s
    rule, and the committed version is tagged ``tag`` so cleanup keeps it.

    Args:
        metadata: one row per frame, with a ``name`` column, aligned with ``vectors``.
        trained_rows: rows the table's index was trained on (from the previous embed
            run's record; None: unknown or no index).
        tag: the version's tag (the embed run's name).

    Returns:
        The record result.json keeps: URI, table, version, rows, rows added, index action.
    """
    import time

    t0 = time.perf_counter()
    index = LanceIndex.create_or_open(settings)
    if index is None:
        index, added = LanceIndex.create(settings, vectors, metadata), len(vectors)
    else:
        known = set(index.column("name").tolist())
        new = np.flatnonzero(~metadata["name"].isin(known).to_numpy())
        if len(new):
            index.append(vectors[new], metadata.iloc[new].reset_index(drop=True))
        added = len(new)
    write_s = time.perf_counter() - t0
    update = index.refresh_index(trained_rows if index.has_index() else None) if added or not index.has_index() \
        else IndexUpdate("unchanged", trained_rows)
    index.tag(tag)
    return {"uri": settings.uri, "table": settings.table, "version": index.version, "rows": len(index),
            "rows_added": added, "index": update.action, "trained_rows": update.trained_rows,
            "retrain_growth": settings.retrain_growth, "index_min_rows": settings.index_min_rows,
            "write_s": round(write_s, 3), "index_s": round(update.seconds, 3)}


@dataclass(frozen=True)
class LanceFactory:
    """Builds a `LanceIndex` (in a temporary folder unless ``settings.uri``) or opens one from an embed run."""

    settings: LanceSettings = LanceSettings()

    def build(self, vectors: np.ndarray, metadata: pd.DataFrame | None = None, *, seed: int = 42) -> LanceIndex:
        index = LanceIndex.create(self.settings, vectors, metadata)
        index.refresh_index(None)
        return index

    def open(self, location: str | Path, *, seed: int = 42) -> LanceIndex:
        """The table version an embed run recorded (its folder), or the latest version at a URI."""
        import json

        path = Path(location)
        if path.is_dir() and (path / "result.json").is_file():
            rec = json.loads((path / "result.json").read_text()).get("lance")
            if not rec:
                raise ValueError(f"{path} wrote no LanceDB table (embed ran without mine.approximate_index: lancedb)")
            return LanceIndex.at_version(replace(self.settings, uri=rec["uri"], table=rec["table"]),
                                         int(rec["version"]))
        index = LanceIndex.create_or_open(replace(self.settings, uri=str(location)))
        if index is None:
            raise ValueError(f"no LanceDB table {self.settings.table!r} at {location}")
        return index


def _rows_and_cosines(found: Any) -> tuple[np.ndarray, np.ndarray]:
    """A search's row ids and cosines (its ``_distance`` under metric ``dot`` is 1 - cosine)."""
    return found[ROW].to_numpy(), 1.0 - found["_distance"].to_numpy().astype(np.float32)


def _batches(vectors: np.ndarray, metadata: pd.DataFrame | None, start: int):
    """Rows ``start..`` as one stream of ``ADD_BATCH``-row record batches: one write, one version, and data
    files of up to Lance's 1M rows each (a ``table.add`` per batch made a fragment and a version per batch)."""
    import pyarrow as pa

    first = to_arrow(vectors[:ADD_BATCH], _rows(metadata, 0, min(len(vectors), ADD_BATCH)), start)

    def batches():
        yield from first.to_batches()
        for lo in range(ADD_BATCH, len(vectors), ADD_BATCH):
            hi = min(lo + ADD_BATCH, len(vectors))
            yield from to_arrow(vectors[lo:hi], _rows(metadata, lo, hi), start + lo).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def _rows(metadata: pd.DataFrame | None, lo: int, hi: int) -> pd.DataFrame | None:
    return None if metadata is None else metadata.iloc[lo:hi].reset_index(drop=True)


def _sub_vectors(dim: int) -> int:
    """PQ sub-vectors: ``dim / 8`` (the LanceDB rule of thumb), a divisor of ``dim``."""
    want = max(1, dim // 8)
    return max(d for d in range(1, want + 1) if dim % d == 0)
