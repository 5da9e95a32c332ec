"""Figures of the evaluation: per-slice mAP with CIs, and failure thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from bddengine.bdd.categories import FRAME_ATTRIBUTES  # noqa: E402

GT_COLOR = (40, 220, 90)
PRED_COLOR = (255, 60, 60)


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
