"""Tests for bddengine.curation.sampling: stratified subsampling with floors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bddengine.curation.sampling import (
    BucketAllocation,
    allocate,
    stratified_sample,
    stratified_sample_with_report,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis is a dev extra; the property test is skipped without it
    given = None


def _keys(counts: dict[str, int]) -> list[tuple[str]]:
    """Keys in a shuffled-looking but fixed order: a, b, a, c, ..."""
    keys = [(k,) for k, n in counts.items() for _ in range(n)]
    rng = np.random.default_rng(0)
    return [keys[i] for i in rng.permutation(len(keys))]


def test_three_rows() -> None:
    keys = [("clear",), ("foggy",), ("clear",)]
    assert stratified_sample(keys, 2, min_per_bucket=1).tolist() in ([0, 1], [1, 2])
    assert stratified_sample(keys, 3, min_per_bucket=1).tolist() == [0, 1, 2]
    assert stratified_sample(keys, 10, min_per_bucket=1).tolist() == [0, 1, 2]
    assert stratified_sample(keys, 0).tolist() == []


def test_proportional_with_largest_remainder() -> None:
    # 60/30/10 of 10 -> 6/3/1 exactly; of 7 -> 4.2/2.1/0.7 -> 4/2/1 (0.7 has the largest remainder).
    available = [60, 30, 10]
    assert allocate(available, 10, min_per_bucket=0) == [6, 3, 1]
    assert allocate(available, 7, min_per_bucket=0) == [4, 2, 1]


def test_floor_lifts_rare_bucket_and_excess_comes_back_proportionally() -> None:
    # Proportional shares of 100 are 90/9/1; a floor of 5 lifts the last to 5,
    # and the 4 extra come back from the buckets above their floor (85 and 4 above).
    alloc = allocate([900, 90, 10], 100, min_per_bucket=5)
    assert alloc == [86, 9, 5]
    assert sum(alloc) == 100


def test_bucket_smaller_than_floor_gives_all_it_has() -> None:
    alloc = allocate([1000, 3], 100, min_per_bucket=50)
    assert alloc == [97, 3]


def test_floors_alone_exceeding_target_split_the_target_over_the_floors() -> None:
    alloc = allocate([100, 100, 100, 2], 9, min_per_bucket=50)
    # 9 split 50:50:50:2 -> 2.96 x3 and 0.12: the three remainders of .96 win.
    assert alloc == [3, 3, 3, 0]


def test_shortfall_is_redistributed_to_buckets_with_spare() -> None:
    # power=0: equal shares of 30 -> 10/10/10, but the small bucket holds only 4;
    # its 6 go to the two buckets with spare frames, evenly.
    alloc = allocate([100, 100, 4], 30, min_per_bucket=0, power=0.0)
    assert alloc == [13, 13, 4]


def test_total_is_min_of_target_and_items() -> None:
    counts = {"clear": 500, "rainy": 120, "snowy": 77, "foggy": 3}
    keys = _keys(counts)
    for target in (0, 1, 10, 51, 199, 699, 700, 5000):
        indices = stratified_sample(keys, target, min_per_bucket=20)
        assert len(indices) == min(target, len(keys))
        assert len(set(indices.tolist())) == len(indices)


def test_sample_respects_allocation_and_report() -> None:
    counts = {"clear": 500, "rainy": 120, "snowy": 77, "foggy": 3}
    keys = _keys(counts)
    indices, report = stratified_sample_with_report(keys, 100, min_per_bucket=10)
    got = Counter(keys[i] for i in indices)
    assert report == [
        BucketAllocation(("clear",), 500, got[("clear",)]),
        BucketAllocation(("rainy",), 120, got[("rainy",)]),
        BucketAllocation(("snowy",), 77, got[("snowy",)]),
        BucketAllocation(("foggy",), 3, 3),
    ]
    assert got[("snowy",)] == 11  # 77/700 of 100 = 11
    assert sum(b.allocated for b in report) == 100
    assert report[-1].to_dict() == {"key": ["foggy"], "available": 3, "allocated": 3}


def test_deterministic_sorted_and_seed_dependent() -> None:
    keys = _keys({"a": 300, "b": 200, "c": 50})
    first = stratified_sample(keys, 100, seed=7)
    again = stratified_sample(keys, 100, seed=7)
    other = stratified_sample(keys, 100, seed=8)
    assert first.dtype == np.int64
    assert np.array_equal(first, again)
    assert np.all(np.diff(first) > 0)
    assert not np.array_equal(first, other)


def test_tuple_keys_with_two_attributes() -> None:
    keys = [("clear", "day")] * 40 + [("clear", "night")] * 40 + [("foggy", "night")] * 2
    indices = stratified_sample(keys, 20, min_per_bucket=2)
    got = Counter(keys[i] for i in indices)
    assert got == {("clear", "day"): 9, ("clear", "night"): 9, ("foggy", "night"): 2}


def test_negative_target_is_an_error() -> None:
    with pytest.raises(ValueError, match="target"):
        stratified_sample([("a",)], -1)


if given is not None:

    @settings(max_examples=100, deadline=None)
    @given(
        available=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12),
        target=st.integers(min_value=0, max_value=2000),
        floor=st.integers(min_value=0, max_value=60),
        power=st.sampled_from([0.0, 0.5, 1.0]),
    )
    def test_allocation_properties(available: list[int], target: int, floor: int, power: float) -> None:
        alloc = allocate(available, target, min_per_bucket=floor, power=power)
        total = min(target, sum(available))
        assert sum(alloc) == total
        assert all(0 <= a <= n for a, n in zip(alloc, available, strict=True))
        floors = [min(floor, n) for n in available]
        if sum(floors) <= total:
            assert all(a >= f for a, f in zip(alloc, floors, strict=True))
