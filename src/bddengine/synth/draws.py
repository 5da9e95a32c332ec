"""Scalar random draws that cost less than numpy's own methods and give the same numbers.

A video's layout takes hundreds of scalar draws, and a scalar ``Generator.uniform``
call spends most of its time handling its arguments. ``uniform`` here draws the same
double from the stream and scales it as numpy does, so streams, and the worlds drawn
from them, stay exactly what they were.
"""

from __future__ import annotations

import numpy as np


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """``float(rng.uniform(low, high))``: the same number, consuming the same stream.

    numpy computes a scalar uniform as ``low + (high - low) * next_double``, and
    ``rng.random()`` is that ``next_double``.

    Raises:
        ValueError: ``high < low`` (as numpy does): the range would be empty.
    """
    if high < low:
        raise ValueError(f"uniform({low}, {high}): high - low < 0")
    return low + (high - low) * rng.random()
