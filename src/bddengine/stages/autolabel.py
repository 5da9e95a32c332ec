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

from bddengine.config import (
    AutolabelConfig,
    EngineConfig,
    arm_name,
    config_dict,
    fingerprint,
    label_source,
    mining_arm,
    parse_arm,
    parse_arm_spec,
)
from bddengine.errors import StageInputError
from bddengine.figures import plot_pr
from bddengine.inference import Backend
from bddengine.integrations.ultralytics import log_lines
from bddengine.integrations.yolo_export import link_image, yolo_labels
from bddengine.labeling.labelers import OracleLabeler, gt_frames
from bddengine.labeling.registry import LABELERS
from bddengine.labeling.routing import (
    ACCEPT,
    REVIEW,
    gt_counts,
    label_quality,
    match_frames,
    route_counts,
    route_frames,
    skippable_share,
    sweep_all,
)
from bddengine.labeling.sources import (
    HUMAN,
    MACHINE,
    NONE,
    LabelPlan,
    arm_cost,
    calibrate,
    choose_audit,
    plan_labels,
    route_calibrated,
    slice_quality,
)
from bddengine.runs import RunRef, StageRun, resolve_input
from bddengine.runs.layout import AUTOLABEL, COLLECT, MINE, TRAIN
from bddengine.runs.lineage import run_command, upstream
from bddengine.runs.lineages import lineage_of, lineage_tag
from bddengine.stages import StageOutcome
from bddengine.stages.job import Commit, Job, execute, unchanged
from bddengine.weights_trust import check_weights

IOU_THRESHOLD = 0.5


def run(
    cfg: EngineConfig,
    *,
    iter: int = 0,
    arm: str | None = None,
    seed: int | None = None,
    force: bool = False,
    source: str | None = None,
    progress: bool = True,
) -> StageOutcome:
    """Auto-label the frames one mining arm picked (from iteration 1 on: one lineage's mine run).

    Args:
        cfg: the engine config (``autolabel`` section; ``mine`` for the default arm).
        iter: the iteration whose mined frames to label.
        arm: the mining arm (default: ``mine.strategy`` with ``mine.embedding``).
        seed: from iteration 1 on, the lineage's training seed (default ``cfg.seed``).
        force: re-label even when an identical run exists.
        source: explicit mine run (``--from``); its iteration and arm are used.
        progress: show progress bars.
    """
    a = cfg.autolabel
    mine, arm, mining, iter, how = resolve_arm(cfg, arm, iter=iter, seed=seed, source=source)
    mined_path = MINE.mined.require(mine, f"{_mine_hint(iter, mining)} --force")
    ev, split, collect = upstream_runs(mine)
    imgsz = a.imgsz or cfg.train.imgsz
    model_ref = labeler_inputs(a, ev) if how != "human" else {}
    for role, path in model_ref.items():
        key = LABELERS[a.labeler].trust_key(role)
        if key is not None:  # None: a file its resolver verified (the text encoder, by its published SHA-256)
            check_weights(path, key, runs_dir=cfg.runs_dir)
    fp = fingerprint(config_dict(a), imgsz, cfg.seed, how, mine.name, str(mine.path),
                     {k: str(v) for k, v in model_ref.items()})
    inputs = {"mine": str(mine.path), "eval": str(ev.path), "split": str(split.path),
              "collect": str(collect.path)} | {k: str(v) for k, v in model_ref.items()}
    job = Job("autolabel", fp, cfg.seed, _outcome, iter=iter, tag=mine.tag if iter > 0 else arm, inputs=inputs,
              mirror=True,
              ultralytics_log=True)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done

    mined = json.loads(mined_path.read_text())
    frames = mined_frames(mined, COLLECT.manifest.read(collect), mined_path)
    return execute(cfg, job, lambda run: label_frames(
        run, a, frames, collect, mined_worst(mined), how=how, arm=arm, iter=iter, model_ref=model_ref,
        imgsz=imgsz, seed=cfg.seed, backend=cfg.compute.runner(), progress=progress))


