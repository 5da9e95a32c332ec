"""One set of rules for BDD label records, shared by ``collect`` and ``score``.

Every frame and label is either accepted or counted by reason (with a few
examples) in a `MalformedReport`; the few values that no rule can read are a
`LabelFileError` naming the file, frame, label and key. The rules:

- A frame needs a non-empty string ``name``; a repeated name is an error in
  ``score`` unless ``on_duplicate`` says ``last`` (the official evaluator keeps
  the last record) or ``merge`` (both records' labels). ``collect`` counts the
  repeat and keeps the first record.
- Frame attributes ``weather``, ``timeofday``, ``scene``: a missing key or a
  value outside BDD's vocabulary becomes ``"undefined"`` and is counted.
- ``collect`` (`bddengine.bdd.loader`) needs a box of four finite numbers
  (int or float; not bool, not a string) with x2 > x1 and y2 > y1, since a YOLO
  label needs a positive size; other boxes are counted and left out. It clips a
  box reaching outside the image it measured and counts it.
- ``score`` (`check_frames`) reads every number as the official evaluator's
  pydantic (v1) reads a float: an int, a float, a bool (1.0 / 0.0) or a string
  that Python's ``float`` reads (``"0.83"``, ``"nan"``). It scores every box and
  score it can read, as the official evaluator does, and counts the odd ones as
  notes: a box with x2 < x1 or y2 < y1 (BDD boxes include their end pixel, so
  x2 = x1 - 0.5 is half a pixel wide and x2 < x1 - 1 a box that matches
  nothing), a NaN or infinite coordinate or score, a number written as a string,
  a box reaching outside the 1280x720 image. A value the official evaluator
  cannot read (a coordinate that is null or not a number, a score that is not a
  number, a scored prediction without a score) makes it refuse the file, so it
  is a `LabelFileError` here, naming the file, frame and label.
- ``crowd`` and ``ignored`` are read as the official evaluator reads them
  (`official_flag`): pydantic v1's bool reading where it applies (true/false,
  1/0, yes/no, on/off, t/f, y/n in any case), else the truth of the int, float
  or string it reads instead; a value outside the plain booleans is counted as a
  note. ``collect`` reads only the plain booleans (`parse_flag`); anything else
  there is an error naming the label.
- Labels of categories outside the task, and labels without ``box2d``, are
  counted and left out, as the official evaluator leaves them out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from bddengine.bdd.categories import ATTRIBUTE_VALUES, FRAME_ATTRIBUTES, UNDEFINED, map_category

MAX_EXAMPLES = 20
"""How many malformed examples a report keeps (the counts are always complete)."""


class LabelFileError(ValueError):
    """A label file that cannot be read or holds a value no rule can read; the message names it."""


@dataclass(frozen=True)
class MalformedExample:
    """One malformed item, kept so a person can find it in the label file."""

    file: str
    frame: str | None
    label_id: str | None
    reason: str
    detail: str = ""


@dataclass
class MalformedReport:
    """Counts of malformed items by reason, with up to `MAX_EXAMPLES` examples.

    `non_detection` counts labels that are not detection labels at all (no box2d
    and a category outside the task, such as "lane" or "drivable area" poly2d
    labels in older releases): they are skipped by design, not errors. `notes`
    counts items accepted as they are but worth knowing (a box clipped to its
    image, a repeated frame kept last), with examples of their own.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[MalformedExample] = field(default_factory=list)
    non_detection: int = 0
    notes: Counter[str] = field(default_factory=Counter)
    note_examples: list[MalformedExample] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of malformed items over all reasons."""
        return sum(self.counts.values())

    def add(
        self,
        reason: str,
        *,
        file: str,
        frame: str | None,
        label_id: str | None = None,
        detail: str = "",
    ) -> None:
        """Count one malformed item and keep it as an example while there is room."""
        self.counts[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(MalformedExample(file, _safe(frame), _safe(label_id), reason, _safe(detail)))

    def note(self, reason: str, *, file: str, frame: str | None, detail: str = "") -> None:
        """Count one item accepted as it is, keeping it as an example while there is room."""
        self.notes[reason] += 1
        if len(self.note_examples) < MAX_EXAMPLES:
            self.note_examples.append(MalformedExample(file, _safe(frame), None, reason, _safe(detail)))

    def merge(self, other: MalformedReport) -> MalformedReport:
        """Return a new report with the counts and examples of both."""
        return MalformedReport(
            counts=self.counts + other.counts,
            examples=(self.examples + other.examples)[:MAX_EXAMPLES],
            non_detection=self.non_detection + other.non_detection,
            notes=self.notes + other.notes,
            note_examples=(self.note_examples + other.note_examples)[:MAX_EXAMPLES],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for result.json."""
        return {
            "total": self.total,
            "counts": dict(sorted(self.counts.items())),
            "non_detection_labels": self.non_detection,
            "examples": [_example_dict(e) for e in self.examples],
            "notes": dict(sorted(self.notes.items())),
            "note_examples": [_example_dict(e) for e in self.note_examples],
        }


