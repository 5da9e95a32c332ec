"""Placement: which objects a video has, where they stand and how they move.

Counts follow BDD100K's proportions (many cars, signs and lights; few buses and
two-wheelers; trains rare; the ignored "other vehicle", "trailer", "other person"
rarer still) and depend on the scene: highways have trucks and no pedestrians,
city streets have parked cars, people, an intersection with signals. Vehicles
drive in their lanes (oncoming ones towards the camera), people walk along
sidewalks or across the crossing; parked cars, signs and lights stand still.
"""

from __future__ import annotations

import math

import numpy as np

from bddengine.synth.draws import uniform
from bddengine.synth.geometry import Color
from bddengine.synth.scene import Z_FAR, Layout
from bddengine.synth.things import Thing

CAR_COLORS: tuple[tuple[Color, float], ...] = (
    ((224, 224, 220), 0.22),
    ((30, 30, 33), 0.19),
    ((176, 179, 184), 0.15),
    ((108, 110, 116), 0.15),
    ((38, 58, 118), 0.08),
    ((158, 28, 30), 0.08),
    ((38, 70, 54), 0.04),
    ((188, 172, 138), 0.04),
    ((98, 60, 40), 0.03),
    ((214, 150, 40), 0.02),
)


CLOTHES: tuple[Color, ...] = (
    (30, 30, 34), (60, 64, 90), (140, 30, 36), (200, 200, 196), (44, 80, 140), (96, 110, 70),
    (160, 130, 90), (120, 60, 110), (210, 160, 40), (90, 90, 94), (36, 110, 110),
)


SKIN: tuple[Color, ...] = ((236, 196, 160), (198, 150, 110), (150, 104, 72), (96, 64, 44))


TRUCK_BOX: tuple[Color, ...] = ((226, 226, 222), (210, 208, 200), (180, 40, 36), (40, 70, 140), (200, 170, 60))


BUS_STYLES: tuple[tuple[Color, Color], ...] = (
    ((240, 184, 28), (30, 30, 30)),
    ((226, 228, 230), (30, 80, 170)),
    ((226, 228, 230), (190, 40, 40)),
    ((60, 120, 80), (230, 230, 230)),
)


def _categorical(rng: np.random.Generator, weights: list[float] | tuple[float, ...]) -> int:
    """Index drawn with the given (unnormalised) weights; one uniform draw, no array work."""
    r = rng.random() * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if r < acc:
            return i
    return len(weights) - 1


def _weighted(rng: np.random.Generator, items: tuple[tuple[Color, float], ...]) -> Color:
    return items[_categorical(rng, [w for _, w in items])][0]


def _pick(rng: np.random.Generator, items: tuple) -> object:
    return items[int(rng.integers(len(items)))]


def _person_style(rng: np.random.Generator) -> dict:
    return {
        "h": uniform(rng, 1.55, 1.9),
        "shirt": _pick(rng, CLOTHES),
        "pants": _pick(rng, CLOTHES[:6] + ((60, 70, 110),)),
        "skin": _pick(rng, SKIN),
        "hair": _pick(rng, ((30, 24, 20), (70, 50, 30), (150, 120, 70), (110, 110, 110))),
        "umbrella": _pick(rng, ((20, 20, 24), (30, 60, 140), (160, 30, 40))),
        "phase": uniform(rng, 0, 2 * math.pi),
        "walking": bool(rng.random() < 0.7),
        "helmet": _pick(rng, ((20, 20, 20), (230, 230, 230), (200, 30, 30), (30, 60, 160))),
        "helmet_on": bool(rng.random() < 0.5),
    }