def resolve_arm(
    cfg: EngineConfig, arm: str | None, *, iter: int, source: str | None, seed: int | None = None,
) -> tuple[RunRef, str, str, int, str]:
    """The mine run to label, the arm, its mining arm, the iteration and where the labels come from.

    ``arm`` defaults to ``mine.strategy`` with ``mine.embedding``; an explicit mine run
    (``source``) names the iteration and the mining arm. From iteration 1 on the mine run is
    the lineage's (``arm``, ``seed``): tag `bddengine.runs.lineages.lineage_tag`.

    Raises:
        StageInputError: the arm is unknown, or a machine-labeled arm meets a labeler that is not a machine.
        RunLookupError: no such mine run.
    """
    a = cfg.autolabel
    arm = arm or arm_name(cfg.mine.strategy, cfg.mine.embedding)
    try:
        mining = mining_arm(arm)
    except ValueError as exc:
        raise StageInputError(f"--arm {exc}") from None
    seed = cfg.seed if seed is None else seed
    tag, hint = mining, _mine_hint(iter, mining)
    if iter > 0 and not source:
        tag, hint = lineage_tag(arm, seed), f"bddengine mine --iter {iter} --arm {arm} --seed {seed}"
    mine = resolve_input(cfg.runs_dir, "mine", explicit=source, iter=iter, tag=tag, hint=hint)
    if source:
        iter = mine.iter if mine.iter is not None else iter
        if lineage := mine.result().get("lineage"):
            arm, mining = lineage["arm"], mining_arm(lineage["arm"])
        elif mine.tag and mine.tag != mining:
            suffix = parse_arm_spec(arm).source
            arm, mining = mine.tag + (f"-{suffix}" if suffix else ""), mine.tag
    how = label_source(arm, a.labeler)
    if how != "human" and not LABELERS[a.labeler].machine:
        raise StageInputError(
            f"--arm {arm}: a {how} arm labels with a machine labeler, but autolabel.labeler is {a.labeler} "
            "(the hidden ground truth, i.e. human labels); set autolabel.labeler to detector or grounded, "
            f"or use --arm {mining}-human")
    return mine, arm, mining, iter, how


def mined_worst(mined: dict[str, Any]) -> dict[str, Any] | None:
    """The worst slice's key recorded in mined.json (None when it names none)."""
    worst = mined.get("worst_slice") if isinstance(mined.get("worst_slice"), dict) else None
    if worst is not None and isinstance(worst.get("key"), dict):
        worst = worst["key"]
    return worst


def label_frames(
    run: StageRun, a: AutolabelConfig, frames: list[dict[str, Any]], collect: RunRef, worst: dict[str, Any] | None,
    *, how: str, arm: str, iter: int, model_ref: dict[str, Path], imgsz: int, seed: int, backend: str | Backend,
    progress: bool,
) -> Commit:
    """Label the mined frames, route every box, and write the labels, the review queue and their quality.

    Args:
        run: the run being built.
        a: the ``autolabel`` section.
        frames: the mined frames (`mined_frames`).
        collect: the collect run (its boxes are the hidden ground truth).
        worst: the worst slice's key, for the per-slice quality.
        how: where the labels come from (`bddengine.config.label_source`).
        arm, iter: the arm and iteration (for the chart's title).
        model_ref: the labeler's weights files.
        imgsz, backend: how the labeler's model runs.
        seed: picks the audit frames.
        progress: show progress bars.
    """
    t0 = time.perf_counter()
    if how != "human":  # built from weights alone: the hidden labels are read only after it has labeled
        labeler = LABELERS[a.labeler].build(a, model_ref, imgsz)
        if hasattr(labeler, "backend"):  # a labeler that runs a model through bddengine.inference
            labeler.backend = backend
        raw, name = labeler.label(frames, progress=progress), labeler.name
    wall = time.perf_counter() - t0
    boxes = COLLECT.boxes.read(collect, columns=["name", "category", "x1", "y1", "x2", "y2", "ignored"])
    gt = gt_frames(boxes, [f["name"] for f in frames if f["has_gt"]])  # the human stand-in's labels
    if how == "human":
        human = OracleLabeler(gt)
        raw, name = human.label([f for f in frames if f["name"] in gt], progress=progress), human.name
    names = [f["name"] for f in frames]
    audit = choose_audit([n for n in names if n in gt], a.audit_frames, seed) if how == "pyramid" else []
    routed, calibration = route_boxes(raw, gt, audit, a)
    plan = plan_labels(how, names, routed, gt, audit=audit)
    AUTOLABEL.autolabels.write(run, autolabel_frames(frames, routed, plan))
    queue = review_queue(frames, routed, plan)
    AUTOLABEL.review_queue.write(run, queue)
    yolo = write_yolo(AUTOLABEL.yolo_dir(run), frames, plan)
    quality = score_labels(routed, gt, plan, a, labeler=name, wall_s=wall, n_frames=len(frames),
                           frames=frames, worst=worst, calibration=calibration)
    AUTOLABEL.quality.write(run, quality)
    plot_pr(quality["sweep"], AUTOLABEL.pr_chart.at(run), accept=a.accept, drop=a.drop,
            target=a.target_precision, title=f"{name} labels of iter {iter} {arm}: "
            f"precision / recall vs score threshold ({quality['n_frames_scored']} frames)")
    counts = route_counts(routed)
    held = quality["accepted"]["overall"]
    return Commit(
        outputs=AUTOLABEL.outputs(),
        metrics={
            "labeler": name,
            "label_source": how,
            "n_frames": len(frames),
            "n_boxes": counts,
            "n_human_frames": len(plan.human_frames),
            "n_audit_frames": len(plan.audit),
            "n_review_frames": len(queue),
            "n_reviewed_by_humans": len(plan.review),
            "n_machine_frames": quality["cost"]["frames_machine_labeled"],
            "n_no_label_frames": len(plan.no_gt),
            "n_train_images": yolo["n_images"],
            "n_train_boxes": yolo["n_boxes"],
            "n_empty_train_images": yolo["n_empty"],
            "precision": held["precision"],
            "recall": held["recall"],
            "training_labels": quality["training_labels"]["overall"],
            "per_class": {c: {"precision": q["precision"], "recall": q["recall"]}
                          for c, q in quality["accepted"]["per_class"].items()},
            "per_slice": quality["per_slice"],
            "cost": quality["cost"],
            "skippable_share": quality["skippable"]["recall"] if quality["skippable"] else None,
            "skippable": quality["skippable"],
            "skippable_note": quality["skippable_note"],
            "labeler_wall_s": round(wall, 3),
        },
        extra={"yolo_export": yolo, "calibration": calibration},
    )


