"""Drawing of vehicles: cars, trucks, buses, trains, and the ignored "other vehicle" and "trailer".

Vehicles are cuboids in the world (body, cabin, cargo box) projected exactly, so
they show their rear or front and, off-centre, the receding side with its wheels.
Each class has its own silhouette: a car's glass cabin sits on a lower body, a
truck is a cab with a tall box, a bus a long box with a row of windows, a train a
row of long cars on bogies. At night lamps glow; by day the sun casts a shadow.
"""

from __future__ import annotations

from bddengine.synth.geometry import EMISSIVE, Color, Face
from bddengine.synth.look import Look
from bddengine.synth.painter import Painter
from bddengine.synth.things import Box, FrameCtx, Thing, cuboid_bbox, faces, light_glow, mul


def _shadow(p: Painter, look: Look, x0: float, x1: float, z0: float, z1: float) -> None:
    if look.shadow_alpha <= 0:
        return
    cam = p.cam
    pts = [cam.pt(x0 - 0.15, 0, z0 - 0.25), cam.pt(x1 + 0.15, 0, z0 - 0.25), cam.pt(x1 + 0.35, 0, z1 + 0.5),
           cam.pt(x0 + 0.1, 0, z1 + 0.5)]
    p.alpha_draw.polygon(pts, fill=(0, 0, 0, look.shadow_alpha))


def _wheel(p: Painter, face: Face, s: float, r: float, z: float, glow: float, hub: bool) -> None:
    x0, y0 = face.pt(s - r, r)
    x1, _ = face.pt(s + r, r)
    _, ya = face.pt(s, 2 * r)
    _, yb = face.pt(s, 0.0)
    if x1 < x0:
        x0, x1 = x1, x0
    p.ellipse((x0, ya, x1, yb), (24, 24, 26), z, glow)
    if hub and (yb - ya) > 6:
        cx, cy = 0.5 * (x0 + x1), 0.5 * (ya + yb)
        hx, hy = 0.22 * (x1 - x0), 0.22 * (yb - ya)
        p.ellipse((cx - hx, cy - hy, cx + hx, cy + hy), (150, 152, 156), z, glow)


def _end_lights(p: Painter, ctx: FrameCtx, face: Face, front: bool, z: float, glow: float,
                y0: float, y1: float, brake: bool) -> None:
    """Head- or tail-lights near the outer edges of an end face (glowing when on)."""
    w = face.width
    on = ctx.look.lights_on if front else (ctx.look.lights_on or brake)
    if front:
        color = (255, 250, 232) if on else (214, 214, 206)
    else:
        color = (255, 40, 36) if on else (150, 26, 26)
    for s0, s1 in ((0.04 * w, 0.2 * w), (0.8 * w, 0.96 * w)):
        p.poly(face.quad(s0, s1, y0, y1), color, z, EMISSIVE if on else glow)
    if on and (ctx.look.night or brake or (front and ctx.look.lights_on)):
        # One glow per lamp when they are far apart on screen, one for the pair otherwise.
        ul, v = face.pt(0.12 * w, 0.5 * (y0 + y1))
        ur, _ = face.pt(0.88 * w, 0.5 * (y0 + y1))
        size = (0.9 if ctx.look.night else 0.5) if front else 0.45
        glow_col = (255, 246, 220) if front else (255, 40, 30)
        strength = (0.9 if ctx.look.night else 0.5) if front else 0.7
        r = size * p.cam.f / z
        if abs(ur - ul) > 2.5 * r:
            light_glow(ctx, p, ul, v, z, glow_col, size, strength)
            light_glow(ctx, p, ur, v, z, glow_col, size, strength)
        else:
            light_glow(ctx, p, 0.5 * (ul + ur), v, z, glow_col, size, strength, 0.5 * abs(ur - ul))


