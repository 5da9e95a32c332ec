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
    ax.set_title(title, loc="left")
    return _finish(fig, ax, path, grid="x")


ERROR_ORDER = ("cls", "loc", "both", "dupe", "bkg", "miss")
"""TIDE's error types, in its order (the x axis of the decomposition chart)."""


def plot_error_costs(worst: dict, overall: dict | None, path: Path, *, label: str) -> Path:
    """The AP@0.5 each error type costs the worst slice (and the whole eval pool beside it), with CI whiskers.

    ``worst`` and ``overall`` are rows of an eval run's ``errors.json`` (``dap``, ``ci95``, ``map50``).
    """
    _style()
    rows = [(f"{label} (mAP@0.5 {worst.get('map50', float('nan')):.3f})", worst, HIGHLIGHT)]
    if overall is not None:
        rows.append((f"whole eval pool ({overall.get('map50', float('nan')):.3f})", overall, MUTED))
    fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=150)
    x = np.arange(len(ERROR_ORDER), dtype=float)
    width = 0.8 / len(rows)
    top = 0.0
    for j, (name, row, color) in enumerate(rows):
        raw = [(row.get("dap") or {}).get(t) for t in ERROR_ORDER]
        vals = np.array([float(v) if v is not None else 0.0 for v in raw])
        xs = x - 0.4 + width * (j + 0.5)
        ax.bar(xs, vals, width=width * 0.9, color=color, label=name)
        ci = row.get("ci95") or {}
        for xi, v, t, r in zip(xs, vals, ERROR_ORDER, raw, strict=True):
            if r is None:  # not defined on this slice (errors.json has null)
                ax.annotate("n/a", (xi, 0), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                            fontsize=6.5, color=MUTED, rotation=90 if len(rows) > 1 else 0)
                continue
            lo_hi = ci.get(t)
            if lo_hi and all(b is not None for b in lo_hi):
                ax.errorbar(xi, v, yerr=[[max(0.0, v - lo_hi[0])], [max(0.0, lo_hi[1] - v)]], fmt="none",
                            ecolor=INK, elinewidth=0.8, capsize=2)
                top = max(top, lo_hi[1])
            top = max(top, v)
            ax.annotate(f"{v:.3f}", (xi, v), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=6.5, color=INK, rotation=90 if len(rows) > 1 else 0)
    ax.set_xticks(x, list(ERROR_ORDER))
    ax.set_ylim(0, max(top * 1.3, 0.01))
    ax.set_ylabel("AP@0.5 gained by fixing it")
    ax.set_title("What each error costs (TIDE), iteration 0", loc="left", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _finish(fig, ax, path, grid="y")


def plot_saliency(frames: list[tuple[str, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
                  path: Path, *, left: str, right: str) -> Path:
    """Heat maps side by side: one row per frame, ``left`` model in column 1 and ``right`` in column 2.

    Each entry is (frame name, (RGB image, heat map) of the left model, the same of the right); images
    in 0-1, heat maps in 0-1 at the image's size, drawn over it in ``jet``.
    """
    _style()
    n = len(frames)
    h, w = frames[0][1][0].shape[:2]
    cell_w = 2.4
    fig, axes = plt.subplots(n, 2, figsize=(2 * cell_w + 0.2, n * cell_w * h / w + 0.55), dpi=150, squeeze=False)
    for i, (name, a, b) in enumerate(frames):
        for j, (rgb, heat) in enumerate((a, b)):
            ax = axes[i][j]
            ax.imshow(rgb)
            ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name[:14], fontsize=6.5)
    axes[0][0].set_title(left, fontsize=8, loc="left")
    axes[0][1].set_title(right, fontsize=8, loc="left")
    fig.suptitle("EigenCAM, worst slice's failure frames", x=0.02, ha="left", fontsize=9, fontweight="bold")
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.3)
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
    return _finish(fig, ax, path, grid="x")


def plot_learning_curve(points: list, path: Path, *, goal: float | None, target: str) -> Path:
    """The target slice's mAP@0.5 against cumulative human-labeled frames (and dollars, when every point has a
    cost), one line per arm with its 95% CI band, the goal of frames-to-target dashed.

    Args:
        points: `bddengine.report.curves.CurvePoint` of every arm and iteration.
        path: the PNG to write.
        goal: the mAP@0.5 frames-to-target measures against (None: not drawn).
        target: the target slice's label, for the title.
    """
    _style()
    arms = list(dict.fromkeys(p.arm for p in points))
    dollars = all(p.usd is not None for p in points)
    fig, axes = plt.subplots(1, 2 if dollars else 1, figsize=(9.0 if dollars else 5.5, 1.7), dpi=150,
                             squeeze=False, sharey=True)
    for ax, attr, label in zip(axes[0], ("frames", "usd"), ("cumulative human-labeled frames", "cumulative cost ($)"),
                               strict=False):
        for arm in arms:
            ps = sorted((p for p in points if p.arm == arm and p.target.value is not None), key=lambda p: p.iter)
            x = [float(getattr(p, attr)) for p in ps]
            color = arm_color(arm, arms)
            ax.plot(x, [p.target.value for p in ps], marker="o", ms=3.5, lw=1.4, color=color, label=arm)
            band = [(xi, p.target.lo, p.target.hi) for xi, p in zip(x, ps, strict=True) if p.target.has_ci]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color,
                                alpha=0.15, lw=0)
            for xi, p in zip(x, ps, strict=True):
                ax.annotate(str(p.iter), (xi, p.target.value), xytext=(2, 3), textcoords="offset points",
                            fontsize=6, color=MUTED)
        if goal is not None:
            ax.axhline(goal, color=HIGHLIGHT, lw=0.9, ls="--")
        ax.set_xlabel(label)
    axes[0][0].set_ylabel("target mAP@0.5")
    axes[0][0].legend(fontsize=7, frameon=False, loc="upper left")
    axes[0][0].set_title(f"{target}: learning curve (numbers: iteration)", loc="left", fontsize=9)
    for ax in axes[0][:-1]:
        ax.grid(axis="both", color="#E6E6E6", lw=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return _finish(fig, axes[0][-1], path, grid="both")


def copy_figure(src: Path | None, dst: Path) -> bool:
    """Copy a stage's figure into the report; False when the stage did not write it."""
    if src is None or not src.is_file():
        return False
    shutil.copyfile(src, dst)
    return True


def _finish(fig, ax, path: Path, *, grid: str) -> Path:
    """The report charts' common ending: a light grid along ``grid`` behind the data, no top or right
    spine, a tight layout, the file written and the figure closed."""
    ax.grid(axis=grid, color="#E6E6E6", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
