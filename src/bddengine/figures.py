"""The stages' figures, drawn to files: the split, per-slice mAP, failure thumbnails, mined frames, label PR.

``plt`` comes from `bddengine.plotting`, which switches matplotlib to its file-only backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.curation.pools import EXCLUDED, POOLS, SLICE
from bddengine.mining.core import slice_caption
from bddengine.plotting import plt

GT_COLOR = (40, 220, 90)
PRED_COLOR = (255, 60, 60)
GREEN, RED = (40, 170, 70), (215, 40, 40)
# Pool colours for the split chart: train, val, eval, mining, excluded.
POOL_COLORS: tuple[str, ...] = ("#4c72b0", "#8172b2", "#c44e52", "#55a868", "#b0b0b0")


def plot_slice_map(
    table: pd.DataFrame, path: Path, *, worst: dict[str, Any] | None, min_frames: int, title: str
) -> Path:
    """Horizontal bars of mAP@0.5 per full slice with 95% CI whiskers, worst in red."""
    rows = table[(table["grouping"] == "slice") & table["map50"].notna()].copy()
    rows = rows.sort_values("map50", ascending=True)
    labels = [f"{r.weather} / {r.timeofday} / {r.scene}  (n={r.n_frames})" for r in rows.itertuples()]
    worst_key = worst["key"] if worst else None
    colors = []
    for r in rows.itertuples():
        key = {a: getattr(r, a) for a in FRAME_ATTRIBUTES}
        if key == worst_key:
            colors.append("#d62728")
        elif r.n_frames < min_frames:
            colors.append("#c7c7c7")
        else:
            colors.append("#1f77b4")
    height = max(3.0, 0.28 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(9, height), dpi=120)
    y = range(len(rows))
    lo = (rows["map50"] - rows["ci_lo"]).clip(lower=0).fillna(0)
    hi = (rows["ci_hi"] - rows["map50"]).clip(lower=0).fillna(0)
    ax.barh(list(y), rows["map50"], color=colors, xerr=[lo, hi], capsize=2,
            error_kw={"elinewidth": 0.8, "ecolor": "#444"})
    ax.set_yticks(list(y), labels, fontsize=7)
    overall = table.loc[table["grouping"] == "overall", "map50"]
    if len(overall) and pd.notna(overall.iloc[0]):
        ax.axvline(overall.iloc[0], color="#555", ls="--", lw=1, label=f"overall {overall.iloc[0]:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("mAP@0.5 (BDD100K protocol), whiskers: 95% bootstrap CI over frames")
    ax.set_xlim(0, 1)
    ax.set_title(f"{title}; red: worst slice, grey: < {min_frames} frames", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_boxes(image: Image.Image, gt: dict, pred: dict, *, score_threshold: float) -> Image.Image:
    """GT boxes in green, predictions above the threshold in red."""
    im = image.convert("RGB")
    d = ImageDraw.Draw(im)
    for lab in gt.get("labels") or []:
        b = lab["box2d"]
        d.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], outline=GT_COLOR, width=2)
    for lab in pred.get("labels") or []:
        if lab.get("score", 1.0) < score_threshold:
            continue
        b = lab["box2d"]
        d.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], outline=PRED_COLOR, width=1)
    return im


def plot_failures(
    items: list[tuple[str, dict, dict, dict]], path: Path, *, score_threshold: float, title: str,
    cols: int = 4,
) -> Path:
    """A grid of failure frames: (image path, GT frame, pred frame, failure record) each."""
    n = max(1, len(items))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows + 0.6), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (img_path, gt, pred, fail) in zip(axes.flat, items, strict=False):
        with Image.open(img_path) as im:
            ax.imshow(draw_boxes(im, gt, pred, score_threshold=score_threshold))
        rec = "n/a" if fail["recall"] is None else f"{fail['recall']:.2f}"
        ax.set_title(f"{fail['name'][:17]}  AP50 {fail['ap50']:.2f}  recall {rec}\n"
                     f"GT {fail['n_gt']}, TP {fail['tp']}, FP {fail['fp']}", fontsize=7)
    if not items:
        axes.flat[0].text(0.5, 0.5, "no failure frames", ha="center", va="center")
    fig.suptitle(f"Worst slice failures: {title}  (green: ground truth, red: predictions "
                 f">= {score_threshold})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_split_distribution(
    table: pd.DataFrame, path: Path, *, eval_slices: list[tuple], n_slices: int = 24
) -> Path:
    """Chart each slice's share of train / val / eval / mining / excluded, and the pool sizes.

    Panel (a): the ``n_slices`` largest slices, plus any eval slice not among
    them, and one row for all others, as 100% stacked bars; the eval slices are
    starred, the frame count is at the right.
    Panel (b): frames per pool.

    Args:
        table: from `bddengine.curation.pools.split_table`.
        path: the PNG to write.
        eval_slices: the eval pool's slices, starred in panel (a).
        n_slices: slices drawn one by one.
    """
    columns = [*POOLS, EXCLUDED]
    pool_colors = dict(zip(columns, POOL_COLORS, strict=True))
    is_eval = np.array([k in set(eval_slices) for k in table[list(SLICE)].itertuples(index=False, name=None)],
                       dtype=bool)
    shown = (np.arange(len(table)) < n_slices) | is_eval  # every eval slice, however small
    head = table[shown]
    labels = [
        f"{'* ' if e else ''}{r.weather} / {r.timeofday} / {r.scene}"
        for r, e in zip(head.itertuples(), is_eval[shown], strict=True)
    ]
    rows = head[columns]
    rest = table[~shown]
    if len(rest):
        rows = pd.concat([rows, rest[columns].sum().to_frame().T], ignore_index=True)
        labels.append(f"all {len(rest)} other slices")
    totals = rows.sum(axis=1).to_numpy()
    shares = rows.to_numpy() / np.maximum(totals, 1)[:, None]

    fig, (ax_a, ax_b) = plt.subplots(
        1, 2, figsize=(15, max(6.0, 0.34 * len(labels) + 2)), gridspec_kw={"width_ratios": [2.6, 1]}
    )
    y = np.arange(len(labels))
    left = np.zeros(len(labels))
    for j, col in enumerate(columns):
        ax_a.barh(y, shares[:, j], left=left, color=pool_colors[col], label=col, edgecolor="white",
                  linewidth=0.4)
        left += shares[:, j]
    for yi, total in zip(y, totals, strict=True):
        ax_a.text(1.01, yi, f"{int(total):,}", va="center", fontsize=8.5)
    ax_a.set_yticks(y, labels, fontsize=8.5)
    ax_a.invert_yaxis()
    ax_a.set_xlim(0, 1.09)
    ax_a.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax_a.set_xlabel("share of the slice's frames (frame count at right)")
    ax_a.set_title("(a) Where each weather / timeofday / scene slice went  (* = eval slice)")
    ax_a.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.06 if len(labels) > 20 else -0.1),
                frameon=False)
    ax_a.spines[["top", "right"]].set_visible(False)

    sizes = table[columns].sum()
    bars = ax_b.bar(columns, sizes.to_numpy(), color=[pool_colors[c] for c in columns])
    for bar, value in zip(bars, sizes.to_numpy(), strict=True):
        ax_b.text(bar.get_x() + bar.get_width() / 2, value, f"{int(value):,}", ha="center", va="bottom",
                  fontsize=9)
    ax_b.set_ylabel("frames")
    ax_b.set_title("(b) Frames per pool")
    ax_b.set_ylim(0, max(float(sizes.max()), 1.0) * 1.12)
    ax_b.spines[["top", "right"]].set_visible(False)
    fig.suptitle(
        f"Split: {int(sizes.sum()):,} frames in {len(table)} slices; eval balanced over "
        f"{len(eval_slices)} slices, whole videos per pool",
        fontsize=13, fontweight="bold",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pr(sweep: dict[str, dict[str, list]], path: Path, *, accept: float, drop: float,
            target: float, title: str) -> Path:
    """Left: precision vs recall (per class thin, overall bold, the accept point marked);
    right: precision and recall vs the score threshold (accept and drop marked)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(CLASSES):
        s = sweep.get(c)
        if not s or not s["threshold"] or s["recall"][0] is None:
            continue
        ax.plot(s["recall"], s["precision"], lw=0.9, color=cmap(i), marker=".", ms=3, label=c)
        bx.plot(*_steps(s["threshold"], s["recall"]), lw=0.7, color=cmap(i), alpha=0.6)
    s = sweep["overall"]
    if s["threshold"] and s["recall"][0] is not None:
        ax.plot(s["recall"], s["precision"], lw=2.8, color="black", marker="o" if len(s["recall"]) <= 30 else None,
                ms=4, label="overall")
        at = [i for i, t in enumerate(s["threshold"]) if t >= accept]
        if at:
            j = at[-1]
            ax.scatter([s["recall"][j]], [s["precision"][j]], s=90, color="red", zorder=5,
                       label=f"accept >= {accept:g}: P {s['precision'][j]:.2f} R {s['recall'][j]:.2f}")
        bx.plot(*_steps(s["threshold"], s["precision"]), lw=2.8, color="black", label="precision (overall)")
        bx.plot(*_steps(s["threshold"], s["recall"]), lw=2.8, color="black", ls="--", label="recall (overall)")
    else:
        ax.text(0.5, 0.5, "no scored boxes", ha="center", transform=ax.transAxes)
    for a_ in (ax, bx):
        a_.axhline(target, color="grey", ls=":", lw=1)
        a_.set_ylim(0, 1.02)
    bx.axvline(accept, color="red", lw=1.2, label=f"accept {accept:g}")
    bx.axvline(drop, color="orange", lw=1.2, label=f"drop {drop:g}")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("recall (IoU 0.5)")
    ax.set_ylabel("precision")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no machine box scored against ground truth", ha="center", va="center", fontsize=9,
                transform=ax.transAxes)
    bx.set_title("bold: overall precision and recall; thin: recall per class", fontsize=9)
    bx.set_xlabel("score threshold (boxes scoring at least this)")
    bx.set_ylabel(f"precision / recall; dotted: target precision {target:g}")
    bx.set_xlim(0, 1.0)
    bx.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _steps(thresholds: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """A sweep as a step line over the threshold: each value holds from its threshold down
    to the next lower one, and the lowest down to 0 (every box kept)."""
    xs, ys = [], []
    for k, (t, v) in enumerate(zip(thresholds, values, strict=True)):
        nxt = thresholds[k + 1] if k + 1 < len(thresholds) else 0.0
        xs += [t, nxt]
        ys += [v, v]
    return xs, ys


def plot_mined_grid(frames: list[dict[str, Any]], path: Path, *, title: str, cols: int = 10) -> Path:
    """Thumbnails of the mined frames in rank order, outlined green (slice match) or red.

    Each is captioned with its rank and abbreviated ``weather/timeofday/scene``.
    """
    from PIL import Image, ImageDraw

    tw, th, cap, border, pad, head = 192, 108, 16, 4, 4, 28
    n = max(1, len(frames))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    cw, ch = tw + 2 * border + pad, th + 2 * border + cap + pad
    sheet = Image.new("RGB", (max(cols * cw + pad, 640), rows * ch + head + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    draw.text((pad, 6), title, fill="black", font=_font(14))
    if not frames:
        draw.text((pad, head + 10), "no frames mined", fill="black", font=font)
    for i, f in enumerate(frames):
        x, y = pad + (i % cols) * cw, head + (i // cols) * ch
        color = GREEN if f["matches_slice"] else RED
        draw.rectangle([x, y, x + tw + 2 * border - 1, y + th + 2 * border - 1], fill=color)
        try:
            with Image.open(f["path"]) as im:
                im.draft("RGB", (tw * 2, th * 2))  # JPEG: decode at a reduced scale
                thumb = im.convert("RGB").resize((tw, th))
        except OSError:
            thumb = Image.new("RGB", (tw, th), (90, 90, 90))
        sheet.paste(thumb, (x + border, y + border))
        sim = f"  {f['similarity']:.2f}" if f.get("similarity") is not None else ""
        draw.text((x, y + th + 2 * border + 1), f"#{f['rank']} {slice_caption(f)}{sim}", fill=color, font=font)
    sheet.save(path)
    return path


def _font(size: int):
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default()