def draw_car(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    wdt, length, hgt = d["w"], d["l"], d["h"]
    across = d["across"]
    ex, ez = (length, wdt) if across else (wdt, length)
    x0, x1, z0, z1 = x - ex / 2, x + ex / 2, z, z + ez
    glow = ctx.glow_at(x, z)
    col = d["color"]
    body_top = 0.58 * hgt if hgt < 1.8 else 0.52 * hgt
    px_h = hgt * cam.f / z
    detailed = px_h >= 22
    front_view = d["front"]
    glass = (46, 54, 64) if not ctx.look.night else (14, 16, 20)
    near, side, top = faces(cam, x0, x1, 0.16, body_top, z0, z1)
    zm = z0 + 0.5 * ez
    if px_h < 10:
        return _draw_tiny_car(p, th, x0, x1, z0, z1, body_top, near, side, glass, glow, ctx)
    # Cabin: a glass greenhouse, narrower and shorter than the body, with sloped pillars.
    a, b = d["cabin"]
    if across:
        cx0, cx1, cz0, cz1 = x0 + a * ex, x0 + b * ex, z0 + 0.08 * ez, z1 - 0.08 * ez
    else:
        cx0, cx1, cz0, cz1 = x0 + 0.07 * ex, x1 - 0.07 * ex, z0 + a * ez, z0 + b * ez
    cnear, cside, _ = faces(cam, cx0, cx1, body_top, hgt, cz0, cz1)
    ch = hgt - body_top
    if detailed:
        _shadow(p, ctx.look, x0, x1, z0, z1)
    if side is not None:
        p.poly(side.quad(0, side.width, 0, side.height), mul(col, 0.8), zm, glow)
        if cside is not None:
            w = cside.width
            slope = 0.18 * w if not across else 0.0
            p.poly(cside.trapezoid(0, w, 0, ch, slope), mul(col, 0.8), cz0 + 1, glow)
            if detailed:
                p.poly(cside.trapezoid(0.05 * w, 0.48 * w, 0.1 * ch, 0.86 * ch, 0.12 * w, 0.0), glass, cz0 + 1, glow)
                p.poly(cside.trapezoid(0.52 * w, 0.95 * w, 0.1 * ch, 0.86 * ch, 0.0, 0.12 * w), glass, cz0 + 1, glow)
        if not across and detailed:
            wf = Face(cam, (side.origin[0], 0.0, z0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), ez, 1.0)
            for s in (0.19 * length, 0.81 * length):
                _wheel(p, wf, s, 0.33, z0 + s, glow, hub=True)
    if top is not None:
        p.poly(top, mul(col, 0.92), zm, glow)
    w = cnear.width
    if across:
        p.poly(cnear.trapezoid(0, w, 0, ch, 0.2 * w), col, cz0, glow)
        if detailed:
            p.poly(cnear.trapezoid(0.06 * w, 0.48 * w, 0.1 * ch, 0.86 * ch, 0.1 * w, 0.0), glass, cz0, glow)
            p.poly(cnear.trapezoid(0.52 * w, 0.94 * w, 0.1 * ch, 0.86 * ch, 0.0, 0.1 * w), glass, cz0, glow)
        else:
            p.poly(cnear.trapezoid(0.06 * w, 0.94 * w, 0.1 * ch, 0.86 * ch, 0.2 * w), glass, cz0, glow)
    else:
        p.poly(cnear.trapezoid(0, w, 0, ch, 0.1 * w), col, cz0, glow)
        p.poly(cnear.trapezoid(0.07 * w, 0.93 * w, 0.08 * ch, 0.86 * ch, 0.1 * w), glass, cz0, glow)
    p.poly(near.quad(0, near.width, 0, near.height), col, z0, glow)
    if not across:
        # End view: tyres under the bumper, bumper, lights, plate.
        low = Face(cam, (x0, 0.0, z0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), wdt, 0.3)
        if detailed:
            for s0, s1 in ((0.06 * wdt, 0.24 * wdt), (0.76 * wdt, 0.94 * wdt)):
                p.poly(low.quad(s0, s1, 0.0, 0.3), (22, 22, 24), z0, glow)
            p.poly(near.quad(0, wdt, 0, 0.16), mul(col, 0.55), z0, glow)
            if front_view:
                p.poly(near.quad(0.3 * wdt, 0.7 * wdt, 0.2, 0.42), (36, 36, 40), z0, glow)
            else:
                p.poly(near.quad(0.38 * wdt, 0.62 * wdt, 0.2, 0.36), (214, 214, 200), z0, glow)
        else:
            p.poly(low.quad(0.06 * wdt, 0.94 * wdt, 0.0, 0.2), (22, 22, 24), z0, glow)
        _end_lights(p, ctx, near, front_view, z0, glow, body_top - 0.5, body_top - 0.18, d["brake"])
    else:
        face = Face(cam, (x0, 0.0, z0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), ex, 1.0)
        for s in (0.19 * length, 0.81 * length):
            _wheel(p, face, s, 0.33, z0, glow, hub=detailed)
    box = cuboid_bbox(cam, x0, x1, 0.0, body_top, z0, z1)
    cbox = cuboid_bbox(cam, cx0, cx1, body_top, hgt, cz0, cz1)
    return [Box(th.data.get("category", "car"), box[0], min(box[1], cbox[1]), box[2], box[3], z0)]


def _draw_tiny_car(p: Painter, th: Thing, x0: float, x1: float, z0: float, z1: float, body_top: float,
                   near: Face, side: Face | None, glass: Color, glow: float, ctx: FrameCtx) -> list[Box]:
    """A far car (under 10 px tall): body, glass cabin and lamps only."""
    d = th.data
    cam = p.cam
    col = d["color"]
    ex, ez = x1 - x0, z1 - z0
    if side is not None:
        p.poly(side.quad(0, side.width, -0.16, side.height), mul(col, 0.8), z0 + 0.5 * ez, glow)
    a, b = d["cabin"]
    if d["across"]:
        cx0, cx1, cz0 = x0 + a * ex, x0 + b * ex, z0 + 0.08 * ez
    else:
        cx0, cx1, cz0 = x0 + 0.07 * ex, x1 - 0.07 * ex, z0 + a * ez
    cabin = Face(cam, (cx0, body_top, cz0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), cx1 - cx0, d["h"] - body_top)
    p.poly(cabin.trapezoid(0, cabin.width, 0, cabin.height, 0.15 * cabin.width), glass, cz0, glow)
    p.poly(near.quad(0, near.width, -0.16, near.height), col, z0, glow)
    if not d["across"]:
        _end_lights(p, ctx, near, d["front"], z0, glow, body_top - 0.5, body_top - 0.18, d["brake"])
    box = cuboid_bbox(cam, x0, x1, 0.0, d["h"], z0, z1)
    return [Box(d.get("category", "car"), *box, z0)]


def draw_truck(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    wdt, length, box_h = d["w"], d["l"], d["box_h"]
    cab_l, cab_h = 2.3, 2.9
    x0, x1 = x - wdt / 2, x + wdt / 2
    glow = ctx.glow_at(x, z)
    front_view = d["front"]
    _shadow(p, ctx.look, x0, x1, z, z + length)
    glass = (46, 54, 64) if not ctx.look.night else (14, 16, 20)
    if front_view:
        parts = [("box", z + cab_l + 0.3, z + length), ("cab", z, z + cab_l)]
    else:
        parts = [("cab", z + length - cab_l, z + length), ("box", z, z + length - cab_l - 0.3)]
    for part, za, zb in parts:
        h = box_h if part == "box" else cab_h
        col = d["box_color"] if part == "box" else d["cab_color"]
        near, side, _ = faces(cam, x0 + (0.05 if part == "cab" else 0), x1 - (0.05 if part == "cab" else 0),
                               0.55, h, za, zb)
        zm = 0.5 * (za + zb)
        if side is not None:
            p.poly(side.quad(0, side.width, 0, side.height), mul(col, 0.8), zm, glow)
            wf = Face(cam, (side.origin[0], 0.0, za), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), zb - za, 1.0)
            axles = (0.5 * (zb - za),) if part == "cab" else (0.2 * (zb - za), 0.8 * (zb - za))
            if part == "cab" and side.width > 0:
                p.poly(side.quad(0.1 * side.width, 0.6 * side.width, 1.35, 2.1), glass, zm, glow)
            for s in axles:
                _wheel(p, wf, s, 0.5, za + s, glow, hub=True)
            if part == "box" and d["logo"] is not None:
                p.poly(side.quad(0.1 * side.width, 0.9 * side.width, 0.9, 1.5), d["logo"], zm, glow)
        p.poly(near.quad(0, near.width, 0, near.height), col, za, glow)
        wn = near.width
        if part == "cab" and front_view:
            p.poly(near.quad(0.08 * wn, 0.92 * wn, 1.35, 2.2), glass, za, glow)
            p.poly(near.quad(0.3 * wn, 0.7 * wn, 0.15, 0.95), (40, 40, 44), za, glow)
            _end_lights(p, ctx, near, True, za, glow, 0.25, 0.5, False)
        elif part == "box" and not front_view:
            p.poly(near.quad(0.495 * wn, 0.505 * wn, 0.1, h - 0.75), mul(col, 0.6), za, glow)
            p.poly(near.quad(0.0, wn, 0.0, 0.12), (40, 40, 42), za, glow)
            _end_lights(p, ctx, near, False, za, glow, 0.2, 0.45, d["brake"])
    # Wheels under the near end.
    zn = z
    for s0, s1 in ((0.06, 0.26), (0.74, 0.94)):
        p.poly(Face(cam, (x0, 0.0, zn), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), wdt, 1.0).quad(s0 * wdt, s1 * wdt, 0, 0.55),
               (22, 22, 24), zn, glow)
    bx = cuboid_bbox(cam, x0, x1, 0.0, max(box_h, cab_h), z, z + length)
    return [Box(d.get("category", "truck"), *bx, z)]


