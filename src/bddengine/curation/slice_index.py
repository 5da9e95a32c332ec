"""Slice index: how many frames each weather x timeofday x scene slice holds.

A slice is one combination of BDD's native frame attributes. The index shows
how long the tail is (foggy and tunnel frames are rare), which is what the
split, the per-slice evaluation and the miner care about.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.ticker import FuncFormatter

from bddengine.bdd.categories import ATTRIBUTE_VALUES, FRAME_ATTRIBUTES, known_attributes
from bddengine.plotting import plt
from bddengine.runs.layout import COLLECT

SLICE_COLUMNS: tuple[str, ...] = FRAME_ATTRIBUTES
"""The attributes that define a slice: weather, timeofday, scene."""

LABELED_COLUMN = "labeled"
"""Optional bool column of the frames table: the frame has labels."""

# One colour per time of day, in ATTRIBUTE_VALUES order: daytime, night,
# dawn/dusk, undefined.
TIMEOFDAY_COLORS: tuple[str, ...] = ("#f2b134", "#2b3a67", "#d9694a", "#a0a0a0")


@dataclass
class SliceIndex:
    """Frame counts per slice and per attribute.

    Attributes:
        slices: one row per weather x timeofday x scene slice present, columns
            weather, timeofday, scene, n_frames (and n_labeled, n_unlabeled when
            the frames table has a ``labeled`` column), largest first.
        weather_timeofday: the same per weather x timeofday.
        marginals: per attribute (weather, timeofday, scene), the counts per
            value, largest first.
    """

    slices: pd.DataFrame
    weather_timeofday: pd.DataFrame
    marginals: dict[str, pd.DataFrame]
    n_attributes_unknown: int = 0
    """Frames left out because their attributes are unknown (``attributes_known`` False)."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: every table as a list of row dicts."""
        return {
            "n_frames": int(self.slices["n_frames"].sum()),
            "n_slices": len(self.slices),
            "n_attributes_unknown": self.n_attributes_unknown,
            "slices": _records(self.slices),
            "weather_timeofday": _records(self.weather_timeofday),
            "marginals": {key: _records(df) for key, df in self.marginals.items()},
        }


def slice_index(frames: pd.DataFrame) -> SliceIndex:
    """Count frames per slice.

    Args:
        frames: a frames table with weather, timeofday and scene columns, and
            optionally bool ``labeled`` and ``attributes_known`` columns; frames whose
            attributes are unknown are counted apart, in no slice.

    Returns:
        The counts, every table sorted by frame count (largest first, ties in
        the attribute order of `ATTRIBUTE_VALUES`).

    Raises:
        KeyError: a slice column is missing; the message names it.
    """
    missing = [c for c in SLICE_COLUMNS if c not in frames.columns]
    if missing:
        raise KeyError(f"frames table lacks slice column(s) {missing}; it needs {list(SLICE_COLUMNS)}")
    n_unknown = len(frames) - len(frames := known_attributes(frames))
    return SliceIndex(
        slices=_count(frames, list(SLICE_COLUMNS)),
        weather_timeofday=_count(frames, ["weather", "timeofday"]),
        marginals={key: _count(frames, [key]) for key in SLICE_COLUMNS},
        n_attributes_unknown=n_unknown,
    )