def route_boxes(
    raw: dict[str, list[dict]], gt: dict[str, list[dict]], audit: list[str], a: AutolabelConfig
) -> tuple[dict[str, list[dict]], dict[str, Any] | None]:
    """Route every box to accept / review / drop, and the calibration behind it (None: fixed thresholds).

    With audit frames, per-class thresholds are calibrated on their hidden labels;
    without, the configured ``accept`` / ``drop`` (and ``per_class``) thresholds route.
    """
    if not audit:
        return route_frames(raw, accept=a.accept, drop=a.drop, per_class=a.per_class), None
    thresholds = calibrate({n: raw.get(n, []) for n in audit}, {n: gt[n] for n in audit},
                           target_precision=a.target_precision, drop_keep_recall=a.drop_keep_recall,
                           min_boxes=a.audit_min_boxes, default_drop=a.drop)
    routed = route_calibrated(raw, thresholds, accept=a.accept, drop=a.drop)
    calibration = {"audit_frames": audit, "per_class": {c: t.to_dict() for c, t in thresholds.items()},
                   "target_precision": a.target_precision, "drop_keep_recall": a.drop_keep_recall,
                   "audit_min_boxes": a.audit_min_boxes}
    return routed, calibration


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

    return LABELERS[a.labeler].resolve(a, iteration_weights)


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


def autolabel_frames(frames: list[dict[str, Any]], routed: dict[str, list[dict]],
                     plan: LabelPlan) -> list[dict[str, Any]]:
    """BDD-format frames of every mined frame: the machine's boxes with score and route, who
    labeled the frame for training (``human``, ``machine`` or ``none``), and why."""
    audit, review, no_gt = set(plan.audit), set(plan.review), set(plan.no_gt)
    out = []
    for f in frames:
        n = f["name"]
        why = ("audit" if n in audit else "review" if n in review else "human arm" if plan.source == "human"
               else "accepted boxes" if plan.by.get(n) == MACHINE else "no accepted box")
        out.append({"name": n,
                    "attributes": {k: f[k] for k in ("weather", "timeofday", "scene") if k in f},
                    "labeled_by": plan.by.get(n, NONE), "why": why + (" (no hidden label)" if n in no_gt else ""),
                    "labels": routed.get(n, []) if plan.source != "human" else plan.labels.get(n, [])})
    return out


def review_queue(frames: list[dict[str, Any]], routed: dict[str, list[dict]], plan: LabelPlan) -> list[dict[str, Any]]:
    """Frames with at least one box to review (mined order), with those boxes.

    In a pyramid arm these frames went to the human stand-in; in an auto arm the queue is
    what a reviewer would see, and its boxes were not trained on."""
    out = []
    audit = set(plan.audit)
    for f in frames:
        boxes = [b for b in routed.get(f["name"], []) if b["route"] == REVIEW]
        if boxes and f["name"] not in audit:
            out.append({"name": f["name"], "path": str(f["path"]), "n_review": len(boxes), "boxes": boxes,
                        "labeled_by": plan.by.get(f["name"], NONE)})
    return out


