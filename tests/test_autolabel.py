"""The autolabel stage: pyramid, label quality, PR sweep, labelers, YOLO export, end to end."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bddengine.bdd.categories import CLASS_ID, CLASSES
from bddengine.cli import app
from bddengine.errors import StageInputError
from bddengine.integrations.ultralytics import resolve_weights
from bddengine.labeling.labelers import (
    COCO_TO_BDD,
    GROUNDED_PROMPT,
    OracleLabeler,
    UltralyticsLabeler,
    check_class_map,
    default_class_map,
    gt_frames,
    load_grounded,
    mask_box,
    prompt_classes,
    result_to_boxes,
    text_encoder_problem,
)
from bddengine.labeling.routing import (
    FP,
    IGNORED,
    TP,
    gt_counts,
    label_quality,
    match_frame,
    match_frames,
    pr_sweep,
    route_box,
    route_counts,
    route_frames,
    skippable_share,
    sweep_all,
)
from bddengine.labeling.sources import (
    LabelPlan,
    arm_cost,
    calibrate,
    choose_audit,
    plan_labels,
    route_calibrated,
)
from bddengine.runs import RunRef, StageRun, parse_run_name
from bddengine.stages import STAGE_BY_NAME
from bddengine.stages.autolabel import write_yolo
from bddengine.stages.train import count_images, write_dataset_yaml
from conftest import recorded_reads


def _box(cat: str, x1: float, y1: float, x2: float, y2: float, score: float = 1.0, **kw) -> dict:
    return {"category": cat, "score": score, "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, **kw}


# --- the pyramid -----------------------------------------------------------------------------------


def test_route_box_boundaries() -> None:
    kw = {"accept": 0.5, "drop": 0.25}
    assert route_box(0.5, "car", **kw) == "accept"  # accept is inclusive
    assert route_box(0.4999, "car", **kw) == "review"
    assert route_box(0.25, "car", **kw) == "review"  # drop is the lowest review score
    assert route_box(0.2499, "car", **kw) == "drop"
    assert route_box(1.0, "car", **kw) == "accept" and route_box(0.0, "car", **kw) == "drop"
    # drop == accept: no review band at all
    assert route_box(0.3, "car", accept=0.3, drop=0.3) == "accept"
    assert route_box(0.2999, "car", accept=0.3, drop=0.3) == "drop"


def test_route_box_per_class_overrides() -> None:
    kw = {"accept": 0.5, "drop": 0.25, "per_class": {"car": (0.1, 0.9), "bus": [0.6, 0.6]}}
    assert route_box(0.5, "car", **kw) == "review"  # car needs 0.9 to be accepted
    assert route_box(0.9, "car", **kw) == "accept"
    assert route_box(0.1, "car", **kw) == "review" and route_box(0.0999, "car", **kw) == "drop"
    assert route_box(0.59, "bus", **kw) == "drop" and route_box(0.6, "bus", **kw) == "accept"
    assert route_box(0.5, "truck", **kw) == "accept"  # no override: the global pair
    routed = route_frames({"a": [_box("car", 0, 0, 1, 1, 0.95), _box("car", 0, 0, 1, 1, 0.5)],
                           "b": [_box("truck", 0, 0, 1, 1, 0.2)], "c": []}, **kw)
    assert [b["route"] for b in routed["a"]] == ["accept", "review"] and routed["c"] == []
    assert [b["id"] for b in routed["a"]] == ["0", "1"] and routed["a"][0]["score"] == 0.95
    assert route_counts(routed) == {"accept": 1, "review": 1, "drop": 1}


def test_config_rejects_unknown_classes() -> None:
    from bddengine.config import AutolabelConfig

    with pytest.raises(ValueError, match="per_class.cars: not a BDD class"):
        AutolabelConfig(per_class={"cars": (0.1, 0.9)})
    with pytest.raises(ValueError, match="class_map.dog: 'animal' is not a BDD class"):
        AutolabelConfig(class_map={"dog": "animal"})
    with pytest.raises(ValueError, match="drop 0.9 exceeds accept 0.1"):
        AutolabelConfig(per_class={"car": (0.9, 0.1)})


# --- quality on a hand-made case -------------------------------------------------------------------

GT = {
    "a": [
        _box("car", 0, 0, 10, 10, ignored=False),
        _box("car", 50, 50, 60, 60, ignored=False),
        _box("pedestrian", 100, 0, 110, 20, ignored=False),
        _box("car", 200, 200, 260, 260, ignored=True),  # an "other vehicle" region
    ],
    "b": [],
}
PREDS = {
    "a": [
        _box("car", 0, 0, 10, 10, 0.9, route="accept"),        # TP on car 1
        _box("car", 0, 0, 10, 9, 0.8, route="accept"),         # duplicate of car 1: FP
        _box("car", 210, 210, 230, 230, 0.7, route="accept"),  # inside the ignored region: neither
        _box("truck", 50, 50, 60, 60, 0.6, route="accept"),    # right place, wrong class: FP
        _box("pedestrian", 100, 0, 110, 10, 0.55, route="accept"),  # IoU exactly 0.5: TP
        _box("pedestrian", 300, 300, 310, 310, 0.3, route="review"),  # FP, but not accepted
    ],
    "b": [_box("car", 1, 1, 5, 5, 0.95, route="accept")],      # frame without GT: FP
}


def test_match_frame_states() -> None:
    assert match_frame(PREDS["a"], GT["a"]) == [TP, FP, IGNORED, FP, TP, FP]
    # greedy by score: the higher-scoring duplicate takes the GT box, whatever the input order
    assert match_frame(PREDS["a"][1::-1], GT["a"]) == [FP, TP]
    # an ignored region of another class does not excuse a box
    assert match_frame([_box("truck", 210, 210, 230, 230, 0.5)], GT["a"]) == [FP]
    # a box mostly outside the ignored region is a false positive
    assert match_frame([_box("car", 250, 250, 290, 290, 0.5)], GT["a"]) == [FP]


def test_label_quality_known_tp_fp_fn() -> None:
    states = match_frames(PREDS, GT)
    n_gt = gt_counts(GT)
    assert n_gt["car"] == 2 and n_gt["pedestrian"] == 1 and sum(n_gt.values()) == 3  # ignored not counted
    q = label_quality(PREDS, states, n_gt)
    car, ped, truck = (q["per_class"][c] for c in ("car", "pedestrian", "truck"))
    assert (car["tp"], car["fp"], car["fn"], car["n_ignored"]) == (1, 2, 1, 1)
    assert car["precision"] == pytest.approx(1 / 3) and car["recall"] == pytest.approx(0.5)
    assert (ped["tp"], ped["fp"], ped["fn"]) == (1, 0, 0) and ped["precision"] == 1 and ped["recall"] == 1
    assert truck["precision"] == 0 and truck["recall"] is None  # no truck GT
    assert q["per_class"]["bus"]["precision"] is None  # no bus labels
    o = q["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["n_gt"]) == (2, 3, 1, 3)
    assert o["precision"] == pytest.approx(0.4) and o["recall"] == pytest.approx(2 / 3)
    every = label_quality(PREDS, states, n_gt, route=None)  # the review box counts too
    assert every["overall"]["fp"] == 4 and every["per_class"]["pedestrian"]["precision"] == 0.5


def test_pr_sweep_shape_on_a_hand_made_case() -> None:
    sweep = pr_sweep([0.9, 0.8, 0.8, 0.6, 0.5, 0.3], [TP, FP, TP, IGNORED, TP, FP], n_gt=4)
    assert sweep["threshold"] == [0.9, 0.8, 0.5, 0.3]  # distinct scores, ignored box left out
    assert sweep["precision"] == pytest.approx([1.0, 2 / 3, 3 / 4, 3 / 5])
    assert sweep["recall"] == pytest.approx([0.25, 0.5, 0.75, 0.75])
    assert (np.diff(sweep["threshold"]) < 0).all()  # highest threshold first
    assert (np.diff(sweep["recall"]) >= 0).all()  # recall grows as the threshold falls
    assert skippable_share(sweep, 0.75) == {"threshold": 0.5, "precision": 0.75, "recall": 0.75}
    assert skippable_share(sweep, 1.0)["recall"] == 0.25
    assert skippable_share(pr_sweep([0.9, 0.5], [FP, TP], n_gt=1), 0.9) is None  # not reachable
    assert pr_sweep([], [], n_gt=3) == {"threshold": [], "precision": [], "recall": []}


def test_sweep_all_agrees_with_accepted_quality() -> None:
    states = match_frames(PREDS, GT)
    n_gt = gt_counts(GT)
    sweep = sweep_all(PREDS, states, n_gt)
    assert set(sweep) == {"car", "truck", "pedestrian", "overall"}
    # at threshold 0.55 the boxes above it are exactly the accepted ones
    o = sweep["overall"]
    i = o["threshold"].index(0.55)
    q = label_quality(PREDS, states, n_gt)["overall"]
    assert o["precision"][i] == pytest.approx(q["precision"]) and o["recall"][i] == pytest.approx(q["recall"])


def _plan(source: str, routed: dict, gt: dict, audit=()) -> LabelPlan:
    return plan_labels(source, list(routed), routed, gt, audit=audit)


def test_arm_cost_charges_human_frames_and_claims_savings_only_at_target_precision() -> None:
    gt = {f"f{i}.jpg": [_box("car", 0, 0, 10, 10)] * 3 for i in range(10)}
    routed = {n: [_box("car", 0, 0, 10, 10, 0.9, route="accept")] for n in gt}
    routed["f0.jpg"] = [_box("car", 0, 0, 10, 10, 0.4, route="review")]
    kw = {"n_frames": 10, "labeler_wall_s": 7200.0, "usd_per_frame": 0.5, "usd_per_frame_range": (0.25, 1.5),
          "usd_per_box": 0.01, "usd_per_gpu_hour": 1.5, "target_precision": 0.9}
    pyramid = _plan("pyramid", routed, gt, audit=["f1.jpg"])
    c = arm_cost(pyramid, gt, machine_precision=0.95, machine_tp=8, **kw)
    assert (c["frames_to_humans"], c["boxes_to_humans"], c["audit_frames"], c["review_frames"]) == (2, 6, 1, 1)
    assert c["usd_human"] == pytest.approx(2 * 0.5 + 6 * 0.01) and c["usd_human_range"] == [0.56, 3.06]
    assert c["usd_human_all"] == pytest.approx(10 * 0.5 + 30 * 0.01) and c["usd_compute"] == 3.0
    assert c["usd_total"] == pytest.approx(1.06 + 3.0) and c["saving_claimed"]
    assert c["usd_saved"] == pytest.approx(5.3 - 1.06 - 3.0) and c["frames_machine_labeled"] == 8
    # below the target precision, or with nothing recovered, no saving is claimed
    low = arm_cost(pyramid, gt, machine_precision=0.6, machine_tp=8, **kw)
    assert not low["saving_claimed"] and low["usd_saved"] is None and "0.600 < target 0.9" in low["saving_note"]
    none = arm_cost(_plan("auto", {n: [] for n in gt}, gt), gt, machine_precision=None, machine_tp=0, **kw)
    assert none["usd_saved"] is None and "recovered no ground-truth box" in none["saving_note"]
    assert none["frames_to_humans"] == 0 and none["usd_human"] == 0
    human = arm_cost(_plan("human", routed, gt), gt, machine_precision=None, machine_tp=0, **kw)
    assert human["frames_to_humans"] == 10 and human["usd_human"] == human["usd_human_all"]
    assert human["usd_compute"] == 0 and not human["saving_claimed"]


def test_pyramid_calibrates_per_class_on_the_audit_and_routes_by_it() -> None:
    """Hand-made audit: cars are right above 0.6, trucks never reach the target precision."""
    gt = {"a.jpg": [_box("car", 0, 0, 10, 10), _box("car", 20, 0, 30, 10), _box("truck", 40, 0, 60, 20)],
          "b.jpg": [_box("car", 0, 0, 10, 10), _box("car", 50, 50, 60, 60)]}
    boxes = {"a.jpg": [_box("car", 0, 0, 10, 10, 0.9), _box("car", 20, 0, 30, 10, 0.7),
                       _box("car", 80, 80, 90, 90, 0.5),  # false positive at 0.5
                       _box("truck", 40, 0, 60, 20, 0.3), _box("truck", 0, 50, 20, 70, 0.8)],  # truck FP above TP
               "b.jpg": [_box("car", 0, 0, 10, 10, 0.65), _box("car", 50, 50, 60, 60, 0.2)]}
    t = calibrate(boxes, gt, target_precision=0.9, drop_keep_recall=0.75, min_boxes=2, default_drop=0.25)
    car, truck = t["car"], t["truck"]
    assert car.accept == pytest.approx(0.65) and car.precision_at_accept == 1.0
    assert car.recall_at_accept == pytest.approx(3 / 4)
    assert car.drop == pytest.approx(0.65)  # 3 of the 4 correct cars (0.75) score >= 0.65
    assert truck.accept is None and "never reaches 0.9" in truck.reason and truck.drop == pytest.approx(0.3)
    few = calibrate(boxes, gt, target_precision=0.9, drop_keep_recall=0.75, min_boxes=3, default_drop=0.25)
    assert few["truck"].accept is None and "audit_min_boxes 3" in few["truck"].reason
    # routing the other frames: cars by their own pair, trucks never accepted, unseen classes to review
    other = {"c.jpg": [_box("car", 0, 0, 9, 9, 0.7), _box("car", 0, 0, 9, 9, 0.5), _box("truck", 0, 0, 9, 9, 0.95),
                       _box("bus", 0, 0, 9, 9, 0.99)],
             "d.jpg": [_box("car", 0, 0, 9, 9, 0.66)]}
    routed = route_calibrated(other, t, accept=0.5, drop=0.25)
    assert [b["route"] for b in routed["c.jpg"]] == ["accept", "drop", "review", "review"]
    plan = plan_labels("pyramid", ["c.jpg", "d.jpg"], routed, {"c.jpg": gt["a.jpg"], "d.jpg": []})
    assert plan.review == ["c.jpg"] and plan.by == {"c.jpg": "human", "d.jpg": "machine"}
    assert plan.labels["d.jpg"][0]["score"] == 0.66 and len(plan.labels["c.jpg"]) == 3  # the human's boxes
    auto = plan_labels("auto", ["c.jpg", "d.jpg"], routed, {})
    assert auto.by == {"c.jpg": "machine", "d.jpg": "machine"} and len(auto.labels["c.jpg"]) == 1


def test_choose_audit_is_seeded_and_bounded() -> None:
    names = [f"f{i}.jpg" for i in range(50)]
    a = choose_audit(names, 20, 42)
    assert len(a) == 20 and a == choose_audit(names, 20, 42) and a != choose_audit(names, 20, 7)
    assert choose_audit(names[:5], 20, 42) == names[:5]


# --- labelers ---------------------------------------------------------------------------------------


BOXES = pd.DataFrame(
    [("f1.jpg", "car", 1.5, 2.0, 30.0, 40.25, False), ("f1.jpg", "truck", 50, 5, 80, 30, True),
     ("f1.jpg", "traffic sign", 100, 10, 110, 20, False), ("f2.jpg", "pedestrian", 5, 5, 9, 30, True),
     ("other.jpg", "car", 0, 0, 5, 5, False)],
    columns=["name", "category", "x1", "y1", "x2", "y2", "ignored"],
)


def test_oracle_reproduces_ground_truth_exactly() -> None:
    gt = gt_frames(BOXES, ["f1.jpg", "f2.jpg", "f3.jpg"])
    assert set(gt) == {"f1.jpg", "f2.jpg", "f3.jpg"} and len(gt["f1.jpg"]) == 3 and gt["f3.jpg"] == []
    frames = [{"name": n, "path": f"/x/{n}", "width": 160, "height": 90} for n in gt]
    labels = OracleLabeler(gt).label(frames, progress=False)
    assert labels["f1.jpg"] == [_box("car", 1.5, 2.0, 30.0, 40.25), _box("traffic sign", 100, 10, 110, 20)]
    assert labels["f2.jpg"] == [] and labels["f3.jpg"] == []  # only an ignored region / nothing
    routed = route_frames(labels, accept=0.5, drop=0.25)
    q = label_quality(routed, match_frames(routed, gt), gt_counts(gt))["overall"]
    assert q["precision"] == 1 and q["recall"] == 1 and q["n_gt"] == 2
    with pytest.raises(StageInputError, match="no hidden ground truth.*zzz.jpg"):
        OracleLabeler(gt).label([{"name": "zzz.jpg", "path": "/x/zzz.jpg"}], progress=False)


def _result(xyxy: list, conf: list, cls: list) -> SimpleNamespace:
    return SimpleNamespace(boxes=SimpleNamespace(xyxy=np.array(xyxy, dtype=float).reshape(-1, 4),
                                                 conf=np.array(conf, dtype=float), cls=np.array(cls, dtype=float)))


COCO_NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
              "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog"]


def test_coco_to_bdd_class_map() -> None:
    cmap = default_class_map(COCO_NAMES)
    assert cmap == COCO_TO_BDD
    assert cmap["person"] == "pedestrian" and cmap["stop sign"] == "traffic sign"
    assert set(cmap.values()) <= set(CLASSES) and "rider" not in cmap.values()
    res = _result([[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 8, 8], [3, 3, 9, 9], [4, 4, 6, 6]],
                  [0.9, 0.8, 0.7, 0.6, 0.5], [0, 16, 11, 2, 6])
    boxes = result_to_boxes(res, COCO_NAMES, cmap)
    assert [(b["category"], b["score"]) for b in boxes] == [
        ("pedestrian", 0.9), ("traffic sign", 0.7), ("car", 0.6), ("train", 0.5)]  # the dog is dropped
    assert boxes[0]["box2d"] == {"x1": 0, "y1": 0, "x2": 10, "y2": 10}
    # a checkpoint that already speaks BDD classes keeps them
    assert default_class_map(list(CLASSES)) == {c: c for c in CLASSES}
    with pytest.raises(StageInputError, match="autolabel.class_map.dog='animal'"):
        check_class_map({"person": "pedestrian", "dog": "animal"})


def test_grounded_weights_missing_offline_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(StageInputError) as err:
        resolve_weights("yolov8x-worldv2.pt", "autolabel.grounded_model", folder=tmp_path / "weights")
    msg = str(err.value)
    assert "autolabel.grounded_model=yolov8x-worldv2.pt" in msg
    assert str((tmp_path / "weights" / "yolov8x-worldv2.pt").resolve()) in msg
    assert "github.com/ultralytics/assets/releases" in msg
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "yolov8x-worldv2.pt").write_bytes(b"x")
    found = resolve_weights("yolov8x-worldv2.pt", "k", folder=tmp_path / "weights")
    assert found == (tmp_path / "weights" / "yolov8x-worldv2.pt").resolve()


def test_grounded_text_encoder_missing_offline(tmp_path: Path, monkeypatch) -> None:
    msg = text_encoder_problem("world", folder=tmp_path, clip_importable=False)
    assert "pip install git+https://github.com/ultralytics/CLIP.git" in msg
    msg = text_encoder_problem("world", folder=tmp_path, clip_importable=True)
    assert "ViT-B-32.pt" in msg and str((tmp_path / "clip" / "ViT-B-32.pt").resolve()) in msg
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "ViT-B-32.pt").write_bytes(b"x")
    import hashlib

    from bddengine.labeling import labelers

    # the real file is OpenAI's, byte for byte: stand in for it by its checksum
    monkeypatch.setattr(labelers, "CLIP_VIT_B32_SHA256", hashlib.sha256(b"x").hexdigest())
    assert text_encoder_problem("world", folder=tmp_path, clip_importable=True) is None
    assert "mobileclip2_b.ts" in text_encoder_problem("yoloe", folder=tmp_path, text_model="mobileclip2:b")

    class YOLOE:  # a fake open-vocabulary model; the name is what load_grounded checks
        def __init__(self, path: str) -> None:
            self.model = SimpleNamespace(text_model="mobileclip:blt")
            self.classes = None

        def set_classes(self, classes: list[str]) -> None:
            self.classes = classes

    with pytest.raises(StageInputError, match=r"grounded \(yoloe-11l-seg.pt\).*mobileclip_blt.ts"):
        load_grounded(Path("yoloe-11l-seg.pt"), prompt_classes(), folder=tmp_path, loader=YOLOE)
    (tmp_path / "mobileclip_blt.ts").write_bytes(b"x")
    model = load_grounded(Path("yoloe-11l-seg.pt"), prompt_classes(), folder=tmp_path, loader=YOLOE)
    assert model.classes == prompt_classes()
    with pytest.raises(StageInputError, match="not YOLO-World or YOLOE"):
        load_grounded(Path("yolov8n.pt"), prompt_classes(), folder=tmp_path,
                      loader=lambda p: SimpleNamespace(set_classes=None))


def test_grounded_prompt_to_class_mapping() -> None:
    classes = prompt_classes(GROUNDED_PROMPT)
    assert classes == ["car", "truck", "bus", "pedestrian", "bicycle", "motorcycle", "traffic light",
                       "traffic sign", "train", "rider"]
    assert sorted(classes) == sorted(CLASSES)

    class FakeWorld:  # predicts prompt indices 3 (pedestrian), 9 (rider) and 7 (traffic sign)
        def predict(self, paths: list[str], **kw) -> list:
            assert kw["conf"] == 0.05 and kw["augment"] is False
            return [_result([[0, 0, 4, 8], [1, 1, 3, 3], [5, 5, 9, 9]], [0.9, 0.4, 0.1], [3, 9, 7])
                    for _ in paths]

    labeler = UltralyticsLabeler(FakeWorld(), classes, {c: c for c in classes}, name="grounded", batch=2,
                                 refine=lambda path, boxes: [{**b, "refined": path} for b in boxes])
    frames = [{"name": f"f{i}.jpg", "path": f"/x/f{i}.jpg"} for i in range(3)]
    out = labeler.label(frames, progress=False)
    assert list(out) == ["f0.jpg", "f1.jpg", "f2.jpg"]
    assert [b["category"] for b in out["f2.jpg"]] == ["pedestrian", "rider", "traffic sign"]
    assert out["f1.jpg"][0]["refined"] == "/x/f1.jpg"


def test_mask_box_is_tight() -> None:
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (3.0, 2.0, 9.0, 5.0)
    assert mask_box(np.zeros((4, 4), dtype=bool)) is None


# --- YOLO export -------------------------------------------------------------------------------------


def test_yolo_label_files_written(tmp_path: Path) -> None:
    frames = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"jpeg")
        frames.append({"name": name, "path": str(tmp_path / name), "width": 200, "height": 100})
    routed = {
        "a.jpg": [_box("car", 20, 10, 60, 50, 0.9, route="accept"),
                  _box("traffic light", 190, 90, 230, 110, 0.7, route="accept"),  # clipped to the image
                  _box("bus", 0, 0, 50, 50, 0.4, route="review"),
                  _box("truck", 0, 0, 50, 50, 0.1, route="drop")],
        "b.jpg": [_box("bus", 0, 0, 50, 50, 0.4, route="review")],  # nothing accepted
        "c.jpg": [],
    }
    root = tmp_path / "yolo"
    stats = write_yolo(root, frames, plan_labels("auto", [f["name"] for f in frames], routed, {}))
    assert sorted(p.name for p in (root / "images/train").iterdir()) == ["a.jpg"]
    assert (root / "images/train/a.jpg").resolve() == (tmp_path / "a.jpg").resolve()
    lines = (root / "labels/train/a.txt").read_text().splitlines()
    assert lines == [f"{CLASS_ID['car']} 0.200000 0.300000 0.200000 0.400000",
                     f"{CLASS_ID['traffic light']} 0.975000 0.950000 0.050000 0.100000"]
    assert stats["n_images"] == 1 and stats["n_boxes"] == 2 and stats["n_clipped"] == 1
    # frames a human labeled are written even when empty (a human looked); ignored regions are no target
    gt = {"a.jpg": [_box("car", 20, 10, 60, 50), _box("bus", 0, 0, 9, 9, ignored=True)], "b.jpg": [], "c.jpg": []}
    stats = write_yolo(tmp_path / "yolo2", frames, plan_labels("human", list(gt), routed, gt))
    assert stats["n_images"] == 3 and stats["n_empty"] == 2 and stats["n_boxes"] == 1
    assert (tmp_path / "yolo2/labels/train/c.txt").read_text() == ""


# --- end to end on real run folders -------------------------------------------------------------------

K = 10


@pytest.fixture(scope="module")
def turn(tiny_world: Path, tiny_clip_arch: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """collect -> embed -> split -> train (1 epoch, imgsz 64) -> eval, and a mine run written here."""
    from bddengine.config import load_config
    from bddengine.stages import collect, embed, split, train
    from bddengine.stages import eval as eval_stage
    from conftest import write_config

    tmp = tmp_path_factory.mktemp("autolabel")
    path = write_config(
        tmp / "c.yaml", tiny_world, tmp / "runs",
        embed={"clip_arch": tiny_clip_arch, "pretrained": None, "workers": 0, "batch_size": 16},
        split={"train_size": 14, "eval_size": 6, "eval_top_slices": 3, "val_size": 4,
               "min_per_bucket": 1, "near_dup_threshold": 1.0},
        train={"model": "yolov8n.yaml", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0,
               "warmup_epochs": 0, "amp": False, "device": "cpu"},
        eval={"batch": 8, "min_eval_frames": 1, "n_boot": 0, "device": "cpu"},
        autolabel={"labeler": "oracle", "device": "cpu"},
    )
    cfg = load_config(path)
    collect.run(cfg, progress=False)
    embed.run(cfg, progress=False)
    sp = split.run(cfg, progress=False).location
    train.run(cfg, iter=0)
    ev = eval_stage.run(cfg, iter=0, progress=False).location
    write_mine_run(tmp / "runs", ev, sp)
    return tmp, path


def write_mine_run(runs: Path, ev: Path, sp: Path) -> Path:
    """A mine run of the documented shape: the first K frames of the split's mining pool."""
    pool = pd.read_parquet(sp / "mining_pool.parquet").head(K)
    frames = [{"name": r.name, "path": r.path, "video": r.video, "weather": r.weather,
               "timeofday": r.timeofday, "scene": r.scene, "rank": i, "similarity": 1.0 - i / 100,
               "matches_slice": i % 2 == 0} for i, r in enumerate(pool.itertuples())]
    mined = {"arm": "prototype", "strategy": "prototype", "embedding": "embed", "iter": 0, "k": K,
             "worst_slice": {"key": {"weather": "clear", "timeofday": "night", "scene": "highway"}},
             "failed_classes": ["car"], "frames": frames}
    with StageRun(runs, "mine", {}, 42, "mine-fp", iter=0, tag="prototype",
                  inputs={"eval": str(ev), "split": str(sp)}) as run:
        (run.dir / "mined.json").write_text(json.dumps(mined))
        return run.commit(outputs={"mined": "mined.json"}, metrics={"k": K}).path


