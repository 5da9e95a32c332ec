"""The pipeline diagram: the seed's flow of one flywheel turn, with this run's numbers in its nodes.

BDD100K -> stratified collect -> embeddings + slice index -> train / eval pools ->
iter 0 -> per-slice table -> worst slice -> mined frames -> labels -> iter 1 ->
table v2 -> Δ, laid out as a serpentine of three rows of four boxes, and a dashed
arrow that closes the flywheel (iteration 1 becomes the next turn's iteration 0).

One drawing, with matplotlib, whether or not graphviz is installed: a layout that
``dot`` computes differs from machine to machine, this one is fixed and tested (each
text is fitted to its box: wrapped, then set smaller down to `MIN_PT`, then cut with
an ellipsis, so nothing leaves its box). The Graphviz source of the same graph is
written beside it for anyone who wants to restyle it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bddengine.plotting import plt
from bddengine.report.data import StageEntry
from bddengine.report.figures import FONT, INK, MUTED

KIND_OF_STAGE: dict[str, str] = {
    "synth": "data", "collect": "data", "embed": "data", "split": "data",
    "train": "model", "eval": "model", "mine": "loop", "autolabel": "loop", "report": "report",
}
KIND_COLORS: dict[str, tuple[str, str]] = {  # (fill, border)
    "data": ("#DCE8F5", "#2F6DB5"),
    "model": ("#FBE5D0", "#D0702A"),
    "loop": ("#DDEFE0", "#4C9A5B"),
    "report": ("#EAE1F4", "#8A5CC2"),
}
SOURCE_COLORS = ("#F6F6F4", "#8A8A8A")
"""The data source (BDD100K, or the synthetic world): no stage makes it."""

FLOW: tuple[tuple[str, str, str | None], ...] = (
    ("bdd100k", "BDD100K", None),
    ("collect", "stratified collect", "collect"),
    ("embed", "embeddings + slice index", "embed"),
    ("pools", "train / eval pools", "split"),
    ("iter0", "iter 0", "train"),
    ("table0", "per-slice table", "eval"),
    ("worst", "worst slice", "eval"),
    ("mined", "mined frames", "mine"),
    ("labels", "labels", "autolabel"),
    ("iter1", "iter 1", "train"),
    ("table1", "table v2", "eval"),
    ("delta", "Δ", "report"),
)
"""The seed's flow: (node id, title, the stage that makes it)."""

WIDTH_IN, DPI = 8.0, 150
"""1200 px wide: the size the figure is meant to be read at."""
COLS = 4
BOX_W, BOX_H = 1.66, 1.02
GAP_X, GAP_Y = 0.36, 0.42
TITLE_PT, BODY_PT, MIN_PT = 9.5, 8.0, 7.0
PAD = 0.07
"""Inches kept free between a box's border and its text."""


@dataclass
class Node:
    """A box of the diagram: its title, the stage that makes it and this run's numbers."""

    id: str
    title: str
    stage: str | None
    lines: list[str]

    @property
    def kind(self) -> str:
        """The colour group: data, model, loop, report, or source (no stage)."""
        return KIND_OF_STAGE.get(self.stage, "model") if self.stage else "source"


@dataclass
class Edge:
    """An arrow; ``loop`` marks the edge that closes the flywheel (drawn dashed)."""

    src: str
    dst: str
    label: str = ""
    loop: bool = False


