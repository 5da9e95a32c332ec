"""Pinhole camera over a flat ground plane, and planar faces placed in the world.

World coordinates are metres: ``x`` to the right, ``y`` up from the ground, ``z``
forward from the camera. The camera looks along ``z`` from height ``cam_h``, so a
point projects to ``u = cx + f x / z`` and ``v = horizon + f (cam_h - y) / z``.
Everything perspective-consistent in the world (sizes shrinking with distance,
lanes meeting at the vanishing point) follows from these two lines.
"""

from __future__ import annotations

from dataclasses import dataclass

Color = tuple[int, int, int]
Point = tuple[float, float]
Vec3 = tuple[float, float, float]

CAM_HEIGHT_M = 1.35
"""Height of the windshield camera above the road (BDD100K's dashcams sit about here)."""

Z_MIN = 1.0
"""Nothing is projected closer than this (metres), to keep coordinates finite."""

HAZE_STEPS = 64
GLOW_STEPS = 16
"""Shading inputs are quantized to these steps (colour differences of a few levels at most),
so shaded colours can be cached by key exactly."""

EMISSIVE = -1.0
"""Pass as ``glow`` when drawing a light source: it is not darkened and cuts through haze."""


@dataclass(frozen=True)
class Camera:
    """A pinhole camera; ``f`` in pixels, ``cx``/``horizon`` the vanishing point."""

    width: int
    height: int
    f: float
    cx: float
    horizon: float
    cam_h: float = CAM_HEIGHT_M

    @property
    def px(self) -> float:
        """Pixels per pixel of the 640-wide reference frame (line widths, sprite sizes)."""
        return self.width / 640.0

    def u(self, x: float, z: float) -> float:
        return self.cx + self.f * x / (z if z > Z_MIN else Z_MIN)

    def v(self, y: float, z: float) -> float:
        return self.horizon + self.f * (self.cam_h - y) / (z if z > Z_MIN else Z_MIN)

    def pt(self, x: float, y: float, z: float) -> Point:
        k = self.f / (z if z > Z_MIN else Z_MIN)
        return (self.cx + k * x, self.horizon + k * (self.cam_h - y))


class Face:
    """A planar rectangle in the world, addressed by local metres ``(s, t)``.

    ``origin`` is the corner at ``(s, t) = (0, 0)``; ``s_axis`` and ``t_axis`` are unit
    world vectors. Points are projected exactly, so decorations on a receding
    face (windows on the side of a bus) shrink with depth as they should.
    """

    __slots__ = ("cam", "origin", "s_axis", "t_axis", "width", "height", "_c")

    def __init__(self, cam: Camera, origin: Vec3, s_axis: Vec3, t_axis: Vec3, width: float, height: float):
        self.cam = cam
        self.origin = origin
        self.s_axis = s_axis
        self.t_axis = t_axis
        self.width = width
        self.height = height
        self._c = (*origin, *s_axis, *t_axis, cam.f, cam.cx, cam.horizon, cam.cam_h)

    def pt(self, s: float, t: float) -> Point:
        ox, oy, oz, sx, sy, sz, tx, ty, tz, f, cx, hz, ch = self._c
        z = oz + s * sz + t * tz
        k = f / (z if z > Z_MIN else Z_MIN)
        return (cx + k * (ox + s * sx + t * tx), hz + k * (ch - oy - s * sy - t * ty))

    def quad(self, s0: float, s1: float, t0: float, t1: float) -> list[Point]:
        pt = self.pt
        return [pt(s0, t0), pt(s1, t0), pt(s1, t1), pt(s0, t1)]

    def trapezoid(self, s0: float, s1: float, t0: float, t1: float, inset: float,
                  inset_end: float | None = None) -> list[Point]:
        """Like ``quad`` with the top edge shortened by ``inset`` at the start (and ``inset_end``,
        default the same, at the end): sloped pillars of a car's cabin."""
        pt = self.pt
        end = inset if inset_end is None else inset_end
        return [pt(s0, t0), pt(s1, t0), pt(s1 - end, t1), pt(s0 + inset, t1)]