def _vehicle(kind: str, rng: np.random.Generator, front: bool, across: bool = False) -> dict:
    if kind == "car":
        style = rng.random()
        if style < 0.6:
            w, ln, h = uniform(rng, 1.72, 1.86), uniform(rng, 4.2, 4.9), uniform(rng, 1.38, 1.5)
        elif style < 0.9:
            w, ln, h = uniform(rng, 1.85, 2.0), uniform(rng, 4.5, 5.1), uniform(rng, 1.65, 1.85)
        else:
            w, ln, h = uniform(rng, 1.9, 2.05), uniform(rng, 4.9, 5.4), uniform(rng, 1.9, 2.1)
        cab = (0.22, 0.78) if h > 1.8 else ((0.3, 0.8) if front else (0.2, 0.7))
        return {"w": float(w), "l": float(ln), "h": float(h), "color": _weighted(rng, CAR_COLORS), "front": front,
                "across": across, "cabin": cab, "brake": bool(rng.random() < 0.25)}
    if kind == "truck":
        return {"w": 2.5, "l": uniform(rng, 7.0, 13.0), "box_h": uniform(rng, 3.3, 4.0),
                "box_color": _pick(rng, TRUCK_BOX), "cab_color": _weighted(rng, CAR_COLORS[:6]), "front": front,
                "logo": _pick(rng, ((200, 40, 40), (40, 80, 160), (30, 120, 60))) if rng.random() < 0.4 else None,
                "brake": bool(rng.random() < 0.25)}
    if kind == "bus":
        col, band = _pick(rng, BUS_STYLES)  # type: ignore[misc]
        return {"l": uniform(rng, 10.5, 13.0), "h": uniform(rng, 3.0, 3.3), "color": col, "band": band,
                "front": front, "brake": bool(rng.random() < 0.3)}
    if kind == "other vehicle":
        return {"color": _pick(rng, ((236, 180, 20), (220, 110, 20), (60, 130, 60), (200, 200, 196)))}
    if kind == "trailer":
        return {"l": uniform(rng, 3.5, 6.5), "h": uniform(rng, 2.0, 2.8),
                "color": _pick(rng, ((220, 220, 216), (150, 150, 150), (130, 96, 60), (190, 190, 200)))}
    raise ValueError(kind)


def _two_wheeler_data(rng: np.random.Generator, moto: bool, ridden: bool, heading: int, squash: float) -> dict:
    return {"moto": moto, "ridden": ridden, "heading": heading, "squash": squash,
            "frame": _pick(rng, ((200, 30, 30), (20, 20, 22), (30, 70, 160), (220, 220, 220), (40, 140, 70),
                                 (230, 150, 20))),
            "rider": _person_style(rng)}


_LANE_MIX: dict[str, dict[str, float]] = {
    "city street": {"car": 0.95, "truck": 0.014, "bus": 0.015, "moto": 0.012, "other vehicle": 0.002,
                    "trailer": 0.0004},
    "highway": {"car": 0.94, "truck": 0.035, "bus": 0.008, "moto": 0.006, "other vehicle": 0.0015,
                "trailer": 0.0008},
    "residential": {"car": 0.97, "truck": 0.015, "bus": 0.006, "moto": 0.01, "other vehicle": 0.002},
    "parking lot": {"car": 0.98, "truck": 0.01, "moto": 0.01},
    "tunnel": {"car": 0.94, "truck": 0.04, "bus": 0.012, "moto": 0.008},
    "gas stations": {"car": 0.94, "truck": 0.04, "moto": 0.015, "other vehicle": 0.005},
}
"""Kinds of vehicle in traffic lanes per scene ("moto" is a ridden motorcycle)."""

# Mean gap between vehicles in a lane (metres), per scene: (low, high) of a per-video draw.
_LANE_GAP: dict[str, tuple[float, float]] = {
    "city street": (8.0, 35.0),
    "highway": (14.0, 55.0),
    "residential": (40.0, 140.0),
    "parking lot": (40.0, 120.0),
    "tunnel": (20.0, 60.0),
    "gas stations": (25.0, 80.0),
}

# Poisson means per video: people on sidewalks, parked-slot occupancy, signs, and so on.
_PEOPLE: dict[str, float] = {"city street": 2.6, "residential": 0.6, "parking lot": 1.2, "gas stations": 1.2,
                             "highway": 0.02, "tunnel": 0.0}
_PARKED: dict[str, tuple[float, float]] = {"city street": (0.1, 0.5), "residential": (0.05, 0.35),
                                           "parking lot": (0.2, 0.6), "gas stations": (0.3, 0.9)}