def write_yolo(root: Path, frames: list[dict[str, Any]], plan: LabelPlan) -> dict[str, Any]:
    """The planned training labels as YOLO data: ``images/train`` links and ``labels/train`` files.

    A frame labeled by humans is written even without boxes (a human looked: it is empty);
    a machine-labeled frame has at least one accepted box; other frames are not written.

    Raises:
        StageInputError: two frames share a file-name stem.
    """
    images, labels = root / "images" / "train", root / "labels" / "train"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    stems = [Path(f["name"]).stem for f in frames]
    if len(set(stems)) != len(stems):
        raise StageInputError(f"mined frame names collide on their stem: {sorted(stems)[:3]}...")
    stats: dict[str, Any] = {"n_images": 0, "n_boxes": 0, "n_empty": 0, "n_human_images": 0, "n_clipped": 0,
                             "n_degenerate": 0, "n_duplicate": 0, "n_ignored": 0, "link_methods": {}}
    for f in frames:
        if f["name"] not in plan.labels:
            continue
        boxes = plan.labels[f["name"]]
        table = pd.DataFrame({
            "category": [b["category"] for b in boxes],
            "ignored": [bool(b.get("ignored")) for b in boxes],
            **{k: [float(b["box2d"][k]) for b in boxes] for k in ("x1", "y1", "x2", "y2")},
        })
        lines, counts = yolo_labels(table, float(f["width"]), float(f["height"]))
        method = link_image(f["path"], images / f["name"])
        stats["link_methods"][method] = stats["link_methods"].get(method, 0) + 1
        (labels / f"{Path(f['name']).stem}.txt").write_text("".join(line + "\n" for line in lines))
        stats["n_images"] += 1
        stats["n_boxes"] += len(lines)
        stats["n_empty"] += not lines
        stats["n_human_images"] += plan.by.get(f["name"]) == HUMAN
        for k in ("clipped", "degenerate", "duplicate", "ignored"):
            stats[f"n_{k}"] += counts[k]
    return stats


