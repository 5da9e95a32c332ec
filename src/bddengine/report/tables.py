"""Markdown tables and number formatting for the case study.

Every table here is built from numbers read out of run folders; a number that is
not there prints as ``n/a`` with the reason next to the table, never a made-up value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bddengine.bdd.categories import FRAME_ATTRIBUTES

NA = "n/a"
NBSP = "\u00a0"
"""Between a number and its unit, so a table cell never breaks them apart."""


def is_num(x: Any) -> bool:
    """A finite real number, numpy scalars included (not a bool)."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(float(x))


def plural(n: Any, word: str) -> str:
    """``1 epoch``, ``4 epochs``."""
    return f"{fmt_value(n)} {word}{'' if n == 1 else 's'}"


def fmt_map(x: Any) -> str:
    """mAP or AP in 0-1 with 3 decimals."""
    return f"{x:.3f}" if is_num(x) else NA


def fmt_delta(x: Any) -> str:
    """A signed difference: ``+0.043``, ``-0.012``; ``0.000`` when it rounds to zero."""
    if not is_num(x):
        return NA
    return "0.000" if round(float(x), 3) == 0 else f"{x:+.3f}"


def fmt_ci(lo: Any, hi: Any, *, signed: bool = True) -> str:
    """``[+0.010, +0.091]`` (or unsigned ``[0.310, 0.420]``)."""
    if not (is_num(lo) and is_num(hi)):
        return NA
    if signed:  # bounds keep their sign even when they round to zero: [-0.014, -0.000] excludes 0
        return f"[{lo:+.3f},{NBSP}{hi:+.3f}]"
    return f"[{fmt_map(lo)},{NBSP}{fmt_map(hi)}]"


def fmt_pct(x: Any, digits: int = 1) -> str:
    """A share in 0-1 as a percentage."""
    return f"{100 * x:.{digits}f}%" if is_num(x) else NA


def fmt_int(x: Any) -> str:
    """An integer with thousands separators."""
    return f"{int(x):,}" if is_num(x) else NA


def fmt_seconds(s: Any) -> str:
    """``0.8 s``, ``4.1 min``, ``2.3 h``, ``3.1 days``."""
    if not is_num(s):
        return NA
    if s < 60:
        return f"{s:.1f}{NBSP}s"
    if s < 3600:
        return f"{s / 60:.1f}{NBSP}min"
    if s < 86400 * 2:
        return f"{s / 3600:.1f}{NBSP}h"
    return f"{s / 86400:,.1f}{NBSP}days"


def fmt_bytes(n: Any) -> str:
    """``12.3 kB``, ``4.5 MB`` (decimal units)."""
    if not is_num(n):
        return NA
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f}{NBSP}{unit}" if unit == "B" else f"{n:.1f}{NBSP}{unit}"
        n /= 1000
    return NA  # unreachable


def fmt_usd(x: Any) -> str:
    """``$1,234.50``."""
    return f"${x:,.2f}" if is_num(x) else NA


def fmt_value(x: Any) -> str:
    """Any scalar from a result file, compactly."""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    if isinstance(x, numbers.Real):
        x = float(x)
        if not math.isfinite(x):
            return NA
        return f"{x:.3f}" if abs(x) < 1000 else f"{x:,.0f}"
    if x is None:
        return NA
    return str(x)


def cell(text: Any) -> str:
    """Make text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table.

    Args:
        headers: column titles.
        rows: cell values (already formatted).
        align: one letter per column, ``l`` or ``r`` (default: first left, rest right).
    """
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def key_label(key: dict[str, str] | None) -> str:
    """``rainy / night / city street`` for a weather x timeofday x scene key."""
    if not key:
        return NA
    return " / ".join(str(key.get(a, "*")) for a in FRAME_ATTRIBUTES)