def _invoke(path: Path, *args: str):
    return CliRunner().invoke(app, ["autolabel", "--iter", "0", "--arm", "prototype", "--config", str(path),
                                    *args])


def test_stage_oracle_end_to_end(turn: tuple[Path, Path]) -> None:
    tmp, path = turn
    result = _invoke(path)
    assert result.exit_code == 0, result.output
    assert "autolabel_pr.png" in result.output and "review_queue.json" in result.output
    runs = tmp / "runs"
    (run,) = sorted(runs.glob("*_autolabel_iter0_prototype"))
    res = json.loads((run / "result.json").read_text())
    m = res["metrics"]
    assert res["inputs"]["mine"].endswith("_mine_iter0_prototype") and res["seed"] == 42
    mined = json.loads(next(runs.glob("*_mine_iter0_prototype")).joinpath("mined.json").read_text())
    names = [f["name"] for f in mined["frames"]]

    # the oracle reproduces the hidden ground truth exactly, every box accepted
    boxes = pd.read_parquet(runs / "01_collect/boxes.parquet")
    boxes = boxes[boxes["name"].isin(names) & ~boxes["ignored"]]
    labels = json.loads((run / "autolabels.json").read_text())
    assert [f["name"] for f in labels] == names
    got = sorted((f["name"], lab["category"], lab["box2d"]["x1"], lab["box2d"]["y1"], lab["box2d"]["x2"],
                  lab["box2d"]["y2"], lab["score"], lab["route"]) for f in labels for lab in f["labels"])
    want = sorted((r.name, r.category, r.x1, r.y1, r.x2, r.y2, 1.0, "accept") for r in boxes.itertuples())
    assert got == want and len(got) > 0
    assert m["labeler"] == "oracle" and m["n_frames"] == K
    assert m["n_boxes"] == {"accept": len(want), "review": 0, "drop": 0} and m["n_review_frames"] == 0
    assert m["precision"] == 1 and m["recall"] == 1
    assert json.loads((run / "review_queue.json").read_text()) == []

    # every mined frame becomes training data (empty ones too: the oracle knows they are empty)
    assert m["n_train_images"] == K == len(list((run / "yolo/images/train").iterdir()))
    manifest = pd.read_parquet(runs / "01_collect/manifest.parquet").set_index("name")
    for name in names:
        lines = (run / "yolo/labels/train" / f"{Path(name).stem}.txt").read_text().splitlines()
        assert len(lines) == int(manifest.loc[name, "n_boxes"] - manifest.loc[name, "n_ignored"])
        for line in lines:
            cls, *xywh = line.split()
            assert 0 <= int(cls) < len(CLASSES) and all(0 <= float(v) <= 1 for v in xywh)

    # quality and cost: the oracle is the human labeling
    q = json.loads((run / "quality.json").read_text())
    assert q["n_frames_scored"] == K and q["skippable"] is None and "human arm" in q["skippable_note"]
    assert m["label_source"] == "human" and m["n_human_frames"] == K and q["cost"]["frames_to_humans"] == K
    assert q["cost"]["usd_human"] == q["cost"]["usd_human_all"] and not q["cost"]["saving_claimed"]
    assert q["cost"]["usd_human_all"] == pytest.approx(K * 0.5) and q["cost"]["usd_compute"] == 0
    assert q["cost"]["usd_human_all_range"] == pytest.approx([K * 0.25, K * 1.5])
    assert (run / "autolabel_pr.png").stat().st_size > 10_000

    # train --iter 1 --arm prototype reads the accepted labels
    split = RunRef(runs / "03_split", 3, "split")
    data = write_dataset_yaml(tmp / "d.yaml", split, [parse_run_name(run)])
    assert yaml.safe_load(data.read_text())["train"][-1] == str((run / "yolo/images/train").resolve())
    assert count_images(data)["autolabel"] == K

    # the same inputs: a no-op; --force redoes it
    again = _invoke(path)
    assert again.exit_code == 0 and "up to date" in again.output
    assert len(list(runs.glob("*_autolabel_iter0_prototype"))) == 1