def _example_dict(e: MalformedExample) -> dict[str, Any]:
    return {"file": e.file, "frame": e.frame, "label_id": e.label_id, "reason": e.reason, "detail": e.detail}


def _safe(text: str | None) -> str | None:
    """A string that can be written as UTF-8 (a lone surrogate becomes its escape)."""
    if text is None or not _has_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


OnDuplicate = Literal["error", "last", "merge"]
ON_DUPLICATE: tuple[str, ...] = ("error", "last", "merge")

IMAGE_WIDTH, IMAGE_HEIGHT = 1280, 720
"""The size of every BDD100K image; score uses it to note boxes outside the frame."""

# Malformed reasons. They are keys of `MalformedReport.counts` and of result.json,
# so they are plain sentences rather than enum members.
BAD_FRAME = "bad frame record"
MISSING_NAME = "missing frame name"
DUPLICATE_NAME = "duplicate frame name"
BAD_LABELS = "labels is not a list"
BAD_LABEL = "bad label record"
BAD_TIMESTAMP = "timestamp is not an integer"
MISSING_BOX = "missing box2d"
NON_NUMERIC_BOX = "non-numeric box2d"
EMPTY_BOX = "empty or inverted box2d"
INVERTED_BOX = "inverted box2d"
NAN_BOX = "NaN box2d"
NON_FINITE_BOX = "infinite box2d"
OUTSIDE_IMAGE = "box2d outside the image"
UNKNOWN_CATEGORY = "unknown category"
MISSING_ATTRIBUTES = "missing attributes"
MISSING_ATTRIBUTE = "missing frame attribute"
UNKNOWN_ATTRIBUTE_VALUE = "unknown attribute value"
MISSING_SCORE = "missing or non-numeric score"
NAN_SCORE = "NaN or infinite score"

# Notes: accepted as they are, counted so a person knows.
NOTE_CLIPPED = "box2d clipped to the image"
NOTE_OUTSIDE = "box2d reaches outside the 1280x720 image (scored as given)"
NOTE_DUPLICATE_LAST = "duplicate frame name (last record kept)"
NOTE_DUPLICATE_MERGED = "duplicate frame name (records merged)"
NOTE_INVERTED = "box2d with x2 < x1 or y2 < y1 (scored as given)"
NOTE_NON_FINITE_BOX = "NaN or infinite box2d coordinate (scored as given)"
NOTE_NAN_SCORE = "NaN score (scored, ranked last)"
NOTE_INF_SCORE = "infinite score (scored as given)"
NOTE_STRING_NUMBER = "number written as a string or bool (read as a number)"
NOTE_ODD_FLAG = "crowd or ignored flag that is not a plain boolean (read as the official evaluator reads it)"
NOTE_PRED_NOT_IN_GT = "prediction frame not in the ground truth (left out, as the official evaluator does)"

FLAG_KEYS: tuple[str, ...] = ("crowd", "ignored", "occluded", "truncated")

# pydantic v1's bool_validator: the values it reads as True / False
BOOL_TRUE = frozenset({1, "1", "on", "t", "true", "y", "yes"})
BOOL_FALSE = frozenset({0, "0", "off", "f", "false", "n", "no"})

_NUMBER_TYPES = frozenset((int, float))
_FLAG_HINT = "use true or false (or 1/0, yes/no, on/off)"


def parse_flag(value: Any) -> bool | None:
    """A label flag as the official evaluator's pydantic (v1) reads a bool; None if unreadable."""
    if value is True or value is False:
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        value = value.lower()
    elif type(value) not in _NUMBER_TYPES:
        return None
    if value in BOOL_TRUE:
        return True
    if value in BOOL_FALSE:
        return False
    return None


