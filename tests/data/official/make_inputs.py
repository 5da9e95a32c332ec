"""Write the inputs of the official-evaluator cases from the shared conformance case.

Run once from the repository root (the outputs are committed beside this file):

    python tests/data/official/make_inputs.py ../shared/conformance/bdd100k-det-eval

then score each case with the official toolkit (see README.md here).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
N_FRAMES = 10
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


def write(case: str, gt: list, pred: list) -> None:
    folder = HERE / case
    folder.mkdir(exist_ok=True)
    (folder / "gt.json").write_text(json.dumps(gt) + "\n")
    (folder / "pred.json").write_text(json.dumps(pred) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