def test_stage_detector_end_to_end(turn: tuple[Path, Path]) -> None:
    tmp, path = turn
    result = _invoke(path, "--set", "autolabel.labeler=detector", "--set", "autolabel.conf=0.0001",
                     "--set", "autolabel.accept=0.001", "--set", "autolabel.drop=0.0005")
    assert result.exit_code == 0, result.output
    runs = tmp / "runs"
    run = sorted(runs.glob("*_autolabel_iter0_prototype"))[-1]
    res = json.loads((run / "result.json").read_text())
    m = res["metrics"]
    assert m["labeler"] == "detector" and m["n_frames"] == K
    assert res["inputs"]["weights"].endswith("_train_iter0/ultralytics/weights/best.pt")
    assert recorded_reads(res) == set(STAGE_BY_NAME["autolabel"].reads)  # the iteration's detector: its train run
    labels = json.loads((run / "autolabels.json").read_text())
    assert len(labels) == K
    routes = [lab["route"] for f in labels for lab in f["labels"]]
    assert sum(m["n_boxes"].values()) == len(routes) and set(routes) <= {"accept", "review", "drop"}
    assert all(lab["category"] in CLASSES and 0 <= lab["score"] <= 1 for f in labels for lab in f["labels"])
    queue = json.loads((run / "review_queue.json").read_text())
    assert len(queue) == m["n_review_frames"] and all(f["n_review"] == len(f["boxes"]) >= 1 for f in queue)
    # only frames with an accepted box are training data
    n_with_accept = sum(any(lab["route"] == "accept" for lab in f["labels"]) for f in labels)
    assert m["n_train_images"] <= n_with_accept
    assert len(list((run / "yolo/images/train").iterdir())) == m["n_train_images"]
    q = json.loads((run / "quality.json").read_text())
    s = q["sweep"]["overall"]
    assert len(s["threshold"]) == len(s["precision"]) == len(s["recall"])
    assert (np.diff(s["recall"]) >= 0).all()
    # an auto arm charges nothing but compute: no frame goes to humans
    assert q["cost"]["usd_compute"] >= 0 and q["cost"]["frames_to_humans"] == 0 == m["n_human_frames"]
    assert m["label_source"] == "auto" and q["cost"]["usd_human"] == 0
    assert q["skippable"] is not None or "not reachable" in q["skippable_note"]
    assert (run / "autolabel_pr.png").is_file()