def draw_bus(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    wdt, length, hgt = 2.55, d["l"], d["h"]
    x0, x1 = x - wdt / 2, x + wdt / 2
    glow = ctx.glow_at(x, z)
    col, band = d["color"], d["band"]
    _shadow(p, ctx.look, x0, x1, z, z + length)
    near, side, _ = faces(cam, x0, x1, 0.35, hgt, z, z + length)
    glass = (40, 48, 58) if not ctx.look.night else (70, 64, 50)
    win_glow = EMISSIVE if ctx.look.night else glow
    zm = z + 0.5 * length
    if side is not None:
        p.poly(side.quad(0, length, 0, side.height), mul(col, 0.85), zm, glow)
        p.poly(side.quad(0, length, 0.55, 0.85), band, zm, glow)
        s = 0.3
        while s < length - 1.2:
            p.poly(side.quad(s, s + 1.15, 1.2, 2.3), glass, z + s, win_glow)
            s += 1.4
        wf = Face(cam, (side.origin[0], 0.0, z), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), length, 1.0)
        for s in (0.16 * length, 0.78 * length):
            _wheel(p, wf, s, 0.5, z + s, glow, hub=True)
    p.poly(near.quad(0, wdt, 0, near.height), col, z, glow)
    p.poly(near.quad(0, wdt, 0.2, 0.5), band, z, glow)
    if d["front"]:
        p.poly(near.quad(0.06 * wdt, 0.94 * wdt, 0.9, hgt - 0.75), glass, z, win_glow)
        p.poly(near.quad(0.15 * wdt, 0.85 * wdt, hgt - 0.65, hgt - 0.4), (255, 150, 30), z, EMISSIVE)
        _end_lights(p, ctx, near, True, z, glow, 0.35, 0.6, False)
    else:
        p.poly(near.quad(0.1 * wdt, 0.9 * wdt, 1.6, hgt - 0.8), glass, z, win_glow)
        _end_lights(p, ctx, near, False, z, glow, 0.45, 0.9, d["brake"])
    for s0, s1 in ((0.06, 0.24), (0.76, 0.94)):
        p.poly(Face(cam, (x0, 0.0, z), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), wdt, 1.0).quad(s0 * wdt, s1 * wdt, 0, 0.4),
               (22, 22, 24), z, glow)
    bx = cuboid_bbox(cam, x0, x1, 0.0, hgt, z, z + length)
    return [Box("bus", *bx, z)]