@dataclass
class Graph:
    """Nodes in flow order and the arrows between them."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def build_graph(stages: Sequence[StageEntry], numbers: dict[str, list[str]], *, synthetic: bool) -> Graph:
    """The diagram of one turn.

    Args:
        stages: the registry (`bddengine.stages.STAGES`); every stage the flow names must be in it.
        numbers: node id (`FLOW`) -> short lines of this run's numbers.
        synthetic: the frames come from a synthetic BDD100K-format world, not BDD100K.

    Raises:
        ValueError: the flow names a stage the registry does not have (a renamed stage).
    """
    known = {s.name for s in stages}
    g = Graph()
    for node_id, title, stage in FLOW:
        if stage is not None and stage not in known:
            raise ValueError(f"the architecture flow names stage {stage!r}, which is not in the stage registry")
        if node_id == "bdd100k" and synthetic:
            title = "BDD100K-format world"
        g.nodes.append(Node(node_id, title, stage, list(numbers.get(node_id, []))))
    for a, b in zip(g.nodes, g.nodes[1:], strict=False):
        g.edges.append(Edge(a.id, b.id))
    g.edges.append(Edge("delta", "iter0", "next turn", loop=True))
    return g


def to_dot(g: Graph, *, title: str = "") -> str:
    """Graphviz DOT source of the same graph (rows of four, like the drawing)."""
    out = [
        "digraph flywheel {",
        f'  graph [rankdir=LR, nodesep=0.35, ranksep=0.4, pad=0.25, bgcolor="white", fontname="{FONT}", '
        f'fontsize=14, labelloc=t, label=<{_html(title)}>];',
        f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=9, width=1.8, penwidth=1.2];',
        f'  edge [color="{INK}", arrowsize=0.7, fontname="{FONT}", fontsize=9];',
    ]
    for n in g.nodes:
        fill, border = _colors(n)
        body = "<br/>".join(_html(x) for x in n.lines)
        stage = f'<font point-size="7.5" color="{MUTED}">{_html(n.stage)}</font><br/>' if n.stage else ""
        out.append(f'  {n.id} [fillcolor="{fill}", color="{border}", label=<{stage}<b>{_html(n.title)}</b>'
                   + (f"<br/>{body}" if body else "") + ">];")
    for r in range(0, len(g.nodes), COLS):
        out.append("  {rank=same; " + "; ".join(n.id for n in g.nodes[r:r + COLS]) + ";}")
    for e in g.edges:
        attrs = (f' [style=dashed, constraint=false, color="{KIND_COLORS["loop"][1]}", '
                 f'label=" {_html(e.label)} "]') if e.loop else ""
        out.append(f"  {e.src} -> {e.dst}{attrs};")
    out.append("}")
    return "\n".join(out) + "\n"


def render(g: Graph, dot_path: Path, png_path: Path, *, title: str) -> str:
    """Write the DOT source at ``dot_path`` and the drawing at ``png_path``; returns how it was drawn."""
    dot_path.write_text(to_dot(g, title=title))
    fig = draw(g, title=title)
    fig.savefig(png_path, dpi=DPI, facecolor="white")
    plt.close(fig)
    return "matplotlib (a fixed layout, the same with or without graphviz)"


def position(index: int) -> tuple[float, float]:
    """Lower-left corner (inches, from the figure's top-left, y down) of the flow's ``index``-th box.

    Rows run left to right, then right to left, so each arrow joins neighbours.
    """
    row, k = divmod(index, COLS)
    col = k if row % 2 == 0 else COLS - 1 - k
    x = GAP_X / 2 + col * (BOX_W + GAP_X)
    y = 0.55 + row * (BOX_H + GAP_Y) + BOX_H
    return x, y


def draw(g: Graph, *, title: str) -> Figure:
    """The diagram as a matplotlib figure (`render` saves it); every artist of a box has ``gid`` ``<node id>``."""
    rows = -(-len(g.nodes) // COLS)
    height = 0.55 + rows * BOX_H + (rows - 1) * GAP_Y + 0.45
    fig = plt.figure(figsize=(WIDTH_IN, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(height, 0)  # inches from the top
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    where = {n.id: position(i) for i, n in enumerate(g.nodes)}
    for n in g.nodes:
        x, y = where[n.id]
        fill, border = _colors(n)
        box = FancyBboxPatch((x, y - BOX_H), BOX_W, BOX_H, boxstyle="round,pad=0,rounding_size=0.07",
                             fc=fill, ec=border, lw=1.2, gid=n.id)
        ax.add_patch(box)
        rows_of_text = fit_text(renderer, n, BOX_W - 2 * PAD, BOX_H - 2 * PAD)
        top = y - BOX_H / 2 - sum(_line_height(size) for _, size, _, _ in rows_of_text) / 2  # centred
        for text, size, weight, color in rows_of_text:
            ax.text(x + BOX_W / 2, top, text, ha="center", va="top", fontsize=size, fontweight=weight,
                    color=color, family=FONT, gid=n.id)
            top += _line_height(size)
    for e in g.edges:
        _arrow(ax, where[e.src], where[e.dst], e)
    if title:
        ax.text(WIDTH_IN / 2, 0.3, title, ha="center", va="center", fontsize=12, fontweight="bold", color=INK,
                family=FONT)
    legend = [("data", "data"), ("model", "model"), ("loop", "mine + label"), ("report", "report")]
    lx = GAP_X / 2
    for kind, label in legend:
        fill, border = KIND_COLORS[kind]
        ax.add_patch(FancyBboxPatch((lx, height - 0.3), 0.16, 0.14, boxstyle="round,pad=0,rounding_size=0.03",
                                    fc=fill, ec=border, lw=1.0))
        ax.text(lx + 0.22, height - 0.23, label, va="center", fontsize=8, color=INK, family=FONT)
        lx += 0.42 + _text_width(renderer, label, 8, "normal")
    ax.text(WIDTH_IN - GAP_X / 2, height - 0.23, "small grey text: the stage that makes the box", ha="right",
            va="center", fontsize=8, color=MUTED, family=FONT)
    return fig


def fit_text(renderer, n: Node, width_in: float, height_in: float) -> list[tuple[str, float, str, str]]:
    """The lines of a box (text, size in pt, weight, colour) that fit ``width_in`` x ``height_in`` inches.

    The stage name, the title, then the numbers: each wrapped at word boundaries, set
    smaller (down to `MIN_PT`) while the lines are taller than the box, and the last
    lines cut with an ellipsis when even `MIN_PT` does not fit.
    """
    for scale in (1.0, 0.94, 0.875):
        title_pt, body_pt = TITLE_PT * scale, max(MIN_PT, BODY_PT * scale)
        out: list[tuple[str, float, str, str]] = []
        if n.stage:
            out.append((n.stage, MIN_PT, "normal", MUTED))
        out += [(t, title_pt, "bold", INK) for t in _wrap(renderer, n.title, title_pt, "bold", width_in)]
        for line in n.lines:
            out += [(t, body_pt, "normal", INK) for t in _wrap(renderer, line, body_pt, "normal", width_in)]
        if sum(_line_height(s) for _, s, _, _ in out) <= height_in:
            return out
    while out and sum(_line_height(s) for _, s, _, _ in out) > height_in:
        out.pop()
    if out:
        text, size, weight, color = out[-1]
        out[-1] = (_ellipsize(renderer, text, size, weight, width_in), size, weight, color)
    return out


def _line_height(pt: float) -> float:
    return pt * 1.3 / 72


def _text_width(renderer, text: str, pt: float, weight: str) -> float:
    prop = FontProperties(family=FONT, size=pt, weight=weight)
    w, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)
    return w / renderer.points_to_pixels(72)  # pixels -> inches


def _wrap(renderer, text: str, pt: float, weight: str, width_in: float) -> list[str]:
    """Greedy word wrap by measured width; a single word wider than the box is cut with an ellipsis."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width(renderer, f"{lines[-1]} {word}", pt, weight) <= width_in:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word if _text_width(renderer, word, pt, weight) <= width_in
                         else _ellipsize(renderer, word, pt, weight, width_in))
    return lines or [""]