def test_stage_grounded_without_weights_fails_clearly(turn: tuple[Path, Path]) -> None:
    _, path = turn
    result = _invoke(path, "--set", "autolabel.labeler=grounded",
                     "--set", "autolabel.grounded_model=bddtest-missing-worldv2.pt")
    assert result.exit_code == 2
    assert "autolabel.grounded_model=bddtest-missing-worldv2.pt" in result.output
    assert "weights file not found" in result.output and "Download" in result.output


def test_stage_without_a_mine_run_says_what_to_run(tmp_path: Path) -> None:
    from conftest import write_config

    path = write_config(tmp_path / "c.yaml", tmp_path / "world", tmp_path / "runs")
    result = _invoke(path)
    assert result.exit_code == 2 and "bddengine mine --iter 0 --strategy prototype" in result.output


def test_a_new_labeler_with_weights_is_one_module_and_one_entry(turn: tuple[Path, Path]) -> None:
    """A labeler in its own module that registers itself, its entry naming the config key of its weights:
    the config accepts the name, the stage checks the file, hands it over and labels with it."""
    import importlib
    import sys

    import torch

    from bddengine.labeling.registry import unregister

    tmp, path = turn
    weights = tmp / "corner.pt"
    torch.save({"side": torch.tensor(12.0)}, weights)
    use = ("--set", "autolabel.labeler=corner", "--set", f"autolabel.detector_model={weights}")
    assert _invoke(path, *use).exit_code == 2  # not registered yet
    try:
        importlib.import_module("corner_labeler")  # the module's one register() call is the entry
        missing = _invoke(path, "--set", "autolabel.labeler=corner",
                          "--set", "autolabel.detector_model=bddtest-missing-corner.pt")
        result = _invoke(path, *use)
    finally:
        unregister("corner")
        sys.modules.pop("corner_labeler", None)
    assert missing.exit_code == 2 and "autolabel.detector_model=bddtest-missing-corner.pt" in missing.output
    assert "weights file not found" in missing.output
    assert result.exit_code == 0, result.output
    run = sorted((tmp / "runs").glob("*_autolabel_iter0_prototype"))[-1]
    res = json.loads((run / "result.json").read_text())
    m = res["metrics"]
    assert res["inputs"]["weights"] == str(weights.resolve())  # resolved from the entry's key
    assert m["labeler"] == "corner" and m["label_source"] == "auto" and m["n_frames"] == K
    assert m["n_boxes"]["accept"] == K and m["n_train_images"] == K
    labels = json.loads((run / "autolabels.json").read_text())
    assert {lab["box2d"]["x2"] for f in labels for lab in f["labels"]} == {12.0}  # the side the weights hold
    assert _invoke(path, *use).exit_code == 2  # gone again with its entry


