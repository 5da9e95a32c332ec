"""The case study: what one flywheel turn did, in numbers read from its run folders.

``inputs`` finds the runs of one turn, ``headline`` computes the per-slice deltas
with paired bootstrap CIs, ``figures`` and ``architecture`` draw, ``casestudy`` and
``discussion`` write the sections from ``data.ReportData`` (``tables`` formats),
and ``export`` turns the markdown into HTML and PDF. The stage
``bddengine.stages.report`` does the file I/O around them.
"""

from bddengine.report.casestudy import find_placeholders

__all__ = ["find_placeholders"]