def read_flags(attributes: Any, *, file: str, frame: str, label_id: Any) -> tuple[bool, bool, bool, bool]:
    """``(crowd, ignored, occluded, truncated)`` of a label's ``attributes`` (absent: False).

    Raises:
        LabelFileError: a flag holds a value that is not a bool in pydantic's reading.
    """
    if attributes is None:
        return False, False, False, False
    if type(attributes) is not dict:
        raise LabelFileError(
            f"{file}: frame {frame!r}, label {short_repr(label_id)}: attributes is {short_repr(attributes)}, "
            "not a mapping; write it like {\"occluded\": false, \"truncated\": false, \"crowd\": false}, "
            "then run again."
        )
    out = []
    for key in FLAG_KEYS:
        value = attributes.get(key, False)
        flag = parse_flag(value)
        if flag is None:
            raise LabelFileError(
                f"{file}: frame {frame!r}, label {short_repr(label_id)}: attributes.{key} is "
                f"{short_repr(value)}, which is not a boolean; {_FLAG_HINT}, then run again."
            )
        out.append(flag)
    return out[0], out[1], out[2], out[3]


def box_problem(box: Any, *, allow_zero: bool) -> str | None:
    """Why a ``box2d`` cannot be used (a malformed reason), or None when it can."""
    if type(box) is not dict:
        return MISSING_BOX
    coords = [box.get(k) for k in ("x1", "y1", "x2", "y2")]
    if not all(type(v) in _NUMBER_TYPES for v in coords):
        return NON_NUMERIC_BOX
    try:
        values = [float(v) for v in coords]
    except OverflowError:  # an int beyond the float range
        return NON_FINITE_BOX
    if any(math.isnan(v) for v in values):
        return NAN_BOX
    if not all(math.isfinite(v) for v in values):
        return NON_FINITE_BOX
    x1, y1, x2, y2 = values
    if allow_zero:
        return INVERTED_BOX if x2 < x1 or y2 < y1 else None
    return EMPTY_BOX if x2 <= x1 or y2 <= y1 else None


@dataclass
class CheckedLabels:
    """Label records after the shared rules: clean frames and what was left out.

    Attributes:
        frames: one dict per accepted frame, names unique: ``{"name",
            "attributes": {weather, timeofday, scene}, "labels": [{"id",
            "category", "box2d": {x1, y1, x2, y2} as floats, "attributes":
            {crowd, ignored, occluded, truncated} as bools, "score"}]}`` (``score``
            on predictions only).
        malformed: what was left out or replaced, by reason, and notes on what
            was accepted as it is.
    """

    frames: list[dict[str, Any]]
    malformed: MalformedReport = field(default_factory=MalformedReport)


def check_frames(
    records: Iterable[Any],
    *,
    file: str,
    predictions: bool,
    on_duplicate: OnDuplicate = "error",
    attributes: Iterable[str] = FRAME_ATTRIBUTES,
) -> CheckedLabels:
    """Apply the shared rules to the records of one BDD label or prediction file.

    Args:
        records: the frame records (`load_label_file`).
        file: the file they came from, for messages and examples.
        predictions: the records are predictions (each label needs a score).
        on_duplicate: a frame name seen twice: ``error``, keep the ``last``
            record (the official evaluator's choice) or ``merge`` the labels.
        attributes: the frame attributes to read and check.

    Returns:
        The clean frames, in file order (a kept-last duplicate takes the place
        of the first), and the report.

    Raises:
        LabelFileError: a duplicate frame name (with ``on_duplicate="error"``) or
            an unreadable flag value; the message names the file and frame.
    """
    if on_duplicate not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {ON_DUPLICATE}, not {on_duplicate!r}")
    report = MalformedReport()
    attributes = tuple(attributes)
    by_name: dict[str, dict[str, Any]] = {}
    for record in records:
        if type(record) is not dict:
            report.add(BAD_FRAME, file=file, frame=None, detail=type(record).__name__)
            continue
        name = record.get("name")
        if type(name) is not str or not name:
            report.add(MISSING_NAME, file=file, frame=None, detail=short_repr(name))
            continue
        frame = {
            "name": name,
            "attributes": _frame_attributes(record, attributes, report, file, name),
            "labels": _labels(record, report, file, name, predictions),
        }
        previous = by_name.get(name)
        if previous is None:
            by_name[name] = frame
        elif on_duplicate == "error":
            kind = "prediction" if predictions else "label"
            raise LabelFileError(
                f"{file}: frame {name!r} is listed more than once. Each frame must appear once in a "
                f"{kind} file: remove or join the repeats, or pass --on-duplicate last (keep the last "
                "record, as the official BDD100K evaluator does) or --on-duplicate merge (keep the "
                "labels of every record)."
            )
        elif on_duplicate == "last":
            report.note(NOTE_DUPLICATE_LAST, file=file, frame=name)
            by_name[name] = frame
        else:
            report.note(NOTE_DUPLICATE_MERGED, file=file, frame=name)
            previous["labels"].extend(frame["labels"])
    return CheckedLabels(frames=list(by_name.values()), malformed=report)