def write_slice_index(out_dir: str | os.PathLike[str], index: SliceIndex) -> list[Path]:
    """Write ``slice_index.csv`` (the slices) and ``slice_index.json`` (everything).

    Args:
        out_dir: folder to write into (created if needed).
        index: from `slice_index`.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = COLLECT.slice_index_csv.at(out)
    json_path = COLLECT.slice_index_json.at(out)
    index.slices.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(index.to_dict(), indent=2) + "\n")
    return [csv_path, json_path]


def plot_slice_distribution(frames: pd.DataFrame, path: str | os.PathLike[str], *, n_rarest: int = 8) -> Path:
    """Draw the slice distribution: frames by weather and time of day, and the long tail.

    Panel (a): frames per weather, stacked by time of day, totals annotated.
    Panel (b): every weather x timeofday x scene slice sorted by frame count on
    a log scale, the rarest ``n_rarest`` named.

    Args:
        frames: a frames table with weather, timeofday and scene columns.
        path: the PNG to write, e.g. ``slice_distribution.png``.
        n_rarest: how many of the rarest slices to name in panel (b).

    Returns:
        The path written.
    """
    index = slice_index(frames)
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(15, 6.2), gridspec_kw={"width_ratios": [1, 1.45]})
    _plot_weather_timeofday(ax_a, index.weather_timeofday)
    _plot_long_tail(ax_b, index.slices, n_rarest=n_rarest)
    fig.suptitle(
        f"Slice distribution: {int(index.slices['n_frames'].sum()):,} frames in "
        f"{len(index.slices)} weather x timeofday x scene slices",
        fontsize=14,
        fontweight="bold",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_weather_timeofday(ax: plt.Axes, counts: pd.DataFrame) -> None:
    """Stacked bars: weather on x, one stack segment per time of day, totals on top."""
    table = counts.pivot_table(index="weather", columns="timeofday", values="n_frames", aggfunc="sum", fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    times = _ordered(table.columns, "timeofday")
    x = range(len(table))
    bottom = [0] * len(table)
    colors = dict(zip(ATTRIBUTE_VALUES["timeofday"], TIMEOFDAY_COLORS, strict=True))
    for t in times:
        color = colors.get(t)  # None: matplotlib's next colour, for an unknown value
        values = table[t].tolist()
        ax.bar(x, values, bottom=bottom, label=t, color=color, edgecolor="white", linewidth=0.5)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    top = max(bottom) if bottom else 1
    grand_total = sum(bottom) or 1
    for xi, total in zip(x, bottom, strict=True):
        # Rare weathers are invisible as bars on a linear axis: the label says it.
        ax.text(
            xi,
            total + top * 0.01,
            f"{total:,}\n{100 * total / grand_total:.1f}%",
            ha="center",
            va="bottom",
            fontsize=8.5,
        )
    ax.set_xticks(list(x), [str(w) for w in table.index], rotation=30, ha="right")
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("frames")
    ax.set_title("(a) Frames by weather, stacked by time of day")
    ax.legend(title="time of day", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _plot_long_tail(ax: plt.Axes, slices: pd.DataFrame, *, n_rarest: int) -> None:
    """Bars of every slice by frame count (log y), the rarest ones named."""
    counts = slices["n_frames"].tolist()
    x = list(range(len(counts)))
    n_label = min(n_rarest, len(counts))
    colors = ["#4c72b0"] * (len(counts) - n_label) + ["#c44e52"] * n_label
    ax.bar(x, counts, width=0.85, color=colors)
    ax.set_yscale("log")
    ax.set_ylim(0.7, max(counts, default=1) * 2.5)
    ax.set_xlim(-1, max(len(counts), 1))
    ax.set_xlabel("slice rank (most frames first)")
    ax.set_ylabel("frames (log scale)")
    ax.set_title("(b) Long tail: weather x timeofday x scene slices")
    ax.spines[["top", "right"]].set_visible(False)

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))

    rarest = slices.tail(n_label)
    lines = [f"{int(r.n_frames):>6,}  {r.weather} / {r.timeofday} / {r.scene}" for r in rarest.itertuples()]
    if lines:
        n_under_10 = sum(1 for c in counts if c < 10)
        ax.text(
            0.98,
            0.97,
            f"{n_under_10} of {len(counts)} slices have < 10 frames\n\n"
            f"the {n_label} rarest (red):\n" + "\n".join(lines),
            transform=ax.transAxes,
            ha="right",
            va="top",
            multialignment="left",
            fontsize=8.5,
            family="monospace",
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#c44e52"},
        )
    if counts:
        ax.annotate(
            f"largest: {slices.iloc[0]['weather']} / {slices.iloc[0]['timeofday']} / "
            f"{slices.iloc[0]['scene']} ({counts[0]:,})",
            xy=(0, counts[0]),
            xytext=(len(counts) * 0.06, counts[0] * 1.6),
            fontsize=8.5,
            arrowprops={"arrowstyle": "-", "color": "gray"},
        )


def _count(frames: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Frames per value combination of ``columns``, largest first."""
    grouped = frames.groupby(columns, sort=False, dropna=False)
    counts = grouped.size().rename("n_frames").reset_index()
    if LABELED_COLUMN in frames.columns:
        labeled = grouped[LABELED_COLUMN].sum().astype(int).rename("n_labeled").reset_index()
        counts = counts.merge(labeled, on=columns)
        counts["n_unlabeled"] = counts["n_frames"] - counts["n_labeled"]
    order = [_value_rank(counts[c], c) for c in columns]
    counts = counts.assign(**{f"_rank{i}": r for i, r in enumerate(order)})
    rank_columns = [f"_rank{i}" for i in range(len(columns))]
    counts = counts.sort_values(["n_frames", *rank_columns], ascending=[False] + [True] * len(columns))
    counts = counts.drop(columns=rank_columns).reset_index(drop=True)
    counts["n_frames"] = counts["n_frames"].astype(int)
    return counts


def _value_rank(values: pd.Series, key: str) -> pd.Series:
    """Position of each value in ATTRIBUTE_VALUES[key]; unknown values last."""
    known = {v: i for i, v in enumerate(ATTRIBUTE_VALUES.get(key, ()))}
    return values.map(lambda v: known.get(v, len(known)))


def _ordered(values: pd.Index, key: str) -> list[str]:
    """Values in ATTRIBUTE_VALUES order, unknown ones after in sorted order."""
    native = [v for v in ATTRIBUTE_VALUES.get(key, ()) if v in values]
    return native + sorted(str(v) for v in values if v not in native)


def _records(df: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as JSON-ready dicts (numpy ints become ints)."""
    return [
        {k: (int(v) if hasattr(v, "item") and not isinstance(v, str) else v) for k, v in row.items()}
        for row in df.to_dict(orient="records")
    ]
