"""The pipeline diagram, generated from the stage registry and this run's numbers.

One graph model (stage boxes, artifact notes, "reads" arrows, the iteration loop back
from ``autolabel`` to ``train``) is written as Graphviz DOT and rendered with ``dot``
when the binary exists; otherwise the same nodes and edges are drawn with matplotlib
(orthogonal arrows in a channel between the two columns).
"""

from __future__ import annotations

import html
import shutil
import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.patches import FancyBboxPatch, Polygon

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
ARTIFACT_COLORS = ("#F6F6F4", "#B5B5B5")


@dataclass
class Node:
    """A box of the diagram: a stage, or the artifact a stage writes."""

    id: str
    title: str
    lines: list[str]
    kind: str


@dataclass
class Edge:
    """An arrow; ``loop`` marks the edge that closes the flywheel (drawn dashed)."""

    src: str
    dst: str
    label: str = ""
    loop: bool = False


@dataclass
class Graph:
    """Nodes in registry order (stage, then its artifact) and edges."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def stages(self) -> list[Node]:
        """The stage nodes, in registry order."""
        return [n for n in self.nodes if n.kind != "artifact"]


def build_graph(stages: Sequence[StageEntry], numbers: dict[str, list[str]], *, include_synth: bool) -> Graph:
    """The diagram of the flywheel.

    Args:
        stages: the registry (`bddengine.stages.STAGES`).
        numbers: stage name -> short lines of this run's numbers for its artifact.
        include_synth: show the ``synth`` stage (a synthetic world).
    """
    g = Graph()
    chosen = [s for s in stages if include_synth or s.name != "synth"]
    order = {s.name: i for i, s in enumerate(chosen)}
    for s in chosen:
        g.nodes.append(Node(f"stage_{s.name}", s.name, [s.summary], KIND_OF_STAGE.get(s.name, "model")))
        g.nodes.append(Node(f"art_{s.name}", _artifact_title(s.writes), numbers.get(s.name, []), "artifact"))
        g.edges.append(Edge(f"stage_{s.name}", f"art_{s.name}"))
    for s in chosen:
        reads = list(s.reads)
        if s.name == "collect" and "synth" in order:
            reads.insert(0, "synth")
        for r in reads:
            if r not in order:
                continue
            loop = order[r] > order[s.name]
            g.edges.append(Edge(f"art_{r}", f"stage_{s.name}", "iteration N+1" if loop else "", loop))
    return g


def _artifact_title(writes: str) -> str:
    return writes.split(":", 1)[0].strip()


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=width, break_on_hyphens=False) or [""]


def to_dot(g: Graph, *, title: str = "") -> str:
    """Graphviz DOT source of the diagram (stage and its artifact on one rank)."""
    out = [
        "digraph flywheel {",
        f'  graph [rankdir=TB, nodesep=0.5, ranksep=0.28, splines=spline, pad=0.25, bgcolor="white", '
        f'fontname="{FONT}", fontsize=16, labelloc=t, label=<{_html(title)}>];',
        f'  node [fontname="{FONT}", fontsize=10, penwidth=1.2];',
        f'  edge [color="{INK}", arrowsize=0.7, penwidth=1.0, fontname="{FONT}", fontsize=9];',
    ]
    for n in g.nodes:
        if n.kind == "artifact":
            fill, border = ARTIFACT_COLORS
            lines = [f'<font point-size="9" color="{MUTED}">{_html(n.title)}</font>']
            lines += [_html(x) for x in n.lines]
            out.append(f'  {n.id} [shape=note, style=filled, fillcolor="{fill}", color="{border}", '
                       f'fontsize=9, margin="0.12,0.06", group=artifacts, label=<{"<br/>".join(lines)}>];')
        else:
            fill, border = KIND_COLORS[n.kind]
            body = "<br/>".join(_html(x) for x in _wrap(" ".join(n.lines), 34))
            out.append(f'  {n.id} [shape=box, style="rounded,filled", fillcolor="{fill}", color="{border}", '
                       f'width=2.6, margin="0.14,0.08", group=stages, label=<<b>{_html(n.title)}</b><br/>'
                       f'<font point-size="8.5">{body}</font>>];')
    stages = g.stages()
    for s in stages:
        out.append(f"  {{rank=same; {s.id}; art_{s.id[len('stage_'):]};}}")
    for a, b in zip(stages, stages[1:], strict=False):  # one column of stages, in registry order
        out.append(f"  {a.id} -> {b.id} [style=invis, weight=20];")
        out.append(f"  art_{a.title} -> art_{b.title} [style=invis, weight=20];")
    for e in g.edges:
        attrs = []
        if e.src.startswith("stage_") and e.dst.startswith("art_"):
            attrs += [f'color="{MUTED}"', "arrowhead=none", "penwidth=0.8", "style=dotted"]
        if e.loop:
            attrs += ["style=dashed", "constraint=false", f'color="{KIND_COLORS["loop"][1]}"',
                      f'fontcolor="{KIND_COLORS["loop"][1]}"', f'label=" {_html(e.label)} "']
        out.append(f"  {e.src} -> {e.dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def render(g: Graph, dot_path: Path, png_path: Path, *, title: str) -> str:
    """Write ``dot_path`` and render ``png_path``; returns how it was drawn.

    Returns:
        ``"graphviz dot"`` or ``"matplotlib"`` (with the reason dot was not used).
    """
    dot_path.write_text(to_dot(g, title=title))
    exe = shutil.which("dot")
    if exe:
        try:
            subprocess.run([exe, "-Tpng", "-Gdpi=150", str(dot_path), "-o", str(png_path)],
                           check=True, capture_output=True, timeout=60)
            return "graphviz dot"
        except (subprocess.SubprocessError, OSError) as exc:
            draw_matplotlib(g, png_path, title=title)
            return f"matplotlib (graphviz dot failed: {type(exc).__name__})"
    draw_matplotlib(g, png_path, title=title)
    return "matplotlib (no graphviz `dot` binary on PATH)"


def draw_matplotlib(g: Graph, path: Path, *, title: str) -> Path:
    """The same diagram drawn with matplotlib: stages left, artifacts right, one row each."""
    stages = g.stages()
    row = {n.id: i for i, n in enumerate(stages)}
    for n in g.nodes:
        if n.kind == "artifact":
            row[n.id] = row["stage_" + n.id[len("art_"):]]
    n_rows = len(stages)
    pitch = 1.05
    s_x0, s_x1, a_x0, a_x1, box_h = 0.85, 3.65, 5.05, 9.85, 0.8
    bottom = -(n_rows - 1) * pitch - box_h / 2 - 0.3
    fig, ax = plt.subplots(figsize=(10.0, 0.6 - bottom + 0.3), dpi=150)
    ax.set_xlim(0, 10)
    ax.set_ylim(bottom, 0.6)
    ax.axis("off")

    def y_of(node_id: str) -> float:
        return -row[node_id] * pitch

    for n in g.nodes:
        y = y_of(n.id)
        if n.kind == "artifact":
            fill, border = ARTIFACT_COLORS
            x0, x1 = a_x0, a_x1
            text = [(n.title, 7.5, MUTED, "normal")] + [(line, 8, INK, "normal") for line in n.lines]
        else:
            fill, border = KIND_COLORS[n.kind]
            x0, x1 = s_x0, s_x1
            text = [(n.title, 10, INK, "bold")]
            text += [(line, 7.5, INK, "normal") for line in _wrap(" ".join(n.lines), 40)[:2]]
        ax.add_patch(FancyBboxPatch((x0, y - box_h / 2), x1 - x0, box_h, boxstyle="round,pad=0,rounding_size=0.08",
                                    fc=fill, ec=border, lw=1.1))
        step = min(0.19, (box_h - 0.12) / max(1, len(text)))
        top = y + step * (len(text) - 1) / 2
        for k, (line, size, color, weight) in enumerate(text):
            ax.text((x0 + x1) / 2, top - k * step, line, ha="center", va="center", fontsize=size, color=color,
                    fontweight=weight, family=FONT)

    forward = [e for e in g.edges if e.src.startswith("art_") and not e.loop]
    lanes = {id(e): i for i, e in enumerate(sorted(forward, key=lambda e: (row[e.src], row[e.dst])))}
    n_lanes = max(1, len(lanes))
    incoming: dict[str, list[Edge]] = {}
    outgoing: dict[str, list[Edge]] = {}
    for e in g.edges:
        if e.src.startswith("art_"):
            incoming.setdefault(e.dst, []).append(e)
            outgoing.setdefault(e.src, []).append(e)

    def port(edges: list[Edge], e: Edge, y: float) -> float:
        k, m = edges.index(e), len(edges)
        return y - box_h * 0.3 + (box_h * 0.6) * ((k + 0.5) / m) if m > 1 else y

    for e in g.edges:
        ys, yd = y_of(e.src), y_of(e.dst)
        if e.src.startswith("stage_"):
            ax.plot([s_x1, a_x0], [ys, yd], color=MUTED, lw=0.8, ls=":")
            continue
        y_out = port(outgoing[e.src], e, ys) if not e.loop else ys - box_h / 2
        y_in = port(incoming[e.dst], e, yd)
        if e.loop:
            color = KIND_COLORS["loop"][1]
            x_mid = (a_x0 + a_x1) / 2
            y_gap = ys - box_h / 2 - (pitch - box_h) / 2
            pts = [(x_mid, ys - box_h / 2), (x_mid, y_gap), (0.35, y_gap), (0.35, y_in), (s_x0, y_in)]
            ax.plot(*zip(*pts[:-1], strict=True), color=color, lw=1.1, ls="--")
            _arrow(ax, pts[-2], pts[-1], color, dashed=True)
            ax.text(0.22, (y_gap + y_in) / 2, e.label, rotation=90, ha="center", va="center", fontsize=8,
                    color=color, family=FONT)
            continue
        xc = s_x1 + 0.2 + (a_x0 - s_x1 - 0.4) * (lanes[id(e)] + 0.5) / n_lanes
        pts = [(a_x0, y_out), (xc, y_out), (xc, y_in), (s_x1, y_in)]
        ax.plot(*zip(*pts[:-1], strict=True), color=INK, lw=0.9)
        _arrow(ax, pts[-2], pts[-1], INK)
    if title:
        ax.set_title(title, fontsize=13, fontweight="bold", color=INK, family=FONT, loc="center")
    fig.tight_layout()
    fig.savefig(path, facecolor="white")
    plt.close(fig)
    return path


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], color: str, *, dashed: bool = False) -> None:
    ax.plot([start[0], end[0]], [start[1], end[1]], color=color, lw=1.0, ls="--" if dashed else "-")
    dx = 0.14 if end[0] > start[0] else -0.14
    tip = end
    ax.add_patch(Polygon([tip, (tip[0] - dx, tip[1] + 0.05), (tip[0] - dx, tip[1] - 0.05)], closed=True,
                         fc=color, ec=color, lw=0))