_SIGNS: dict[str, float] = {"city street": 3.8, "highway": 1.6, "residential": 2.0, "parking lot": 1.5,
                            "tunnel": 1.5, "gas stations": 2.0}


def _choose(rng: np.random.Generator, mix: dict[str, float]) -> str:
    keys = list(mix)
    return keys[_categorical(rng, [mix[k] for k in keys])]


def _lane_traffic(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    scene = layout.scene
    gap_lo, gap_hi = _LANE_GAP[scene]
    mean_gap = uniform(rng, gap_lo, gap_hi)
    for lane in layout.lanes:
        front = lane.direction < 0
        if front:
            speed = -uniform(rng, 6.0, 14.0)
        elif abs(lane.x) < 1.0:
            speed = uniform(rng, 0.0, 2.0)
        else:
            speed = float(rng.normal(0.0, 1.5))
        z = uniform(rng, 6.0, 14.0) if abs(lane.x) < 1.0 else uniform(rng, 2.5, 10.0)
        if layout.tunnel_exit_z is not None:
            z_far = layout.tunnel_exit_z - 5
        else:
            z_far = Z_FAR
        while z < z_far:
            kind = _choose(rng, _LANE_MIX[scene])
            x = lane.x + float(rng.normal(0.0, 0.2))
            if kind == "moto":
                d = _two_wheeler_data(rng, True, True, 1 if rng.random() < 0.5 else -1, uniform(rng, 0.35, 0.6))
                out.append(Thing("two-wheeler", x, z + 1.0, 0.0, speed, d))
                length = 2.2
            else:
                d = _vehicle(kind, rng, front)
                out.append(Thing(kind, x, z, 0.0, speed, d))
                length = d.get("l", 3.0)
                if kind == "car" and rng.random() < 0.0005:
                    # A car towing a trailer (the trailer is nearer to us when we see the rear).
                    t = _vehicle("trailer", rng, front)
                    if not front and z - t["l"] - 1.0 > 2.0:
                        out.append(Thing("trailer", x, z - t["l"] - 1.0, 0.0, speed, t))
            z += length + 2.0 + float(rng.exponential(mean_gap))


def _parked(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    lo, hi = _PARKED.get(layout.scene, (0.0, 0.0))
    occ = uniform(rng, lo, hi)
    for slot in layout.park_slots:
        if rng.random() >= occ:
            continue
        r = rng.random()
        if r < 0.98:
            d = _vehicle("car", rng, front=bool(rng.random() < 0.5), across=slot.across)
            kind = "car"
            z = slot.z - (0.5 * d["w"] if slot.across else 0.5 * d["l"])
        elif r < 0.995 and not slot.across:
            d = _vehicle("truck", rng, front=bool(rng.random() < 0.5))
            d["l"] = uniform(rng, 6.0, 7.5)
            kind = "truck"
            z = slot.z - 0.5 * d["l"]
        elif r < 0.998 and not slot.across:
            kind, d = "other vehicle", _vehicle("other vehicle", rng, False)
            z = slot.z - 1.5
        elif not slot.across:
            kind, d = "trailer", _vehicle("trailer", rng, False)
            z = slot.z - 0.5 * d["l"]
        else:
            continue
        if z > 1.5:
            out.append(Thing(kind, slot.x, z, 0.0, 0.0, d))


_VIEW_MARGIN = 0.9
"""A thing counts as in view from the depth where its centre is this share of the
half-width past the image edge (so it may enter truncated)."""


def _z_in_view(layout: Layout, x: float, z_max: float) -> float:
    """Nearest depth (at most ``z_max``) at which something at lateral ``x`` is in the image.

    For ``|x|`` beyond ``_x_in_view(layout, z_max)`` nothing up to ``z_max`` is in
    view: draw ``x`` with ``_x_on_band`` so that never happens (the ``min`` only
    absorbs rounding).
    """
    cam = layout.cam
    half = min(cam.cx, cam.width - cam.cx)
    return min(z_max, max(3.0, _VIEW_MARGIN * abs(x) * cam.f / half))


def _x_in_view(layout: Layout, z: float) -> float:
    """Largest ``|x|`` that is in the image at depth ``z`` (the inverse of ``_z_in_view``)."""
    cam = layout.cam
    return z * min(cam.cx, cam.width - cam.cx) / (_VIEW_MARGIN * cam.f)


def _x_on_band(layout: Layout, band: tuple[float, float], z_max: float, rng: np.random.Generator) -> float:
    """Lateral position on a walk band, drawn from the part that is in view by depth ``z_max``.

    A parking lot's band is 120 m wide: its ends are outside the image even at
    ``z_max``, where no depth in ``[_z_in_view(x), z_max]`` exists. Both ends are
    clamped into view, so the range is never empty (a band wholly off to one side
    collapses to the image edge).
    """
    lim = _x_in_view(layout, z_max)
    x0, x1 = band
    return uniform(rng, min(max(x0, -lim), lim), min(max(x1, -lim), lim))


def _people(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    scene = layout.scene
    mean = _PEOPLE.get(scene, 0.0)
    bands = layout.walk_bands
    if bands:
        for _ in range(int(rng.poisson(mean * uniform(rng, 0.3, 1.7)))):
            band = bands[int(rng.integers(len(bands)))]
            d = _person_style(rng)
            vz = (1.0 if rng.random() < 0.5 else -1.0) * uniform(rng, 0.9, 1.6) if d["walking"] else 0.0
            x = _x_on_band(layout, band, 75.0, rng)
            out.append(Thing("pedestrian", x, uniform(rng, _z_in_view(layout, x, 75.0), 75.0), 0.0, vz, d))
    if layout.crossing is not None:
        za, zb = layout.crossing
        xl, xr = layout.road
        for _ in range(int(rng.poisson(0.7))):
            d = _person_style(rng)
            d["walking"] = True
            out.append(Thing("pedestrian", uniform(rng, xl, xr), uniform(rng, za, zb),
                             (1.0 if rng.random() < 0.5 else -1.0) * 1.3, 0.0, d))
        if rng.random() < 0.08 and bands:
            # A group waiting at the corner: labelled as one crowd box.
            x0, x1 = bands[int(rng.integers(len(bands)))]
            xc = uniform(rng, x0, x1)
            members = []
            for _ in range(int(rng.integers(4, 10))):
                pd = _person_style(rng)
                members.append((uniform(rng, -1.6, 1.6), uniform(rng, 0.0, 2.5), pd))
            members.sort(key=lambda m: -m[1])
            out.append(Thing("crowd", xc, za - 1.0, 0.0, 0.0, {"members": members}))
    if bands and scene in ("city street", "residential") and rng.random() < 0.015:
        x = _x_on_band(layout, bands[int(rng.integers(len(bands)))], 45.0, rng)
        out.append(Thing("other person", x, uniform(rng, _z_in_view(layout, x, 45.0), 45.0), 0.0, 0.0,
                         _person_style(rng)))
    # Two-wheelers: parked bicycles on sidewalks, cyclists at the road edge, parked motorcycles.
    if bands and scene in ("city street", "residential", "parking lot", "gas stations"):
        xl, xr = layout.road
        for _ in range(int(rng.poisson(0.25 if scene == "city street" else 0.12))):
            band = bands[int(rng.integers(len(bands)))]
            d = _two_wheeler_data(rng, False, False, 1 if rng.random() < 0.5 else -1, uniform(rng, 0.7, 1.0))
            x = _x_on_band(layout, band, 55.0, rng)
            out.append(Thing("two-wheeler", x, uniform(rng, _z_in_view(layout, x, 55.0), 55.0), 0.0, 0.0, d))
        for _ in range(int(rng.poisson(0.07 if scene == "city street" else 0.05))):
            x = xr - 0.8 if rng.random() < 0.7 else xl + 0.8
            heading = 1 if x > 0 else -1
            d = _two_wheeler_data(rng, False, True, heading, uniform(rng, 0.3, 0.55))
            out.append(Thing("two-wheeler", x, uniform(rng, 5.0, 60.0), 0.0, uniform(rng, -1.0, 2.0), d))
        for _ in range(int(rng.poisson(0.04))):
            band = bands[int(rng.integers(len(bands)))]
            d = _two_wheeler_data(rng, True, False, 1 if rng.random() < 0.5 else -1, uniform(rng, 0.6, 1.0))
            x = _x_on_band(layout, band, 45.0, rng)
            out.append(Thing("two-wheeler", x, uniform(rng, _z_in_view(layout, x, 45.0), 45.0), 0.0, 0.0, d))


def _light(x: float, y: float, z: float, facing: str, state: str, mount: str,
           arm_x: float = 0.0) -> Thing:
    return Thing("traffic light", x, z, 0.0, 0.0, {"y": y, "facing": facing, "state": state, "mount": mount,
                                                   "arm_x": arm_x})


def _traffic_lights(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    scene = layout.scene
    xl, xr = layout.road
    p_signal = {"city street": 1.0, "residential": 0.25, "gas stations": 0.3, "highway": 0.04}.get(scene, 0.0)
    if rng.random() >= p_signal:
        return
    state = _choose(rng, {"red": 0.45, "green": 0.45, "yellow": 0.1})
    if layout.intersection is not None:
        za, zb = layout.intersection
    else:
        za = uniform(rng, 25.0, 80.0)
        zb = za + uniform(rng, 10.0, 15.0)
    same = [ln for ln in layout.lanes if ln.direction > 0]
    # Mast-arm heads over our lanes (and over the oncoming ones, seen from the back) at the far
    # side of the intersection.
    for ln in same[: int(rng.integers(1, len(same) + 1))] + same[:1] * int(rng.random() < 0.5):
        out.append(_light(ln.x + uniform(rng, -1.0, 1.0), uniform(rng, 5.0, 5.8), zb + 1.0,
                          "front", state, "mast", xr + 1.0))
    for ln in [ln for ln in layout.lanes if ln.direction < 0][:1]:
        if rng.random() < 0.6:
            out.append(_light(ln.x, uniform(rng, 5.0, 5.8), za - 1.0, "back", state, "mast", xl - 1.0))
    # Post-mounted heads at the near and far right corners, and one on the far left.
    out.append(_light(xr + 1.2, uniform(rng, 2.6, 3.2), za - 1.0, "front", state, "pole"))
    if rng.random() < 0.7:
        out.append(_light(xl - 1.2, uniform(rng, 2.6, 3.2), zb + 1.0, "front", state, "pole"))
    if rng.random() < 0.6:
        out.append(_light(xl - 1.2, uniform(rng, 2.6, 3.2), za - 1.0, "back", state, "pole"))
    if rng.random() < 0.5:
        out.append(_light(xr + 1.2, uniform(rng, 4.6, 5.2), zb + 1.5, "side", state, "pole"))
    # A second intersection further down the road.
    if rng.random() < 0.5:
        z2 = zb + uniform(rng, 50.0, 100.0)
        state2 = _choose(rng, {"red": 0.45, "green": 0.45, "yellow": 0.1})
        for ln in same[:1]:
            out.append(_light(ln.x, uniform(rng, 5.0, 5.8), z2, "front", state2, "mast", xr + 1.0))
        out.append(_light(xr + 1.2, 3.0, z2 - 12.0, "front", state2, "pole"))


_SIGN_KINDS: dict[str, dict[str, float]] = {
    "city street": {"speed": 0.15, "stop": 0.08, "yield": 0.04, "warning": 0.12, "info": 0.18, "noentry": 0.08,
                    "oneway": 0.1, "parking": 0.1, "street": 0.1, "back": 0.1},
    "highway": {"speed": 0.35, "warning": 0.2, "guide": 0.35, "info": 0.1},
    "residential": {"stop": 0.3, "speed": 0.25, "warning": 0.15, "street": 0.2, "yield": 0.05, "back": 0.05},
    "parking lot": {"parking": 0.5, "info": 0.2, "stop": 0.15, "warning": 0.15},
    "tunnel": {"speed": 0.5, "info": 0.3, "warning": 0.2},
    "gas stations": {"speed": 0.3, "stop": 0.2, "info": 0.3, "warning": 0.2},
}


_SIGN_SIZE: dict[str, tuple[float, float]] = {
    "stop": (0.75, 0.75), "yield": (0.9, 0.8), "speed": (0.6, 0.75), "warning": (0.75, 0.75),
    "info": (0.6, 0.6), "parking": (0.6, 0.6), "street": (0.9, 0.22), "guide": (3.0, 1.8),
    "noentry": (0.6, 0.6), "oneway": (0.9, 0.3), "back": (0.6, 0.6),
}


def _signs(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    scene = layout.scene
    left, right = layout.sign_sides
    n = int(rng.poisson(_SIGNS.get(scene, 1.0) * uniform(rng, 0.4, 1.6)))
    for _ in range(n):
        kind = _choose(rng, _SIGN_KINDS[scene])
        w, h = _SIGN_SIZE[kind]
        scale = uniform(rng, 0.85, 1.2)
        x = right if rng.random() < 0.65 else left
        x += float(rng.normal(0.0, 0.3))
        z = uniform(rng, _z_in_view(layout, x, 110.0), 110.0)
        if kind == "guide":
            w *= uniform(rng, 0.8, 1.4)
            x += 1.5 if x > 0 else -1.5
        y = uniform(rng, 2.0, 2.9) + 0.5 * h * scale
        if kind == "guide":
            y = 3.0 + h
        d = {"kind": kind, "w": w * scale, "h": h * scale, "y": y, "pole": True, "second_pole": kind == "guide",
             "squash": uniform(rng, 0.65, 1.0), "round": bool(rng.random() < 0.5)}
        out.append(Thing("traffic sign", x, z, 0.0, 0.0, d))
        if kind in ("speed", "warning", "info") and rng.random() < 0.2:
            # A second plate on the same pole.
            d2 = dict(d, kind=_choose(rng, {"info": 0.5, "warning": 0.5}), y=y - 0.9 * h * scale)
            out.append(Thing("traffic sign", x, z - 0.01, 0.0, 0.0, d2))
    for zg in layout.gantries:
        same = [ln for ln in layout.lanes if ln.direction > 0]
        for ln in same[: int(rng.integers(1, len(same) + 1))]:
            w = uniform(rng, 2.6, 3.4)
            d = {"kind": "guide", "w": w, "h": uniform(rng, 1.6, 2.2), "y": 6.3, "pole": False,
                 "squash": 1.0}
            out.append(Thing("traffic sign", ln.x, zg - 0.2, 0.0, 0.0, d))
    if layout.intersection is not None and rng.random() < 0.7:
        za, zb = layout.intersection
        d = {"kind": "street", "w": 1.2, "h": 0.28, "y": 6.2, "pole": False, "squash": 1.0}
        out.append(Thing("traffic sign", layout.road[1] - 1.0, zb + 0.9, 0.0, 0.0, d))


def _trains(layout: Layout, rng: np.random.Generator, out: list[Thing]) -> None:
    if layout.rail_x is None or rng.random() >= 0.3:
        return
    front = bool(rng.random() < 0.5)
    d = {"car_l": uniform(rng, 16.0, 22.0), "cars": int(rng.integers(2, 5)),
         "color": _pick(rng, ((220, 220, 216), (200, 60, 40), (60, 90, 150), (236, 190, 40))),
         "stripe": _pick(rng, ((30, 30, 30), (40, 90, 170), (200, 40, 40))), "front": front}
    speed = -uniform(rng, 3.0, 10.0) if front else uniform(rng, 0.0, 6.0)
    out.append(Thing("train", layout.rail_x, uniform(rng, 8.0, 50.0), 0.0, speed, d))


def sample_things(layout: Layout, rng: np.random.Generator) -> list[Thing]:
    """Place the objects of one video on its layout (positions at t = 0 and velocities)."""
    out: list[Thing] = []
    _lane_traffic(layout, rng, out)
    _parked(layout, rng, out)
    _people(layout, rng, out)
    _traffic_lights(layout, rng, out)
    _signs(layout, rng, out)
    _trains(layout, rng, out)
    return out
