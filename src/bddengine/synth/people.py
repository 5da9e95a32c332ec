"""Drawing of people and two-wheelers: pedestrians, crowds, riders, bicycles, motorcycles.

People are flat figures facing the camera (legs, torso, arms, head) sized by their
height and depth; two-wheelers are drawn in a three-quarter side view, a bicycle
as thin spoked wheels and a frame, a motorcycle with solid wheels and a bulky body.
A rider is a person seated on one: it gets its own "rider" box, and the vehicle its
own "bicycle" or "motorcycle" box, as in BDD100K.
"""

from __future__ import annotations

import math

from bddengine.synth.geometry import EMISSIVE
from bddengine.synth.painter import Painter
from bddengine.synth.things import Box, FrameCtx, Thing, light_glow


def _person(p: Painter, u: float, v: float, k: float, h: float, d: dict, z: float, glow: float,
            phase: float, umbrella: bool) -> tuple[float, float, float, float]:
    """A standing or walking person with feet at pixel (u, v); returns its pixel box."""
    H = h * k
    stride = 0.09 * H * math.sin(phase)
    leg_w = 0.055 * H
    hip_y = v - 0.5 * H
    pants, shirt, skin = d["pants"], d["shirt"], d["skin"]
    for sgn in (-1, 1):
        fx = u + sgn * stride
        p.poly([(u + sgn * 0.035 * H - leg_w, hip_y), (u + sgn * 0.035 * H + leg_w, hip_y),
                (fx + 0.6 * leg_w, v), (fx - 0.6 * leg_w, v)], pants, z, glow)
    sh = 0.125 * H
    sy = v - 0.81 * H
    p.poly([(u - sh, sy), (u + sh, sy), (u + 0.1 * H, hip_y + 0.04 * H), (u - 0.1 * H, hip_y + 0.04 * H)],
           shirt, z, glow)
    swing = 0.06 * H * math.sin(phase)
    arm_w = max(1.0, 0.05 * H)
    p.line([(u - sh + 0.2 * arm_w, sy + arm_w), (u - sh - 0.02 * H + swing, v - 0.46 * H)], shirt, z, arm_w, glow)
    p.line([(u + sh - 0.2 * arm_w, sy + arm_w), (u + sh + 0.02 * H - swing, v - 0.46 * H)], shirt, z, arm_w, glow)
    hr = 0.066 * H
    hy = v - 0.9 * H
    p.ellipse((u - hr, hy - 1.1 * hr, u + hr, hy + 1.1 * hr), skin, z, glow)
    p.ellipse((u - hr, hy - 1.2 * hr, u + hr, hy - 0.1 * hr), d["hair"], z, glow)
    top = hy - 1.2 * hr
    half = max(sh + 0.03 * H + abs(swing), abs(stride) + leg_w)
    if umbrella:
        ur = 0.3 * H
        p.draw.pieslice((u - ur, hy - 1.9 * hr - ur * 0.6, u + ur, hy - 1.9 * hr + ur * 0.6), 180, 360,
                        fill=p.shade(d["umbrella"], z, glow))
        top = min(top, hy - 1.9 * hr - ur * 0.6)
        half = max(half, ur)
    return u - half, top, u + half, v


