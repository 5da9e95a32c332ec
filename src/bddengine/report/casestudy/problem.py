"""Problem statement: what the turn tries to show, in this run's numbers."""

from __future__ import annotations

from bddengine.report.data import (
    ReportData,
    mined_k,
)
from bddengine.report.tables import (
    fmt_int,
    plural,
)


def problem_statement(d: ReportData) -> str:
    """What the turn tries to show, with this run's numbers."""
    c = d.result(d.runs.collect).get("metrics", {})
    split = d.result(d.runs.split).get("metrics", {})
    train = d.result(d.runs.train0)
    n_train = (split.get("n_frames") or {}).get("train")
    if d.cfg.data.synthetic:
        data = (f"the synthetic driving world written by `bddengine synth` in the BDD100K det_20 layout "
                f"({fmt_int(c.get('n_frames'))} frames collected; rendered scenes, not camera images)")
    else:
        data = (f"BDD100K det_20 ({fmt_int(c.get('n_frames'))} frames collected: {fmt_int(c.get('n_labeled'))} "
                f"labeled, {fmt_int(c.get('n_unlabeled'))} for the mining pool)")
    k = mined_k(d)
    arms = [a for a, f in d.arms.items() if not f.mine_only]
    only = [a for a, f in d.arms.items() if f.mine_only]
    text = [
        "A detector with a good overall score can still fail in one condition (night, rain, fog). The data "
        "flywheel finds the worst slice, mines unlabeled frames like its failures, labels them, retrains, and "
        "checks whether that slice improved.",
        "",
        f"This turn runs on {data}. Iteration 0 trains "
        f"`{(train.get('inputs') or {}).get('init_weights', d.cfg.train.model)}` for "
        f"{plural((train.get('metrics') or {}).get('epochs'), 'epoch')} on {fmt_int(n_train)} frames, scored per "
        f"weather × time of day × scene slice (official BDD100K protocol).",
    ]
    if k is not None:
        text.append(
            f"Each retraining arm spends the same label budget of {k} frames from the mining pool of "
            f"{fmt_int((split.get('n_frames') or {}).get('mining'))} unlabeled frames: the arms are "
            f"{', '.join(arms)}" + (f" ({', '.join(only)} is only mined, for comparison)" if only else "") + ".")
    else:
        text.append(f"The retraining arms asked for are {', '.join(arms) or 'none'}; none has mined frames yet.")
    text += [
        "",
        "Does the worst slice's mAP@0.5 rise beyond the noise, more with targeted mining than at random, and what "
        "do machine labels cost or save on it against human ones?",
    ]
    return "\n".join(text)
