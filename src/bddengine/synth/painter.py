"""A painter that draws world-space shapes, shaded by a condition's `Shader`, on one image.

It sits above `geometry` (the camera and the shading steps) and `look` (the shader),
which both stay free of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from bddengine.synth.geometry import EMISSIVE, GLOW_STEPS, HAZE_STEPS, Camera, Color, Point
from bddengine.synth.look import Shader


class Painter:
    """Draws shaded shapes on one image.

    ``shade(color, z, glow)`` turns a base colour at depth ``z`` into the colour
    seen through the current light and haze; ``glow`` is the extra local light
    (street lamps, headlights) at that spot, 0 by day.
    """

    def __init__(self, image: Image.Image, cam: Camera, shade: Shader):
        self.image = image
        self.cam = cam
        self.shade = shade
        self.draw = ImageDraw.Draw(image)
        # Filled polygons are most of the drawing: call the C drawer with cached inks,
        # which skips ImageDraw's per-call colour parsing (about half the cost).
        self._core = self.draw.draw
        self._inks = shade.inks.setdefault(image.mode, {})
        self._z = math.nan  # depth of the last ink, and its haze step: shapes of one thing share a depth
        self._haze_q = 0
        self._alpha_draw: ImageDraw.ImageDraw | None = None
        self.lw = max(1, round(cam.px))

    @property
    def alpha_draw(self) -> ImageDraw.ImageDraw:
        """A blending draw (slower): only for translucent shapes such as shadows."""
        if self._alpha_draw is None:
            self._alpha_draw = ImageDraw.Draw(self.image, "RGBA")
        return self._alpha_draw

    def ink(self, color: Color, z: float, glow: float = 0.0) -> int:
        # Same key as ``Shader.key``, inlined: this runs for every shape drawn.
        if z != self._z:
            sh = self.shade
            self._z = z
            self._haze_q = int(HAZE_STEPS * (sh.veil + (1.0 - sh.veil) * (1.0 - math.exp(-z * sh.inv_vis))))
        key = (color, self._haze_q, -1 if glow == EMISSIVE else int(glow * GLOW_STEPS))
        ink = self._inks.get(key)
        if ink is None:
            if len(self._inks) >= 20_000:
                self._inks.clear()  # the cache lives as long as the worker: keep it bounded
            ink = self._inks[key] = self._core.draw_ink(self.shade.color_of(key))
        return ink

    def poly(self, points: Sequence[Point], color: Color, z: float, glow: float = 0.0) -> None:
        # ``ink`` inlined for the cached case: this is most of the drawing.
        if z == self._z:
            ink = self._inks.get((color, self._haze_q, -1 if glow == EMISSIVE else int(glow * GLOW_STEPS)))
            if ink is not None:
                self._core.draw_polygon(points, ink, 1)
                return
        self._core.draw_polygon(points, self.ink(color, z, glow), 1)

    def rect(self, box: tuple[float, float, float, float], color: Color, z: float, glow: float = 0.0) -> None:
        x0, y0, x1, y1 = box
        if x1 < x0:
            x0, x1 = x1, x0
        if y1 < y0:
            y0, y1 = y1, y0
        self._core.draw_rectangle((x0, y0, x1, y1), self.ink(color, z, glow), 1)

    def ellipse(self, box: tuple[float, float, float, float], color: Color, z: float, glow: float = 0.0) -> None:
        x0, y0, x1, y1 = box
        if x1 - x0 < 1 or y1 - y0 < 1:
            self._core.draw_rectangle((x0, y0, max(x0, x1), max(y0, y1)), self.ink(color, z, glow), 1)
            return
        self._core.draw_ellipse(box, self.ink(color, z, glow), 1)

    def line(self, points: Sequence[Point], color: Color, z: float, width: float, glow: float = 0.0) -> None:
        self.draw.line(points, fill=self.shade(color, z, glow), width=max(1, round(width)))
