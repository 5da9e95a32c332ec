"""Figures of the case study: the per-slice delta chart, the turn's time per step, and copies of the
stages' own figures.

One palette for every figure of the report (arms, highlights, stage kinds), so the
same arm has the same colour in the delta chart and the architecture diagram.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from bddengine.plotting import plt

ARM_COLORS: dict[str, str] = {
    "prototype": "#2F6DB5",
    "random": "#E0873A",
    "random-slice": "#4C9A5B",
    "prototype-detector": "#8A5CC2",
}
EXTRA_COLORS: tuple[str, ...] = ("#B8455B", "#2A9D9D", "#7D6B52", "#5E6B7A")
HIGHLIGHT = "#C23B3B"
"""The worst slice, everywhere."""
INK = "#2B2B2B"
MUTED = "#8A8A8A"
FONT = "DejaVu Sans"


def arm_color(arm: str, arms: list[str]) -> str:
    """The arm's colour: fixed for the known arms, then a stable pick by position."""
    if arm in ARM_COLORS:
        return ARM_COLORS[arm]
    others = [a for a in arms if a not in ARM_COLORS]
    return EXTRA_COLORS[others.index(arm) % len(EXTRA_COLORS)] if arm in others else EXTRA_COLORS[0]


def _style() -> None:
    plt.rcParams.update({
        "font.family": FONT, "font.size": 9, "axes.edgecolor": "#BBBBBB", "axes.labelcolor": INK,
        "xtick.color": INK, "ytick.color": INK, "axes.titleweight": "bold", "axes.titlesize": 11,
    })