def test_a_labeler_entry_that_stands_in_for_humans_makes_human_arms() -> None:
    """``stands_in_for_humans`` on the entry, not the name ``oracle``, makes unsuffixed arms human
    and refuses machine-labeled arms."""
    from pydantic import ValidationError

    from bddengine.config import EngineConfig, label_source
    from bddengine.labeling.labelers import LabelerSpec
    from bddengine.labeling.registry import LABELERS, register, unregister

    assert LABELERS["oracle"].stands_in_for_humans and not LABELERS["detector"].stands_in_for_humans
    assert label_source("prototype", "oracle") == "human" and label_source("prototype", "vendor") == "auto"
    register(LabelerSpec("vendor", "another labeling vendor", stands_in_for_humans=True))
    try:
        assert label_source("prototype", "vendor") == "human"
        assert label_source("prototype-pyramid", "vendor") == "pyramid"
        EngineConfig.model_validate({"autolabel": {"labeler": "vendor"}, "flywheel": {"arms": ["prototype"]}})
        with pytest.raises(ValidationError, match=r"autolabel.labeler is vendor \(the hidden ground truth"):
            EngineConfig.model_validate({"autolabel": {"labeler": "vendor"},
                                         "flywheel": {"arms": ["prototype-auto"]}})
        with pytest.raises(ValueError, match="already registered"):
            register(LabelerSpec("vendor", "twice", stands_in_for_humans=True))
    finally:
        unregister("vendor")
    assert label_source("prototype", "vendor") == "auto" and "vendor" not in LABELERS
    with pytest.raises(ValueError, match="needs `build`"):
        LabelerSpec("half", "a machine labeler that cannot be built")


