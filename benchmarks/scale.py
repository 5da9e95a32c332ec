"""Benchmark: the LanceDB mining index against FAISS flat (the exact path mine takes today), at fleet scale.

Claims (goals set before measuring, from the fleet-scale issue):

- at 1M rows: LanceDB's recall@100 >= 0.95 against exact search of the same
  filtered rows, and the querying process's peak RSS <= 0.5x FAISS flat's;
- at 10M rows (``--rows 10000000``): peak RSS < 2 GiB, recall@100 >= 0.95, p50
  query < 100 ms on this machine;
- appending 10% new rows: the table gains exactly the new rows, and recall after
  ``optimize()`` folds them into the index is still >= 0.95.

Data: ``--rows`` x 512 float32 vectors clustered like image embeddings (2,000
Gaussian centres, each row a centre plus noise, L2-normalised; seeded), 50 rows per
video; the filter holds out every tenth video (~10% of rows, a ``NotIn`` on the
video column, as mine's held-out videos are). Queries: 100 rows' vectors with noise.

Each side runs in its own subprocess, so its peak RSS (``VmHWM``) is its own:

- FAISS flat: loads the vectors, takes the filtered rows (the copy mine makes of
  the eligible frames), then one exact search per query (`exact_knn`, NumPy's
  single-query path) -- no index to build;
- LanceDB: a build process writes the table in 1M-row appends (``mine.lance`` defaults:
  IVF_PQ, ``rows / partition_rows`` partitions, 64 sub-vectors) and a query process opens
  it and runs the queries one at a time through `LanceIndex.search` (``nprobes``,
  ``refine_factor``; the filter applied to the index's candidates), then mine's own recall
  estimate as it runs on a table ten times its ``recall_sample_rows``
  (`LanceIndex.recall_of` on the 1-in-10 row sample), printed beside the measured recall
  of the same queries.

Recall@100 is against the exact top-100 of the filtered rows, streamed chunk by
chunk (`side_truth`: no index, little memory), at every size; FAISS flat runs up
to ``--exact-max`` rows (above, its copy of the vectors does not fit in RAM).

::

    PYTHONPATH=src python benchmarks/scale.py                    # 100K and 1M (a few minutes)
    PYTHONPATH=src python benchmarks/scale.py --rows 10000000 --partition-rows 16384   # 10M (LanceDB; ~25 GB scratch)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DIM, CENTRES, PER_VIDEO, HELD_EVERY, K, QUERIES = 512, 2000, 50, 10, 100, 100
CHUNK = 100_000
WRITE = 1_000_000
"""Rows per write when the table is built (2 GB of vectors in memory at a time)."""
GiB = 1024 ** 3


def clustered(n: int, seed: int, *, start: int = 0) -> np.ndarray:
    """Rows ``start..start+n`` of the seeded clustered set (any slice regenerates the same rows)."""
    centres = np.random.default_rng(seed).standard_normal((CENTRES, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, CHUNK):
        first = (start + lo) // CHUNK  # one generator per global chunk: slices agree with the whole
        rng = np.random.default_rng([seed, first])
        block = centres[rng.integers(0, CENTRES, CHUNK)] + 0.02 * rng.standard_normal((CHUNK, DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        off = (start + lo) - first * CHUNK
        take = min(n - lo, CHUNK - off)
        out[lo:lo + take] = block[off:off + take]
        if take < min(CHUNK, n - lo):  # the slice straddles two chunks
            rest = clustered(min(CHUNK, n - lo) - take, seed, start=start + lo + take)
            out[lo + take:lo + take + len(rest)] = rest
    return out


def videos(n: int, start: int = 0) -> np.ndarray:
    return np.array([f"v{i // PER_VIDEO:07d}" for i in range(start, start + n)])


def held_videos(n: int) -> list[str]:
    return [f"v{v:07d}" for v in range(0, (n + PER_VIDEO - 1) // PER_VIDEO, HELD_EVERY)]


def queries(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    q = clustered(QUERIES * 7, seed)[::7] + 0.01 * rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def peak_rss() -> int:
    """This process's peak resident set (bytes), from ``VmHWM``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the sides, each run as `scale.py --side NAME` in its own process ---------------------------


