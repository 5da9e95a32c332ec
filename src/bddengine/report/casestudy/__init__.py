"""The case study's text, built from numbers read out of run folders (see `autolabel`)."""

from bddengine.report.casestudy.autolabel import (
    APPENDIX,
    WORD_BUDGET,
    architecture_numbers,
    build_appendix,
    build_sections,
    count_words,
    fill_template,
    find_placeholders,
    headline_full,
    saving_sentence,
    summary_numbers,
    template_fields,
)

__all__ = [
    "APPENDIX", "WORD_BUDGET", "architecture_numbers", "build_appendix", "build_sections", "count_words",
    "fill_template", "find_placeholders", "headline_full", "saving_sentence", "summary_numbers", "template_fields",
]
