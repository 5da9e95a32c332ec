"""The case study and its appendix, put together from the sections.

`build_sections` gives one markdown block per template field (sections 1-6 here, the
discussion, limitations and reproduction notes in `report.discussion`);
`build_appendix` the tables of every run, slice and class (``case_study_appendix.md``).
"""

from __future__ import annotations

import re
from pathlib import Path

from bddengine.report.casestudy.architecture import architecture_notes, stage_registry_table
from bddengine.report.casestudy.autolabel import (
    autolabel,
    autolabel_per_class,
    autolabel_table,
    calibration_markdown,
)
from bddengine.report.casestudy.cost import cost, cost_table_full
from bddengine.report.casestudy.curation import curation, curation_marginals
from bddengine.report.casestudy.failure_mode import error_change, error_delta_table, failure_hypothesis, slice_row
from bddengine.report.casestudy.headline import headline, headline_full, missing_arm_commands
from bddengine.report.casestudy.iteration0 import iteration0, iteration0_classes, iteration0_slices
from bddengine.report.casestudy.many_turns import many_turns, many_turns_tables
from bddengine.report.casestudy.mining import mining
from bddengine.report.casestudy.problem import problem_statement
from bddengine.report.casestudy.shared import _generated, figure, figure_row
from bddengine.report.casestudy.stage_runs import stage_table, stage_table_full
from bddengine.report.casestudy.summary import summary
from bddengine.report.casestudy.worst_slice import failure_reasons, worst_slice
from bddengine.report.data import (
    ReportData,
)
from bddengine.report.discussion import limitations, reproduction, reproduction_short, scale_discussion
from bddengine.runs.layout import REPORT

APPENDIX = Path(REPORT.appendix.file).name


def build_sections(d: ReportData) -> dict[str, str]:
    """Every template field's markdown."""
    return {
        "title": f"Case study: {d.cfg.name}, " + (f"{d.turns.turns} turns" if d.turns else "one turn")
                 + " of the data flywheel",
        "generated": _generated(d),
        "summary": summary(d),
        "problem_statement": problem_statement(d),
        "architecture_figure": figure(d, "architecture", "Pipeline architecture"),
        "architecture_notes": architecture_notes(d),
        "stage_table": stage_table(d),
        "curation": curation(d),
        "slice_distribution_figure": figure(d, "slice_distribution", "Frames per slice"),
        "iter0": iteration0(d),
        "worst_slice": worst_slice(d),
        "failure_hypothesis": failure_hypothesis(slice_row(d.errors, d.worst["key"]) if d.worst else None,
                                                 slice_row(d.errors, None)),
        "worst_slice_figures": figure_row(d, [("error_costs", "AP each error type costs"),
                                              ("gradcam_worst_slice", "EigenCAM heat maps")]),
        "worst_slice_failures_figure": figure(d, "worst_slice_failures", "Worst-slice failure frames"),
        "failure_reasons": failure_reasons(d),
        "mining": then(mining(d), "The mined frames, each with its slice: appendix D."
                       if d.figures.get("mined_frames_grid") else ""),
        "autolabel": autolabel(d),
        "cost": cost(d),
        "headline": headline(d),
        "error_change": error_change(d),
        # with many turns the learning curve takes the page the turn-1 delta chart had (now in appendix E)
        "slice_delta_figure": figure(d, "slice_delta", "Per-slice delta") if d.turns is None else "",
        "many_turns": many_turns(d),
        # with many turns the learning curve takes this section's page room: the discussion is in appendix G
        "scale_discussion": first_items(scale_discussion(d), 1, "the bill per stage: appendix G") if d.turns is None
        else "Turn 1 at 100M frames, what changes and the bill per stage: appendix G.",
        "limitations": first_items(limitations(d), 1, "appendix H"),
        "reproduction": reproduction_short(d),
    }


def then(markdown: str, sentence: str) -> str:
    """A sentence after a section: on its last paragraph's line, or its own paragraph after a table or a list."""
    if not sentence:
        return markdown
    last = markdown.rstrip().rsplit("\n", 1)[-1]
    return markdown.rstrip() + (f"\n\n{sentence}" if re.match(r"(\||- |\d+\. )", last) else f" {sentence}")


def first_items(markdown: str, n: int, more: str) -> str:
    """A section with only the first ``n`` items of its list (one line each) and where the rest are."""
    lines = markdown.split("\n")
    items = [i for i, line in enumerate(lines) if re.match(r"(- |\d+\. )", line)]
    if len(items) <= n:
        return markdown
    kept = lines[:items[n]] + [line for line in lines[items[n]:] if not re.match(r"(- |\d+\. )", line)]
    text = "\n".join(kept).rstrip()
    # the pointer closes the last kept item (a paragraph of its own would take two lines of the four pages)
    note = f"{len(items) - n} more; {more}."
    return text + (f" *({note})*" if kept[-1].strip() else f"\n\n*{note}*")


def build_appendix(d: ReportData) -> str:
    """``case_study_appendix.md``: the tables of every run, slice and class the main text summarises."""
    parts = [
        f"# Appendix to the case study: {d.cfg.name}",
        _generated(d),
        "## A. Stages and their run folders",
        stage_registry_table(d),
        "## B. Numbers per run",
        stage_table_full(d),
        "## C. Curation, iteration 0 and the worst slice's failure frames, every slice",
        "Frames collected, by attribute:",
        curation_marginals(d),
        "Iteration-0 AP@0.5 per class, and mAP@0.5 per slice:",
        iteration0_classes(d),
        iteration0_slices(d),
        figure(d, "worst_slice_failures", "Worst-slice failure frames"),
        failure_reasons(d, table=True),
        "## D. Mined frames, auto-label quality per class, and the bill per arm",
        figure(d, "mined_frames_grid", "Mined frames"),
        autolabel_table(d),
        figure(d, "autolabel_pr", "Auto-label precision and recall"),
        calibration_markdown(d),
        autolabel_per_class(d),
        cost_table_full(d),
        "## E. Headline, every slice",
        *([figure(d, "slice_delta", "Per-slice delta")] if d.turns is not None else []),
        headline_full(d),
        "Change in the AP@0.5 each error type costs the worst slice (TIDE), iteration 1 − iteration 0, per arm "
        "(negative: the arm removed part of that cost), with 95% CIs:",
        error_delta_table(d),
        "## F. Reproduction",
        reproduction(d),
        missing_arm_commands(d),
        "## G. The turn at 100M frames, per stage",
        scale_discussion(d),
        scale_discussion(d, table_only=True),
        "## H. Limitations",
        limitations(d),
    ]
    if d.turns is not None:
        parts += ["## I. Many turns, per turn", many_turns_tables(d)]
    return "\n\n".join(parts).strip() + "\n"
