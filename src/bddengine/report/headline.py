"""The headline table: per-slice mAP@0.5 of iteration 0 and of each arm's iteration 1.

One row per (slice, arm): the slice's iter-0 mAP@0.5, the arm's iter-1 mAP@0.5 (the
mean over its training seeds), the delta and its paired bootstrap 95% CI (frames
resampled once per resample, every detector scored on the same draw; with several
seeds, the seeds resampled too, so the CI holds training variance), and, with several
seeds, the seed-to-seed spread of the delta. Slices are every weather x timeofday x
scene slice of the eval pool with at least ``min_frames`` frames (optionally each
marginal too), worst iter-0 slice first, overall last.

A slice is *fragile* when one of its classes has fewer than ``fragile_min_gt`` GT
boxes there: its mAP is a mean over classes, so one class AP moving from 0 to 0.5 on
a handful of boxes can move the slice's mAP by 0.25. `compute_contrasts` adds the
arm-vs-control rows (difference of two arms' deltas, with its CI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from bddengine.bdd.categories import CLASSES, FRAME_ATTRIBUTES
from bddengine.evaluation import MatchCache, slice_keys
from bddengine.evaluation.paired import PairedDelta, paired_bootstrap_many, paired_difference
from bddengine.evaluation.slices import score_frames

GROUP_ORDER = {"slice": 0, "weather": 1, "timeofday": 2, "scene": 3, "overall": 4}

COLUMNS: tuple[str, ...] = (
    "grouping", *FRAME_ATTRIBUTES, "slice", "n_frames", "worst", "fragile", "fragile_classes", "map50_iter0",
    "arm", "n_seeds", "seeds", "map50_iter1", "delta", "ci_lo", "ci_hi", "ci_excludes_0", "ci_levels",
    "delta_min", "delta_max", "delta_std",
)

CONTRAST_COLUMNS: tuple[str, ...] = (
    "grouping", "slice", "n_frames", "worst", "fragile", "arm", "control", "n_seeds_arm", "n_seeds_control",
    "map50_arm", "map50_control", "diff", "ci_lo", "ci_hi", "ci_excludes_0", "ci_levels", "verdict",
)


@dataclass
class SliceSpec:
    """One row group of the headline table."""

    grouping: str
    key: dict[str, str]
    names: list[str]

    @property
    def rng_key(self) -> dict[str, str]:
        """What seeds the slice's bootstrap draws (the same for every arm and contrast)."""
        return {"grouping": self.grouping, **self.key}

    @property
    def label(self) -> str:
        """``rainy / night / city street``, ``weather: rainy`` or ``overall``."""
        return slice_label(self.grouping, self.key)


def slice_label(grouping: str, key: dict[str, str]) -> str:
    """Readable name of a slice or marginal."""
    if grouping == "overall":
        return "overall"
    if grouping == "slice":
        return " / ".join(key[a] for a in FRAME_ATTRIBUTES)
    return f"{grouping}: {key[grouping]}"


def headline_slices(
    gt: list[dict[str, Any]], *, min_frames: int, marginals: bool = False, keep: dict[str, str] | None = None
) -> list[SliceSpec]:
    """The full slices with at least ``min_frames`` frames, optional marginals, then overall.

    ``keep`` (the worst slice) is listed whatever its size, so its row is always there.
    """
    out: list[SliceSpec] = []
    groupings = [("slice", FRAME_ATTRIBUTES)]
    if marginals:
        groupings += [(a, (a,)) for a in FRAME_ATTRIBUTES]
    for grouping, attrs in groupings:
        groups: dict[tuple[str, ...], list[str]] = {}
        for name, key in slice_keys(gt, attrs).items():
            groups.setdefault(tuple(key[a] for a in attrs), []).append(name)
        for values, names in sorted(groups.items()):
            key = dict(zip(attrs, values, strict=True))
            if grouping == "slice" and len(names) < min_frames and key != keep:
                continue
            out.append(SliceSpec(grouping, key, sorted(names)))
    out.append(SliceSpec("overall", {}, sorted(f["name"] for f in gt)))
    return out


