"""What the object modules share: a placed object, a drawn box, the frame context.

A ``Thing`` is one object of a video (a car, a pedestrian, a traffic sign) with its
position at t = 0, its velocity and its style; drawing functions (``vehicles``,
``people``, ``furniture``) draw one at a given place and return its ``Box`` es.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bddengine.synth.geometry import Camera, Color, Face
from bddengine.synth.look import Look, Textures
from bddengine.synth.painter import Painter
from bddengine.synth.scene import Layout

TRAFFIC_LIGHT_COLORS: dict[str, str] = {"red": "R", "yellow": "Y", "green": "G"}
"""det_20 spells ``trafficLightColor`` as one letter; ``"NA"`` for everything else."""
NO_LIGHT_COLOR = "NA"


@dataclass
class Thing:
    """One object of a video; ``(x, z)`` at t=0, moving at ``(vx, vz)`` m/s."""

    kind: str
    x: float
    z: float
    vx: float = 0.0
    vz: float = 0.0
    data: dict = field(default_factory=dict)


@dataclass
class Box:
    """A labelled box as drawn (unclipped pixels), before the visibility checks."""

    category: str
    x1: float
    y1: float
    x2: float
    y2: float
    z: float
    light_color: str = NO_LIGHT_COLOR
    crowd: bool = False
    emissive: bool = False


@dataclass
class FrameCtx:
    """What drawing functions need besides the painter."""

    look: Look
    layout: Layout
    textures: Textures
    glows: list = field(default_factory=list)

    def glow_at(self, x: float, z: float) -> float:
        """Local lamp light at (x, z): street lamps and the ego car's low beams, at night."""
        if not self.look.night:
            return 0.0
        beam = 0.0
        if z < 45.0:
            spread = 1.6 + 0.22 * z
            beam = 0.7 * (1.0 - z / 45.0) * math.exp(-((x / spread) ** 2))
        return beam + self.layout.lamp_light(x, z)


def mul(c: Color, k: float) -> Color:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


def cuboid_bbox(cam: Camera, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> tuple:
    us = (cam.u(x0, z0), cam.u(x0, z1), cam.u(x1, z0), cam.u(x1, z1))
    vs = (cam.v(y0, z0), cam.v(y0, z1), cam.v(y1, z0), cam.v(y1, z1))
    return min(us), min(vs), max(us), max(vs)


def faces(cam: Camera, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float
           ) -> tuple[Face, Face | None, list | None]:
    """Near face, visible side face (or None) and top quad (or None) of a cuboid."""
    near = Face(cam, (x0, y0, z0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), x1 - x0, y1 - y0)
    side = None
    if x0 > 0.05:
        side = Face(cam, (x0, y0, z0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), z1 - z0, y1 - y0)
    elif x1 < -0.05:
        side = Face(cam, (x1, y0, z0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), z1 - z0, y1 - y0)
    top = None
    if y1 < cam.cam_h - 0.05:
        top = [cam.pt(x0, y1, z0), cam.pt(x1, y1, z0), cam.pt(x1, y1, z1), cam.pt(x0, y1, z1)]
    return near, side, top


def light_glow(ctx: FrameCtx, p: Painter, u: float, v: float, z: float, color: Color, size_m: float,
                strength: float, rx_extra: float = 0.0) -> None:
    r = size_m * p.cam.f / z
    if r < 2.0:
        return
    if ctx.look.foggy:
        r *= 1.8
    r = min(r, 0.05 * p.cam.width)  # a near lamp's halo is large already; bigger only costs time
    ctx.glows.append((u, v, r + rx_extra, r, color, strength))
    if ctx.look.wet and ctx.look.night:
        # Reflection of the lamp on the wet road: a streak straight below it.
        gv = p.cam.v(0.0, z)
        ctx.glows.append((u, gv + 2.0 * r, 0.6 * r + rx_extra, 2.0 * r, color, 0.35 * strength))