def draw_pedestrian(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    u, v = cam.pt(x, 0.0, z)
    k = cam.f / z
    phase = d["phase"] + (x + z) * 2.2
    glow = ctx.glow_at(x, z)
    box = _person(p, u, v, k, d["h"], d, z, glow, phase if d["walking"] else 0.0, d["umbrella"] and ctx.look.wet)
    return [Box("pedestrian", *box, z)]


def draw_crowd(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    cam = p.cam
    glow = ctx.glow_at(x, z)
    x1s, y1s, x2s, y2s = [], [], [], []
    for dx, dz, pd in th.data["members"]:
        zz = z + dz
        u, v = cam.pt(x + dx, 0.0, zz)
        b = _person(p, u, v, cam.f / zz, pd["h"], pd, zz, glow, pd["phase"], False)
        x1s.append(b[0])
        y1s.append(b[1])
        x2s.append(b[2])
        y2s.append(b[3])
    return [Box("pedestrian", min(x1s), min(y1s), max(x2s), max(y2s), z, crowd=True)]


def draw_other_person(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    """A person sitting on a bench: labelled "other person", ignored in scoring."""
    d = th.data
    cam = p.cam
    glow = ctx.glow_at(x, z)
    k = cam.f / z
    u, v = cam.pt(x, 0.0, z)
    s = -1 if x > 0 else 1
    # Bench.
    p.rect((u - 0.8 * k, v - 0.48 * k, u + 0.8 * k, v - 0.4 * k), (110, 80, 50), z + 0.3, glow)
    for bx in (-0.7, 0.7):
        p.rect((u + bx * k - 0.03 * k, v - 0.45 * k, u + bx * k + 0.03 * k, v), (60, 60, 60), z + 0.3, glow)
    seat_y = v - 0.48 * k
    p.poly([(u - 0.12 * k, seat_y), (u + s * 0.35 * k, seat_y), (u + s * 0.35 * k, seat_y + 0.12 * k),
            (u - 0.12 * k, seat_y + 0.12 * k)], d["pants"], z, glow)
    p.rect((u + s * 0.28 * k, seat_y, u + s * 0.4 * k, v), d["pants"], z, glow)
    p.poly([(u - 0.17 * k, seat_y - 0.6 * k), (u + 0.17 * k, seat_y - 0.6 * k), (u + 0.13 * k, seat_y),
            (u - 0.13 * k, seat_y)], d["shirt"], z, glow)
    hr = 0.11 * k
    hy = seat_y - 0.75 * k
    p.ellipse((u - hr, hy - hr * 1.1, u + hr, hy + hr * 1.1), d["skin"], z, glow)
    p.ellipse((u - hr, hy - hr * 1.2, u + hr, hy), d["hair"], z, glow)
    x_lo, x_hi = sorted((u - 0.18 * k, u + s * 0.42 * k))
    return [Box("other person", x_lo, hy - hr * 1.2, x_hi, v, z)]


def _two_wheeler(p: Painter, u: float, v: float, k: float, squash: float, heading: int, moto: bool, d: dict,
                 z: float, glow: float, ctx: FrameCtx) -> tuple[tuple[float, float, float, float], dict]:
    """A bicycle or motorcycle in a three-quarter side view; returns its box and key points."""
    length, r = (2.1, 0.32) if moto else (1.72, 0.34)
    sx = squash * heading * k

    def pt(a: float, b: float) -> tuple[float, float]:
        return (u + a * sx, v - b * k)

    rear, front = (-length / 2 + r, r), (length / 2 - r, r)
    lw = max(1.0, (0.05 if not moto else 0.07) * k)
    wheel_col = (22, 22, 24)
    rx, ry = abs(r * sx), r * k
    for cx, cy in (rear, front):
        cu, cv = pt(cx, cy)
        if moto:
            p.ellipse((cu - rx, cv - ry, cu + rx, cv + ry), wheel_col, z, glow)
            p.ellipse((cu - 0.45 * rx, cv - 0.45 * ry, cu + 0.45 * rx, cv + 0.45 * ry), (150, 150, 154), z, glow)
        else:
            p.draw.ellipse((cu - rx, cv - ry, cu + rx, cv + ry), outline=p.shade(wheel_col, z, glow),
                           width=max(1, round(lw)))
    col = d["frame"]
    if moto:
        body = [pt(-0.85, 0.62), pt(-0.45, 0.88), pt(0.15, 0.98), pt(0.55, 0.85), pt(0.3, 0.4), pt(-0.3, 0.42)]
        p.poly(body, col, z, glow)
        p.poly([pt(-0.25, 0.3), pt(0.25, 0.3), pt(0.25, 0.6), pt(-0.25, 0.6)], (90, 90, 94), z, glow)
        p.line([pt(0.5, 0.85), pt(*front)], (120, 120, 124), z, lw, glow)
        p.line([pt(0.45, 1.05), pt(0.62, 1.05)], (30, 30, 30), z, lw, glow)
        hu, hv = pt(0.62, 0.85)
        hr = 0.07 * k
        lit = ctx.look.lights_on
        p.ellipse((hu - hr, hv - hr, hu + hr, hv + hr), (255, 246, 220) if lit else (200, 200, 190), z,
                  EMISSIVE if lit else glow)
        if lit and ctx.look.night:
            light_glow(ctx, p, hu, hv, z, (255, 246, 220), 0.5, 0.7)
        seat = (-0.35, 0.9)
        bar = (0.45, 1.05)
        foot = (0.0, 0.42)
        top_y = 1.08
    else:
        seat, bar, bb = (-0.22, 0.92), (0.45, 1.02), (0.0, 0.3)
        for a, b in ((rear, bb), (bb, seat), (seat, rear), (bb, bar), (seat, (0.4, 0.85)), (bar, front)):
            p.line([pt(*a), pt(*b)], col, z, lw, glow)
        p.line([pt(-0.3, 0.95), pt(-0.12, 0.95)], (30, 30, 30), z, lw, glow)
        p.line([pt(0.38, 1.05), pt(0.52, 1.05)], (40, 40, 40), z, lw, glow)
        foot = bb
        top_y = 1.06
    xs = [u + (-length / 2) * sx, u + (length / 2) * sx]
    box = (min(xs) - 0.5, v - top_y * k, max(xs) + 0.5, v)
    return box, {"seat": pt(*seat), "bar": pt(*bar), "foot": pt(*foot)}


def draw_two_wheeler(p: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    d = th.data
    cam = p.cam
    u, v = cam.pt(x, 0.0, z)
    k = cam.f / z
    glow = ctx.glow_at(x, z)
    moto = d["moto"]
    box, kp = _two_wheeler(p, u, v, k, d["squash"], d["heading"], moto, d, z, glow, ctx)
    out = [Box("motorcycle" if moto else "bicycle", *box, z + 0.2)]
    if d["ridden"]:
        sx, sy = kp["seat"]
        bx, by = kp["bar"]
        fx, fy = kp["foot"]
        H = 1.75 * k
        rd = d["rider"]
        shoulder = (sx + 0.35 * (bx - sx), sy - 0.55 * H * 0.62)
        leg_w = max(1.0, 0.07 * H)
        p.line([(sx, sy), (fx, fy)], rd["pants"], z - 0.1, leg_w, glow)
        p.poly([(sx - 0.06 * H, sy), (sx + 0.06 * H, sy), (shoulder[0] + 0.07 * H, shoulder[1]),
                (shoulder[0] - 0.07 * H, shoulder[1])], rd["shirt"], z - 0.1, glow)
        p.line([shoulder, (bx, by)], rd["shirt"], z - 0.1, max(1.0, 0.045 * H), glow)
        hr = 0.068 * H * (1.15 if moto else 1.0)
        hx, hy = shoulder[0] + 0.02 * H * d["heading"], shoulder[1] - 0.1 * H
        p.ellipse((hx - hr, hy - 1.1 * hr, hx + hr, hy + 1.1 * hr), rd["skin"], z - 0.1, glow)
        helmet = rd["helmet"] if moto or rd["helmet_on"] else rd["hair"]
        p.ellipse((hx - 1.05 * hr, hy - 1.25 * hr, hx + 1.05 * hr, hy + (0.4 if moto else -0.1) * hr), helmet,
                  z - 0.1, glow)
        xs = [sx - 0.08 * H, sx + 0.08 * H, bx, fx - leg_w, fx + leg_w, hx - hr, hx + hr,
              shoulder[0] - 0.08 * H, shoulder[0] + 0.08 * H]
        out.append(Box("rider", min(xs), hy - 1.25 * hr, max(xs), max(fy, sy) + 0.5 * leg_w, z - 0.1))
    return out
