"""Drawing of road furniture that is labelled: traffic lights and traffic signs.

A traffic light is a dark housing with three lamps (the lit one sets
``trafficLightColor``); seen from the back or side it shows no lamp and is "NA".
A traffic sign is a coloured plate of a standard shape on a pole. Only the
housing or the plate is boxed, as in BDD100K, not the pole.
"""

from __future__ import annotations

import math

from bddengine.synth.geometry import EMISSIVE, Color
from bddengine.synth.painter import Painter
from bddengine.synth.things import NO_LIGHT_COLOR, TRAFFIC_LIGHT_COLORS, Box, FrameCtx, Thing, light_glow, mul


def draw_traffic_light(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    y0 = d["y"]
    hw, hh = 0.2, 1.05
    glow = ctx.glow_at(x, z)
    pole = (90, 92, 96)
    pw = max(1.0, 0.12 * cam.f / z)
    if d["mount"] == "pole":
        p.line([cam.pt(x, 0.0, z + 0.05), cam.pt(x, y0, z + 0.05)], pole, z + 0.05, pw, glow)
    elif d["mount"] == "mast":
        ax = d["arm_x"]
        p.line([cam.pt(ax, 0.0, z + 0.1), cam.pt(ax, y0 + hh + 0.6, z + 0.1)], pole, z + 0.1, 1.4 * pw, glow)
        p.line([cam.pt(ax, y0 + hh + 0.4, z + 0.1), cam.pt(x, y0 + hh + 0.4, z + 0.1)], pole, z + 0.1, pw, glow)
        p.line([cam.pt(x, y0 + hh + 0.4, z + 0.1), cam.pt(x, y0 + hh, z + 0.1)], pole, z + 0.1, 0.6 * pw, glow)
    facing = d["facing"]
    half = hw if facing != "side" else 0.11
    x0, x1 = x - half, x + half
    u0, v1 = cam.pt(x0, y0, z)
    u1, v0 = cam.pt(x1, y0 + hh, z)
    housing = (34, 36, 34) if facing != "back" else (64, 66, 62)
    # Back plate gives the dark box a thin lighter rim, as real ones have.
    rim = 0.04 * cam.f / z
    p.rect((u0 - rim, v0 - rim, u1 + rim, v1 + rim), (70, 72, 70), z, glow)
    p.rect((u0, v0, u1, v1), housing, z, glow)
    color = NO_LIGHT_COLOR
    if facing == "front":
        state = d["state"]
        color = TRAFFIC_LIGHT_COLORS[state]
        lamps = (("red", (255, 44, 30), 0.82), ("yellow", (255, 190, 20), 0.5), ("green", (40, 255, 120), 0.18))
        r = 0.11 * cam.f / z
        cu = 0.5 * (u0 + u1)
        for name, rgb, t in lamps:
            cv = v1 - t * (v1 - v0)
            if name == state:
                p.ellipse((cu - r, cv - r, cu + r, cv + r), rgb, z, EMISSIVE)
                if ctx.look.night or ctx.look.dusk or ctx.look.foggy:
                    light_glow(ctx, p, cu, cv, z, rgb, 0.55, 0.8 if ctx.look.night else 0.5)
            else:
                p.ellipse((cu - r, cv - r, cu + r, cv + r), mul(rgb, 0.16), z, glow)
    return [Box("traffic light", u0 - rim, v0 - rim, u1 + rim, v1 + rim, z, light_color=color,
                emissive=facing == "front")]


def _sign_shape(kind: str, cu: float, cv: float, w: float, h: float) -> list[tuple[float, float]]:
    if kind == "stop":
        pts = []
        for i in range(8):
            a = math.pi / 8 + i * math.pi / 4
            pts.append((cu + 0.5 * w * math.cos(a), cv + 0.5 * h * math.sin(a)))
        return pts
    if kind == "yield":
        return [(cu - 0.5 * w, cv - 0.5 * h), (cu + 0.5 * w, cv - 0.5 * h), (cu, cv + 0.5 * h)]
    if kind == "warning":
        return [(cu, cv - 0.5 * h), (cu + 0.5 * w, cv), (cu, cv + 0.5 * h), (cu - 0.5 * w, cv)]
    return [(cu - 0.5 * w, cv - 0.5 * h), (cu + 0.5 * w, cv - 0.5 * h), (cu + 0.5 * w, cv + 0.5 * h),
            (cu - 0.5 * w, cv + 0.5 * h)]


_SIGN_STYLE: dict[str, tuple[Color, Color, Color]] = {
    # kind: (rim, face, symbol)
    "stop": ((236, 236, 236), (196, 24, 30), (236, 236, 236)),
    "yield": ((200, 24, 30), (236, 236, 236), (200, 24, 30)),
    "speed": ((20, 20, 20), (232, 232, 228), (20, 20, 20)),
    "warning": ((20, 20, 20), (240, 196, 30), (20, 20, 20)),
    "info": ((236, 236, 236), (30, 80, 170), (236, 236, 236)),
    "parking": ((236, 236, 236), (30, 80, 170), (236, 236, 236)),
    "street": ((236, 236, 236), (26, 110, 60), (236, 236, 236)),
    "guide": ((236, 236, 236), (20, 104, 60), (236, 236, 236)),
    "noentry": ((236, 236, 236), (196, 24, 30), (236, 236, 236)),
    "oneway": ((236, 236, 236), (20, 20, 20), (236, 236, 236)),
    "back": ((120, 122, 126), (150, 152, 156), (130, 132, 136)),
}


def draw_traffic_sign(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    kind, w, h, yc = d["kind"], d["w"], d["h"], d["y"]
    glow = ctx.glow_at(x, z)
    if ctx.look.night:
        glow += 1.2 * max(0.0, 1.0 - z / 70.0)  # retroreflective sheeting in the low beams
    k = cam.f / z
    cu, cv = cam.pt(x, yc, z)
    pw = max(1.0, 0.08 * k)
    if d["pole"]:
        p.line([cam.pt(x, 0.0, z + 0.05), cam.pt(x, yc, z + 0.05)], (120, 122, 126), z + 0.05, pw, 0.0)
        if d.get("second_pole"):
            for dx in (-0.35 * w, 0.35 * w):
                p.line([cam.pt(x + dx, 0.0, z + 0.05), cam.pt(x + dx, yc, z + 0.05)], (120, 122, 126), z + 0.05,
                       pw, 0.0)
    pw_px, ph_px = w * k * d["squash"], h * k
    rim, face, sym = _SIGN_STYLE[kind]
    outer = _sign_shape(kind, cu, cv, pw_px, ph_px)
    if kind in ("speed", "info", "parking", "noentry") and d.get("round"):
        p.ellipse((cu - pw_px / 2, cv - ph_px / 2, cu + pw_px / 2, cv + ph_px / 2), rim, z, glow)
        p.ellipse((cu - 0.4 * pw_px, cv - 0.4 * ph_px, cu + 0.4 * pw_px, cv + 0.4 * ph_px), face, z, glow)
    else:
        p.poly(outer, rim, z, glow)
        p.poly(_sign_shape(kind, cu, cv, 0.84 * pw_px, 0.84 * ph_px), face, z, glow)
    if ph_px > 6:
        if kind in ("speed", "street", "guide", "oneway", "info"):
            rows = 2 if kind != "guide" else 3
            for i in range(rows):
                y = cv - 0.25 * ph_px + i * 0.5 * ph_px / max(1, rows - 1)
                p.rect((cu - 0.28 * pw_px, y - 0.05 * ph_px, cu + 0.28 * pw_px, y + 0.05 * ph_px), sym, z, glow)
        elif kind in ("noentry", "stop"):
            p.rect((cu - 0.3 * pw_px, cv - 0.07 * ph_px, cu + 0.3 * pw_px, cv + 0.07 * ph_px), sym, z, glow)
        elif kind == "warning":
            p.rect((cu - 0.05 * pw_px, cv - 0.22 * ph_px, cu + 0.05 * pw_px, cv + 0.1 * ph_px), sym, z, glow)
        elif kind == "parking":
            p.rect((cu - 0.15 * pw_px, cv - 0.3 * ph_px, cu - 0.05 * pw_px, cv + 0.3 * ph_px), sym, z, glow)
            p.rect((cu - 0.15 * pw_px, cv - 0.3 * ph_px, cu + 0.15 * pw_px, cv - 0.02 * ph_px), sym, z, glow)
    return [Box("traffic sign", cu - pw_px / 2, cv - ph_px / 2, cu + pw_px / 2, cv + ph_px / 2, z)]