def _ellipsize(renderer, text: str, pt: float, weight: str, width_in: float) -> str:
    if _text_width(renderer, text + " …", pt, weight) <= width_in and not text.endswith("…"):
        return text + " …" if text else text
    while text and _text_width(renderer, text + "…", pt, weight) > width_in:
        text = text[:-1]
    return text.rstrip() + "…"


def _arrow(ax, src: tuple[float, float], dst: tuple[float, float], e: Edge) -> None:
    (sx, sy), (dx, dy) = src, dst
    color = KIND_COLORS["loop"][1] if e.loop else INK
    if abs(sy - dy) < 1e-6:  # same row: side to side
        if dx > sx:
            a, b = (sx + BOX_W, sy - BOX_H / 2), (dx, dy - BOX_H / 2)
        else:
            a, b = (sx, sy - BOX_H / 2), (dx + BOX_W, dy - BOX_H / 2)
    elif dy > sy:  # down to the next row
        a, b = (sx + BOX_W / 2, sy), (dx + BOX_W / 2, dy - BOX_H)
    else:  # the loop: up from the last box to the first of the row above
        a, b = (sx + BOX_W / 2, sy - BOX_H), (dx + BOX_W / 2, dy)
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=11, lw=1.2, color=color,
                                 ls="--" if e.loop else "-", shrinkA=1, shrinkB=1))
    if e.label:
        ax.text(a[0] + 0.06, (a[1] + b[1]) / 2, e.label, ha="left", va="center", fontsize=8, color=color,
                family=FONT, style="italic")


def _colors(n: Node) -> tuple[str, str]:
    return SOURCE_COLORS if n.kind == "source" else KIND_COLORS[n.kind]


def _html(text: str) -> str:
    return html.escape(text, quote=False)