def _frame_attributes(
    record: dict[str, Any], keys: tuple[str, ...], report: MalformedReport, file: str, name: str
) -> dict[str, str]:
    attrs = record.get("attributes")
    if type(attrs) is not dict:
        if keys:
            report.add(MISSING_ATTRIBUTES, file=file, frame=name, detail=short_repr(attrs))
        return dict.fromkeys(keys, UNDEFINED)
    out = {}
    for key in keys:
        if key not in attrs:
            report.add(MISSING_ATTRIBUTE, file=file, frame=name, detail=key)
            out[key] = UNDEFINED
            continue
        value = attrs[key]
        if type(value) is not str or value not in ATTRIBUTE_VALUES[key]:
            report.add(UNKNOWN_ATTRIBUTE_VALUE, file=file, frame=name, detail=f"{key}={short_repr(value)}")
            value = UNDEFINED
        out[key] = value
    return out


def _labels(
    record: dict[str, Any], report: MalformedReport, file: str, name: str, predictions: bool
) -> list[dict[str, Any]]:
    labels = record.get("labels")
    if type(labels) is not list:
        if labels is not None:  # {} or "" is not "no boxes": it is not a list of labels
            report.add(BAD_LABELS, file=file, frame=name, detail=type(labels).__name__)
        return []  # no "labels" key or null: a frame without boxes is valid
    out = []
    for label in labels:
        if type(label) is not dict:
            report.add(BAD_LABEL, file=file, frame=name, detail=type(label).__name__)
            continue
        label_id = label.get("id")
        where = f"{file}: frame {name!r}, label {short_repr(label_id)}"
        # the official evaluator reads every label of the file before it scores any, so a value it
        # cannot read is refused whatever the label's category
        box = _read_box(label.get("box2d"), report, file, name, where)
        score = _read_score(label.get("score"), report, file, name, where) if "score" in label else None
        flags = _read_official_flags(label.get("attributes"), report, file, name, where)
        raw = label.get("category")
        mapped = map_category(raw) if type(raw) is str else None
        if mapped is None:
            report.add(UNKNOWN_CATEGORY, file=file, frame=name, label_id=_id(label_id), detail=short_repr(raw))
            continue
        if box is None:
            report.add(MISSING_BOX, file=file, frame=name, label_id=_id(label_id), detail="null")
            continue
        clean = {"id": label_id, "category": raw, "box2d": box, "attributes": flags}
        if predictions:
            if score is None:
                raise LabelFileError(
                    f"{where}: this prediction has no score (the official evaluator stops on it too). "
                    "Every scored prediction needs a number in \"score\": re-export the predictions "
                    "with their confidences."
                )
            clean["score"] = score
        if box["x1"] < 0 or box["y1"] < 0 or box["x2"] > IMAGE_WIDTH or box["y2"] > IMAGE_HEIGHT:
            report.note(NOTE_OUTSIDE, file=file, frame=name)
        out.append(clean)
    return out


def official_number(value: Any) -> tuple[float, bool] | None:
    """``(number, odd)`` as the official evaluator's pydantic (v1) reads a float; None if it cannot.

    ``odd`` is True for a bool or a string (``"0.83"``, ``"nan"``), which pydantic reads through
    Python's ``float``. An int beyond the float range stops the official evaluator: None.
    """
    kind = type(value)
    if kind is float:
        return value, False
    if kind is int:
        try:
            return float(value), False
        except OverflowError:
            return None
    if kind is bool:
        return float(value), True
    if kind is str:
        try:
            return float(value), True
        except ValueError:
            return None
    return None


