"""Scene layouts (road, lanes, where things may stand) and the per-video background.

``sample_layout`` draws the geometry of one video for its scene type: the lanes
and their directions, sidewalks, parking slots, street lights, and the static
props (buildings, houses, trees, walls, a gas-station canopy, a tunnel shell).
``render_background`` draws that layout under a ``Look``: sky, ground (with a
per-row haze pass, since the ground recedes continuously), then the props far to
near, each shaded at its own depth. Frames of a video copy this background and
draw the moving objects on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bddengine.synth.draws import uniform
from bddengine.synth.geometry import Camera, Color
from bddengine.synth.look import Look, Shader, Textures
from bddengine.synth.painter import Painter
from bddengine.synth.props import (
    Building,
    Canopy,
    Gantry,
    House,
    Prop,
    Rail,
    Silhouette,
    Storefront,
    StreetLight,
    Tree,
    TunnelShell,
    Wall,
    mix,
)

LANE_W = 3.5
Z_FAR = 170.0
"""Objects are placed up to this depth; farther ones would be under the 4 px limit."""

# Ground materials: day colour (before light and haze).
GROUND: dict[str, Color] = {
    "road": (92, 92, 96),
    "road_dark": (74, 74, 78),
    "sidewalk": (166, 162, 154),
    "curb": (190, 188, 182),
    "grass": (78, 118, 56),
    "dirt": (128, 116, 92),
    "concrete": (170, 168, 162),
    "white": (228, 228, 222),
    "yellow": (226, 184, 60),
    "rail": (120, 112, 104),
    "ballast": (112, 104, 96),
    "track": (60, 60, 64),
}
_SNOW_GROUND: dict[str, Color] = {
    "road": (170, 172, 178),
    "road_dark": (150, 152, 158),
    "sidewalk": (226, 228, 234),
    "curb": (232, 234, 238),
    "grass": (236, 238, 242),
    "dirt": (220, 222, 228),
    "concrete": (222, 224, 230),
    "ballast": (200, 200, 206),
}
_WET_GROUND: dict[str, Color] = {"road": (64, 65, 70), "road_dark": (54, 55, 60), "sidewalk": (122, 120, 116)}

BUILDING_COLORS: tuple[Color, ...] = (
    (150, 82, 66),
    (188, 172, 146),
    (138, 138, 144),
    (206, 200, 190),
    (118, 98, 84),
    (92, 112, 132),
    (172, 150, 118),
    (160, 120, 96),
)
HOUSE_COLORS: tuple[Color, ...] = (
    (218, 214, 200),
    (190, 200, 210),
    (200, 180, 150),
    (170, 190, 168),
    (226, 208, 176),
    (150, 160, 170),
)
ROOF_COLORS: tuple[Color, ...] = ((70, 62, 60), (110, 70, 56), (80, 84, 92), (96, 90, 80))


@dataclass(frozen=True)
class Lane:
    """A traffic lane: centre ``x`` and ``direction`` (+1 with the ego car, -1 oncoming)."""

    x: float
    direction: int


@dataclass(frozen=True)
class ParkSlot:
    """Where a parked vehicle may stand; ``across`` when it stands across the view."""

    x: float
    z: float
    across: bool


@dataclass
class Layout:
    """Geometry of one video: what the background shows and where objects may go."""

    scene: str
    cam: Camera
    lanes: list[Lane]
    road: tuple[float, float]
    walk_bands: list[tuple[float, float]]
    park_slots: list[ParkSlot]
    streetlights: list[tuple[float, float, float]]
    crossing: tuple[float, float] | None = None
    intersection: tuple[float, float] | None = None
    gantries: list[float] = field(default_factory=list)
    rail_x: float | None = None
    sign_sides: tuple[float, float] = (0.0, 0.0)
    ground_base: str = "grass"
    ground: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    props: list[Prop] = field(default_factory=list)
    tunnel_exit_z: float | None = None

    def lamp_light(self, x: float, z: float) -> float:
        """Local lamp light at ground point (x, z) from street lights (night only)."""
        total = 0.0
        for lx, _, lz in self.streetlights:
            d2 = (x - lx) ** 2 + (z - lz) ** 2
            if d2 < 400.0:
                total += 0.9 * math.exp(-d2 / 60.0)
        return min(total, 1.2)


def _pick(rng: np.random.Generator, items: tuple) -> object:
    return items[int(rng.integers(len(items)))]


# ---------------------------------------------------------------- layouts


def make_camera(width: int, height: int, rng: np.random.Generator) -> Camera:
    """A dashcam with a little per-video variation in focal length, pitch and yaw."""
    return Camera(
        width=width,
        height=height,
        f=0.8 * width * uniform(rng, 0.94, 1.06),
        cx=width * (0.5 + uniform(rng, -0.04, 0.04)),
        horizon=height * uniform(rng, 0.42, 0.5),
    )


def _road_lanes(rng: np.random.Generator, n_same: int, n_opp: int) -> tuple[list[Lane], float, float, float]:
    """Lanes with the ego car in one of the same-direction lanes; returns lanes, edges, centre line."""
    ego = int(rng.integers(0, n_same))
    center = -ego * LANE_W - LANE_W / 2
    lanes = [Lane(center + (i + 0.5) * LANE_W, 1) for i in range(n_same)]
    lanes += [Lane(center - (j + 0.5) * LANE_W, -1) for j in range(n_opp)]
    left = center - n_opp * LANE_W
    right = center + n_same * LANE_W
    return lanes, left, right, center


def _strip(x0: float, x1: float, z0: float = 0.5, z1: float = 3000.0) -> list[tuple[float, float]]:
    return [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]


def _dashes(x: float, width: float, dash: float, gap: float, phase: float,
            z_max: float = 160.0) -> list[list[tuple[float, float]]]:
    out = []
    z = 1.0 + phase
    while z < z_max:
        out.append(_strip(x - width / 2, x + width / 2, z, z + dash))
        z += dash + gap
    return out


def _lane_markings(layout: Layout, left: float, right: float, rng: np.random.Generator) -> None:
    """Edge lines, dashed lines between lanes of one direction, double yellow between directions."""
    g = layout.ground
    phase = uniform(rng, 0, 9)
    g.append(("white", _strip(left + 0.15, left + 0.3)))
    g.append(("white", _strip(right - 0.3, right - 0.15)))
    lanes = sorted(layout.lanes, key=lambda ln: ln.x)
    for a, b in zip(lanes, lanes[1:], strict=False):
        edge = 0.5 * (a.x + b.x)
        if a.direction != b.direction:
            g.append(("yellow", _strip(edge - 0.2, edge - 0.08)))
            g.append(("yellow", _strip(edge + 0.08, edge + 0.2)))
        else:
            for q in _dashes(edge, 0.13, 3.0, 9.0, phase):
                g.append(("white", q))


def _trees(rng: np.random.Generator, x_range: tuple[float, float], z0: float, z1: float, spacing: float,
           props: list[Prop], scale: float = 1.0) -> None:
    z = z0 + uniform(rng, 0, spacing)
    greens = ((62, 98, 46), (74, 110, 52), (56, 88, 50), (86, 112, 60))
    while z < z1:
        h = uniform(rng, 5.0, 10.0) * scale
        blobs = tuple(
            (uniform(rng, -0.12, 0.12), uniform(rng, -0.05, 0.15), uniform(rng, 0.18, 0.3))
            for _ in range(3)
        )
        props.append(Tree(uniform(rng, *x_range), z, h, _pick(rng, greens), blobs))  # type: ignore[arg-type]
        z += spacing * uniform(rng, 0.6, 1.6)


def _buildings(rng: np.random.Generator, x: float, side: int, gaps: list[tuple[float, float]],
               props: list[Prop], tall: bool) -> None:
    z = 0.5
    while z < 260.0:
        length = uniform(rng, 8.0, 28.0)
        z1 = z + length
        blocked = next((g for g in gaps if z1 > g[0] and z < g[1]), None)
        if blocked is not None:
            if z < blocked[0] - 4:
                z1 = blocked[0]
            else:
                z = blocked[1]
                continue
        height = uniform(rng, 7.0, 34.0 if tall else 14.0)
        color = _pick(rng, BUILDING_COLORS)
        glass = _pick(rng, ((62, 76, 92), (110, 128, 148), (48, 56, 64), (90, 100, 96)))
        shop = _pick(rng, ((150, 40, 40), (40, 90, 150), (60, 120, 70), (200, 160, 50), (30, 30, 34))) \
            if rng.random() < 0.5 else None
        props.append(Building(x + side * uniform(rng, 0, 1.5), z, z1, height, side, color, glass,  # type: ignore[arg-type]
                              uniform(rng, 2.4, 3.6), rng.random(24), shop))  # type: ignore[arg-type]
        z = z1 + (uniform(rng, 0.5, 6.0) if rng.random() < 0.25 else 0.0)


def _streetlights(rng: np.random.Generator, xs: list[tuple[float, float]], spacing: float, layout: Layout,
                  height: float = 8.5) -> None:
    for x, arm in xs:
        z = uniform(rng, 4.0, spacing)
        while z < 200.0:
            layout.props.append(StreetLight(x, z, height, arm))
            layout.streetlights.append((x + arm, height, z))
            z += spacing * uniform(rng, 0.9, 1.1)


def _skyline(rng: np.random.Generator, cam: Camera, hills: bool) -> Silhouette:
    pts = []
    u = -5.0
    if hills:
        n = 12
        hs = np.cumsum(rng.normal(0, 0.012, n)) + uniform(rng, 0.02, 0.07)
        for i in range(n):
            pts.append((cam.width * i / (n - 1), float(max(0.005, hs[i]))))
        return Silhouette(pts, (92, 112, 104), 1500.0)
    while u < cam.width + 5:
        w = uniform(rng, 0.02, 0.07) * cam.width
        h = uniform(rng, 0.02, 0.14)
        pts += [(u, h), (u + w, h)]
        u += w
    return Silhouette(pts, (120, 124, 134), 900.0)


def _layout_city(cam: Camera, rng: np.random.Generator) -> Layout:
    n_same = int(rng.integers(1, 3))
    n_opp = int(rng.integers(1, 3))
    lanes, left, right, center = _road_lanes(rng, n_same, n_opp)
    park = 2.4 if rng.random() < 0.7 else 0.0
    left, right = left - park, right + park
    walk = uniform(rng, 3.0, 5.0)
    inter = (uniform(rng, 22.0, 70.0), 0.0)
    inter = (inter[0], inter[0] + uniform(rng, 11.0, 16.0))
    lay = Layout("city street", cam, lanes, (left, right), [(left - walk, left - 0.4), (right + 0.4, right + walk)],
                 [], [], crossing=(inter[0] - 3.5, inter[0] - 0.5), intersection=inter,
                 sign_sides=(left - 0.6, right + 0.6), ground_base="sidewalk")
    g = lay.ground
    g.append(("road", _strip(left, right)))
    g.append(("road", [(-90.0, inter[0]), (90.0, inter[0]), (90.0, inter[1]), (-90.0, inter[1])]))
    g.append(("curb", _strip(left - 0.25, left, 0.5, inter[0])))
    g.append(("curb", _strip(right, right + 0.25, 0.5, inter[0])))
    _lane_markings(lay, left + park, right - park, rng)
    # Zebra crossing and stop line on our side of the intersection.
    x = left + 0.3
    while x < right - 0.6:
        g.append(("white", [(x, inter[0] - 3.5), (x + 0.5, inter[0] - 3.5), (x + 0.5, inter[0] - 0.5),
                            (x, inter[0] - 0.5)]))
        x += 1.1
    g.append(("white", [(center, inter[0] - 4.6), (right - park, inter[0] - 4.6), (right - park, inter[0] - 4.2),
                        (center, inter[0] - 4.2)]))
    # Road markings past the intersection are the same lines; cover them with the cross road.
    g.append(("road", [(-90.0, inter[0] - 0.3), (90.0, inter[0] - 0.3), (90.0, inter[1]), (-90.0, inter[1])]))
    if park:
        for zc in np.arange(uniform(rng, 4, 9), inter[0] - 6, 6.2):
            lay.park_slots += [ParkSlot(left + 1.2, float(zc), False), ParkSlot(right - 1.2, float(zc), False)]
        for zc in np.arange(inter[1] + 4, 150, 6.2):
            lay.park_slots += [ParkSlot(left + 1.2, float(zc), False), ParkSlot(right - 1.2, float(zc), False)]
    gaps = [inter]
    _buildings(rng, left - walk, -1, gaps, lay.props, tall=True)
    _buildings(rng, right + walk, 1, gaps, lay.props, tall=True)
    _streetlights(rng, [(left - 0.6, 1.6), (right + 0.6, -1.6)], uniform(rng, 25, 40), lay)
    if rng.random() < 0.4:
        _trees(rng, (left - 1.6, left - 1.0), 5, 150, 14, lay.props, 0.8)
        _trees(rng, (right + 1.0, right + 1.6), 5, 150, 14, lay.props, 0.8)
    if rng.random() < 0.03:
        lay.rail_x = float(left - walk - 4.5) if rng.random() < 0.5 else float(right + walk + 4.5)
    lay.props.append(_skyline(rng, cam, hills=False))
    return lay


def _layout_highway(cam: Camera, rng: np.random.Generator) -> Layout:
    n_same = int(rng.integers(2, 5))
    lanes, left, right, center = _road_lanes(rng, n_same, 0)
    median = uniform(rng, 2.0, 8.0)
    n_opp = int(rng.integers(2, 4))
    opp_right = left - median
    lanes += [Lane(opp_right - (j + 0.5) * LANE_W, -1) for j in range(n_opp)]
    opp_left = opp_right - n_opp * LANE_W
    shoulder = uniform(rng, 2.0, 3.5)
    lay = Layout("highway", cam, lanes, (opp_left, right), [], [], [],
                 sign_sides=(opp_left - 1.5, right + shoulder + 1.2), ground_base="grass")
    g = lay.ground
    g.append(("dirt", _strip(right, right + shoulder + 1.5)))
    g.append(("road", _strip(left - 0.8, right + shoulder)))
    g.append(("road", _strip(opp_left - 1.5, opp_right + 0.8)))
    phase = uniform(rng, 0, 9)
    g.append(("yellow", _strip(left + 0.07, left + 0.23)))  # US: yellow on the left edge, white on the right
    g.append(("white", _strip(right - 0.23, right - 0.07)))
    for i in range(1, n_same):
        for q in _dashes(left + i * LANE_W, 0.14, 3.0, 9.0, phase):
            g.append(("white", q))
    for j in range(1, n_opp):
        for q in _dashes(opp_right - j * LANE_W, 0.14, 3.0, 9.0, phase + 3):
            g.append(("white", q))
    mid = opp_right + median / 2
    lay.props.append(Rail(mid, 0.85, (190, 188, 180), solid=True))
    lay.props.append(Rail(right + shoulder + 0.3, 0.8, (170, 172, 176), solid=False))
    if rng.random() < 0.35:
        lay.props.append(Wall(right + shoulder + 4.0, uniform(rng, 3.0, 5.0), (172, 166, 150), 2.0, 400.0))
    else:
        _trees(rng, (right + shoulder + 8, right + shoulder + 30), 10, 300, 22, lay.props)
    _trees(rng, (opp_left - 30, opp_left - 8), 10, 300, 26, lay.props)
    if rng.random() < 0.6:
        _streetlights(rng, [(mid, 2.2), (mid, -2.2)], uniform(rng, 40, 60), lay, height=11.0)
    for _ in range(int(rng.integers(0, 2)) + (1 if rng.random() < 0.5 else 0)):
        z = uniform(rng, 45.0, 150.0)
        lay.gantries.append(z)
        lay.props.append(Gantry(left - 0.5, right + shoulder, z))
    if rng.random() < 0.03:
        lay.rail_x = right + shoulder + 9.0
    lay.props.append(_skyline(rng, cam, hills=True))
    if rng.random() < 0.4:
        lay.props.append(_skyline(rng, cam, hills=False))
    return lay


def _layout_residential(cam: Camera, rng: np.random.Generator) -> Layout:
    lanes, left, right, center = _road_lanes(rng, 1, 1)
    left -= 2.2
    right += 2.2
    lay = Layout("residential", cam, lanes, (left, right), [(left - 4.5, left - 2.5), (right + 2.5, right + 4.5)],
                 [], [], sign_sides=(left - 1.0, right + 1.0), ground_base="grass")
    g = lay.ground
    g.append(("road", _strip(left, right)))
    g.append(("curb", _strip(left - 0.25, left)))
    g.append(("curb", _strip(right, right + 0.25)))
    g.append(("sidewalk", _strip(left - 4.5, left - 2.5)))
    g.append(("sidewalk", _strip(right + 2.5, right + 4.5)))
    if rng.random() < 0.5:
        for q in _dashes(center, 0.12, 3.0, 6.0, uniform(rng, 0, 6)):
            g.append(("yellow", q))
    for zc in np.arange(uniform(rng, 3, 8), 120, 6.5):
        lay.park_slots += [ParkSlot(left + 1.1, float(zc), False), ParkSlot(right - 1.1, float(zc), False)]
    for side, x in ((-1, left - 9.0), (1, right + 9.0)):
        z = uniform(rng, 0, 8)
        while z < 180:
            length = uniform(rng, 9.0, 14.0)
            xh = x + side * uniform(rng, 0, 4)
            lay.props.append(House(xh, z, z + length, uniform(rng, 3.0, 6.2), side,
                                   _pick(rng, HOUSE_COLORS), _pick(rng, ROOF_COLORS), bool(rng.random() < 0.5)))  # type: ignore[arg-type]
            g.append(("concrete", [(x - side * 6.6, z + 2), (xh, z + 2), (xh, z + 5), (x - side * 6.6, z + 5)]))
            z += length + uniform(rng, 6.0, 14.0)
    _trees(rng, (left - 2.3, left - 0.8), 3, 160, 13, lay.props)
    _trees(rng, (right + 0.8, right + 2.3), 3, 160, 13, lay.props)
    _trees(rng, (left - 30, left - 16), 6, 200, 12, lay.props, 1.2)
    _trees(rng, (right + 16, right + 30), 6, 200, 12, lay.props, 1.2)
    if rng.random() < 0.7:
        _streetlights(rng, [(right + 1.0, -1.2)], uniform(rng, 35, 55), lay, height=7.0)
    return lay


def _layout_parking(cam: Camera, rng: np.random.Generator) -> Layout:
    lanes = [Lane(0.0, 1), Lane(-3.2, -1)]
    lay = Layout("parking lot", cam, lanes, (-4.8, 1.6), [(-60.0, 60.0)], [], [], ground_base="road",
                 sign_sides=(-10.0, 8.0))
    g = lay.ground
    z_store = uniform(rng, 70.0, 110.0)
    rows = []
    for x_aisle in (0.0, -20.0, 20.0):
        for side in (-1, 1):
            x_in = x_aisle + side * 3.4
            x_out = x_in + side * 5.2
            rows.append((min(x_in, x_out), max(x_in, x_out)))
    for x0, x1 in rows:
        z = 4.0
        while z < z_store - 8:
            g.append(("white", [(x0, z), (x1, z), (x1, z + 0.12), (x0, z + 0.12)]))
            lay.park_slots.append(ParkSlot(0.5 * (x0 + x1), z + 1.35, True))
            z += 2.7
        g.append(("white", [(x0, 4.0), (x0 + 0.12, 4.0), (x0 + 0.12, z), (x0, z)]))
    g.append(("concrete", [(-80, z_store - 6), (80, z_store - 6), (80, z_store), (-80, z_store)]))
    lay.props.append(Storefront(-40.0, 45.0, z_store, uniform(rng, 7.0, 11.0), _pick(rng, BUILDING_COLORS),  # type: ignore[arg-type]
                                _pick(rng, ((170, 40, 40), (40, 80, 160), (230, 180, 40)))))  # type: ignore[arg-type]
    light_xs = [(x, 1.2) for x in (-11.0, 11.0)] + [(x, -1.2) for x in (-11.0, 11.0)]
    _streetlights(rng, light_xs, uniform(rng, 28, 40), lay, height=10.0)
    _trees(rng, (-45, -35), 5, z_store - 10, 15, lay.props)
    _trees(rng, (35, 45), 5, z_store - 10, 15, lay.props)
    lay.props.append(_skyline(rng, cam, hills=True))
    return lay


def _layout_tunnel(cam: Camera, rng: np.random.Generator) -> Layout:
    n_same = int(rng.integers(2, 4))
    lanes, left, right, center = _road_lanes(rng, n_same, 0 if rng.random() < 0.6 else 1)
    exit_z = uniform(rng, 120.0, 320.0)
    lay = Layout("tunnel", cam, lanes, (left, right), [], [], [], sign_sides=(left - 0.9, right + 0.9),
                 ground_base="road_dark", tunnel_exit_z=exit_z)
    g = lay.ground
    g.append(("concrete", _strip(left - 1.2, left)))
    g.append(("concrete", _strip(right, right + 1.2)))
    _lane_markings(lay, left, right, rng)
    lay.props.append(TunnelShell(left - 1.2, right + 1.2, uniform(rng, 5.2, 6.5), exit_z))
    return lay


def _layout_gas(cam: Camera, rng: np.random.Generator) -> Layout:
    lanes, left, right, center = _road_lanes(rng, int(rng.integers(1, 3)), 1)
    side = 1 if rng.random() < 0.75 else -1
    edge = right if side > 0 else left
    lay = Layout("gas stations", cam, lanes, (left, right), [], [], [], sign_sides=(left - 0.8, right + 0.8),
                 ground_base="grass")
    g = lay.ground
    g.append(("road", _strip(left, right)))
    z0 = uniform(rng, 9.0, 20.0)
    z1 = z0 + uniform(rng, 14.0, 20.0)
    xa = edge + side * 4.5
    xb = xa + side * uniform(rng, 13.0, 18.0)
    g.append(("concrete", [(edge, z0 - 8), (xb + side * 12, z0 - 8), (xb + side * 12, z1 + 14), (edge, z1 + 14)]))
    _lane_markings(lay, left, right, rng)
    band = _pick(rng, ((200, 30, 36), (30, 140, 60), (30, 70, 170), (240, 190, 30)))
    lay.props.append(Canopy(min(xa, xb), max(xa, xb), z0, z1, band))  # type: ignore[arg-type]
    sx0, sx1 = sorted((xa - side * 2, xb + side * 10))
    lay.props.append(Storefront(sx0, sx1, z1 + 12, 5.0, (210, 206, 198), band))  # type: ignore[arg-type]
    for xc in (min(xa, xb) + 1.5, max(xa, xb) - 1.5):
        for dz in (-1.3, 1.3):
            lay.park_slots.append(ParkSlot(xc + side * 1.6, z0 + 2 + dz + 3.5, False))
    lay.walk_bands = [(min(xa, xb), max(xa, xb))]
    other = left if side > 0 else right
    _trees(rng, (other - 14 * side - 6, other - 14 * side), 4, 200, 10, lay.props)
    _streetlights(rng, [(edge + side * 1.0, -side * 1.2)], 45.0, lay)
    lay.props.append(_skyline(rng, cam, hills=True))
    return lay


_LAYOUTS = {
    "city street": _layout_city,
    "highway": _layout_highway,
    "residential": _layout_residential,
    "parking lot": _layout_parking,
    "tunnel": _layout_tunnel,
    "gas stations": _layout_gas,
}


def sample_layout(scene: str, cam: Camera, rng: np.random.Generator) -> Layout:
    """Draw the layout of one video of a (concrete) scene type."""
    return _LAYOUTS[scene](cam, rng)


# ---------------------------------------------------------------- background


def _ground_color(kind: str, look: Look) -> Color:
    if look.snow_ground and kind in _SNOW_GROUND:
        return _SNOW_GROUND[kind]
    if look.wet and kind in _WET_GROUND:
        return _WET_GROUND[kind]
    return GROUND[kind]


def paste_glows(image: Image.Image, textures: Textures, glows: list) -> None:
    """Blend soft light sprites ``(u, v, rx, ry, color, strength)`` onto an image."""
    w, h = image.size
    image.load()
    core = image.im  # the C image: Image.paste's argument handling costs more than blending a small sprite
    for u, v, rx, ry, color, strength in glows:
        rx_i, ry_i = max(1, int(rx)), max(1, int(ry))
        x0, y0 = int(u) - rx_i, int(v) - ry_i
        if x0 > w or y0 > h or x0 + 2 * rx_i < 0 or y0 + 2 * ry_i < 0 or rx_i > 4 * w:
            continue
        sprite = textures.glow(rx_i, ry_i, strength)
        core.paste(color, (x0, y0, x0 + sprite.width, y0 + sprite.height), sprite.im)


def add_glows(image: Image.Image, textures: Textures, glows: list) -> Image.Image:
    """Blend soft light ``(u, v, rx, ry, color, strength)`` onto an image, sizes capped.

    A glow's cost grows with its area, so the radii are capped at a fifth of the
    width (near lamps are large and smooth anyway).
    """
    cap = 0.2 * image.width
    paste_glows(image, textures, [(u, v, min(rx, cap), min(ry, cap), c, s) for u, v, rx, ry, c, s in glows])
    return image


def render_background(layout: Layout, look: Look, textures: Textures, rng: np.random.Generator) -> Image.Image:
    """Draw a video's static background: sky, clouds, ground, props, lamp glows.

    Args:
        layout: the video's geometry.
        look: the video's condition.
        textures: the worker's precomputed layers (glow sprites).
        rng: draws cloud shapes.
    """
    cam = layout.cam
    w, h = cam.width, cam.height
    hz = int(round(cam.horizon))
    shader = Shader(look)
    # Sky gradient and ground base colour as one column, stretched to full width (fast).
    t = (np.arange(hz, dtype=np.float32) / max(1, hz - 1)) ** 1.6
    top, hor = np.array(look.sky_top, np.float32), np.array(look.sky_horizon, np.float32)
    column = np.empty((h, 1, 3), np.uint8)
    column[:hz, 0] = (top[None, :] + (hor - top)[None, :] * t[:, None]).astype(np.uint8)
    column[hz:, 0] = _lit(_ground_color(layout.ground_base, look), look, layout.ground_base)
    image = Image.fromarray(column, "RGB").resize((w, h), Image.Resampling.NEAREST)
    if look.clouds > 0 and hz > 4:
        _clouds(image, look, rng, hz)
    # Ground layer: lit but unhazed, then one haze pass by row depth.
    d = ImageDraw.Draw(image)
    for kind, pts in layout.ground:
        col = _lit(_ground_color(kind, look), look, kind)
        d.polygon([cam.pt(x, 0.0, z) for x, z in pts], fill=col)
    if look.snow_ground:
        for lane in layout.lanes:
            for dx in (-0.8, 0.8):
                pts = _strip(lane.x + dx - 0.22, lane.x + dx + 0.22)
                d.polygon([cam.pt(x, 0.0, z) for x, z in pts], fill=_lit(GROUND["track"], look, "track"))
    rows = np.arange(hz, h, dtype=np.float32) + 0.5 - cam.horizon
    depth = cam.f * cam.cam_h / np.maximum(rows, 0.25)
    alpha = np.zeros((h, 1), np.uint8)
    haze = look.veil + (1.0 - look.veil) * (1.0 - np.exp(-depth / look.visibility))
    alpha[hz:, 0] = (haze * 255).astype(np.uint8)  # the sky is drawn in the haze already
    ground = Image.fromarray(alpha[hz:], "L").resize((w, h - hz), Image.Resampling.NEAREST)
    image.paste(look.haze, (0, hz, w, h), ground)
    # Props far to near.
    painter = Painter(image, cam, shader)
    glows: list = []
    if look.night:
        # The ego car's low beams on the road ahead.
        glows.append((cam.cx, cam.v(0.0, 9.0), 0.42 * w, 0.5 * (h - cam.horizon), (150, 140, 118), 0.55))
    for prop in sorted(layout.props, key=lambda pr: -pr.z):
        prop.draw(painter, look, glows)
    return add_glows(image, textures, glows)


def _lit(color: Color, look: Look, kind: str) -> Color:
    lr, lg, lb = look.light
    if kind in ("white", "yellow") and look.night:
        lr, lg, lb = lr * 1.4, lg * 1.4, lb * 1.4  # retroreflective paint
    return (min(255, int(color[0] * lr)), min(255, int(color[1] * lg)), min(255, int(color[2] * lb)))


def _clouds(image: Image.Image, look: Look, rng: np.random.Generator, hz: int) -> None:
    # Drawn and blurred at a quarter of the size, then stretched: soft edges for little work.
    w = image.width
    qw, qh = max(8, w // 4), max(2, hz // 4)
    mask = Image.new("L", (qw, qh), 0)
    d = ImageDraw.Draw(mask)
    n = int(3 + 30 * look.clouds)
    for _ in range(n):
        cx, cy = uniform(rng, -0.1, 1.1) * qw, uniform(rng, 0.0, 0.85) * qh
        rx = uniform(rng, 0.04, 0.14) * qw
        ry = rx * uniform(rng, 0.25, 0.45)
        for _ in range(4):
            ox, oy = float(rng.normal(0, rx * 0.5)), float(rng.normal(0, ry * 0.4))
            d.ellipse((cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry), fill=int(rng.integers(150, 230)))
    mask = mask.filter(ImageFilter.GaussianBlur(0.012 * qw)).resize((w, hz), Image.Resampling.BILINEAR)
    col = mix((246, 246, 248), look.sky_horizon, 0.25) if not look.dusk else (236, 178, 150)
    image.paste(col, (0, 0), mask)
