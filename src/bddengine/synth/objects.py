"""Frame rendering of a video's objects and their det_20 labels.

``draw_static`` draws the objects that never move into a video's base image once;
``render_things`` draws the moving ones at time ``t`` far to near (redrawing a
static one where a farther moving one was drawn over it, skipping vehicles that
nearer ones hide completely) and returns the labels, with ``occluded`` from a
coarse painter's id map and ``truncated`` from clipping at the image border.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bddengine.synth.furniture import draw_traffic_light, draw_traffic_sign
from bddengine.synth.geometry import Camera
from bddengine.synth.look import Look
from bddengine.synth.painter import Painter
from bddengine.synth.people import draw_crowd, draw_other_person, draw_pedestrian, draw_two_wheeler
from bddengine.synth.scene import Z_FAR, paste_glows
from bddengine.synth.things import Box, FrameCtx, Thing, cuboid_bbox
from bddengine.synth.vehicles import (
    draw_bus,
    draw_car,
    draw_other_vehicle,
    draw_trailer,
    draw_train,
    draw_truck,
)

MIN_BOX_PX = 4.0
"""Boxes narrower or lower than this (after clipping) are dropped."""

OCCLUDED_BELOW = 0.8
"""A box whose visible share is under this is ``occluded``."""

HIDDEN_BELOW = 0.12
"""A box whose visible share is under this is not labelled at all."""

MIN_CONTRAST = 0.07
"""A box whose haze share leaves less contrast than this is not labelled (lost in fog)."""

DRAW: dict[str, Callable[[Painter, Thing, float, float, FrameCtx], list[Box]]] = {
    "car": draw_car,
    "truck": draw_truck,
    "bus": draw_bus,
    "train": draw_train,
    "other vehicle": draw_other_vehicle,
    "trailer": draw_trailer,
    "pedestrian": draw_pedestrian,
    "crowd": draw_crowd,
    "other person": draw_other_person,
    "two-wheeler": draw_two_wheeler,
    "traffic light": draw_traffic_light,
    "traffic sign": draw_traffic_sign,
}


@dataclass
class Drawn:
    """A static thing already drawn into a video's base image, with its boxes."""

    z: float
    x: float
    thing: Thing
    boxes: list[Box]
    extent: tuple[float, float, float, float]
    vehicle_box: tuple[float, float, float, float] | None
    """``_vehicle_bbox`` of a vehicle that hides what is behind it (``_BOXY``), else None."""


def _placed(things: list[Thing], t: float) -> list[tuple[float, float, Thing]]:
    out = []
    for th in things:
        x, z = th.x + th.vx * t, th.z + th.vz * t
        if 2.0 <= z <= Z_FAR + 40:
            out.append((z, x, th))
    out.sort(key=lambda item: -item[0])
    return out


def _draw_one(image: Image.Image, painter: Painter, th: Thing, x: float, z: float, ctx: FrameCtx) -> list[Box]:
    ctx.glows = []
    boxes = DRAW[th.kind](painter, th, x, z, ctx)
    if ctx.glows:
        paste_glows(image, ctx.textures, ctx.glows)
    return boxes


def _extent(th: Thing, x: float, z: float, boxes: list[Box], cam: Camera) -> tuple[float, float, float, float]:
    """Pixel region a thing's drawing may cover: its boxes plus poles and mast arms."""
    x1 = min(b.x1 for b in boxes) if boxes else cam.u(x, z)
    y1 = min(b.y1 for b in boxes) if boxes else cam.v(0.0, z)
    x2 = max(b.x2 for b in boxes) if boxes else x1
    y2 = max(b.y2 for b in boxes) if boxes else y1
    if th.kind in ("traffic light", "traffic sign"):
        y2 = max(y2, cam.v(0.0, z))
        if th.data.get("mount") == "mast":
            ua = cam.u(th.data["arm_x"], z)
            x1, x2 = min(x1, ua - 3), max(x2, ua + 3)
        x1, x2 = x1 - 2, x2 + 2
    return x1, y1, x2, y2


def is_static(th: Thing) -> bool:
    return th.vx == 0.0 and th.vz == 0.0


