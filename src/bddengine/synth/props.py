"""Static props of the background: buildings, houses, trees, lamps, rails, walls, a tunnel shell.

Each prop draws itself far to near through a ``Painter``, shaded at its own depth,
so haze thickens with distance along a facade. Long receding surfaces are cut into
segments (``_segments``) short enough for one depth each. Props that emit light at
night (street lamps, a tunnel's exit, a gas-station canopy) add soft glows to the
list they are given; the background adds those in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bddengine.synth.geometry import EMISSIVE, Z_MIN, Camera, Color, Face
from bddengine.synth.look import Look
from bddengine.synth.painter import Painter


class Prop:
    """A static thing of the background; ``z`` orders drawing (far first)."""

    z: float

    def draw(self, p: Painter, look: Look, glows: list[tuple[float, float, float, float, Color, float]]) -> None:
        raise NotImplementedError


def _z_in_view(cam: Camera, x: float) -> float:
    """Depth from which the plane at lateral ``x`` is in the image (beyond a pixel of margin).

    Nearer than this, anything drawn in that plane lies wholly left or right of the
    image, so skipping it changes no pixel.
    """
    edge = -1.0 - cam.cx if x < 0 else cam.width + 1.0 - cam.cx
    return cam.f * x / edge if x else 0.0


def _segments(z0: float, z1: float) -> list[tuple[float, float]]:
    """Split a receding span into pieces short enough for constant-depth haze."""
    out = []
    z = z0
    while z < z1:
        step = max(3.0, 0.4 * z)
        out.append((z, min(z1, z + step)))
        z += step
    return out


@dataclass
class Building(Prop):
    """A city block facade along the road; ``x`` is the facade plane, ``side`` -1/+1."""

    x: float
    z0: float
    z1: float
    height: float
    side: int
    color: Color
    glass: Color
    win_dz: float
    lit: np.ndarray
    shop: Color | None
    depth: float = 14.0

    def __post_init__(self) -> None:
        self.z = self.z0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        x, s = self.x, self.side
        # Near end (visible where the nearer building is lower or absent).
        end = [cam.pt(x, 0, self.z0), cam.pt(x + s * self.depth, 0, self.z0),
               cam.pt(x + s * self.depth, self.height, self.z0), cam.pt(x, self.height, self.z0)]
        p.poly(end, _mul(self.color, 0.78), self.z0)
        face = Face(cam, (x, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, self.height)
        floors = int((self.height - 3.3) / 3.2)
        top = 4.3 + 3.2 * floors - 1.6
        night = look.night or look.tunnel
        # Windows are drawn where they are at least ~2 px wide on the receding facade.
        z_win = math.sqrt(cam.f * abs(x) * 1.1 / 2.0) if x else 0.0
        z_in = _z_in_view(cam, x)
        for za, zb in _segments(self.z0, self.z1):
            if max(zb + 0.55, Z_MIN) < z_in:  # (window columns reach 0.55 m past the segment)
                continue  # this part of the facade is left or right of the image
            zm = 0.5 * (za + zb)
            p.poly(face.quad(za, zb, 0.0, self.height), self.color, zm)
            p.poly(face.quad(za, zb, self.height - 0.5, self.height), _mul(self.color, 0.7), zm)
            if zm > z_win or floors < 1:
                continue
            # Window columns as glass strips, then floor slabs across them.
            zc = self.z0 + 0.5 * self.win_dz
            while zc < za:
                zc += self.win_dz
            cols = []
            while zc < min(zb, self.z1 - 0.6):
                cols.append(zc)
                zc += self.win_dz
            glass = (30, 32, 38) if night else self.glass
            for zc in cols:
                p.poly(face.quad(zc - 0.55, zc + 0.55, 4.3, top), glass, zc)
            for k in range(1, floors):
                y = 4.3 + 3.2 * k - 1.6
                p.poly(face.quad(za, zb, y, y + 1.6), self.color, zm)
            if night:
                for ci, zc in enumerate(cols):
                    for k in range(floors):
                        if self.lit[(ci * 7 + k * 3 + int(zc)) % len(self.lit)] < 0.28:
                            y0 = 4.3 + 3.2 * k
                            p.poly(face.quad(zc - 0.55, zc + 0.55, y0, y0 + 1.6), (236, 196, 120), zc, EMISSIVE)
        if self.shop is not None:
            # Shop windows at street level: lit at night, with piers between them.
            za = self.z0 + 0.4
            while za < self.z1 - 1.0:
                zb = min(za + 3.0, self.z1 - 0.4)
                lit = night and self.lit[int(za) % len(self.lit)] < 0.6
                p.poly(face.quad(za, zb, 0.4, 2.8), (170, 150, 110) if lit else self.glass, za,
                       EMISSIVE if lit else 0.0)
                za = zb + 0.8
            p.poly(face.quad(self.z0 + 0.2, self.z1 - 0.2, 3.0, 3.6), self.shop, self.z0 + 1)


@dataclass
class House(Prop):
    """A residential house with a gable roof, its front towards the road."""

    x: float
    z0: float
    z1: float
    height: float
    side: int
    color: Color
    roof: Color
    lit: bool

    def __post_init__(self) -> None:
        self.z = self.z0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        x, s, h = self.x, self.side, self.height
        depth, ridge = 9.0, 2.6
        roof = (232, 234, 240) if look.snow_ground else self.roof
        gable = [cam.pt(x, 0, self.z0), cam.pt(x + s * depth, 0, self.z0), cam.pt(x + s * depth, h, self.z0),
                 cam.pt(x + s * depth / 2, h + ridge, self.z0), cam.pt(x, h, self.z0)]
        p.poly(gable, _mul(self.color, 0.8), self.z0)
        zm = 0.5 * (self.z0 + self.z1)
        front = [cam.pt(x, 0, self.z0), cam.pt(x, 0, self.z1), cam.pt(x, h, self.z1), cam.pt(x, h, self.z0)]
        p.poly(front, self.color, zm)
        slope = [cam.pt(x - s * 0.4, h - 0.2, self.z0), cam.pt(x - s * 0.4, h - 0.2, self.z1),
                 cam.pt(x + s * depth / 2, h + ridge, self.z1), cam.pt(x + s * depth / 2, h + ridge, self.z0)]
        p.poly(slope, roof, zm)
        face = Face(cam, (x, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, h)
        length = self.z1 - self.z0
        door = self.z0 + 0.35 * length
        p.poly(face.quad(door, door + 1.0, 0.0, 2.1), (96, 64, 48), door)
        for frac in (0.15, 0.62, 0.82):
            zc = self.z0 + frac * length
            quad = face.quad(zc - 0.6, zc + 0.6, 1.0, 2.2)
            if look.night and self.lit:
                p.poly(quad, (236, 200, 130), zc, EMISSIVE)
            else:
                p.poly(quad, (60, 72, 86) if not look.night else (24, 26, 30), zc)


@dataclass
class Tree(Prop):
    """A tree: trunk and a crown of a few blobs."""

    x: float
    z: float
    height: float
    color: Color
    blobs: tuple[tuple[float, float, float], ...]

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        h = self.height
        tw = 0.16 + 0.02 * h
        p.poly([cam.pt(self.x - tw, 0, self.z), cam.pt(self.x + tw, 0, self.z),
                cam.pt(self.x + tw, 0.55 * h, self.z), cam.pt(self.x - tw, 0.55 * h, self.z)],
               (82, 62, 46), self.z)
        crown = self.color
        if look.snow_ground:
            crown = mix(crown, (226, 230, 236), 0.55)
        k = cam.f / self.z
        for i, (dx, dy, r) in enumerate(self.blobs):
            cu, cv = cam.pt(self.x + dx * h, (0.62 + dy) * h, self.z)
            rr = r * h * k
            shade = _mul(crown, 0.82 + 0.09 * i)
            p.ellipse((cu - rr, cv - rr * 0.9, cu + rr, cv + rr * 0.9), shade, self.z)


@dataclass
class StreetLight(Prop):
    """A lamp post with an arm; at night the lamp glows and lights the ground."""

    x: float
    z: float
    height: float
    arm: float
    tall_base: bool = False

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        w = 0.09
        pole = (118, 120, 124)
        p.poly([cam.pt(self.x - w, 0, self.z), cam.pt(self.x + w, 0, self.z),
                cam.pt(self.x + w, self.height, self.z), cam.pt(self.x - w, self.height, self.z)], pole, self.z)
        hx = self.x + self.arm
        p.line([cam.pt(self.x, self.height, self.z), cam.pt(hx, self.height + 0.15, self.z)], pole, self.z,
               max(1.0, 0.07 * cam.f / self.z))
        head = [cam.pt(hx - 0.35, self.height - 0.05, self.z), cam.pt(hx + 0.35, self.height - 0.05, self.z),
                cam.pt(hx + 0.35, self.height + 0.12, self.z), cam.pt(hx - 0.35, self.height + 0.12, self.z)]
        if look.night or look.dusk:
            p.poly(head, (255, 226, 170), self.z, EMISSIVE)
            hu, hv = cam.pt(hx, self.height, self.z)
            r = 1.1 * cam.f / self.z
            glows.append((hu, hv, r, r, (255, 214, 150), 0.75 if look.night else 0.4))
            if look.night:
                # Light pool on the ground (a streak towards the camera on a wet road).
                gu, gv = cam.pt(hx, 0, self.z)
                rx = 4.5 * cam.f / self.z
                ry = rx * (0.9 if look.wet else 0.3)
                glows.append((gu, gv + (0.6 * ry if look.wet else 0), rx, ry, (150, 118, 78), 0.5))
        else:
            p.poly(head, (70, 72, 76), self.z)


@dataclass
class Rail(Prop):
    """A guard rail (or low barrier) receding along the road at ``x``."""

    x: float
    height: float
    color: Color
    solid: bool
    z: float = 1.0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        face = Face(cam, (self.x, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, self.height)
        lo = 0.0 if self.solid else self.height - 0.35
        for za, zb in _segments(2.0, 400.0):
            zm = 0.5 * (za + zb)
            p.poly(face.quad(za, zb, lo, self.height), self.color, zm)
            if not self.solid and cam.f / zm > 2.0:
                post = face.quad(za, za + 0.15, 0.0, lo)
                p.poly(post, _mul(self.color, 0.7), za)


@dataclass
class Wall(Prop):
    """A tall noise wall or fence along the road."""

    x: float
    height: float
    color: Color
    z0: float
    z1: float

    def __post_init__(self) -> None:
        self.z = self.z0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        face = Face(p.cam, (self.x, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, self.height)
        for i, (za, zb) in enumerate(_segments(self.z0, self.z1)):
            col = self.color if i % 2 == 0 else _mul(self.color, 0.92)
            p.poly(face.quad(za, zb, 0.0, self.height), col, 0.5 * (za + zb))


@dataclass
class Silhouette(Prop):
    """A far skyline or range of hills: a jagged polygon at a large depth."""

    points: list[tuple[float, float]]
    color: Color
    z: float = 1500.0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        pts = [(u, cam.horizon - h * cam.height) for u, h in self.points]
        pts = [(-5.0, cam.horizon + 2)] + pts + [(cam.width + 5.0, cam.horizon + 2)]
        p.poly(pts, self.color, self.z)


@dataclass
class Gantry(Prop):
    """An overhead sign gantry across a highway (the signs are labelled objects)."""

    x0: float
    x1: float
    z: float

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        col = (140, 142, 146)
        w = max(1.0, 0.25 * cam.f / self.z)
        for x in (self.x0, self.x1):
            p.line([cam.pt(x, 0, self.z), cam.pt(x, 7.2, self.z)], col, self.z, w)
        p.line([cam.pt(self.x0, 7.0, self.z), cam.pt(self.x1, 7.0, self.z)], col, self.z, w)
        p.line([cam.pt(self.x0, 5.6, self.z), cam.pt(self.x1, 5.6, self.z)], col, self.z, 0.6 * w)


@dataclass
class TunnelShell(Prop):
    """Walls, ceiling, lamp rows and the bright (or dark) exit of a tunnel."""

    xl: float
    xr: float
    height: float
    exit_z: float
    z: float = 1.0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        xl, xr, h = self.xl, self.xr, self.height
        exit_col = (26, 28, 34) if look.timeofday == "night" else (236, 238, 240)
        ez = self.exit_z
        ex = [cam.pt(xl, 0, ez), cam.pt(xr, 0, ez), cam.pt(xr, h, ez), cam.pt(xl, h, ez)]
        p.draw.polygon(ex, fill=exit_col)
        if look.timeofday != "night":
            cu, cv = cam.pt(0.5 * (xl + xr), 0.5 * h, self.exit_z)
            r = (xr - xl) * cam.f / self.exit_z
            glows.append((cu, cv, 1.4 * r, r, (240, 240, 236), 0.9))
        segs = []
        z = self.exit_z
        while z > 1.0:
            step = max(1.5, min(6.0, 0.08 * z))
            segs.append((max(1.0, z - step), z))
            z -= step
        for i, (za, zb) in enumerate(segs):
            zm = 0.5 * (za + zb)
            tone = 1.0 if i % 2 else 0.93
            for x, s in ((xl, 1), (xr, -1)):
                face = Face(cam, (x, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, h)
                p.poly(face.quad(za, zb, 0.0, 1.1), _mul((96, 94, 90), tone), zm)
                p.poly(face.quad(za, zb, 1.1, 3.6), _mul((196, 190, 172), tone), zm)
                p.poly(face.quad(za, zb, 3.6, h), _mul((120, 118, 112), tone), zm)
                del s
            ceil = [cam.pt(xl, h, za), cam.pt(xr, h, za), cam.pt(xr, h, zb), cam.pt(xl, h, zb)]
            p.poly(ceil, _mul((70, 70, 72), tone), zm)
        for za, zb in segs:
            if (zb - za) < 1.0:
                continue
            zm = 0.5 * (za + zb)
            for lx in (xl + 1.2, xr - 1.2):
                lamp = [cam.pt(lx - 0.18, h - 0.05, zm - 0.6), cam.pt(lx + 0.18, h - 0.05, zm - 0.6),
                        cam.pt(lx + 0.18, h - 0.05, zm + 0.6), cam.pt(lx - 0.18, h - 0.05, zm + 0.6)]
                p.poly(lamp, (255, 214, 150), zm, EMISSIVE)


@dataclass
class Canopy(Prop):
    """A gas-station canopy on pillars with pumps under it."""

    x0: float
    x1: float
    z0: float
    z1: float
    band: Color

    def __post_init__(self) -> None:
        self.z = self.z0

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        cam = p.cam
        y0, y1 = 4.7, 5.5
        xs = (self.x0 + 1.5, self.x1 - 1.5)
        zs = (self.z0 + 2.0, self.z1 - 2.0)
        # Far pillars and pumps first.
        for zc in sorted(zs, reverse=True):
            for xc in xs:
                _box(p, xc - 0.25, xc + 0.25, 0.0, y0, zc - 0.25, zc + 0.25, (214, 214, 210))
                for dz in (-2.6, 2.6):
                    _box(p, xc - 0.45, xc + 0.45, 0.0, 1.7, zc + dz - 0.35, zc + dz + 0.35, (200, 200, 204),
                         top=self.band)
        under = [cam.pt(self.x0, y0, self.z0), cam.pt(self.x1, y0, self.z0), cam.pt(self.x1, y0, self.z1),
                 cam.pt(self.x0, y0, self.z1)]
        if look.night:
            p.poly(under, (226, 228, 232), self.z0 + 3, EMISSIVE)
            cu, cv = cam.pt(0.5 * (self.x0 + self.x1), y0, 0.5 * (self.z0 + self.z1))
            r = 0.8 * (self.x1 - self.x0) * cam.f / (0.5 * (self.z0 + self.z1))
            glows.append((cu, cv + 0.4 * r, r, 0.6 * r, (236, 236, 230), 0.45))
        else:
            p.poly(under, (190, 192, 196), self.z0 + 3)
        x_near = self.x0 if self.x0 > 0 else self.x1
        side = Face(cam, (x_near, y0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), 0.0, y1 - y0)
        p.poly(side.quad(self.z0, self.z1, 0.0, y1 - y0), (236, 236, 234), 0.5 * (self.z0 + self.z1))
        p.poly(side.quad(self.z0, self.z1, 0.25, 0.55), self.band, 0.5 * (self.z0 + self.z1))
        front = Face(cam, (self.x0, y0, self.z0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), self.x1 - self.x0, y1 - y0)
        p.poly(front.quad(0.0, self.x1 - self.x0, 0.0, y1 - y0), (240, 240, 238), self.z0)
        p.poly(front.quad(0.0, self.x1 - self.x0, 0.25, 0.55), self.band, self.z0)


@dataclass
class Storefront(Prop):
    """A frontal building (store, warehouse) seen straight on at depth ``z``."""

    x0: float
    x1: float
    z: float
    height: float
    color: Color
    band: Color

    def draw(self, p: Painter, look: Look, glows: list) -> None:
        face = Face(p.cam, (self.x0, 0.0, self.z), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), self.x1 - self.x0, self.height)
        w = self.x1 - self.x0
        p.poly(face.quad(0, w, 0, self.height), self.color, self.z)
        p.poly(face.quad(0, w, self.height - 1.6, self.height - 0.5), self.band, self.z)
        mid = 0.5 * w
        glass = (236, 220, 170) if look.night else (70, 86, 100)
        p.poly(face.quad(mid - 4.0, mid + 4.0, 0.0, 3.2), glass, self.z, EMISSIVE if look.night else 0.0)


def _box(p: Painter, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, color: Color,
         top: Color | None = None) -> None:
    """A plain shaded cuboid (visible side, top band and near face)."""
    cam = p.cam
    if x0 > 0:
        side = [cam.pt(x0, y0, z0), cam.pt(x0, y0, z1), cam.pt(x0, y1, z1), cam.pt(x0, y1, z0)]
        p.poly(side, _mul(color, 0.8), 0.5 * (z0 + z1))
    elif x1 < 0:
        side = [cam.pt(x1, y0, z0), cam.pt(x1, y0, z1), cam.pt(x1, y1, z1), cam.pt(x1, y1, z0)]
        p.poly(side, _mul(color, 0.8), 0.5 * (z0 + z1))
    p.poly([cam.pt(x0, y0, z0), cam.pt(x1, y0, z0), cam.pt(x1, y1, z0), cam.pt(x0, y1, z0)], color, z0)
    if top is not None:
        band = y1 - 0.3
        p.poly([cam.pt(x0, band, z0), cam.pt(x1, band, z0), cam.pt(x1, y1, z0), cam.pt(x0, y1, z0)], top, z0)


def _mul(c: Color, k: float) -> Color:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


def mix(a: Color, b: Color, t: float) -> Color:
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))
