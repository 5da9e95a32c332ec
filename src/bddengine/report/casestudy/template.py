"""The case study's template: its ``{{field}}`` slots filled, and the guards run on the result.

`find_placeholders` is the check the stage and the tests run on the filled text;
`count_words` measures it against `WORD_BUDGET`.
"""

from __future__ import annotations

import re

_PLACEHOLDERS = (
    re.compile(r"\{\{[^{}]*\}\}"),
    re.compile(r"\bTODO\b"),
    re.compile(r"\bTBD\b"),
    re.compile(r"\be\.g\.", re.IGNORECASE),
    re.compile(r"lorem", re.IGNORECASE),
)
_FIELD = re.compile(r"\{\{\s*([a-z0-9_]+)\s*\}\}")


WORD_BUDGET = 2000
"""Words of ``case_study_v1.md`` (about four pages); the per-run tables live in the appendix."""


_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)


def find_placeholders(text: str) -> list[str]:
    """Every leftover placeholder: ``{{field}}``, TODO, TBD, "e.g." or lorem ipsum.

    Returns:
        One ``line N: 'match'`` string per occurrence (empty when the text is clean).
    """
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        for pattern in _PLACEHOLDERS:
            out += [f"line {n}: {m.group(0)!r}" for m in pattern.finditer(line)]
    return out


def count_words(text: str) -> int:
    """Words of a markdown text as a reader sees them: table rules, image links and code fences left out."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    words = [w for w in text.split() if re.search(r"[0-9A-Za-z]", w)]
    return len(words)


def template_fields(template: str) -> list[str]:
    """The ``{{field}}`` names a template uses, in order."""
    return list(dict.fromkeys(_FIELD.findall(_COMMENT.sub("", template))))


def fill_template(template: str, sections: dict[str, str]) -> str:
    """Replace each ``{{field}}`` with its section; unknown fields stay (and are caught)."""
    body = _COMMENT.sub("", template)
    filled = _FIELD.sub(lambda m: sections.get(m.group(1), m.group(0)), body)
    return re.sub(r"\n{3,}", "\n\n", filled).strip() + "\n"