def draw_static(image: Image.Image, painter: Painter, things: list[Thing], ctx: FrameCtx) -> list[Drawn]:
    """Draw the things that never move into a video's base image (far to near), once."""
    out = []
    for z, x, th in _placed(things, 0.0):
        boxes = _draw_one(image, painter, th, x, z, ctx)
        vehicle_box = _vehicle_bbox(th, x, z, painter.cam) if th.kind in _BOXY else None
        out.append(Drawn(z, x, th, boxes, _extent(th, x, z, boxes, painter.cam), vehicle_box))
    return out


def render_things(image: Image.Image, painter: Painter, static: list[Drawn], moving: list[Thing], t: float,
                  ctx: FrameCtx) -> list[dict]:
    """Draw the moving objects at time ``t`` (seconds) and return all det_20 labels.

    ``image`` already holds the static objects (``draw_static``). Moving ones are
    drawn far to near; a static object that a farther moving one was drawn over is
    drawn again, so nearer things always cover farther ones. Labels come without
    ``id`` (the writer numbers them); boxes are clipped to the image, ``truncated``
    marks clipped ones, ``occluded`` those whose box is more than
    ``1 - OCCLUDED_BELOW`` covered by nearer boxes.
    """
    cam = painter.cam
    items: list[tuple[float, int, object]] = [(d.z, 0, d) for d in static]
    items += [(z, 1, (x, th)) for z, x, th in _placed(moving, t)]
    items.sort(key=lambda item: -item[0])
    hidden = _hidden_vehicles(items, cam)
    boxes: list[Box] = []
    moved: list[tuple[float, float, float, float]] = []
    for i, (z, is_moving, item) in enumerate(items):
        if is_moving:
            if i in hidden:
                continue
            x, th = item  # type: ignore[misc]
            drawn = _draw_one(image, painter, th, x, z, ctx)
            boxes.extend(drawn)
            if drawn:
                moved.append(_extent(th, x, z, drawn, cam))
        else:
            d: Drawn = item  # type: ignore[assignment]
            ex1, ey1, ex2, ey2 = d.extent
            if i not in hidden and any(mx1 < ex2 and ex1 < mx2 and my1 < ey2 and ey1 < my2
                                       for mx1, my1, mx2, my2 in moved):
                _draw_one(image, painter, d.thing, d.x, d.z, ctx)
            boxes.extend(d.boxes)
    return _labels(boxes, cam, ctx.look)


_CELL = 4
"""Pixels per cell of the coarse coverage and id maps."""

_BOXY = {"car": 0.15, "truck": 0.0, "bus": 0.0, "trailer": 0.0}
"""Vehicles that hide what is behind them, with the share of box width that the upper
(cabin) part leaves open at each side."""


def _vehicle_bbox(th: Thing, x: float, z: float, cam: Camera) -> tuple[float, float, float, float]:
    """Pixel box of a boxy vehicle from its dimensions alone (as its drawing would give)."""
    d = th.data
    if th.kind == "car":
        ex, ez, h = (d["l"], d["w"], d["h"]) if d["across"] else (d["w"], d["l"], d["h"])
    elif th.kind == "truck":
        ex, ez, h = 2.5, d["l"], max(d["box_h"], 2.9)
    elif th.kind == "bus":
        ex, ez, h = 2.55, d["l"], d["h"]
    else:
        ex, ez, h = 2.2, d["l"], d["h"]
    return cuboid_bbox(cam, x - ex / 2, x + ex / 2, 0.0, h, z, z + ez)


