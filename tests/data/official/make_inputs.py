"""Write the inputs of the official-evaluator cases from the committed conformance case.

Run once from the repository root (the outputs are committed beside this file):

    python tests/data/official/make_inputs.py tests/data/conformance/bdd100k-det-eval

then score each case, and each slice of the sliced cases, with the official toolkit
(see README.md here). Every random choice comes from a generator seeded per case.
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
N_FRAMES = 10
N_SMALL = 5  # frames of the newer cases: keeps the committed fixtures small
FALSE_WORDS = ("false", "False", "no", "0", "off", "n", "f", "FALSE")
TRUE_WORDS = ("true", "True", "yes", "1", "on", "y", "t")


def main(conformance: Path) -> None:
    gt = sorted(json.loads((conformance / "gt.json").read_text()), key=lambda f: f["name"])[:N_FRAMES]
    names = {f["name"] for f in gt}
    pred = [f for f in json.loads((conformance / "pred.json").read_text()) if f["name"] in names]
    pred.sort(key=lambda f: f["name"])

    # 1. a frame listed twice in the predictions: the second record holds half its boxes
    again = copy.deepcopy(pred[3])
    again["labels"] = again["labels"][: len(again["labels"]) // 2]
    write("duplicate_pred", gt, [*pred, again])

    # 2. crowd written as strings that pydantic reads as booleans
    crowd_gt = copy.deepcopy(gt)
    n_false = n_true = 0
    for frame in crowd_gt:
        for label in frame["labels"]:
            if label["attributes"]["crowd"]:
                label["attributes"]["crowd"] = TRUE_WORDS[n_true % len(TRUE_WORDS)]
                n_true += 1
            else:
                label["attributes"]["crowd"] = FALSE_WORDS[n_false % len(FALSE_WORDS)]
                n_false += 1
    write("crowd_string", crowd_gt, pred)

    # 3. no predictions at all; one class whose only GT is a crowd box, one only an ignored category
    empty_gt = copy.deepcopy(gt)
    empty_gt[0]["labels"].append({"id": "crowd-bus", "category": "bus",
                                  "attributes": {"occluded": False, "truncated": False, "crowd": True},
                                  "box2d": {"x1": 100.0, "y1": 100.0, "x2": 300.0, "y2": 250.0}})
    empty_gt[1]["labels"].append({"id": "other-person", "category": "other person",
                                  "attributes": {"occluded": False, "truncated": False, "crowd": False},
                                  "box2d": {"x1": 500.0, "y1": 300.0, "x2": 540.0, "y2": 400.0}})
    write("no_predictions", empty_gt, [{"name": f["name"], "labels": []} for f in pred])

    small_gt, small_pred = compact(gt[:N_SMALL]), compact(pred[:N_SMALL])
    write_compact("jitter_inverted", *jitter_inverted(small_gt, small_pred, random.Random(1)))
    write_compact("off_image", *off_image(small_gt, small_pred, random.Random(2)))
    write_compact("numeric_strings", small_gt, numeric_strings(small_pred, random.Random(3)))
    write_compact("nan_scores", small_gt, nan_scores(small_pred, random.Random(4)))
    write_compact("crowd_ignored", *crowd_ignored(small_gt, small_pred, random.Random(5)))
    write_compact("empty_frames", *empty_frames(small_gt, small_pred))
    write_compact("max_dets", small_gt, max_dets(small_pred, random.Random(7)))
    write_compact("legacy_names", *legacy_names(small_gt, small_pred, random.Random(8)))
    write_compact("crowd_types", crowd_types(small_gt), small_pred)
    sliced_gt, sliced_pred = sliced(compact(gt), compact(pred), random.Random(10))
    write_compact("sliced", sliced_gt, sliced_pred)
    write_slices("sliced", sliced_gt, sliced_pred, [["weather", "timeofday"], ["weather"], ["scene"]])


def compact(frames: list) -> list:
    """A copy with coordinates rounded to 0.01 px and scores to 4 digits (smaller files, same kind of data)."""
    out = copy.deepcopy(frames)
    for frame in out:
        for label in frame["labels"]:
            label["box2d"] = {k: round(v, 2) for k, v in label["box2d"].items()}
            if "score" in label:
                label["score"] = round(label["score"], 4)
    return out


def jitter_inverted(gt: list, pred: list, rng: random.Random) -> tuple[list, list]:
    """Predictions jittered by a few pixels; some become inverted by under a pixel (a tiny box, still
    scored), some by more (a false positive that matches nothing); one GT box inverted too."""
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    for frame in pred:
        for label in frame["labels"]:
            b = label["box2d"]
            for k in b:
                b[k] = round(b[k] + rng.gauss(0, 2), 2)
            roll = rng.random()
            if roll < 0.08:  # x2 just under x1: 0.0-1.0 px wide once the end pixel counts
                b["x2"] = round(b["x1"] - rng.uniform(0.05, 0.95), 2)
            elif roll < 0.16:  # swapped corners: inverted by more than a pixel
                b["x1"], b["x2"] = b["x2"], b["x1"]
            elif roll < 0.20:
                b["y1"], b["y2"] = b["y2"], b["y1"]
    b = gt[1]["labels"][0]["box2d"]
    b["x1"], b["x2"] = b["x2"], b["x1"]
    return gt, pred


def off_image(gt: list, pred: list, rng: random.Random) -> tuple[list, list]:
    """Boxes reaching past every edge of the 1280x720 image, and one wholly outside it."""
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    for frame in pred:
        for label in frame["labels"][::4]:
            b = label["box2d"]
            dx, dy = rng.choice([(-1, 0), (1, 0), (0, -1), (0, 1)])
            shift_x = -b["x1"] - rng.uniform(5, 40) if dx < 0 else (1280 - b["x2"] + rng.uniform(5, 40) if dx else 0)
            shift_y = -b["y1"] - rng.uniform(5, 40) if dy < 0 else (720 - b["y2"] + rng.uniform(5, 40) if dy else 0)
            for k in ("x1", "x2"):
                b[k] = round(b[k] + shift_x, 2)
            for k in ("y1", "y2"):
                b[k] = round(b[k] + shift_y, 2)
    pred[0]["labels"].append({"id": "outside", "category": "car", "score": 0.77,
                              "box2d": {"x1": 1300.0, "y1": 730.0, "x2": 1400.0, "y2": 800.0}})
    b = gt[2]["labels"][0]["box2d"]
    b["x1"] = -12.5
    return gt, pred


def numeric_strings(pred: list, rng: random.Random) -> list:
    """Scores and coordinates written as strings (and a few as bools), as pydantic reads floats."""
    pred = copy.deepcopy(pred)
    for frame in pred:
        for label in frame["labels"]:
            roll = rng.random()
            if roll < 0.3:
                label["score"] = str(label["score"])
            elif roll < 0.4:
                label["score"] = f" {label['score']:.6e} "
            if rng.random() < 0.3:
                k = rng.choice(["x1", "y1", "x2", "y2"])
                label["box2d"][k] = str(label["box2d"][k])
    pred[0]["labels"][0]["score"] = True  # pydantic reads it as 1.0
    pred[1]["labels"][0]["box2d"]["x1"] = False  # 0.0
    return pred


def nan_scores(pred: list, rng: random.Random) -> list:
    """NaN scores (JSON NaN and the string "nan"), infinite ones, and runs of equal scores."""
    pred = copy.deepcopy(pred)
    for frame in pred:
        for label in frame["labels"]:
            roll = rng.random()
            if roll < 0.1:
                label["score"] = math.nan
            elif roll < 0.13:
                label["score"] = "nan"
            elif roll < 0.15:
                label["score"] = rng.choice([math.inf, -math.inf])
            elif roll < 0.45:
                label["score"] = rng.choice([0.5, 0.25])  # ties: the order of equal scores matters
    return pred


def crowd_ignored(gt: list, pred: list, rng: random.Random) -> tuple[list, list]:
    """Crowd regions and ignored categories in the GT, with predictions on them."""
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    for frame in gt:
        for label in frame["labels"]:
            roll = rng.random()
            if roll < 0.15:
                label["attributes"]["crowd"] = True
            elif roll < 0.25 and label["category"] == "car":
                label["category"] = "other vehicle"
            elif roll < 0.3 and label["category"] == "truck":
                label["category"] = "trailer"
    gt[0]["labels"].append({"id": "crowd-bus", "category": "bus",
                            "attributes": {"occluded": False, "truncated": False, "crowd": True},
                            "box2d": {"x1": 100.0, "y1": 100.0, "x2": 300.0, "y2": 250.0}})
    gt[1]["labels"].append({"id": "ignored-person", "category": "other person",
                            "attributes": {"occluded": False, "truncated": False, "ignored": True},
                            "box2d": {"x1": 500.0, "y1": 300.0, "x2": 540.0, "y2": 400.0}})
    pred[0]["labels"].append({"id": "on-crowd", "category": "bus", "score": 0.6,
                              "box2d": {"x1": 120.0, "y1": 110.0, "x2": 200.0, "y2": 200.0}})
    pred[1]["labels"].append({"id": "on-ignored", "category": "pedestrian", "score": 0.7,
                              "box2d": {"x1": 502.0, "y1": 305.0, "x2": 538.0, "y2": 398.0}})
    return gt, pred


def empty_frames(gt: list, pred: list) -> tuple[list, list]:
    """GT frames without boxes (empty list, null, no key), prediction frames without boxes,
    a GT frame no prediction names and a prediction frame the GT does not have."""
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    gt[0]["labels"] = []
    gt[1]["labels"] = None
    del gt[2]["labels"]
    pred[3]["labels"] = []
    extra = {"name": "not-in-the-gt.jpg", "labels": copy.deepcopy(pred[4]["labels"])}
    return gt, [*pred[:4], extra]  # pred[4]'s frame is in the GT but not predicted


def max_dets(pred: list, rng: random.Random) -> list:
    """A frame with 160 car predictions (COCO keeps the 100 best per class and frame), many tied."""
    pred = copy.deepcopy(pred)
    base = [label for label in pred[2]["labels"] if label["category"] == "car"]
    extra = []
    for i in range(160 - len(base)):
        label = copy.deepcopy(base[i % len(base)])
        label["id"] = f"extra-{i}"
        label["score"] = rng.choice([0.3, 0.3, round(rng.random(), 4)])
        for k in label["box2d"]:
            label["box2d"][k] = round(label["box2d"][k] + rng.gauss(0, 3), 2)
        extra.append(label)
    pred[2]["labels"].extend(extra)
    return pred


LEGACY = {"pedestrian": "person", "car": "van", "bicycle": "bike", "motorcycle": "motor"}


def legacy_names(gt: list, pred: list, rng: random.Random) -> tuple[list, list]:
    """Legacy category names (person, van, caravan, bike, motor) on both sides."""
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    for frame in [*gt, *pred]:
        for label in frame["labels"]:
            if label["category"] in LEGACY and rng.random() < 0.5:
                label["category"] = "caravan" if label["category"] == "car" and rng.random() < 0.3 \
                    else LEGACY[label["category"]]
    return gt, pred


CROWD_VALUES = (2, 0.5, "maybe", "", "0.0", 1.0, "yes", -1, "2", 1.5, "nan", "off", 0)


def crowd_types(gt: list) -> list:
    """crowd as ints, floats and strings that pydantic reads, or not, as a bool."""
    gt = copy.deepcopy(gt)
    labels = [label for frame in gt for label in frame["labels"]]
    for i, value in enumerate(CROWD_VALUES):
        labels[3 * i]["attributes"]["crowd"] = value
    labels[1]["attributes"]["ignored"] = "1"
    return gt


WEATHERS = ("clear", "rainy", "overcast")
TIMES = ("daytime", "night")
SCENES = ("highway", "city street")


def sliced(gt: list, pred: list, rng: random.Random) -> tuple[list, list]:
    """Frames with random weather/timeofday/scene attributes (one missing timeofday: "undefined").

    The two "snowy" frames have no prediction at all (the official empty result), and one
    holds a crowd train; in the "foggy" frame every bus is a crowd box (a class with GT only
    as crowd, in a slice with predictions).
    """
    gt, pred = copy.deepcopy(gt), copy.deepcopy(pred)
    for frame in gt:
        frame["attributes"] = {"weather": rng.choice(WEATHERS), "timeofday": rng.choice(TIMES),
                               "scene": rng.choice(SCENES)}
    del gt[1]["attributes"]["timeofday"]
    gt[2]["attributes"]["weather"] = gt[3]["attributes"]["weather"] = "snowy"
    for frame in pred:
        if frame["name"] in (gt[2]["name"], gt[3]["name"]):
            frame["labels"] = []
    gt[2]["labels"].append({"id": "crowd-train", "category": "train",  # officially 0.0 there, not NaN
                            "attributes": {"occluded": False, "truncated": False, "crowd": True},
                            "box2d": {"x1": 400.0, "y1": 200.0, "x2": 900.0, "y2": 500.0}})
    gt[4]["attributes"]["weather"] = "foggy"
    gt[4]["labels"].append({"id": "crowd-bus", "category": "bus",
                            "attributes": {"occluded": False, "truncated": False, "crowd": True},
                            "box2d": {"x1": 100.0, "y1": 100.0, "x2": 300.0, "y2": 250.0}})
    gt[4]["labels"].append({"id": "ignored-person", "category": "other person",
                            "attributes": {"occluded": False, "truncated": False, "crowd": False},
                            "box2d": {"x1": 500.0, "y1": 300.0, "x2": 540.0, "y2": 400.0}})
    return gt, pred


def slice_slug(key: dict) -> str:
    return "__".join(f"{a}={v}".replace(" ", "_").replace("/", "-") for a, v in key.items())


def write_slices(case: str, gt: list, pred: list, groupings: list) -> None:
    """Each slice's frames alone (inputs for the official evaluator, not committed) and the list.

    ``slices.json`` lists, per grouping, each slice's key, folder and frame names; a frame
    without an attribute joins that attribute's "undefined" slice, as ``score`` does.
    """
    listing = []
    for by in groupings:
        groups: dict = {}
        for frame in gt:
            key = {a: (frame.get("attributes") or {}).get(a) or "undefined" for a in by}
            groups.setdefault(json.dumps(key), []).append(frame["name"])
        for key_text, names in sorted(groups.items()):
            key = json.loads(key_text)
            slug = slice_slug(key)
            folder = HERE / case / "slices" / slug
            folder.mkdir(parents=True, exist_ok=True)
            chosen = set(names)
            (folder / "gt.json").write_text(json.dumps([f for f in gt if f["name"] in chosen]) + "\n")
            (folder / "pred.json").write_text(json.dumps([f for f in pred if f["name"] in chosen]) + "\n")
            listing.append({"by": by, "key": key, "folder": slug, "frames": sorted(names)})
    (HERE / case / "slices.json").write_text(json.dumps(listing, indent=1) + "\n")


def write_compact(case: str, gt: list, pred: list) -> None:
    folder = HERE / case
    folder.mkdir(exist_ok=True)
    for name, frames in (("gt.json", gt), ("pred.json", pred)):
        (folder / name).write_text(json.dumps(frames, separators=(",", ":")) + "\n")


def write(case: str, gt: list, pred: list) -> None:
    folder = HERE / case
    folder.mkdir(exist_ok=True)
    (folder / "gt.json").write_text(json.dumps(gt) + "\n")
    (folder / "pred.json").write_text(json.dumps(pred) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