def official_flag(value: Any) -> bool | None:
    """A label flag as the official evaluator reads it; None where it refuses the file.

    scalabel types an attribute as ``Union[bool, int, float, str]`` (pydantic v1 tries
    each in turn) and then takes its truth: pydantic's bool reading first (`parse_flag`),
    else the int it reads (``0.5`` -> 0 -> False, ``"2"`` -> True), else the float
    (``"0.0"`` -> False, ``"nan"`` -> True), else the string (True unless empty).
    """
    flag = parse_flag(value)
    if flag is not None:
        return flag
    if type(value) is int:
        return value != 0
    if type(value) is float:
        if math.isnan(value):
            return True
        return None if math.isinf(value) else int(value) != 0
    if type(value) is str:
        for read in (int, float):
            try:
                return read(value) != 0  # NaN != 0 is True, as bool(nan)
            except (ValueError, OverflowError):
                continue
        return value != ""
    return None


def _read_box(box: Any, report: MalformedReport, file: str, name: str, where: str) -> dict[str, float] | None:
    """The box's four numbers as the official evaluator reads them (None: no box2d); notes what is odd."""
    if box is None:
        return None
    if type(box) is not dict:
        raise LabelFileError(f"{where}: box2d is {short_repr(box)}, not a mapping of x1, y1, x2, y2; "
                             "write the box as {\"x1\": ..., \"y1\": ..., \"x2\": ..., \"y2\": ...}, "
                             "then run again.")
    out: dict[str, float] = {}
    odd = False
    for key in ("x1", "y1", "x2", "y2"):
        read = official_number(box.get(key))
        if read is None:
            raise LabelFileError(
                f"{where}: box2d.{key} is {short_repr(box.get(key))}, which is not a number (the official "
                "evaluator stops on it too); write each coordinate as a number, then run again."
            )
        out[key], odd_one = read
        odd = odd or odd_one
    if odd:
        report.note(NOTE_STRING_NUMBER, file=file, frame=name, detail=f"box2d {short_repr(box)}")
    values = list(out.values())
    if not all(math.isfinite(v) for v in values):
        report.note(NOTE_NON_FINITE_BOX, file=file, frame=name, detail=short_repr(box))
    elif out["x2"] < out["x1"] or out["y2"] < out["y1"]:
        report.note(NOTE_INVERTED, file=file, frame=name, detail=short_repr(box))
    return out


def _read_score(score: Any, report: MalformedReport, file: str, name: str, where: str) -> float | None:
    """A label's score as the official evaluator reads it (None: null); notes what is odd."""
    if score is None:
        return None
    read = official_number(score)
    if read is None:
        raise LabelFileError(
            f"{where}: score is {short_repr(score)}, which is not a number (the official evaluator stops "
            "on it too); write the score as a number, then run again."
        )
    value, odd = read
    if odd:
        report.note(NOTE_STRING_NUMBER, file=file, frame=name, detail=f"score {short_repr(score)}")
    if math.isnan(value):
        report.note(NOTE_NAN_SCORE, file=file, frame=name, detail=short_repr(score))
    elif math.isinf(value):
        report.note(NOTE_INF_SCORE, file=file, frame=name, detail=short_repr(score))
    return value


def _read_official_flags(
    attributes: Any, report: MalformedReport, file: str, name: str, where: str
) -> dict[str, bool]:
    """``crowd``, ``ignored``, ``occluded``, ``truncated`` as the official evaluator reads them."""
    if attributes is None:
        return dict.fromkeys(FLAG_KEYS, False)
    if type(attributes) is not dict:
        raise LabelFileError(
            f"{where}: attributes is {short_repr(attributes)}, not a mapping; write it like "
            "{\"occluded\": false, \"truncated\": false, \"crowd\": false}, then run again."
        )
    out = {}
    for key in FLAG_KEYS:
        value = attributes.get(key, False)
        flag = official_flag(value)
        if flag is None:
            raise LabelFileError(
                f"{where}: attributes.{key} is {short_repr(value)}, which the official evaluator cannot "
                f"read; {_FLAG_HINT}, then run again."
            )
        if parse_flag(value) is None and key in ("crowd", "ignored"):
            report.note(NOTE_ODD_FLAG, file=file, frame=name, detail=f"{key}={short_repr(value)}")
        out[key] = flag
    return out


def _id(label_id: Any) -> str | None:
    return None if label_id is None else short_repr(label_id) if type(label_id) is not str else label_id


def short_repr(value: Any, limit: int = 80) -> str:
    """A value's repr for a message: bounded in length, and printable whatever it holds."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deep nesting; an int too long for repr
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return _safe(text)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

