"""Stratified subsampling: keep every slice of the data in a smaller set.

Items are grouped into buckets by a stratum key, e.g. ``(weather, timeofday)``.
Each bucket gets its share of the target (proportional to its size by default),
rounded by the largest-remainder method so the total is exact, with a floor of
``min_per_bucket`` items (or all it has) so rare buckets such as foggy frames are
not rounded away. Pure functions: the caller picks the keys and uses the indices.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class BucketAllocation:
    """How many items one stratum had and how many were taken.

    Attributes:
        key: the stratum key, e.g. ``("foggy", "night")``.
        available: items with that key.
        allocated: items sampled from it.
    """

    key: tuple[Hashable, ...]
    available: int
    allocated: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for result.json."""
        return {"key": list(self.key), "available": self.available, "allocated": self.allocated}


def stratified_sample(
    keys: Sequence[tuple[Hashable, ...]],
    target: int,
    *,
    min_per_bucket: int = 50,
    seed: int = 42,
    power: float = 1.0,
) -> np.ndarray:
    """Pick ``min(target, len(keys))`` item indices, stratified by key.

    Args:
        keys: one stratum key per item, e.g. ``(weather, timeofday)``.
        target: how many items to pick.
        min_per_bucket: floor per bucket (a bucket smaller than this gives all it has).
        seed: random seed; the same inputs and seed give the same indices.
        power: shares are proportional to ``available ** power``. 1.0 is
            proportional sampling; 0.0 gives every bucket the same share; values
            in between lean toward rare buckets.

    Returns:
        Sorted int64 indices into ``keys``.
    """
    indices, _ = stratified_sample_with_report(keys, target, min_per_bucket=min_per_bucket, seed=seed, power=power)
    return indices


def stratified_sample_with_report(
    keys: Sequence[tuple[Hashable, ...]],
    target: int,
    *,
    min_per_bucket: int = 50,
    seed: int = 42,
    power: float = 1.0,
) -> tuple[np.ndarray, list[BucketAllocation]]:
    """`stratified_sample`, plus the per-bucket allocation table.

    Args:
        keys: one stratum key per item.
        target: how many items to pick.
        min_per_bucket: floor per bucket.
        seed: random seed.
        power: share exponent, see `stratified_sample`.

    Returns:
        The sorted indices, and one `BucketAllocation` per bucket, largest
        bucket first.

    Raises:
        ValueError: a negative target or floor.
    """
    if target < 0 or min_per_bucket < 0:
        raise ValueError(f"target ({target}) and min_per_bucket ({min_per_bucket}) must be >= 0")
    buckets = _group(keys)
    bucket_keys = list(buckets)
    available = [len(buckets[k]) for k in bucket_keys]
    allocated = allocate(available, target, min_per_bucket=min_per_bucket, power=power)

    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for key, n in zip(bucket_keys, allocated, strict=True):
        members = np.asarray(buckets[key], dtype=np.int64)
        if n == len(members):
            chosen.append(members)
        elif n > 0:
            chosen.append(rng.choice(members, size=n, replace=False))
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)

    report = [
        BucketAllocation(key=k, available=a, allocated=n)
        for k, a, n in zip(bucket_keys, available, allocated, strict=True)
    ]
    report.sort(key=lambda b: -b.available)  # stable: ties keep the key order
    return indices, report


def allocate(
    available: Sequence[int],
    target: int,
    *,
    min_per_bucket: int = 50,
    power: float = 1.0,
) -> list[int]:
    """Decide how many items each bucket gives.

    1. Shares of ``min(target, sum(available))`` proportional to
       ``available ** power``, rounded by largest remainder.
    2. Each bucket is raised to its floor ``min(min_per_bucket, available)`` and
       capped at what it has.
    3. If floors pushed the total over the target, the excess is taken back from
       buckets above their floor, in proportion to how far above they are.
       If caps left it under, the shortfall goes to buckets with spare items, in
       proportion to their share weight.
    When the floors alone exceed the target, the target is split over the
    floors in proportion to them.

    Args:
        available: items per bucket.
        target: how many items to pick in all.
        min_per_bucket: floor per bucket.
        power: share exponent.

    Returns:
        Items per bucket; they sum to ``min(target, sum(available))`` and none
        exceeds its bucket's ``available``.
    """
    total = min(target, sum(available))
    floors = [min(min_per_bucket, a) for a in available]
    if sum(floors) >= total:
        return _largest_remainder(total, [Fraction(f) for f in floors], caps=floors)

    weights = [Fraction(a**power) if a > 0 else Fraction(0) for a in available]
    shares = _largest_remainder(total, weights)
    alloc = [min(max(s, f), a) for s, f, a in zip(shares, floors, available, strict=True)]

    while (excess := sum(alloc) - total) > 0:
        above = [al - f for al, f in zip(alloc, floors, strict=True)]
        take = _largest_remainder(excess, [Fraction(x) for x in above], caps=above)
        alloc = [al - t for al, t in zip(alloc, take, strict=True)]
    while (shortfall := total - sum(alloc)) > 0:
        spare = [a - al for a, al in zip(available, alloc, strict=True)]
        room = [w if s > 0 else Fraction(0) for w, s in zip(weights, spare, strict=True)]
        give = _largest_remainder(shortfall, room, caps=spare)
        alloc = [al + g for al, g in zip(alloc, give, strict=True)]
    return alloc


def _largest_remainder(total: int, weights: Sequence[Fraction], caps: Sequence[int] | None = None) -> list[int]:
    """Split ``total`` in proportion to ``weights`` into integers summing to it.

    Exact (Fractions). Ties in the remainder go to the earlier bucket. With
    ``caps``, each part is cut to its cap, so the parts may then sum to less.
    """
    weight_sum = sum(weights, Fraction(0))
    if total <= 0 or weight_sum == 0:
        return [0] * len(weights)
    quotas = [total * w / weight_sum for w in weights]
    parts = [int(q) for q in quotas]  # floor: quotas are >= 0
    left = total - sum(parts)
    by_remainder = sorted(range(len(quotas)), key=lambda i: -(quotas[i] - parts[i]))
    for i in by_remainder[:left]:
        parts[i] += 1
    if caps is not None:
        parts = [min(p, c) for p, c in zip(parts, caps, strict=True)]
    return parts


def _group(keys: Sequence[tuple[Hashable, ...]]) -> dict[tuple[Hashable, ...], list[int]]:
    """Item indices per key, keys in sorted order (first-seen order if unsortable)."""
    groups: dict[tuple[Hashable, ...], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    try:
        order = sorted(groups)
    except TypeError:
        return groups
    return {k: groups[k] for k in order}