def side_faiss(a: argparse.Namespace) -> dict:
    from bddengine.vectors.exact import exact_knn

    x = np.load(Path(a.work) / "vectors.npy")
    keep = ~np.isin(videos(len(x)), held_videos(len(x)))
    rows = np.flatnonzero(keep)
    pool = x[rows]  # the eligible rows, as mine copies them
    del x
    q = queries(a.seed)
    times, ids = [], []
    for vec in q:
        t0 = time.perf_counter()
        _, found = exact_knn(pool, vec[None, :], K)
        times.append(time.perf_counter() - t0)
        ids.append(rows[found[0]])
    np.save(Path(a.work) / "faiss_ids.npy", np.stack(ids))
    return {"times": times, "peak_rss": peak_rss()}


def side_lance_build(a: argparse.Namespace) -> dict:
    import pandas as pd

    from bddengine.vectors.lance import LanceIndex, LanceSettings

    settings = LanceSettings(uri=str(Path(a.work) / "lance"), nprobes=a.nprobes, refine_factor=a.refine_factor,
                             partition_rows=a.partition_rows)
    n, first = a.rows, min(a.rows, WRITE)
    t0 = time.perf_counter()
    index = LanceIndex.create(settings, clustered(first, a.seed), pd.DataFrame({"video": videos(first)}))
    for lo in range(first, n, WRITE):  # as embed runs of 1M frames would append them
        hi = min(n, lo + WRITE)
        index.append(clustered(hi - lo, a.seed, start=lo), pd.DataFrame({"video": videos(hi - lo, lo)}))
    write_s = time.perf_counter() - t0
    update = index.refresh_index(None)
    return {"write_s": write_s, "index_s": update.seconds, "action": update.action, "peak_rss": peak_rss()}