def score_labels(routed: dict[str, list[dict]], gt: dict[str, list[dict]], plan: LabelPlan, a: AutolabelConfig, *,
                 labeler: str, wall_s: float, n_frames: int, frames: list[dict[str, Any]],
                 worst: dict[str, str] | None, calibration: dict[str, Any] | None) -> dict[str, Any]:
    """Quality of the labels against the hidden ground truth, per slice, the sweep, and the cost.

    The machine's numbers (``accepted``, ``all_boxes``, ``sweep``, ``per_slice``) leave out the
    audit frames, whose human labels chose the thresholds; ``training_labels`` scores what
    iteration N+1 actually trains on (human labels where humans labeled, accepted machine boxes
    elsewhere) over every mined frame with hidden labels.
    """
    audit = set(plan.audit)
    held = {n: g for n, g in gt.items() if n not in audit}
    states = match_frames(routed, held, iou_thr=IOU_THRESHOLD)
    n_gt = gt_counts(held)
    accepted = label_quality(routed, states, n_gt, route=ACCEPT)
    every = label_quality(routed, states, n_gt, route=None)
    sweep = sweep_all(routed, states, n_gt)
    trained = {n: [b for b in plan.labels.get(n, []) if not b.get("ignored")] for n in gt}
    training = label_quality({n: [{**b, "route": ACCEPT} for b in bs] for n, bs in trained.items()},
                             match_frames(trained, gt, iou_thr=IOU_THRESHOLD), gt_counts(gt), route=ACCEPT)
    human = plan.source == "human"
    skip = None if human else skippable_share(sweep["overall"], a.target_precision)
    if human:
        note = "n/a: a human arm (the human stand-in labeled every mined frame)"
    elif skip is None:
        note = f"not reachable: no score threshold gives precision >= {a.target_precision}"
    else:
        note = (f"{skip['recall']:.1%} of the GT boxes are recovered at threshold {skip['threshold']:.3f} "
                f"with precision {skip['precision']:.3f} >= {a.target_precision}")
    ov = accepted["overall"]
    cost = arm_cost(plan, gt, n_frames=n_frames, labeler_wall_s=wall_s, usd_per_frame=a.usd_per_frame,
                    usd_per_frame_range=a.usd_per_frame_range, usd_per_box=a.usd_per_box,
                    usd_per_gpu_hour=a.usd_per_gpu_hour, machine_precision=ov["precision"],
                    machine_tp=ov["tp"], target_precision=a.target_precision)
    return {
        "labeler": labeler,
        "label_source": plan.source,
        "iou_threshold": IOU_THRESHOLD,
        "matching": "greedy by score, class-matched, each GT box once; an unmatched box inside an "
                    "ignored region of its class (intersection / box area >= 0.5) is neither TP nor FP",
        "n_frames_scored": len(held),
        "n_audit_frames": len(plan.audit),
        "n_gt_boxes": n_gt,
        "thresholds": {"accept": a.accept, "drop": a.drop, "per_class": a.per_class,
                       "calibrated": calibration["per_class"] if calibration else None},
        "calibration": calibration,
        "accepted": accepted,
        "all_boxes": every,
        "training_labels": training,
        "per_slice": slice_quality(frames, routed, gt, plan, worst, exclude=plan.audit),
        "sweep": sweep,
        "target_precision": a.target_precision,
        "skippable": skip,
        "skippable_note": note,
        "cost": cost,
        "note": ("human arm: the human stand-in (hidden ground truth) labeled every mined frame; its labels are "
                 "exact by construction and the whole cost is the human cost") if human else
                ("machine numbers leave out the audit frames that calibrated the thresholds" if plan.audit else ""),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _outcome(ref: RunRef, *, skipped: bool) -> StageOutcome:
    res = ref.result()
    m = res["metrics"]
    c = m["cost"]
    n = m["n_boxes"]
    lo, hi = c["usd_human_range"]
    tl = m.get("training_labels") or {}
    numbers = {
        "iteration / arm": f"{res['iter']} / {res['tag']} (label source {m.get('label_source', '?')})",
        "labeler": m["labeler"],
        "mined frames": m["n_frames"],
        "labeled by humans / machine / not trained on":
            f"{m['n_human_frames']} / {m['n_machine_frames']} / "
            f"{m['n_frames'] - m['n_human_frames'] - m['n_machine_frames']}"
            + (f" (audit {m['n_audit_frames']}, review {m['n_review_frames']})" if m.get("label_source") == "pyramid"
               else ""),
    }
    if m.get("label_source") != "human":
        numbers |= {
            "machine boxes accept / review / drop": f"{n['accept']} / {n['review']} / {n['drop']}",
            "accepted machine boxes P / R @IoU0.5": f"{_pct(m['precision'])} / {_pct(m['recall'])}",
        }
    numbers |= {
        "training labels: boxes, P / R of GT": f"{m['n_train_boxes']} in {m['n_train_images']} frames, "
                                               f"{_pct(tl.get('precision'))} / {_pct(tl.get('recall'))}",
        "human labeling paid": f"${c['usd_human']:,.2f} (range ${lo:,.2f}-${hi:,.2f}) for "
                               f"{c['frames_to_humans']} frames",
        "labeler compute": f"${c['usd_compute']:,.4f} ({c['labeler_wall_s']:.1f} s)",
        "saving vs labeling all by hand": (f"${c['usd_saved']:,.2f}: {c['saving_note']}" if c["saving_claimed"]
                                           else c["saving_note"]),
        "wall time (s)": res["wall_time_s"],
    }
    train = f"bddengine train --iter {res['iter'] + 1} --arm {res['tag']}"
    if res["iter"] > 0 and (lineage := lineage_of(res["tag"])):  # a lineage's own labels (turn 2 on)
        train = f"bddengine train --iter {res['iter'] + 1} --arm {lineage[0]} --seed {lineage[1]}"
    warn = []
    if not m["n_train_boxes"]:
        warn = [f"ADDED NOTHING: no labeled box for iteration {res['iter'] + 1}; `{train}` refuses to run and "
                "the flywheel goes no further with this arm (or lineage)"]
    return StageOutcome(
        stage="autolabel",
        location=ref.path,
        skipped=skipped,
        wrote=[f"{AUTOLABEL.autolabels.at(ref)} (every mined frame: machine boxes with their route, who labeled it)",
               f"{AUTOLABEL.yolo_images.at(ref)} + labels/train ({m['n_train_images']} frames for `{train}`)",
               f"{ref.path}/{AUTOLABEL.review_queue.file}, {AUTOLABEL.quality.file}, {AUTOLABEL.pr_chart.file}"],
        numbers=numbers,
        look_at=warn + [str(AUTOLABEL.pr_chart.at(ref)), str(AUTOLABEL.review_queue.at(ref)), *log_lines(ref)],
        safe_to_delete=f"{ref.path} (then `{run_command(ref)}` re-labels)",
    )
