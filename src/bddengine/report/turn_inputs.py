"""The lineages' runs read for the many-turns analysis: eval matches, labeled frames and dollars.

`lineage_scores` turns each `LineageStep` (an (arm, seed, iteration) with its eval run and the
autolabel runs it trained on) into a `LineageScore`: the eval's matches against the iteration-0
ground truth, and what the lineage had cost by then. The bill is the one-turn report's
(`report.costs`): what humans were paid for the lineage's labeled frames, the labeler's compute,
and the lineage's trainings at ``autolabel.usd_per_gpu_hour`` of wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bddengine.evaluation import MatchCache, UnknownFrameError, build_match_cache
from bddengine.report.inputs import read_json
from bddengine.report.tables import is_num
from bddengine.report.turn_scores import LineageScore
from bddengine.runs import RunRef
from bddengine.runs.layout import AUTOLABEL, EVAL
from bddengine.runs.lineage import recorded_input
from bddengine.runs.lineages import LineageStep


def label_bill(ref: RunRef) -> tuple[float, float | None]:
    """(frames humans labeled, dollars paid to humans plus the labeler's compute) of one autolabel run."""
    q = read_json(AUTOLABEL.quality.at(ref))
    cost: dict[str, Any] = {}
    for src in (q if isinstance(q, dict) else {}, ref.result().get("metrics") or {}):
        if isinstance(src.get("cost"), dict):
            cost = src["cost"]
            break
    frames = float(cost.get("frames_to_humans") or 0)
    human = cost.get("usd_human", cost.get("usd_human_all") if cost.get("human_labeler") else None)
    if not is_num(human):
        return frames, None
    return frames, float(human) + float(cost.get("usd_compute") or 0.0)


def training_usd(eval_run: RunRef, usd_per_gpu_hour: float) -> float:
    """Compute dollars of every training of the lineage up to this eval's model (iteration 1 on)."""
    runs_dir = eval_run.path.parent
    train = recorded_input(runs_dir, eval_run.result(), "train")
    total, seen = 0.0, set()
    while train is not None and (train.iter or 0) > 0 and train.name not in seen:
        seen.add(train.name)
        res = train.result()
        if is_num(res.get("wall_time_s")):
            total += float(res["wall_time_s"]) / 3600 * usd_per_gpu_hour
        train = recorded_input(runs_dir, res, "train")
    return total


def lineage_scores(
    steps: Sequence[LineageStep], gt: list[dict[str, Any]], cache0: MatchCache, *, usd_per_gpu_hour: float
) -> tuple[list[LineageScore], list[str]]:
    """Every step scored against the iteration-0 eval's ground truth, and notes on the steps left out.

    A lineage whose eval is unreadable or scored other frames ends at the step before it.
    """
    caches: dict[str, MatchCache | None] = {}
    out: list[LineageScore] = []
    notes: list[str] = []
    broken: set[tuple[str, int]] = set()
    for step in steps:  # the config's arm order, each lineage iteration by iteration
        if (step.arm, step.seed) in broken:
            continue
        if step.iter == 0:
            out.append(LineageScore(step.arm, step.seed, 0, cache0, 0.0, 0.0))
            continue
        name = step.eval_run.name
        if name not in caches:
            caches[name] = None
            preds = read_json(EVAL.preds.at(step.eval_run))
            if not isinstance(preds, list):
                notes.append(f"{name}/{EVAL.preds.file} is missing or unreadable: the lineage ends before it")
            else:
                try:
                    caches[name] = build_match_cache(gt, preds)
                except UnknownFrameError as exc:
                    notes.append(f"{name} scored other frames than the iteration-0 eval ({exc}): left out")
        cache = caches[name]
        if cache is None:
            broken.add((step.arm, step.seed))
            continue
        bills = [label_bill(ref) for ref in step.autolabel_runs]
        frames = sum(f for f, _ in bills)
        usd = None if any(u is None for _, u in bills) else \
            sum(u for _, u in bills) + training_usd(step.eval_run, usd_per_gpu_hour)  # type: ignore[misc]
        out.append(LineageScore(step.arm, step.seed, step.iter, cache, frames, usd))
    return out, notes

