"""Tests for bddengine.curation.slice_index: the slice index, its files and the long-tail chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from bddengine.curation.slice_index import plot_slice_distribution, slice_index, write_slice_index


def _frames(rows: list[tuple[str, str, str, int]], labeled: bool | None = None) -> pd.DataFrame:
    """A frames table with ``n`` copies of each (weather, timeofday, scene)."""
    records = []
    for weather, timeofday, scene, n in rows:
        for i in range(n):
            record = {"weather": weather, "timeofday": timeofday, "scene": scene}
            if labeled is not None:
                record["labeled"] = i % 2 == 0  # every other frame
            records.append(record)
    return pd.DataFrame(records)


ROWS = [
    ("clear", "daytime", "city street", 6),
    ("clear", "night", "highway", 3),
    ("foggy", "night", "tunnel", 1),
    ("clear", "daytime", "highway", 3),
]


def test_slice_counts_sorted_largest_first() -> None:
    index = slice_index(_frames(ROWS))
    assert index.slices.to_dict(orient="records") == [
        {"weather": "clear", "timeofday": "daytime", "scene": "city street", "n_frames": 6},
        # A tie keeps ATTRIBUTE_VALUES order: daytime before night.
        {"weather": "clear", "timeofday": "daytime", "scene": "highway", "n_frames": 3},
        {"weather": "clear", "timeofday": "night", "scene": "highway", "n_frames": 3},
        {"weather": "foggy", "timeofday": "night", "scene": "tunnel", "n_frames": 1},
    ]
    assert index.weather_timeofday.to_dict(orient="records") == [
        {"weather": "clear", "timeofday": "daytime", "n_frames": 9},
        {"weather": "clear", "timeofday": "night", "n_frames": 3},
        {"weather": "foggy", "timeofday": "night", "n_frames": 1},
    ]
    assert index.marginals["scene"]["scene"].tolist() == ["city street", "highway", "tunnel"]
    assert index.marginals["scene"]["n_frames"].tolist() == [6, 6, 1]
    assert index.marginals["weather"]["n_frames"].tolist() == [12, 1]


def test_labeled_column_adds_labeled_counts() -> None:
    slices = slice_index(_frames(ROWS, labeled=True)).slices
    assert slices["n_labeled"].tolist() == [3, 2, 2, 1]
    assert slices["n_unlabeled"].tolist() == [3, 1, 1, 0]


def test_missing_column_is_named() -> None:
    with pytest.raises(KeyError, match="scene"):
        slice_index(pd.DataFrame({"weather": ["clear"], "timeofday": ["night"]}))


def test_write_slice_index(tmp_path: Path) -> None:
    paths = write_slice_index(tmp_path / "out", slice_index(_frames(ROWS, labeled=True)))
    assert [p.name for p in paths] == ["slice_index.csv", "slice_index.json"]
    with (tmp_path / "out/slice_index.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["weather", "timeofday", "scene", "n_frames", "n_labeled", "n_unlabeled"]
    assert rows[-1] == {
        "weather": "foggy",
        "timeofday": "night",
        "scene": "tunnel",
        "n_frames": "1",
        "n_labeled": "1",
        "n_unlabeled": "0",
    }
    doc = json.loads((tmp_path / "out/slice_index.json").read_text())
    assert doc["n_frames"] == 13
    assert doc["n_slices"] == 4
    assert set(doc["marginals"]) == {"weather", "timeofday", "scene"}
    assert doc["marginals"]["timeofday"][0] == {
        "timeofday": "daytime",
        "n_frames": 9,
        "n_labeled": 5,
        "n_unlabeled": 4,
    }
    assert len(doc["weather_timeofday"]) == 3


def test_plot_writes_png(tmp_path: Path) -> None:
    path = plot_slice_distribution(_frames(ROWS), tmp_path / "plots/slice_distribution.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
