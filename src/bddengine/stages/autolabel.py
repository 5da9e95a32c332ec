"""Stage ``autolabel``: label the mined frames and route every box to accept / review / drop.

resolve the mine run (and through it the eval, split and collect runs) -> build the
labeler (grounded, detector or oracle) -> label the mined frames once -> route each
box by score (the pyramid) -> accepted boxes become YOLO training data for
``train --iter N+1`` -> score the labels against the hidden ground truth (per-class
P/R at IoU 0.5, a precision/recall sweep over the threshold) -> cost table ->
autolabels.json, review_queue.json, quality.json, autolabel_pr.png, result.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.config import AutolabelConfig, EngineConfig, arm_name, config_dict, fingerprint, parse_arm
from bddengine.errors import StageInputError
from bddengine.figures import plot_pr
from bddengine.integrations.yolo_export import link_image, yolo_labels
from bddengine.labeling.labelers import gt_frames
from bddengine.labeling.registry import LABELERS
from bddengine.labeling.routing import (
    ACCEPT,
    REVIEW,
    cost_table,
    gt_counts,
    label_quality,
    match_frames,
    route_counts,
    route_frames,
    skippable_share,
    sweep_all,
)
from bddengine.runs import RunRef, StageRun, find_same_run, resolve_input
from bddengine.runs.layout import AUTOLABEL, COLLECT, MINE, TRAIN
from bddengine.runs.lineage import upstream
from bddengine.stages import StageOutcome
from bddengine.weights_trust import check_weights

IOU_THRESHOLD = 0.5


def run(
    cfg: EngineConfig,
    *,
    iter: int = 0,
    arm: str | None = None,
    force: bool = False,
    source: str | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Auto-label the frames one mining arm picked.

    Args:
        cfg: the engine config (``autolabel`` section; ``mine`` for the default arm).
        iter: the iteration whose mined frames to label.
        arm: the mining arm (default: ``mine.strategy`` with ``mine.embedding``).
        force: re-label even when an identical run exists.
        source: explicit mine run (``--from``); its iteration and arm are used.
        progress: show progress bars.
    """
    a = cfg.autolabel
    arm = arm or arm_name(cfg.mine.strategy, cfg.mine.embedding)
    try:
        parse_arm(arm)
    except ValueError as exc:
        raise StageInputError(f"--arm {exc}") from None
    mine = resolve_input(cfg.runs_dir, "mine", explicit=source, iter=iter, tag=arm, hint=_mine_hint(iter, arm))
    if source:
        iter = mine.iter if mine.iter is not None else iter
        arm = mine.tag or arm
    mined_path = MINE.mined.require(mine, f"{_mine_hint(iter, arm)} --force")
    ev, split, collect = upstream_runs(mine)
    imgsz = a.imgsz or cfg.train.imgsz
    model_ref = labeler_inputs(a, ev)
    for role, path in model_ref.items():
        check_weights(path, _WEIGHTS_KEY[a.labeler if role == "weights" else "sam"], runs_dir=cfg.runs_dir)
    fp = fingerprint(config_dict(a), imgsz, cfg.seed, mine.name, str(mine.path),
                     {k: str(v) for k, v in model_ref.items()})
    same = None if force else find_same_run(cfg.runs_dir, "autolabel", fp, iter=iter, tag=arm)
    if same is not None:
        return _outcome(same, skipped=True)

    mined = json.loads(mined_path.read_text())
    frames = mined_frames(mined, COLLECT.manifest.read(collect), mined_path)
    boxes = COLLECT.boxes.read(collect, columns=["name", "category", "x1", "y1", "x2", "y2", "ignored"])
    with_gt = [f["name"] for f in frames if f["has_gt"]]
    gt = gt_frames(boxes, with_gt)
    inputs = {"mine": str(mine.path), "eval": str(ev.path), "split": str(split.path),
              "collect": str(collect.path)} | {k: str(v) for k, v in model_ref.items()}
    with StageRun(cfg.runs_dir, "autolabel", config_dict(cfg), cfg.seed, fp, iter=iter, tag=arm,
                  inputs=inputs) as run:
        labeler = LABELERS[a.labeler].build(a, model_ref, gt, imgsz)
        t0 = time.perf_counter()
        raw = labeler.label(frames, progress=progress)
        wall = time.perf_counter() - t0
        routed = route_frames(raw, accept=a.accept, drop=a.drop, per_class=a.per_class)
        AUTOLABEL.autolabels.write(run, autolabel_frames(frames, routed))
        queue = review_queue(frames, routed)
        AUTOLABEL.review_queue.write(run, queue)
        yolo = write_yolo(AUTOLABEL.yolo_dir(run), frames, routed, include_empty=labeler.trusts_empty)
        quality = score_labels(routed, gt, a, labeler=labeler.name, wall_s=wall, n_frames=len(frames),
                               n_review_frames=len(queue))
        AUTOLABEL.quality.write(run, quality)
        plot_pr(quality["sweep"], AUTOLABEL.pr_chart.at(run), accept=a.accept, drop=a.drop,
                target=a.target_precision, title=f"{labeler.name} labels of iter {iter} {arm}: "
                f"precision / recall vs score threshold ({quality['n_frames_scored']} frames)")
        counts = route_counts(routed)
        ref = run.commit(
            outputs=AUTOLABEL.outputs(),
            metrics={
                "labeler": labeler.name,
                "n_frames": len(frames),
                "n_boxes": counts,
                "n_review_frames": len(queue),
                "n_train_images": yolo["n_images"],
                "n_train_boxes": yolo["n_boxes"],
                "n_empty_train_images": yolo["n_empty"],
                "precision": quality["accepted"]["overall"]["precision"],
                "recall": quality["accepted"]["overall"]["recall"],
                "per_class": {c: {"precision": q["precision"], "recall": q["recall"]}
                              for c, q in quality["accepted"]["per_class"].items()},
                "cost": quality["cost"],
                "skippable_share": quality["skippable"]["recall"] if quality["skippable"] else None,
                "skippable": quality["skippable"],
                "skippable_note": quality["skippable_note"],
                "labeler_wall_s": round(wall, 3),
            },
            extra={"yolo_export": yolo},
        )
    out = _outcome(ref, skipped=False)
    if cfg.fiftyone.enabled:  # after commit: a mirror problem never fails the run, it is printed
        from bddengine.integrations.fiftyone import try_mirror_run

        out.look_at.append(try_mirror_run(cfg, ref))
    return out