def side_lance_query(a: argparse.Namespace) -> dict:
    from bddengine.vectors import NotIn
    from bddengine.vectors.lance import LanceIndex, LanceSettings

    settings = LanceSettings(uri=str(Path(a.work) / "lance"), nprobes=a.nprobes, refine_factor=a.refine_factor,
                             partition_rows=a.partition_rows)
    index = LanceIndex.create_or_open(settings)
    where = [NotIn("video", held_videos(a.rows))]
    q = queries(a.seed)
    index.search(q[:1], K, where=where)  # open the index files once, as a stage's first query does
    times, ids = [], []
    for vec in q:
        t0 = time.perf_counter()
        ids.append(index.search(vec[None, :], K, where=where).ids[0])
        times.append(time.perf_counter() - t0)
    np.save(Path(a.work) / "lance_ids.npy", np.stack(ids))
    out = {"times": times, "peak_rss": peak_rss()}
    # mine's own check on a table this size: the answer's recall estimated on a 1-in-10 row sample
    index.settings = replace(settings, recall_sample_rows=max(1, a.rows // 10))
    n = a.sample_queries
    found = index.search(q[:n], K, where=where)
    t0 = time.perf_counter()
    check = index.recall_of(found, q[:n], K, where=where)
    return out | {"sample_every": check.every, "sample_queries": n, "sample_recall": check.recall,
                  "sample_check_s": (time.perf_counter() - t0) / n}


def side_append(a: argparse.Namespace) -> dict:
    """Add 10% new rows to the built table, fold them in by the engine's rule, and measure recall again."""
    import pandas as pd

    from bddengine.vectors import NotIn
    from bddengine.vectors.lance import LanceIndex, LanceSettings

    settings = LanceSettings(uri=str(Path(a.work) / "lance"), nprobes=a.nprobes, refine_factor=a.refine_factor,
                             partition_rows=a.partition_rows)
    index = LanceIndex.create_or_open(settings)
    before, more = len(index), a.rows // 10
    t0 = time.perf_counter()
    index.append(clustered(more, a.seed, start=before), pd.DataFrame({"video": videos(more, before)}))
    update = index.refresh_index(before)
    seconds = time.perf_counter() - t0
    where = [NotIn("video", held_videos(before + more))]
    q = queries(a.seed)[:a.sample_queries]
    if before + more <= a.exact_max:  # against LanceDB's exact scan of the whole filtered table
        recall, how = index.check_recall(q, K, where=where).recall, "exact scan"
    else:  # a full scan per query reads the whole table: mine's own estimate on a 1-in-10 row sample
        index.settings = replace(settings, recall_sample_rows=max(1, (before + more) // 10))
        recall, how = index.recall_of(index.search(q, K, where=where), q, K, where=where).recall, "estimate"
    return {"added": len(index) - before, "new_rows": more, "action": update.action, "seconds": seconds,
            "recall": recall, "recall_by": how}


def side_truth(a: argparse.Namespace) -> dict:
    """The exact top-k of every query over the filtered rows, streamed: each 100K-row chunk is regenerated,
    scored and merged into a running top-k, so the truth at 10M rows needs neither FAISS nor 20 GB of RAM."""
    q = queries(a.seed)
    held = held_videos(a.rows)
    from bddengine.vectors.exact import empty_top_k, merge_top_k

    best = empty_top_k(len(q))
    t0 = time.perf_counter()
    for lo in range(0, a.rows, CHUNK):
        hi = min(a.rows, lo + CHUNK)
        rows = lo + np.flatnonzero(~np.isin(videos(hi - lo, lo), held))
        best = merge_top_k(best, q @ clustered(hi - lo, a.seed, start=lo)[rows - lo].T, rows, K)
    best_i = best[1]
    np.save(Path(a.work) / "truth_ids.npy", best_i)
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss()}


SIDES = {"truth": side_truth, "faiss": side_faiss, "lance-build": side_lance_build, "lance-query": side_lance_query,
         "append": side_append}


def run_side(name: str, a: argparse.Namespace, rows: int, **extra: object) -> dict:
    cmd = [sys.executable, __file__, "--side", name, "--rows", str(rows), "--work", a.work, "--seed", str(a.seed),
           "--nprobes", str(a.nprobes), "--refine-factor", str(a.refine_factor),
           "--partition-rows", str(a.partition_rows)]
    cmd += ["--sample-queries", str(a.sample_queries)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"RUST_LOG": "error"})
    if out.returncode:
        raise SystemExit(f"side {name} at {rows:,} rows failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    from bddengine.vectors.exact import recall_at_k

    return recall_at_k(found, truth)


def one_size(a: argparse.Namespace, rows: int) -> dict:
    """Both sides at ``rows``; FAISS only up to ``--exact-max`` rows (above, it does not fit in RAM).

    Recall is against the streamed exact truth (`side_truth`) at every size; FAISS flat, where it runs,
    gives the baseline's latency and memory.
    """
    work = Path(tempfile.mkdtemp(prefix=f"scale-{rows}-", dir=a.scratch))
    a.work = str(work)
    try:
        res: dict = {"rows": rows, "truth": run_side("truth", a, rows),
                     "settings": f"{max(1, rows // a.partition_rows)} partitions, nprobes {a.nprobes}, "
                                 f"refine_factor {a.refine_factor}"}
        if rows <= a.exact_max:
            np.save(work / "vectors.npy", clustered(rows, a.seed))
            res["faiss"] = run_side("faiss", a, rows)
            (work / "vectors.npy").unlink()
            res["faiss"]["recall"] = recall(np.load(work / "faiss_ids.npy"), np.load(work / "truth_ids.npy"))
        res["build"] = run_side("lance-build", a, rows)
        res["lance"] = run_side("lance-query", a, rows)
        found, truth = np.load(work / "lance_ids.npy"), np.load(work / "truth_ids.npy")
        res["recall"] = recall(found, truth)
        res["recall_first"] = recall(found[: a.sample_queries], truth[: a.sample_queries])
        if a.append:
            res["append"] = run_side("append", a, rows)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ms(times: list[float], q: float) -> float:
    return 1000 * float(np.quantile(times, q))


def report(res: dict) -> None:
    from _results import record

    n, lance, build = res["rows"], res["lance"], res["build"]
    label = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}K"
    print(f"\n{label} x {DIM} ({n // PER_VIDEO:,} videos, every {HELD_EVERY}th held out), k={K}, "
          f"{QUERIES} queries one at a time; IVF_PQ {res['settings']}:")
    print(f"  {'':14} {'build s':>9} {'p50 ms':>8} {'p99 ms':>8} {'recall@100':>10} {'peak RSS GiB':>12}")
    if "faiss" in res:
        f = res["faiss"]
        print(f"  {'FAISS flat':14} {'-':>9} {ms(f['times'], .5):8.1f} {ms(f['times'], .99):8.1f} "
              f"{f['recall']:10.3f} {f['peak_rss'] / GiB:12.2f}")
    print(f"  {'LanceDB':14} {build['write_s'] + build['index_s']:9.1f} {ms(lance['times'], .5):8.1f} "
          f"{ms(lance['times'], .99):8.1f} {res['recall']:10.3f} {lance['peak_rss'] / GiB:12.2f}"
          f"   (write {build['write_s']:.1f} s + index {build['index_s']:.1f} s [{build['action']}], "
          f"build RSS {build['peak_rss'] / GiB:.2f} GiB)")
    print(f"  exact truth streamed in {res['truth']['seconds']:.0f} s ({res['truth']['peak_rss'] / GiB:.2f} GiB); "
          f"mine's estimate on 1 in {lance['sample_every']} rows ({lance['sample_queries']} queries): "
          f"recall@100 {lance['sample_recall']:.3f} (measured on them: {res['recall_first']:.3f}), "
          f"{lance['sample_check_s']:.2f} s per query")
    note = f"{label} x {DIM}, 10% filtered"
    record(f"scale {label}: LanceDB recall@100 vs exact", res["recall"], 0.95, note=note)
    if "faiss" in res and n >= 1_000_000:
        record(f"scale {label}: LanceDB peak RSS / FAISS flat", lance["peak_rss"] / res["faiss"]["peak_rss"], 0.5,
               op="<=", note=f"{lance['peak_rss'] / GiB:.2f} vs {res['faiss']['peak_rss'] / GiB:.2f} GiB")
    if n >= 10_000_000:
        record(f"scale {label}: LanceDB peak RSS / 2 GiB", lance["peak_rss"] / (2 * GiB), 1.0, op="<=", note=note)
        record(f"scale {label}: LanceDB p50 query / 100 ms", ms(lance["times"], .5) / 100, 1.0, op="<=", note=note)
    if "append" in res:
        ap = res["append"]
        print(f"  append {ap['new_rows']:,} rows: {ap['added']:,} added, index {ap['action']} in "
              f"{ap['seconds']:.1f} s, recall@100 after: {ap['recall']:.3f} ({ap.get('recall_by', 'exact scan')})")
        record(f"scale {label}: rows added / new rows on append", ap["added"] / ap["new_rows"], 1.0, op="<=",
               note="no old row written again")
        record(f"scale {label}: recall@100 after append + {ap['action']}", ap["recall"], 0.95, note=note)


def main() -> None:
    from bddengine.config import LanceConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--seed", type=int, default=42)
    lance = LanceConfig()  # the engine's defaults (mine.lance), so the benchmark measures what a user gets
    p.add_argument("--nprobes", type=int, default=lance.nprobes)
    p.add_argument("--refine-factor", type=int, default=lance.refine_factor)
    p.add_argument("--partition-rows", type=int, default=lance.partition_rows)
    p.add_argument("--exact-max", type=int, default=2_000_000, help="largest size FAISS flat is run at")
    p.add_argument("--sample-queries", type=int, default=20,
                   help="queries of mine's row-sampled recall check (index vs exact scan on 1 in 10 rows)")
    p.add_argument("--no-append", dest="append", action="store_false")
    p.add_argument("--scratch", default=None, help="folder for the tables (default: the system temp)")
    p.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.side:
        a.rows = a.rows[0]
        print(json.dumps(SIDES[a.side](a)))
        return
    for rows in a.rows:
        t0 = time.perf_counter()
        res = one_size(a, rows)
        report(res)
        print(f"  ({time.perf_counter() - t0:.0f} s for this size)")


if __name__ == "__main__":
    main()
