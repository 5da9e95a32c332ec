"""Hostile-user mutations of det_20 files, and the oracle that judges what the engine did.

Shared by tests/test_fuzz_bad_input.py (hypothesis drives it) and
benchmarks/fuzz_bad_input.py (a seeded run over a few hundred files that prints
the figures). A mutation changes one thing in a small det_20 ground-truth or
prediction file; each file is fed to collect's parsing (ground truth only) and
to ``score``, as ground truth or as predictions. The outcome is one of:

- ``error``: a known error with a message naming the file (a clean CLI error);
- ``counted``: accepted, and the label checks counted something;
- ``unchanged``: accepted, nothing counted, every number as on the original file;
- ``silent``: accepted, nothing counted, but a number changed;
- ``traceback``: any other exception.

A mutation marked ``same`` must give the original numbers whatever is counted
(e.g. ``crowd: "false"`` reads as false); breaking that is ``silent`` too.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bddengine.bdd.categories import ATTRIBUTE_VALUES, CLASSES
from bddengine.bdd.loader import LabelFileError
from bddengine.errors import StageInputError
from bddengine.evaluation import UnknownFrameError, score_files
from bddengine.evaluation.score import ScoreError
from bddengine.stages.collect import clip_to_images, parse_label_files

KNOWN = (LabelFileError, StageInputError, UnknownFrameError, ScoreError)
OUTCOMES = ("error", "counted", "unchanged", "silent", "traceback")
TOKEN = "__fuzz_token_{}__"

# raw JSON text for values Python's json cannot write as such
RAW_VALUES = {
    "inf_literal": "Infinity",
    "minus_inf_literal": "-Infinity",
    "nan_literal": "NaN",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "huge_int": "1" + "0" * 400,
    "deep_nesting": "[" * 5000 + "]" * 5000,
    "lone_surrogate": '"frame-\\ud800.jpg"',
}


def base_files(seed: int = 0, n_frames: int = 16) -> tuple[list[dict], list[dict]]:
    """A small det_20 ground truth with frame attributes, crowd and ignored boxes, and its predictions."""
    rng = random.Random(seed)
    gt, pred = [], []
    for i in range(n_frames):
        name = f"{i:08x}-{i:08x}.jpg"
        labels, preds = [], []
        for j in range(rng.randint(2, 6)):
            x1, y1 = rng.uniform(10, 1000), rng.uniform(10, 550)
            box = {"x1": x1, "y1": y1, "x2": x1 + rng.uniform(8, 170), "y2": y1 + rng.uniform(8, 110)}
            category = rng.choice(CLASSES[:5] + ("other person",))
            crowd = rng.random() < 0.1
            labels.append({"id": f"{i}-{j}", "category": category, "box2d": box,
                           "attributes": {"occluded": rng.random() < 0.3, "truncated": False, "crowd": crowd}})
            if rng.random() < 0.8:
                jitter = {k: v + rng.uniform(-4, 4) for k, v in box.items()}
                preds.append({"id": f"p{i}-{j}", "category": "pedestrian" if category == "other person"
                              else category, "box2d": jitter, "score": round(rng.uniform(0.05, 1.0), 4)})
        for j in range(rng.randint(0, 2)):  # false positives
            x1, y1 = rng.uniform(10, 1000), rng.uniform(10, 550)
            preds.append({"id": f"fp{i}-{j}", "category": rng.choice(CLASSES[:5]), "score": rng.uniform(0, 0.5),
                          "box2d": {"x1": x1, "y1": y1, "x2": x1 + 40, "y2": y1 + 30}})
        gt.append({"name": name, "attributes": {
            "weather": rng.choice(ATTRIBUTE_VALUES["weather"][:3]),
            "timeofday": rng.choice(ATTRIBUTE_VALUES["timeofday"][:2]),
            "scene": rng.choice(ATTRIBUTE_VALUES["scene"][:2])}, "timestamp": 10000, "labels": labels})
        pred.append({"name": name, "labels": preds})
    return gt, pred


@dataclass(frozen=True)
class Mutation:
    """One change: which file, what kind, where (indices picked by the caller's rng)."""

    target: str  # "gt" or "pred"
    kind: str
    frame: int
    label: int
    pick: int = 0

    @property
    def same(self) -> bool:
        """The change must leave every number as it was (the file means the same thing)."""
        return self.kind in SAME_KINDS


def _set_box(coord: str, value: Any):
    def f(label: dict) -> None:
        label["box2d"][coord] = value
    return f


FALSE_WORDS = ("false", "False", "no", "0", "off", "n", "f", "NO", 0, 0.0, False)
TRUE_WORDS = ("true", "True", "yes", "1", "on", "y", "t", 1, 1.0, True)
BAD_FLAGS = ("maybe", 2, 0.5, None, [1], {"a": 1}, "", "null")

LABEL_KINDS: dict[str, Any] = {
    "label_not_dict": None,
    "category_unknown": lambda lb: lb.__setitem__("category", "hovercraft"),
    "category_int": lambda lb: lb.__setitem__("category", 7),
    "category_missing": lambda lb: lb.pop("category"),
    "box_missing": lambda lb: lb.pop("box2d"),
    "box_null": lambda lb: lb.__setitem__("box2d", None),
    "box_list": lambda lb: lb.__setitem__("box2d", [1, 2, 3, 4]),
    "coord_missing": lambda lb: lb["box2d"].pop("y2"),
    "coord_string": _set_box("x1", "10"),
    "coord_bool": _set_box("y1", True),
    "coord_null": _set_box("x2", None),
    "coord_inf": _set_box("x2", TOKEN.format("inf_literal")),
    "coord_minus_inf": _set_box("x1", TOKEN.format("minus_inf_literal")),
    "coord_nan": _set_box("y2", TOKEN.format("nan_literal")),
    "coord_1e400": _set_box("x2", TOKEN.format("1e400")),
    "coord_minus_1e400": _set_box("y1", TOKEN.format("-1e400")),
    "coord_huge_int": _set_box("x2", TOKEN.format("huge_int")),
    "coord_deep": _set_box("x1", TOKEN.format("deep_nesting")),
    "box_inverted": lambda lb: lb["box2d"].update(x1=lb["box2d"]["x2"], x2=lb["box2d"]["x1"]),
    "box_off_image": lambda lb: lb["box2d"].update(x1=lb["box2d"]["x1"] + 2000, x2=lb["box2d"]["x2"] + 2000),
    "box_partly_off": lambda lb: lb["box2d"].update(x2=1500.0),
    "box_negative": lambda lb: lb["box2d"].update(x1=-50.0),
    "crowd_false_word": "crowd_false",
    "crowd_bad": "crowd_bad",
    "occluded_bad": "occluded_bad",
    "ignored_bad": "ignored_bad",
    "attributes_not_dict": lambda lb: lb.__setitem__("attributes", [1, 2]),
    "score_missing": lambda lb: lb.pop("score", None),
    "score_string": lambda lb: lb.__setitem__("score", "0.9"),
    "score_nan": lambda lb: lb.__setitem__("score", TOKEN.format("nan_literal")),
    "score_inf": lambda lb: lb.__setitem__("score", TOKEN.format("inf_literal")),
    "score_bool": lambda lb: lb.__setitem__("score", True),
    "score_huge": lambda lb: lb.__setitem__("score", TOKEN.format("huge_int")),
    "extra_key": lambda lb: lb.__setitem__("poly2d", [[1, 2]]),
    "id_huge_int": lambda lb: lb.__setitem__("id", TOKEN.format("huge_int")),
}

FRAME_KINDS: dict[str, Any] = {
    "frame_not_dict": None,
    "name_missing": lambda fr: fr.pop("name"),
    "name_int": lambda fr: fr.__setitem__("name", 12),
    "name_empty": lambda fr: fr.__setitem__("name", ""),
    "name_deep": lambda fr: fr.__setitem__("name", TOKEN.format("deep_nesting")),
    "name_surrogate": lambda fr: fr.__setitem__("name", TOKEN.format("lone_surrogate")),
    "name_duplicate": "duplicate",
    "name_unknown": lambda fr: fr.__setitem__("name", "ffffffff-ffffffff.jpg"),
    "labels_dict": lambda fr: fr.__setitem__("labels", {}),
    "labels_string": lambda fr: fr.__setitem__("labels", "car"),
    "attributes_missing": lambda fr: fr.pop("attributes", None),
    "attributes_list": lambda fr: fr.__setitem__("attributes", ["clear"]),
    "weather_missing": lambda fr: fr.get("attributes", {}).pop("weather", None),
    "timeofday_missing": lambda fr: fr.get("attributes", {}).pop("timeofday", None),
    "scene_missing": lambda fr: fr.get("attributes", {}).pop("scene", None),
    "weather_unknown": lambda fr: fr.setdefault("attributes", {}).__setitem__("weather", "sunny"),
    "weather_int": lambda fr: fr.setdefault("attributes", {}).__setitem__("weather", 3),
    "timestamp_huge": lambda fr: fr.__setitem__("timestamp", TOKEN.format("huge_int")),
}

FILE_KINDS = ("file_truncated", "file_dict", "file_empty", "file_bad_utf8", "file_null", "file_deep")

SAME_KINDS = frozenset({"crowd_false_word", "extra_key"})
PRED_ONLY = frozenset({"name_unknown"})  # a new name is a valid GT edit; in predictions it is an error

KINDS: tuple[str, ...] = (*LABEL_KINDS, *FRAME_KINDS, *FILE_KINDS)


def mutate(gt: list[dict], pred: list[dict], m: Mutation) -> tuple[bytes, bytes]:
    """The two files, as bytes, with the mutation applied to its target."""
    files = {"gt": copy.deepcopy(gt), "pred": copy.deepcopy(pred)}
    frames = files[m.target]
    if m.kind in FILE_KINDS:
        text = _dump(frames)
        other = _dump(files["pred" if m.target == "gt" else "gt"])
        return (_file_kind(m.kind, text), other) if m.target == "gt" else (other, _file_kind(m.kind, text))
    frame = frames[m.frame % len(frames)]
    if m.kind in FRAME_KINDS:
        action = FRAME_KINDS[m.kind]
        if action is None:
            frames[m.frame % len(frames)] = [None, 3, "frame", []][m.pick % 4]
        elif action == "duplicate":
            frames.append(copy.deepcopy(frame))
        else:
            action(frame)
    else:
        labels = frame.get("labels") or []
        if not labels:
            frame = next((f for f in frames if f.get("labels")), frame)
            labels = frame.get("labels") or []
        if labels:
            i = m.label % len(labels)
            action = LABEL_KINDS[m.kind]
            label = labels[i]
            if action is None:
                labels[i] = [None, 5, "car", [1]][m.pick % 4]
            elif isinstance(action, str):
                key = action.split("_")[0]
                attrs = label.setdefault("attributes", {})
                if action == "crowd_false":
                    if attrs.get("crowd", False) is False:
                        attrs["crowd"] = FALSE_WORDS[m.pick % len(FALSE_WORDS)]
                    else:
                        attrs["crowd"] = TRUE_WORDS[m.pick % len(TRUE_WORDS)]
                else:
                    attrs[key] = BAD_FLAGS[m.pick % len(BAD_FLAGS)]
            else:
                action(label)
    texts = {k: _dump(v) for k, v in files.items()}
    return texts["gt"], texts["pred"]


def _dump(frames: list) -> bytes:
    text = json.dumps(frames)
    for key, raw in RAW_VALUES.items():
        text = text.replace(json.dumps(TOKEN.format(key)), raw)
    return text.encode()


def _file_kind(kind: str, text: bytes) -> bytes:
    return {
        "file_truncated": text[: len(text) // 2],
        "file_dict": b'{"frames": ' + text + b"}",
        "file_empty": b"",
        "file_bad_utf8": text[:20] + b"\xff\xfe" + text[20:],
        "file_null": b"null",
        "file_deep": b"[" * 100000 + b"]" * 100000,
    }[kind]


# -- running the engine ----------------------------------------------------------------


def collect_numbers(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """collect's parsing and box rules on one GT file: (frames, boxes, items counted)."""
    frames, boxes, malformed = parse_label_files({"train": path}, {})
    manifest = frames.assign(has_gt=True, width=1280, height=720)
    boxes, manifest = clip_to_images(boxes, manifest, malformed)
    boxes = boxes.drop(columns="label_id")  # an id is a name, not a number: changing it is a valid edit
    counted = malformed.total + sum(malformed.notes.values()) + malformed.non_detection
    return manifest, boxes, counted


def score_numbers(gt: Path, pred: Path) -> tuple[dict, int]:
    """score's numbers (the official table and the slices) and the items its checks counted."""
    doc = score_files(gt, pred, by=["weather", "timeofday"], n_boot=20, seed=1)
    checks = doc["checks"].values()
    counted = sum(c["total"] + sum(c["notes"].values()) + c["non_detection_labels"] for c in checks)
    return {"official": doc["official"], "slices": doc["slices"]}, counted


def judge(run, baseline, *, same: bool, file: Path) -> tuple[str, str]:
    """Run one engine path and classify it (see the module docstring); returns (outcome, detail)."""
    try:
        numbers, counted = run()
    except KNOWN as exc:
        message = str(exc)
        if file.name not in message and "frame" not in message:
            return "traceback", f"error without the file's name: {message[:200]}"
        return "error", message[:200]
    except Exception as exc:  # noqa: BLE001 - a traceback is what this oracle looks for
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    changed = not _equal(numbers, baseline)
    if same and changed:
        return "silent", "a change that means nothing changed the numbers"
    if counted:
        return "counted", f"{counted} counted"
    return ("silent", "numbers changed, nothing counted") if changed else ("unchanged", "")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.shape == b.shape and a.reset_index(drop=True).equals(
            b.reset_index(drop=True))
    if isinstance(a, tuple | list):
        return isinstance(b, tuple | list) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


class Fuzzer:
    """The original files and their numbers, written once into ``folder``."""

    def __init__(self, folder: Path, seed: int = 0):
        self.folder = folder
        self.gt, self.pred = base_files(seed)
        self.gt_path, self.pred_path = folder / "gt.json", folder / "pred.json"
        self.gt_path.write_bytes(_dump(self.gt))
        self.pred_path.write_bytes(_dump(self.pred))
        manifest, boxes, counted = collect_numbers(self.gt_path)
        self.collect_base = (manifest, boxes)
        self.score_base, score_counted = score_numbers(self.gt_path, self.pred_path)
        assert counted == 0 and score_counted == 0, "the original files must be clean"

    def run(self, m: Mutation) -> dict[str, tuple[str, str]]:
        """Outcome per engine path: collect and score-as-GT for a GT mutation, score-as-PRED for a pred one."""
        if m.kind in PRED_ONLY and m.target == "gt":
            m = Mutation("pred", m.kind, m.frame, m.label, m.pick)
        gt_bytes, pred_bytes = mutate(self.gt, self.pred, m)
        out: dict[str, tuple[str, str]] = {}
        if m.target == "gt":
            path = self.folder / "mut_gt.json"
            path.write_bytes(gt_bytes)

            def collect():
                manifest, boxes, counted = collect_numbers(path)
                return (manifest, boxes), counted

            out["collect"] = judge(collect, self.collect_base, same=m.same, file=path)
            out["score-GT"] = judge(lambda: score_numbers(path, self.pred_path), self.score_base,
                                    same=m.same, file=path)
        else:
            path = self.folder / "mut_pred.json"
            path.write_bytes(pred_bytes)
            out["score-PRED"] = judge(lambda: score_numbers(self.gt_path, path), self.score_base,
                                      same=m.same, file=path)
        return out


class CollectStage:
    """The whole ``collect`` stage on a small BDD100K-layout world, for the fuzz driver.

    Slower than `collect_numbers` (it writes a run folder each time), so the test
    suite uses the parsing path and the driver can add this one: it also checks
    that a failed collect leaves no run folder behind.
    """

    def __init__(self, folder: Path, gt: list[dict]):
        from PIL import Image

        from bddengine.config import EngineConfig

        self.root = folder / "bdd"
        images = self.root / "images" / "100k" / "train"
        images.mkdir(parents=True)
        (self.root / "labels").mkdir()
        for frame in gt:
            Image.new("RGB", (1280, 720), (90, 90, 90)).save(images / frame["name"], quality=50)
        self.runs = folder / "runs"
        self.cfg = EngineConfig.model_validate({
            "runs_dir": str(self.runs),
            "data": {"root": str(self.root), "label_files": {"train": "labels/det_train.json"}},
            "collect": {"splits": ["train"], "labeled_target": 10, "unlabeled_target": 10,
                        "min_per_bucket": 0, "drop_undefined": False},
            "fiftyone": {"enabled": False},
        })
        self.base = self._numbers(_dump(gt))[0]

    def _numbers(self, text: bytes) -> tuple[tuple[pd.DataFrame, pd.DataFrame], int]:
        from bddengine.stages import collect

        (self.root / "labels" / "det_train.json").write_bytes(text)
        before = set(self.runs.iterdir()) if self.runs.is_dir() else set()
        try:
            out = collect.run(self.cfg, force=True, progress=False)
        except BaseException:
            after = set(self.runs.iterdir()) if self.runs.is_dir() else set()
            if after != before:
                raise AssertionError(f"a failed collect left {sorted(p.name for p in after - before)}") from None
            raise
        malformed = json.loads((out.location / "malformed.json").read_text())
        bad_images = json.loads((out.location / "bad_images.json").read_text())
        counted = (malformed["total"] + sum(malformed["notes"].values()) + malformed["non_detection_labels"]
                   + len(bad_images))
        manifest = pd.read_parquet(out.location / "manifest.parquet").drop(columns="path")
        boxes = pd.read_parquet(out.location / "boxes.parquet").drop(columns="label_id")
        return (manifest, boxes), counted

    def run(self, gt_bytes: bytes, m: Mutation) -> tuple[str, str]:
        """The stage's outcome on one mutated GT file."""
        path = self.root / "labels" / "det_train.json"
        return judge(lambda: self._numbers(gt_bytes), self.base, same=m.same, file=path)