_WEIGHTS_KEY = {"detector": "autolabel.detector_model", "grounded": "autolabel.grounded_model",
                "sam": "autolabel.sam_model"}


def _mine_hint(iter: int, arm: str) -> str:
    strategy, embedding = parse_arm(arm)
    return f"bddengine mine --iter {iter} --strategy {strategy}" + (
        " --embedding detector" if embedding == "detector" else "")


def upstream_runs(mine: RunRef) -> tuple[RunRef, RunRef, RunRef]:
    """The eval, split and collect runs behind a mine run."""
    ev, split = upstream(mine, "eval"), upstream(mine, "split")
    collect = upstream(split, "collect")
    for artifact in (COLLECT.manifest, COLLECT.boxes):
        artifact.require(collect, "bddengine collect --force")
    return ev, split, collect


def labeler_inputs(a: AutolabelConfig, ev: RunRef) -> dict[str, Path]:
    """The weights files the configured labeler reads, resolved locally.

    Raises:
        StageInputError: a weights file is missing; the message says where to put it.
    """
    def iteration_weights() -> Path:
        train = upstream(ev, "train")
        weights = TRAIN.best_weights.at(train)
        if not weights.is_file():
            raise StageInputError(f"{weights} missing (autolabel.detector_model=iter): re-run "
                                  f"`bddengine train --iter {train.iter or 0} --force`")
        return weights

    return LABELERS[a.labeler].weights(a, iteration_weights)