def draw_train(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    wdt, hgt, car_l, n = 3.0, 4.0, d["car_l"], d["cars"]
    x0, x1 = x - wdt / 2, x + wdt / 2
    glow = ctx.glow_at(x, z)
    col, stripe = d["color"], d["stripe"]
    glass = (40, 48, 58) if not ctx.look.night else (150, 140, 100)
    win_glow = EMISSIVE if ctx.look.night else glow
    z_end = z + n * (car_l + 1.0)
    # Rails.
    for rx in (x - 0.75, x + 0.75):
        p.line([cam.pt(rx, 0.05, max(z - 30, 1.5)), cam.pt(rx, 0.05, 400.0)], (150, 150, 150), z, max(1, p.lw))
    for k in reversed(range(n)):
        za = z + k * (car_l + 1.0)
        zb = za + car_l
        near, side, _ = faces(cam, x0, x1, 0.9, hgt, za, zb)
        zm = 0.5 * (za + zb)
        if side is not None:
            p.poly(side.quad(0, car_l, 0, side.height), mul(col, 0.86), zm, glow)
            p.poly(side.quad(0, car_l, 0.3, 0.6), stripe, zm, glow)
            s = 1.0
            while s < car_l - 1.0:
                p.poly(side.quad(s, s + 1.3, 1.0, 2.0), glass, za + s, win_glow)
                s += 1.9
            bog = Face(cam, (side.origin[0], 0.0, za), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), car_l, 0.9)
            for s in (2.0, car_l - 4.5):
                p.poly(bog.quad(s, s + 2.5, 0.1, 0.9), (40, 40, 42), za + s, glow)
        if k == 0:
            p.poly(near.quad(0, wdt, 0, near.height), col, za, glow)
            p.poly(near.quad(0, wdt, 0.3, 0.6), stripe, za, glow)
            p.poly(near.quad(0.12 * wdt, 0.88 * wdt, 1.4, 2.6), glass, za, win_glow)
            p.poly(Face(cam, (x0, 0.0, za), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), wdt, 1.0).quad(
                0.2 * wdt, 0.8 * wdt, 0.1, 0.9), (36, 36, 38), za, glow)
            _end_lights(p, ctx, near, d["front"], za, glow, 0.7, 1.0, False)
    bx = cuboid_bbox(cam, x0, x1, 0.0, hgt, z, z_end)
    return [Box("train", *bx, z)]