def headline_markdown(table: pd.DataFrame, arms: list[str], *, n_boot: int, seed: int,
                      fragile_min_gt: int | None = None, per_seed: bool = True) -> str:
    """The headline table in markdown, plus its legend.

    One row per slice and arm (the slice, its frames and iteration-0 mAP@0.5 on the
    first row of each slice), so it stays readable for any number of arms and seeds.
    The "CI resamples" column says, row by row, whether the CI holds training variance
    (several seeds) or only the eval frames' (one seed). ``per_seed=False`` leaves out the
    per-seed column (page 1 keeps its rows on one line; the appendix has it).
    """
    several = any(int(n or 0) > 1 for n in table["n_seeds"])
    multi = several and per_seed
    headers = ["slice", "frames", "iter 0", "arm", "iter 1", "Δ", "95% CI of Δ", "CI resamples"]
    if multi:
        headers.append("per-seed Δ")
    rows = []
    any_fragile = False
    for label, group in table.groupby("slice", sort=False):
        first = group.iloc[0]
        fragile = bool(first.get("fragile"))
        any_fragile |= fragile
        name = f"**{label}** (worst)" if bool(first["worst"]) else (f"**{label}**" if label == "overall" else label)
        if fragile:
            name += f" ‡ {first['fragile_classes']}"
        by_arm = {r["arm"]: r for _, r in group.iterrows()}
        for i, arm in enumerate(arms):
            head = [name, fmt_int(first["n_frames"]), fmt_map(first["map50_iter0"])] if i == 0 else ["", "", ""]
            r = by_arm.get(arm)
            if r is None:
                rows.append([*head, arm, NA, NA, NA, NA] + ([NA] if multi else []))
                continue
            delta = fmt_delta(r["delta"])
            bold = bool(r["ci_excludes_0"]) and not fragile
            row = [*head, arm, fmt_map(r["map50_iter1"]), f"**{delta}**" if bold else delta,
                   fmt_ci(r["ci_lo"], r["ci_hi"]), levels_cell(r["ci_levels"], r["n_seeds"])]
            if multi:
                row.append(_seeds_cell(r))
            rows.append(row)
    legend = (f"Δ: iteration 1 − iteration 0 mAP@0.5 on the same eval frames; 95% CI: paired bootstrap ({n_boot} "
              f"resamples, seed {seed}). **Bold**: CI excludes 0 on a slice that is not fragile.")
    if several:
        legend += (" Several seeds: iter 1 and Δ are seed means, and the CI also resamples seeds (training "
                   "variance); per-seed Δ: " + ("min…max, sd." if multi else "appendix E."))
    if any(int(n or 0) == 1 for n in table["n_seeds"]):
        legend += " \"frames only\": one seed, so the CI leaves out training variance."
    if any_fragile:
        legend += (f" ‡ fragile: a class has fewer than {fragile_min_gt or 'the configured number of'} GT boxes "
                   f"in the slice (count given).")
    return md_table(headers, rows, align="lrrlrrrl" + ("l" if multi else "")) + "\n\n" + legend


def levels_cell(levels: Any, n_seeds: Any) -> str:
    """What a CI resamples: ``frames only`` (one seed) or ``3 seeds × frames``."""
    if levels == "seeds+frames":
        return f"{int(n_seeds)} seeds × frames"
    return "frames only" if levels == "frames" else NA


def contrast_markdown(contrasts: pd.DataFrame, *, only: str | None = None) -> str:
    """Arm-vs-control rows in markdown (``only``: ``"worst"`` for the worst slice and overall)."""
    t = contrasts
    if only == "worst":
        t = t[t["worst"].astype(bool) | (t["grouping"] == "overall")]
    rows = []
    for _, r in t.iterrows():
        label = f"{r['slice']} (worst)" if bool(r["worst"]) else r["slice"]
        diff = fmt_delta(r["diff"])
        bold = bool(r["ci_excludes_0"]) and not bool(r["fragile"])
        levels = levels_cell(r["ci_levels"], max(int(r["n_seeds_arm"]), int(r["n_seeds_control"])))
        rows.append([label + (" ‡" if bool(r["fragile"]) else ""), f"{r['arm']} − {r['control']}",
                     f"**{diff}**" if bold else diff, fmt_ci(r["ci_lo"], r["ci_hi"]), levels, r["verdict"]])
    return md_table(["slice", "arm − control", "Δ difference", "95% CI", "CI resamples", "what the run says"],
                    rows, align="llrrll")


def _seeds_cell(r: pd.Series) -> str:
    n = int(r["n_seeds"] or 0)
    if n <= 1:
        return str(n)
    spread = f"{n}: {fmt_delta(r['delta_min'])}…{fmt_delta(r['delta_max'])}"
    return spread + (f", sd {r['delta_std']:.3f}" if is_num(r["delta_std"]) else "")
