"""The architecture figure: the seed's flow, every text inside its box, 1200 px wide, with or without graphviz."""

from __future__ import annotations

import re
import shutil
import zlib
from collections import Counter
from pathlib import Path

import pytest
from matplotlib.patches import FancyBboxPatch
from PIL import Image

from bddengine.plotting import plt
from bddengine.report.architecture import FLOW, MIN_PT, build_graph, draw, render, to_dot
from bddengine.report.export import BODY_PT, to_pdf
from bddengine.stages import STAGES

LONG = {  # the longest numbers a real turn writes, and longer
    "bdd100k": ["images + box labels", "2 label files hashed"],
    "collect": ["120,000 frames", "100,000 labeled", "154 slices"],
    "embed": ["120,000 × 1024-d", "vit_large_patch14_dinov2.lvd142m"],
    "pools": ["train 40,000", "eval 20,000", "mining 60,000"],
    "worst": ["partly cloudy / dawn/dusk / parking lot", "mAP@0.5 0.118"],
    "labels": ["grounded, oracle, detector, human-in-the-loop-with-review", "4 arms"],
    "table1": ["best: prototype-detector-pyramid-human-seed43", "worst slice 0.171"],
    "delta": ["prototype-detector-pyramid-human +0.053", "[+0.012, +0.094]"],
}


def test_the_flow_is_the_seeds_and_closes() -> None:
    g = build_graph(STAGES, {"table0": ["mAP@0.5 0.412"]}, synthetic=True)
    assert [n.title for n in g.nodes][1:] == [t for _, t, _ in FLOW][1:]
    assert g.nodes[0].title == "BDD100K-format world"
    assert [(e.src, e.dst) for e in g.edges if e.loop] == [("delta", "iter0")]
    assert len([e for e in g.edges if not e.loop]) == len(FLOW) - 1  # one arrow between neighbours, no more
    assert "mAP@0.5 0.412" in to_dot(g)


def test_a_stage_the_registry_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in the stage registry"):
        build_graph([s for s in STAGES if s.name != "mine"], {}, synthetic=False)


def test_no_text_leaves_its_box() -> None:
    fig = draw(build_graph(STAGES, LONG, synthetic=False), title="bddengine: one turn of the data flywheel (demo)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches
             if isinstance(p, FancyBboxPatch) and p.get_gid()}
    assert set(boxes) == {node_id for node_id, _, _ in FLOW}
    texts = [t for t in ax.texts if t.get_gid()]
    assert {t.get_gid() for t in texts} == set(boxes)
    for t in texts:
        inner, box = t.get_window_extent(renderer), boxes[t.get_gid()]
        assert box.x0 <= inner.x0 and inner.x1 <= box.x1 and box.y0 <= inner.y0 and inner.y1 <= box.y1, \
            (t.get_gid(), t.get_text())
        assert t.get_fontsize() >= MIN_PT
    shown = " ".join(t.get_text() for t in texts)
    assert "+0.053" in shown and "mAP@0.5 0.118" in shown  # wrapped, not dropped
    ids = list(boxes)
    for i, a in enumerate(ids):  # no two boxes overlap
        for b in ids[i + 1:]:
            assert not boxes[a].overlaps(boxes[b]), (a, b)
    plt.close(fig)


def test_same_drawing_with_or_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = build_graph(STAGES, LONG, synthetic=False)
    monkeypatch.setattr(shutil, "which", lambda _: None)
    render(g, tmp_path / "a.dot", tmp_path / "a.png", title="t")
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/dot")
    render(g, tmp_path / "b.dot", tmp_path / "b.png", title="t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.dot").read_text().startswith("digraph flywheel")
    with Image.open(tmp_path / "a.png") as im:
        assert im.size[0] == 1200


def pdf_text_sizes(pdf: bytes) -> Counter:
    """Characters drawn per font size (pt) in a PDF fpdf2 wrote: its page streams, inflated and read."""
    sizes: Counter = Counter()
    for m in re.finditer(rb"(?<!end)stream\r?\n", pdf):
        try:
            ops = zlib.decompressobj().decompress(pdf[m.end():])
        except zlib.error:
            continue  # an image or a font, not a page
        size = None
        for tok in re.finditer(rb"/F\d+ ([\d.]+) Tf|\((?:\\.|[^\\)])*\) ?Tj|<([0-9A-Fa-f]*)> ?Tj", ops):
            if tok.group(1):
                size = float(tok.group(1))
            elif size is not None:
                sizes[size] += max(1, len(tok.group(0)) // 4)
    return sizes


def test_pdf_body_text_is_at_least_9pt(tmp_path: Path) -> None:
    md = "# Title\n\n## 1. Section\n\n" + "\n\n".join(" ".join(["word"] * 120) for _ in range(6))
    to_pdf(md, tmp_path, tmp_path / "a.pdf", title="t")
    sizes = pdf_text_sizes((tmp_path / "a.pdf").read_bytes())
    body = sizes.most_common(1)[0][0]
    assert body == BODY_PT >= 9.0, sizes
