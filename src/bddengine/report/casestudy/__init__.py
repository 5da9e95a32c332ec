"""The case study's text: every section built from numbers read out of run folders.

`build_sections` turns a `ReportData` (what the stage read, `report.data`) into one
markdown block per template field (sections 1-6 here, the discussion, limitations and
reproduction notes in `report.discussion`); `fill_template` puts them in place;
`find_placeholders` is the guard the stage and the tests run on the result. Nothing
here reads a file: a number that a run did not record is reported as missing, with
the command that produces it.

The case study is meant to be skimmed in five minutes (about four pages, at most
`WORD_BUDGET` words): the headline is on page 1, each section keeps what a reader
needs to judge the turn, and the tables of every run, slice and class go to the
appendix (`build_appendix`, ``case_study_appendix.md``).

One module per section, named after it: `summary`, `problem`, `architecture`,
`stage_runs`, `curation`, `iteration0`, `worst_slice`, `mining`, `autolabel`, `cost`
and `headline`; `shared` holds what several use, `template` the template and its
guards, `document` puts the sections together.
"""

from bddengine.report.casestudy.architecture import architecture_numbers
from bddengine.report.casestudy.cost import saving_sentence
from bddengine.report.casestudy.document import APPENDIX, build_appendix, build_sections
from bddengine.report.casestudy.headline import headline_full
from bddengine.report.casestudy.summary import summary_numbers
from bddengine.report.casestudy.template import (
    WORD_BUDGET,
    count_words,
    fill_template,
    find_placeholders,
    template_fields,
)

__all__ = [
    "APPENDIX", "WORD_BUDGET", "architecture_numbers", "build_appendix", "build_sections", "count_words",
    "fill_template", "find_placeholders", "headline_full", "saving_sentence", "summary_numbers", "template_fields",
]