def plot_slice_delta(table: pd.DataFrame, arms: list[str], path: Path, *, n_boot: int) -> Path:
    """Per-slice delta of mAP@0.5 with paired-bootstrap CI whiskers, arms side by side.

    The worst iteration-0 slice is shaded and labelled in red; bars whose CI excludes 0
    are solid, the others faded. Without any arm, the chart shows iteration-0 mAP@0.5
    per slice and says that iteration 1 is missing.
    """
    _style()
    slices = list(dict.fromkeys(table["slice"]))
    first = table.groupby("slice", sort=False).first()
    n = len(slices)
    band = max(1, len(arms))
    height = min(20.0, max(3.2, 0.17 * n * band + 0.12 * n + 1.5))
    fig, ax = plt.subplots(figsize=(9.0, height), dpi=150)
    y_centres = np.arange(n)[::-1].astype(float)  # first slice at the top
    bar_h = 0.8 / band
    for i, label in enumerate(slices):
        if bool(first.loc[label, "worst"]):
            ax.axhspan(y_centres[i] - 0.5, y_centres[i] + 0.5, color=HIGHLIGHT, alpha=0.09, lw=0)
        elif i % 2:
            ax.axhspan(y_centres[i] - 0.5, y_centres[i] + 0.5, color="#000000", alpha=0.025, lw=0)
    spans: list[float] = []
    if arms:
        for j, arm in enumerate(arms):
            rows = table[table["arm"] == arm].set_index("slice")
            color = arm_color(arm, arms)
            for i, label in enumerate(slices):
                if label not in rows.index:
                    continue
                r = rows.loc[label]
                d = pd.to_numeric(r["delta"], errors="coerce")
                if pd.isna(d):
                    continue
                y = y_centres[i] + 0.4 - bar_h * (j + 0.5)
                solid = bool(r["ci_excludes_0"])
                ax.barh(y, d, height=bar_h * 0.86, color=color, alpha=1.0 if solid else 0.38,
                        edgecolor=color, linewidth=0.6)
                lo, hi = pd.to_numeric(r["ci_lo"], errors="coerce"), pd.to_numeric(r["ci_hi"], errors="coerce")
                if pd.notna(lo) and pd.notna(hi):
                    ax.errorbar(d, y, xerr=[[max(0.0, d - lo)], [max(0.0, hi - d)]], fmt="none",
                                ecolor=INK, elinewidth=0.8, capsize=2)
                    spans += [lo, hi]
                else:
                    lo = hi = d
                spans.append(d)
                end = hi if d >= 0 else lo
                ax.annotate(f"{d:+.3f}", (end, y), xytext=(4 if d >= 0 else -4, 0), textcoords="offset points",
                            ha="left" if d >= 0 else "right", va="center", fontsize=7,
                            color=INK if solid else MUTED, fontweight="bold" if solid else "normal")
        ax.axvline(0, color=INK, lw=0.9)
        if spans:
            lo_x, hi_x = min(min(spans), 0.0), max(max(spans), 0.0)
            pad = 0.18 * max(hi_x - lo_x, 0.02)  # room for the value labels
            ax.set_xlim(lo_x - pad, hi_x + pad)
        ax.set_xlabel("Δ mAP@0.5 (iteration 1 − iteration 0); whiskers: paired bootstrap 95% CI "
                      f"({n_boot} resamples)")
        handles = [Patch(color=arm_color(a, arms), label=a) for a in arms]
        handles.append(Patch(facecolor="white", edgecolor=MUTED, label="faded: CI includes 0"))
        handles.append(Patch(color=HIGHLIGHT, alpha=0.25, label="worst slice (iteration 0)"))
        ax.legend(handles=handles, loc="best", fontsize=8, frameon=False)
        title = "Per-slice change in mAP@0.5 after one flywheel turn"
    else:
        vals = [pd.to_numeric(first.loc[s, "map50_iter0"], errors="coerce") for s in slices]
        colors = [HIGHLIGHT if bool(first.loc[s, "worst"]) else ARM_COLORS["prototype"] for s in slices]
        ax.barh(y_centres, np.nan_to_num(vals), height=0.6, color=colors)
        for y, v in zip(y_centres, vals, strict=True):
            if pd.notna(v):
                ax.annotate(f"{v:.3f}", (v, y), xytext=(4, 0), textcoords="offset points", va="center",
                            fontsize=7, color=INK)
        ax.set_xlim(0, 1)
        ax.set_xlabel("iteration-0 mAP@0.5")
        title = "No iteration-1 eval yet: iteration-0 mAP@0.5 per slice"
    labels = [f"{s}  (n={int(first.loc[s, 'n_frames'])})" for s in slices]
    ax.set_yticks(y_centres, labels)
    for tick, s in zip(ax.get_yticklabels(), slices, strict=True):
        if bool(first.loc[s, "worst"]):
            tick.set_color(HIGHLIGHT)
            tick.set_fontweight("bold")
        elif s == "overall":
            tick.set_fontweight("bold")
    if "overall" in slices and n > 1:
        ax.axhline(y_centres[slices.index("overall")] + 0.5, color="#BBBBBB", lw=0.8, ls="--")
    ax.set_ylim(-0.6, n - 0.4)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(title, loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_turn_profile(profile: dict, path: Path) -> Path:
    """Each step's wall time in one turn (``turn_profile.json``), one bar per step, with its share.

    Steps that were up to date (not re-run) are grey; the longest stage kind is named in the title.
    """
    _style()
    steps = profile["steps"]
    n = len(steps)
    fig, ax = plt.subplots(figsize=(7.5, min(8.0, 0.24 * n + 1.3)), dpi=150)
    y = np.arange(n)[::-1].astype(float)
    walls = [float(s["wall_s"]) for s in steps]
    colors = [MUTED if s["skipped"] else (HIGHLIGHT if s["stage"] == "train" else ARM_COLORS["prototype"])
              for s in steps]
    ax.barh(y, walls, height=0.7, color=colors)
    for yi, s in zip(y, steps, strict=True):
        share = f" ({s['share']:.0%})" if s.get("share") is not None else ""
        ax.annotate(f"{s['wall_s']:.0f} s{share}" + (" up to date" if s["skipped"] else ""), (s["wall_s"], yi),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=7, color=INK)
    ax.set_yticks(y, [s["step"] for s in steps], fontsize=7)
    ax.set_xlim(0, max(walls + [1.0]) * 1.25)
    ax.set_xlabel("wall time (s)")
    by_stage: dict[str, float] = {}
    for s in steps:
        by_stage[s["stage"]] = by_stage.get(s["stage"], 0.0) + float(s["wall_s"])
    total = sum(walls)
    top = max(by_stage, key=by_stage.get) if by_stage else None
    title = f"Where the turn's {total:.0f} s went"
    if top and total > 0:
        title += f": {top} {by_stage[top] / total:.0%}"
    ax.set_title(title, loc="left")
    ax.grid(axis="x", color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def copy_figure(src: Path | None, dst: Path) -> bool:
    """Copy a stage's figure into the report; False when the stage did not write it."""
    if src is None or not src.is_file():
        return False
    shutil.copyfile(src, dst)
    return True