def test_stage_pyramid_end_to_end(turn: tuple[Path, Path]) -> None:
    """Audit frames and review frames are labeled by the human stand-in, the rest by accepted boxes."""
    tmp, path = turn
    result = CliRunner().invoke(app, [
        "autolabel", "--iter", "0", "--arm", "prototype-pyramid", "--config", str(path),
        "--set", "autolabel.labeler=detector", "--set", "autolabel.conf=0.0001", "--set", "autolabel.audit_frames=3",
        "--set", "autolabel.target_precision=0.01", "--set", "autolabel.audit_min_boxes=1"])
    assert result.exit_code == 0, result.output
    (run,) = sorted((tmp / "runs").glob("*_autolabel_iter0_prototype-pyramid"))
    res = json.loads((run / "result.json").read_text())
    m, cal = res["metrics"], res["calibration"]
    assert res["inputs"]["mine"].endswith("_mine_iter0_prototype")  # the mining arm's run, shared by sources
    assert m["label_source"] == "pyramid" and m["n_audit_frames"] == 3 == len(cal["audit_frames"])
    labels = {f["name"]: f for f in json.loads((run / "autolabels.json").read_text())}
    assert {n for n, f in labels.items() if f["why"] == "audit"} == set(cal["audit_frames"])
    assert m["n_human_frames"] == 3 + m["n_reviewed_by_humans"]
    assert m["n_human_frames"] + m["n_machine_frames"] <= K == m["n_frames"]
    assert m["cost"]["frames_to_humans"] == m["n_human_frames"]
    assert m["cost"]["usd_human"] == pytest.approx(m["n_human_frames"] * 0.5)
    # every frame a human labeled carries the human's boxes in the training data
    boxes = pd.read_parquet(tmp / "runs/01_collect/boxes.parquet")
    for name, f in labels.items():
        if f["labeled_by"] == "human":
            want = int((~boxes[boxes["name"] == name]["ignored"]).sum())
            got = (run / "yolo/labels/train" / f"{Path(name).stem}.txt").read_text().splitlines()
            assert len(got) == want
    assert {r["group"] for r in m["per_slice"]} <= {"worst slice", "rest", "all"} and m["per_slice"]


