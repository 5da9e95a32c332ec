"""The errors a user can fix, below every stage so that any layer may raise them.

The CLI turns each into one paragraph and exit code 2; the message says what was
wrong, which file or key, and what to do next.
"""

from __future__ import annotations


class StageInputError(RuntimeError):
    """A stage's input data is missing or unusable; the message says what to do."""
