"""One table of every benchmark's ratios against their goals (the end of ``make bench``).

Each benchmark calls `record` for each claim it checks; when ``BDDENGINE_BENCH_RESULTS``
names a file, that appends one JSON line ``{name, ratio, goal, op, pass, script, note}``
to it (nothing is written otherwise, so a benchmark run by hand leaves no file).
``make bench`` empties the file, runs every benchmark, then runs this script on it::

    python benchmarks/_results.py outputs/bench/results.jsonl benchmarks/[!_]*.py

which prints the table and exits 1 when a goal is missed or a benchmark recorded
nothing (it crashed before its ratios), else 0. A benchmark that cannot run on this
machine (``gpu_turn.py`` without a GPU) calls `skip` with the reason instead: its row
says so and fails nothing. Files starting with ``_`` are helpers, not benchmarks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = "BDDENGINE_BENCH_RESULTS"


def record(name: str, ratio: float, goal: float, *, op: str = ">=", note: str = "",
           script: str | None = None) -> bool:
    """Judge one ratio against its goal and append it to the results file (when one is set).

    Args:
        name: what the ratio compares, e.g. ``slice_eval: all slices / one overall``.
        ratio: the measured ratio.
        goal: the goal it is held to.
        op: ``>=`` (higher is better) or ``<=``.
        note: a few words shown next to the row (sizes, counts).
        script: the benchmark file (default: the running script).

    Returns:
        Whether the goal is met.
    """
    if op not in (">=", "<="):
        raise ValueError(f"op must be '>=' or '<=', not {op!r}")
    ok = bool(ratio >= goal if op == ">=" else ratio <= goal)
    path = os.environ.get(ENV)
    if path:
        line = {"name": name, "ratio": float(ratio), "goal": float(goal), "op": op, "pass": ok,
                "script": Path(script or sys.argv[0]).name, "note": note}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
    return ok


def skip(reason: str, *, script: str | None = None) -> None:
    """Record that this benchmark cannot run here (no GPU, say): a row that fails nothing.

    Unlike a benchmark that records nothing (it crashed), a skip is a decision, stated with its reason.
    """
    path = os.environ.get(ENV)
    if path:
        line = {"script": Path(script or sys.argv[0]).name, "skipped": reason}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def table(rows: list[dict], scripts: list[str]) -> tuple[str, bool]:
    """The markdown table of the recorded rows, plus a row for each script that recorded none."""
    lines = ["| benchmark | ratio | goal | pass | note |", "|---|---:|---:|---|---|"]
    skipped = [r for r in rows if "skipped" in r]
    rows = [r for r in rows if "skipped" not in r]
    for r in skipped:
        lines.append(f"| {r['script']} | - | - | skipped | {r['skipped']} |")
    for r in rows:
        lines.append(f"| {r['name']} | {r['ratio']:.2f}x | {r['op']} {r['goal']:g}x | "
                     f"{'yes' if r['pass'] else '**NO**'} | {r.get('note', '')} |")
    seen = {r["script"] for r in rows} | {r["script"] for r in skipped}
    silent = [Path(s).name for s in scripts if Path(s).name not in seen]
    for name in silent:
        lines.append(f"| {name} | - | - | **NO** | recorded no ratio (it stopped early: see its output) |")
    ok = bool(rows or skipped) and all(r["pass"] for r in rows) and not silent
    return "\n".join(lines), ok


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    path, scripts = Path(argv[0]), [s for s in argv[1:] if not Path(s).name.startswith("_")]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    text, ok = table(rows, scripts)
    rated = [r for r in rows if "skipped" not in r]
    met = sum(r["pass"] for r in rated)
    print(f"\n== benchmark ratios against their goals ({met} of {len(rated)} met; from {path})")
    print(text)
    print("ratios compare two timings taken side by side in the same run; on a machine shared with other "
          "work the absolute seconds move, the ratios much less")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