def test_machine_labeler_never_sees_hidden_ground_truth(turn: tuple[Path, Path]) -> None:
    """Poison the hidden labels: the machine's boxes do not move; only its scores against GT do."""
    tmp, path = turn
    args = ["--set", "autolabel.labeler=detector", "--set", "autolabel.conf=0.0001", "--force"]
    assert _invoke(path, *args).exit_code == 0
    run = sorted((tmp / "runs").glob("*_autolabel_iter0_prototype"))[-1]
    before = [(f["name"], f["labels"]) for f in json.loads((run / "autolabels.json").read_text())]
    parquet = tmp / "runs/01_collect/boxes.parquet"
    clean = parquet.read_bytes()
    boxes = pd.read_parquet(parquet)
    poisoned = boxes.assign(x1=boxes["x1"] + 7, x2=boxes["x2"] + 91, category="bus")
    try:
        poisoned.to_parquet(parquet)
        assert _invoke(path, *args).exit_code == 0
    finally:
        parquet.write_bytes(clean)
    run2 = sorted((tmp / "runs").glob("*_autolabel_iter0_prototype"))[-1]
    assert run2 != run
    after = [(f["name"], f["labels"]) for f in json.loads((run2 / "autolabels.json").read_text())]
    assert after == before and any(labels for _, labels in before)