def compute_headline(
    cache0: MatchCache,
    arm_caches: dict[str, dict[int, MatchCache]],
    slices: list[SliceSpec],
    *,
    n_boot: int,
    seed: int,
    worst_key: dict[str, str] | None,
    fragile_min_gt: int = 10,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every slice for iteration 0 and every arm's iteration 1.

    Args:
        cache0: the iteration-0 detector's matches on the eval pool.
        arm_caches: arm -> training seed -> the iteration-1 detector's matches on the
            same eval pool. An arm without caches gets no rows.
        slices: from `headline_slices`.
        n_boot: paired bootstrap resamples per (slice, arm).
        seed: bootstrap seed (each slice's resamples depend on it and the slice only,
            so every arm is compared on the same draws).
        worst_key: the iteration-0 worst slice, flagged in the ``worst`` column.
        fragile_min_gt: a class with GT in the slice but fewer boxes than this marks it fragile.
        progress: show a progress bar.

    Returns:
        The long table (`COLUMNS`), sorted: full slices by iter-0 mAP@0.5 ascending,
        then marginals, then overall. Without any arm, one row per slice with the
        iteration-1 columns empty.
    """
    arms = [a for a, caches in arm_caches.items() if caches]
    rows: list[dict[str, Any]] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("paired bootstrap per slice and arm", total=len(slices) * max(1, len(arms)))
        for spec in slices:
            frames = np.unique(cache0.frame_indices(spec.names))
            base = _slice_base(cache0, spec, frames, worst_key, fragile_min_gt)
            if not arms:
                rows.append({**base, **_empty_arm()})
                bar.advance(task)
            for arm in arms:
                seeds = sorted(arm_caches[arm])
                d = paired_bootstrap_many(cache0, [arm_caches[arm][s] for s in seeds], spec.names,
                                          n_boot=n_boot, seed=seed, key=spec.rng_key)
                per_seed = [x for x in d.deltas if x is not None]
                rows.append({
                    **base,
                    "arm": arm,
                    "n_seeds": len(seeds),
                    "seeds": ",".join(str(s) for s in seeds),
                    "map50_iter1": d.map50_b,
                    "delta": d.delta,
                    **_ci_cells(d),
                    "delta_min": min(per_seed) if per_seed else None,
                    "delta_max": max(per_seed) if per_seed else None,
                    "delta_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
                })
                bar.advance(task)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return sort_headline(table, arms)


def compute_contrasts(
    cache0: MatchCache,
    arm_caches: dict[str, dict[int, MatchCache]],
    contrasts: list[tuple[str, str]],
    slices: list[SliceSpec],
    *,
    n_boot: int,
    seed: int,
    worst_key: dict[str, str] | None,
    fragile_min_gt: int = 10,
) -> pd.DataFrame:
    """Arm vs control on every slice: the difference of their deltas, with its CI.

    ``diff`` is arm minus control iteration-1 mAP@0.5 (each the mean over its seeds;
    iteration 0 cancels). Its CI draws the frames once for both arms and each arm's
    seeds on their own. ``verdict`` says "beats" only when the CI excludes 0.

    Returns:
        `CONTRAST_COLUMNS` rows, slices in headline order, pairs in the given order;
        pairs with an arm that has no iteration-1 caches are left out.
    """
    pairs = [(a, c) for a, c in contrasts if arm_caches.get(a) and arm_caches.get(c)]
    rows: list[dict[str, Any]] = []
    for spec in slices:
        frames = np.unique(cache0.frame_indices(spec.names))
        base = _slice_base(cache0, spec, frames, worst_key, fragile_min_gt)
        for arm, control in pairs:
            xs, ys = arm_caches[arm], arm_caches[control]
            d = paired_difference([xs[s] for s in sorted(xs)], [ys[s] for s in sorted(ys)], spec.names,
                                  n_boot=n_boot, seed=seed, key=spec.rng_key)
            cells = _ci_cells(d)
            if not cells["ci_excludes_0"]:
                verdict = "cannot tell apart"
            else:
                verdict = f"{arm} beats {control}" if (d.delta or 0) > 0 else f"{control} beats {arm}"
            rows.append({
                "grouping": base["grouping"], "slice": base["slice"], "n_frames": base["n_frames"],
                "worst": base["worst"], "fragile": base["fragile"], "arm": arm, "control": control,
                "n_seeds_arm": len(xs), "n_seeds_control": len(ys), "map50_arm": d.map50_b,
                "map50_control": d.map50_a, "diff": d.delta, **cells, "verdict": verdict,
            })
    return pd.DataFrame(rows, columns=list(CONTRAST_COLUMNS))


def _slice_base(cache0: MatchCache, spec: SliceSpec, frames: np.ndarray, worst_key: dict[str, str] | None,
                fragile_min_gt: int) -> dict[str, Any]:
    """The slice's own columns: name, size, iteration-0 mAP@0.5 and whether it is fragile."""
    thin = fragile_classes(cache0, frames, fragile_min_gt)
    return {
        "grouping": spec.grouping,
        **{a: spec.key.get(a, "*") for a in FRAME_ATTRIBUTES},
        "slice": spec.label,
        "n_frames": len(spec.names),
        "worst": spec.grouping == "slice" and worst_key is not None and spec.key == worst_key,
        "fragile": bool(thin),
        "fragile_classes": ", ".join(f"{c} ({n})" for c, n in thin.items()),
        "map50_iter0": score_frames(cache0, frames, spec.key, n_boot=0).map50,
    }


def fragile_classes(cache: MatchCache, frames: np.ndarray, min_gt: int) -> dict[str, int]:
    """Classes with GT in ``frames`` but fewer than ``min_gt`` (non-ignored) boxes: class -> boxes."""
    n_gt = cache.n_gt[:, frames].sum(axis=1)
    return {CLASSES[k]: int(n) for k, n in enumerate(n_gt) if 0 < n < min_gt}


def _ci_cells(d: PairedDelta) -> dict[str, Any]:
    return {"ci_lo": d.ci95[0] if d.ci95 else None, "ci_hi": d.ci95[1] if d.ci95 else None,
            "ci_excludes_0": d.excludes_zero, "ci_levels": d.levels}


def _empty_arm() -> dict[str, Any]:
    return {"arm": None, "n_seeds": 0, "seeds": "", "map50_iter1": None, "delta": None, "ci_lo": None,
            "ci_hi": None, "ci_excludes_0": False, "ci_levels": None, "delta_min": None, "delta_max": None,
            "delta_std": None}


def sort_headline(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Full slices worst (iter 0) first, then marginals, overall last; arms in the given order."""
    t = table.copy()
    t["_g"] = t["grouping"].map(GROUP_ORDER)
    t["_m"] = pd.to_numeric(t["map50_iter0"], errors="coerce").fillna(float("inf"))
    t["_a"] = t["arm"].map({a: i for i, a in enumerate(arms)}).fillna(0)
    t = t.sort_values(["_g", "_m", "n_frames", "slice", "_a"], ascending=[True, True, False, True, True],
                      kind="mergesort")
    return t.drop(columns=["_g", "_m", "_a"]).reset_index(drop=True)


def headline_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows (NaN -> None)."""
    return [{k: _clean(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def _clean(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def worst_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The worst slice's rows, one per arm."""
    return table[table["worst"].astype(bool)]
