"""matplotlib, switched to its file-only backend once; every module that draws imports ``plt`` from here.

It sits below every package that draws (the slice index, the stages' figures, the
report), so none of them has to import another to get a configured pyplot.
"""

import matplotlib

matplotlib.use("Agg")  # files only; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt"]