class _ClipLike(__import__("torch").nn.Module):
    """The tensors that tell OpenAI CLIP ViT-B/32 apart, in a model small enough for a test."""

    def __init__(self, patch: int = 32) -> None:
        import torch

        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.conv1 = torch.nn.Conv2d(3, 768, patch, patch, bias=False)
        self.visual.proj = torch.nn.Parameter(torch.zeros(768, 512))
        self.text_projection = torch.nn.Parameter(torch.zeros(512, 512))
        self.positional_embedding = torch.nn.Parameter(torch.zeros(77, 512))

    def forward(self, x):
        return x @ self.text_projection


def test_text_encoder_file_problems_are_one_paragraph_with_the_exact_address(tmp_path: Path) -> None:
    """Wrong checksum, a state dict, another architecture: each named, with the file and its address."""
    import torch

    from bddengine.labeling.labelers import CLIP_VIT_B32_URL

    file = tmp_path / "clip" / "ViT-B-32.pt"
    file.parent.mkdir()

    def problem() -> str:
        msg = text_encoder_problem("world", folder=tmp_path, clip_importable=True)
        assert msg is not None and "\n" not in msg
        assert str(file.resolve()) in msg and CLIP_VIT_B32_URL in msg and "SHA-256" in msg
        return msg

    torch.jit.script(_ClipLike()).save(str(file))
    assert "TorchScript CLIP ViT-B/32 but not OpenAI's file" in problem()
    torch.save(_ClipLike().state_dict(), file)
    assert "is a state dict (torch.save), not OpenAI's TorchScript release" in problem()
    torch.jit.script(_ClipLike(patch=16)).save(str(file))
    assert "TorchScript model of another architecture (visual.conv1.weight is [768, 3, 16, 16]" in problem()
    file.write_bytes(b"not a model")
    assert "not a PyTorch file" in problem()


def test_autolabel_stops_on_a_bad_text_encoder_before_loading_anything(tmp_path: Path, monkeypatch) -> None:
    """The grounded labeler's files are checked together, before any model is loaded or downloaded."""
    import torch

    from bddengine.labeling import labelers
    from bddengine.labeling.registry import LABELERS

    weights = tmp_path / "weights"
    (weights / "clip").mkdir(parents=True)
    torch.save(_ClipLike().state_dict(), weights / "clip" / "ViT-B-32.pt")
    (weights / "yolov8x-worldv2.pt").write_bytes(b"w")
    monkeypatch.setattr(labelers, "weights_dir", lambda: weights)
    monkeypatch.setattr(labelers, "resolve_weights",
                        lambda model, key: resolve_weights(model, key, folder=weights))
    monkeypatch.setattr(labelers, "clip_installed", lambda: True)
    a = SimpleNamespace(grounded_model="yolov8x-worldv2.pt", sam_model="sam2_b.pt")
    with pytest.raises(labelers.MissingWeights) as err:
        LABELERS["grounded"].weights(a, lambda: pytest.fail("no iteration weights needed"))
    keys = [k for k, _ in err.value.problems]
    assert keys == ["autolabel.sam_model", "text encoder"]
    assert "sam2_b.pt" in str(err.value) and "state dict" in str(err.value)
    torch.jit.script(_ClipLike()).save(str(weights / "clip" / "ViT-B-32.pt"))
    from bddengine.weights_trust import sha256_file

    monkeypatch.setattr(labelers, "CLIP_VIT_B32_SHA256", sha256_file(weights / "clip" / "ViT-B-32.pt"))
    found = LABELERS["grounded"].weights(SimpleNamespace(grounded_model="yolov8x-worldv2.pt", sam_model=None),
                                         lambda: pytest.fail("no iteration weights needed"))
    assert found == {"weights": (weights / "yolov8x-worldv2.pt").resolve(),
                     "text_encoder": (weights / "clip" / "ViT-B-32.pt").resolve()}


@pytest.mark.parametrize("arm, words", [("protoype-pyramid", "strategy must be one of"),
                                         ("prototype-pyramid", "autolabel.labeler is oracle")])
def test_bad_arm_is_one_paragraph_and_exit_2(tmp_path: Path, arm: str, words: str) -> None:
    """A misspelled arm, or a machine-label arm with the hidden-GT labeler: exit 2, no traceback."""
    from conftest import write_config

    path = write_config(tmp_path / "c.yaml", tmp_path / "world", tmp_path / "runs",
                        autolabel={"labeler": "oracle"})
    if arm == "prototype-pyramid":  # the mine run exists; the labeler is what is wrong
        (tmp_path / "runs").mkdir()
        with StageRun(tmp_path / "runs", "mine", {}, 42, "fp", iter=0, tag="prototype") as run:
            run.commit(outputs={}, metrics={})
    result = CliRunner().invoke(app, ["autolabel", "--iter", "0", "--arm", arm, "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