def _hidden_vehicles(items: list[tuple[float, int, object]], cam: Camera) -> set[int]:
    """Indices of vehicles that nearer vehicles cover completely, or that are off-image.

    Walks near to far over a coarse coverage map. A vehicle covers the cells fully
    inside its box (minus the open corners beside a car's cabin) and is hidden when
    every cell its box touches is covered. Such a vehicle's box is then covered by
    nearer boxes in ``_labels`` too, so skipping its drawing changes no label.
    """
    w, h = cam.width, cam.height
    cover = [0] * (h // _CELL + 2)  # one bit per cell: a row of cells is a Python int
    hidden: set[int] = set()
    for i in range(len(items) - 1, -1, -1):
        z, is_moving, item = items[i]
        if is_moving:
            x, th = item  # type: ignore[misc]
            open_share = _BOXY.get(th.kind)
            if open_share is None:
                continue
            box = _vehicle_bbox(th, x, z, cam)
        else:
            box = item.vehicle_box  # type: ignore[attr-defined]
            if box is None:
                continue
            open_share = _BOXY[item.thing.kind]  # type: ignore[attr-defined]
        x1, y1, x2, y2 = box
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            hidden.add(i)
            continue
        x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
        if _covered(cover, int(y1) // _CELL, math.ceil(y2 / _CELL), int(x1) // _CELL, math.ceil(x2 / _CELL)):
            hidden.add(i)
            continue
        ym = y1 + 0.45 * (y2 - y1) if open_share else y1
        xa, xb = x1 + open_share * (x2 - x1), x2 - open_share * (x2 - x1)
        _cover(cover, math.ceil(y1 / _CELL), int(ym) // _CELL, math.ceil(xa / _CELL), int(xb) // _CELL)
        _cover(cover, math.ceil(ym / _CELL), int(y2) // _CELL, math.ceil(x1 / _CELL), int(x2) // _CELL)
    return hidden


def _covered(cover: list[int], r0: int, r1: int, c0: int, c1: int) -> bool:
    """Whether all cells of rows ``r0:r1``, columns ``c0:c1`` are covered (an empty range is)."""
    if c1 <= c0:
        return True
    mask = ((1 << (c1 - c0)) - 1) << c0
    return all(cover[r] & mask == mask for r in range(r0, r1))


def _cover(cover: list[int], r0: int, r1: int, c0: int, c1: int) -> None:
    """Mark the cells of rows ``r0:r1``, columns ``c0:c1`` covered."""
    if c1 > c0:
        mask = ((1 << (c1 - c0)) - 1) << c0
        for r in range(r0, r1):
            cover[r] |= mask


def _labels(boxes: list[Box], cam: Camera, look: Look) -> list[dict]:
    w, h = cam.width, cam.height
    fw, fh = float(w), float(h)
    s = _CELL  # a coarse id map is plenty for an "is it mostly covered" test
    idmap = np.full((h // s + 1, w // s + 1), -1, dtype=np.int32)
    clipped = []
    for i, b in enumerate(boxes):
        x1 = b.x1 if b.x1 > 0.0 else 0.0
        y1 = b.y1 if b.y1 > 0.0 else 0.0
        x2 = b.x2 if b.x2 < fw else fw
        y2 = b.y2 if b.y2 < fh else fh
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        idmap[int(y1) // s : math.ceil(y2 / s), int(x1) // s : math.ceil(x2 / s)] = i
        if x2 - x1 >= MIN_BOX_PX and y2 - y1 >= MIN_BOX_PX:
            clipped.append((i, b, x1, y1, x2, y2))
    counts = np.bincount(idmap.ravel() + 1, minlength=len(boxes) + 1)[1:]
    labels = []
    for i, b, x1, y1, x2, y2 in clipped:
        area = (math.ceil(y2 / s) - int(y1) // s) * (math.ceil(x2 / s) - int(x1) // s)
        visible = counts[i] / max(1, area)
        if visible < HIDDEN_BELOW:
            continue
        haze = look.fog_alpha(b.z) * (0.75 if b.emissive else 1.0)
        if 1.0 - haze < MIN_CONTRAST:
            continue
        truncated = b.x1 < -0.5 or b.y1 < -0.5 or b.x2 > w + 0.5 or b.y2 > h + 0.5
        attrs: dict = {"occluded": bool(visible < OCCLUDED_BELOW), "truncated": bool(truncated),
                       "trafficLightColor": b.light_color}
        if b.category == "pedestrian":
            attrs["crowd"] = b.crowd
        labels.append({
            "category": b.category,
            "attributes": attrs,
            "box2d": {"x1": round(x1, 3), "y1": round(y1, 3), "x2": round(x2, 3), "y2": round(y2, 3)},
        })
    return labels