def draw_other_vehicle(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    """A utility vehicle (tractor, forklift-like cart): labelled "other vehicle", ignored in scoring."""
    d = th.data
    cam = p.cam
    glow = ctx.glow_at(x, z)
    w, ln = 1.7, 3.0
    x0, x1 = x - w / 2, x + w / 2
    near, side, top = faces(cam, x0, x1, 0.5, 1.3, z, z + ln)
    col = d["color"]
    if side is not None:
        p.poly(side.quad(0, ln, 0, side.height), mul(col, 0.8), z + 1, glow)
        wf = Face(cam, (side.origin[0], 0.0, z), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), ln, 1.0)
        _wheel(p, wf, 0.5, 0.45, z, glow, hub=True)
        _wheel(p, wf, ln - 0.7, 0.7, z + ln, glow, hub=True)
    if top is not None:
        p.poly(top, mul(col, 0.9), z + 1, glow)
    p.poly(near.quad(0, w, 0, near.height), col, z, glow)
    # Roll cage and beacon.
    for xs in (x0 + 0.1, x1 - 0.1):
        p.line([cam.pt(xs, 1.3, z + 1.2), cam.pt(xs, 2.4, z + 1.2)], (30, 30, 30), z + 1.2, 0.08 * cam.f / z)
    p.line([cam.pt(x0 + 0.1, 2.4, z + 1.2), cam.pt(x1 - 0.1, 2.4, z + 1.2)], (30, 30, 30), z + 1.2,
           0.08 * cam.f / z)
    bu, bv = cam.pt(x, 2.5, z + 1.2)
    r = 0.12 * cam.f / z
    p.ellipse((bu - r, bv - r, bu + r, bv + r), (255, 150, 20), z, EMISSIVE)
    for s0, s1 in ((0.0, 0.25), (0.75, 1.0)):
        p.poly(Face(cam, (x0, 0.0, z), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), w, 1.0).quad(s0 * w, s1 * w, 0, 0.9),
               (22, 22, 24), z, glow)
    bx = cuboid_bbox(cam, x0, x1, 0.0, 2.6, z, z + ln)
    return [Box("other vehicle", *bx, z)]


def draw_trailer(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    """A box trailer without a cab: labelled "trailer", ignored in scoring."""
    d = th.data
    cam = p.cam
    glow = ctx.glow_at(x, z)
    w, ln, h = 2.2, d["l"], d["h"]
    x0, x1 = x - w / 2, x + w / 2
    near, side, _ = faces(cam, x0, x1, 0.45, h, z, z + ln)
    col = d["color"]
    if side is not None:
        p.poly(side.quad(0, ln, 0, side.height), mul(col, 0.82), z + ln / 2, glow)
        wf = Face(cam, (side.origin[0], 0.0, z), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), ln, 1.0)
        _wheel(p, wf, 0.45 * ln, 0.3, z + 0.45 * ln, glow, hub=False)
        for k in range(1, int(ln / 1.2)):
            p.poly(side.quad(k * 1.2, k * 1.2 + 0.06, 0.1, side.height - 0.1), mul(col, 0.6), z + k, glow)
    p.poly(near.quad(0, w, 0, near.height), col, z, glow)
    p.poly(near.quad(0, w, 0, 0.1), (40, 40, 40), z, glow)
    _end_lights(p, ctx, near, False, z, glow, 0.05, 0.25, False)
    bx = cuboid_bbox(cam, x0, x1, 0.0, h, z, z + ln)
    return [Box("trailer", *bx, z)]