def mined_frames(mined: dict[str, Any], manifest: pd.DataFrame, source: Path) -> list[dict[str, Any]]:
    """The mined frames with their image size and whether hidden ground truth exists.

    Raises:
        StageInputError: mined.json has no frames list, names a frame the collect
            manifest lacks, or a frame's image is missing.
    """
    if not isinstance(mined.get("frames"), list):
        raise StageInputError(f"{source}: no `frames` list; re-run the mine stage with --force")
    info = manifest.set_index("name")
    out = []
    for f in mined["frames"]:
        if f["name"] not in info.index:
            raise StageInputError(f"{source}: frame {f['name']} is not in the collect manifest; "
                                  "re-run the mine stage with --force")
        if not Path(f["path"]).is_file():
            raise StageInputError(f"{source}: image of {f['name']} missing at {f['path']}")
        row = info.loc[f["name"]]
        out.append({**f, "width": int(row["width"]), "height": int(row["height"]),
                    "has_gt": bool(row["has_gt"]) if "has_gt" in info.columns else True})
    return out


def autolabel_frames(frames: list[dict[str, Any]], routed: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """BDD-format frames of every mined frame, each label with its score and route."""
    return [{"name": f["name"],
             "attributes": {k: f[k] for k in ("weather", "timeofday", "scene") if k in f},
             "labels": routed.get(f["name"], [])} for f in frames]


def review_queue(frames: list[dict[str, Any]], routed: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Frames with at least one box to review (mined order), with those boxes."""
    out = []
    for f in frames:
        boxes = [b for b in routed.get(f["name"], []) if b["route"] == REVIEW]
        if boxes:
            out.append({"name": f["name"], "path": str(f["path"]), "n_review": len(boxes), "boxes": boxes})
    return out


def write_yolo(root: Path, frames: list[dict[str, Any]], routed: dict[str, list[dict]], *,
               include_empty: bool) -> dict[str, Any]:
    """Accepted boxes as YOLO training data: ``images/train`` links and ``labels/train`` files.

    A frame is written when it has at least one accepted box, or, with
    ``include_empty`` (a labeler that knows a frame is empty), when it has none.

    Raises:
        StageInputError: two frames share a file-name stem.
    """
    images, labels = root / "images" / "train", root / "labels" / "train"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    stems = [Path(f["name"]).stem for f in frames]
    if len(set(stems)) != len(stems):
        raise StageInputError(f"mined frame names collide on their stem: {sorted(stems)[:3]}...")
    stats: dict[str, Any] = {"n_images": 0, "n_boxes": 0, "n_empty": 0, "n_clipped": 0,
                             "n_degenerate": 0, "n_duplicate": 0, "link_methods": {}}
    for f in frames:
        accepted = [b for b in routed.get(f["name"], []) if b["route"] == ACCEPT]
        table = pd.DataFrame({
            "category": [b["category"] for b in accepted],
            "ignored": [False] * len(accepted),
            **{k: [float(b["box2d"][k]) for b in accepted] for k in ("x1", "y1", "x2", "y2")},
        })
        lines, counts = yolo_labels(table, float(f["width"]), float(f["height"]))
        if not lines and not include_empty:
            continue
        method = link_image(f["path"], images / f["name"])
        stats["link_methods"][method] = stats["link_methods"].get(method, 0) + 1
        (labels / f"{Path(f['name']).stem}.txt").write_text("".join(line + "\n" for line in lines))
        stats["n_images"] += 1
        stats["n_boxes"] += len(lines)
        stats["n_empty"] += not lines
        for k in ("clipped", "degenerate", "duplicate"):
            stats[f"n_{k}"] += counts[k]
    return stats


def score_labels(routed: dict[str, list[dict]], gt: dict[str, list[dict]], a: AutolabelConfig, *,
                 labeler: str, wall_s: float, n_frames: int, n_review_frames: int) -> dict[str, Any]:
    """Quality of the labels against the hidden ground truth, the sweep, and the cost table."""
    states = match_frames(routed, gt, iou_thr=IOU_THRESHOLD)
    n_gt = gt_counts(gt)
    accepted = label_quality(routed, states, n_gt, route=ACCEPT)
    every = label_quality(routed, states, n_gt, route=None)
    sweep = sweep_all(routed, states, n_gt)
    oracle = labeler == "oracle"
    skip = None if oracle else skippable_share(sweep["overall"], a.target_precision)
    if oracle:
        note = "n/a: the oracle is the human labeling (its precision and recall are 1 by construction)"
    elif skip is None:
        note = f"not reachable: no score threshold gives precision >= {a.target_precision}"
    else:
        note = (f"{skip['recall']:.1%} of the GT boxes are recovered at threshold {skip['threshold']:.3f} "
                f"with precision {skip['precision']:.3f} >= {a.target_precision}")
    counts = route_counts(routed)
    cost = cost_table(
        n_frames=n_frames, n_gt_boxes=sum(n_gt.values()), n_review_frames=n_review_frames,
        n_review_boxes=counts[REVIEW],
        n_accept_frames=sum(any(b["route"] == ACCEPT for b in bs) for bs in routed.values()),
        n_accept_boxes=counts[ACCEPT], labeler_wall_s=wall_s, usd_per_frame=a.usd_per_frame,
        usd_per_frame_range=a.usd_per_frame_range, usd_per_box=a.usd_per_box,
        usd_per_gpu_hour=a.usd_per_gpu_hour, human_labeler=oracle,
    )
    return {
        "labeler": labeler,
        "iou_threshold": IOU_THRESHOLD,
        "matching": "greedy by score, class-matched, each GT box once; an unmatched box inside an "
                    "ignored region of its class (intersection / box area >= 0.5) is neither TP nor FP",
        "n_frames_scored": len(gt),
        "n_gt_boxes": n_gt,
        "thresholds": {"accept": a.accept, "drop": a.drop, "per_class": a.per_class},
        "accepted": accepted,
        "all_boxes": every,
        "sweep": sweep,
        "target_precision": a.target_precision,
        "skippable": skip,
        "skippable_note": note,
        "cost": cost,
        "note": ("oracle: human labeling of every mined frame; precision and recall are 1 by "
                 "construction and the whole cost is the human cost") if oracle else "",
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    c = m["cost"]
    n = m["n_boxes"]
    lo, hi = c["usd_human_all_range"]
    return StageOutcome(
        stage="autolabel",
        location=ref.path,
        skipped=skipped,
        wrote=[f"{AUTOLABEL.autolabels.at(ref)} (every mined frame, each box with its route)",
               f"{AUTOLABEL.yolo_images.at(ref)} + labels/train ({m['n_train_images']} frames for "
               f"`bddengine train --iter {res['iter'] + 1} --arm {res['tag']}`)",
               f"{ref.path}/{AUTOLABEL.review_queue.file}, {AUTOLABEL.quality.file}, {AUTOLABEL.pr_chart.file}"],
        numbers={
            "iteration / arm": f"{res['iter']} / {res['tag']}",
            "labeler": m["labeler"],
            "mined frames": m["n_frames"],
            "boxes accept / review / drop": f"{n['accept']} / {n['review']} / {n['drop']}",
            "frames to review (humans)": m["n_review_frames"],
            "accepted labels P / R @IoU0.5": f"{_pct(m['precision'])} / {_pct(m['recall'])}",
            "human labeling of all mined frames": f"${c['usd_human_all']:,.2f} (range ${lo:,.2f}-${hi:,.2f})"
            + (" = the whole cost (the oracle is the labeling vendor)" if c["human_labeler"] else ""),
            "human review of the queue": "-" if c["human_labeler"] else f"${c['usd_human_review']:,.2f}",
            "labeler compute": f"${c['usd_compute']:,.4f} ({c['labeler_wall_s']:.1f} s)",
            "human labeling skippable": m["skippable_note"],
            "wall time (s)": res["wall_time_s"],
        },
        look_at=[str(AUTOLABEL.pr_chart.at(ref)), str(AUTOLABEL.review_queue.at(ref))],
        safe_to_delete=f"{ref.path} (then `bddengine autolabel --iter {res['iter']} --arm {res['tag']}` "
                       "re-labels)",
    )
