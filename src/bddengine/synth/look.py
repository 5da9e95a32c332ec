"""How a condition (weather x time of day x scene) looks, and the per-frame effects.

A ``Look`` holds the numbers that make one video's condition: the light that falls
on surfaces, the haze colour and visibility distance (fog is haze with a short
visibility), the sky, precipitation, sensor noise and sun glare. ``Shader`` turns
a base colour at some depth into what the camera sees under that look: this is
what makes objects in fog fade into gray with distance and objects at night dark
unless a lamp is near. ``Textures`` are the per-worker precomputed layers (noise,
rain streaks, snow flakes, glow sprites) that frames pick at random offsets, so the
per-frame cost of an effect is a few vectorised passes: noise as saturating uint8
adds, rain and snow as a blend of only the pixels they cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from bddengine.synth.attributes import VideoConditions
from bddengine.synth.geometry import EMISSIVE, GLOW_STEPS, HAZE_STEPS, Camera, Color

_DAY_LIGHT: dict[str, float] = {
    "clear": 1.0,
    "partly cloudy": 0.95,
    "overcast": 0.82,
    "rainy": 0.68,
    "snowy": 0.9,
    "foggy": 0.85,
}
_DAY_HAZE: dict[str, Color] = {
    "clear": (200, 212, 230),
    "partly cloudy": (200, 210, 225),
    "overcast": (188, 191, 196),
    "rainy": (135, 141, 150),
    "snowy": (208, 212, 218),
    "foggy": (164, 167, 170),
}
_DAY_VISIBILITY: dict[str, float] = {
    "clear": 700.0,
    "partly cloudy": 600.0,
    "overcast": 350.0,
    "rainy": 170.0,
    "snowy": 130.0,
    "foggy": 30.0,
}
_DAY_SKY: dict[str, tuple[Color, Color]] = {
    "clear": ((62, 120, 200), (172, 200, 232)),
    "partly cloudy": ((78, 130, 200), (180, 204, 230)),
    "overcast": ((150, 154, 162), (196, 198, 202)),
    "rainy": ((98, 103, 112), (140, 146, 154)),
    "snowy": ((178, 182, 190), (212, 215, 220)),
    "foggy": ((170, 173, 176), (170, 173, 176)),
}
_DUSK_TINT = (0.8, 0.64, 0.55)
_NIGHT_LIGHT = (0.15, 0.16, 0.21)
_TUNNEL_LIGHT = (0.62, 0.55, 0.42)
_LAMP = (1.0, 0.8, 0.55)
_VARIANTS = 8
"""Precomputed crops per texture layer (noise, rain, snow) that frames choose from."""
NOISE_LEVELS: dict[int, tuple[float, int]] = {1: (2.0, 6), 2: (6.0, 18)}
"""Sensor noise by ``Look.noise`` level: standard deviation and clip (grey levels)."""


@dataclass(frozen=True)
class Look:
    """Rendering parameters of one video's condition (see module docstring)."""

    weather: str
    timeofday: str
    scene: str
    light: tuple[float, float, float]
    lamp: tuple[float, float, float]
    haze: Color
    visibility: float
    veil: float
    sky_top: Color
    sky_horizon: Color
    clouds: float
    shadow_alpha: int
    lights_on: bool
    wet: bool
    snow_ground: bool
    precipitation: str | None
    precip_color: Color
    noise: int
    blur: float
    """Softening as a down-and-up scale factor (1 = none): fog loses fine detail."""
    sun: tuple[float, float] | None

    @property
    def night(self) -> bool:
        return self.timeofday == "night"

    @property
    def dusk(self) -> bool:
        return self.timeofday == "dawn/dusk"

    @property
    def tunnel(self) -> bool:
        return self.scene == "tunnel"

    @property
    def foggy(self) -> bool:
        return self.weather == "foggy"

    def fog_alpha(self, z: float) -> float:
        """Share of haze in what is seen at depth ``z`` (``veil`` even right in front)."""
        return self.veil + (1.0 - self.veil) * (1.0 - math.exp(-z / self.visibility))


def _mul(c: Color, k: tuple[float, float, float] | float) -> Color:
    if isinstance(k, float | int):
        k = (k, k, k)
    return (min(255, int(c[0] * k[0])), min(255, int(c[1] * k[1])), min(255, int(c[2] * k[2])))


def _mix(a: Color, b: Color, t: float) -> Color:
    return (int(a[0] + (b[0] - a[0]) * t), int(a[1] + (b[1] - a[1]) * t), int(a[2] + (b[2] - a[2]) * t))


def make_look(cond: VideoConditions, cam: Camera, rng: np.random.Generator) -> Look:
    """The look of a video from its (concrete) conditions.

    Args:
        cond: the video's conditions; only the ``look_*`` fields matter here.
        cam: the video's camera (the sun's glare spot is placed in image coordinates).
        rng: draws visibility, sun position and the like.
    """
    weather, tod, scene = cond.look_weather, cond.look_timeofday, cond.look_scene
    light: tuple[float, float, float] = (_DAY_LIGHT[weather],) * 3  # type: ignore[assignment]
    haze = _DAY_HAZE[weather]
    visibility = _DAY_VISIBILITY[weather]
    veil = 0.0
    if weather == "foggy":
        # Fog: short visibility, and scattered light that veils even the nearest things.
        visibility = float(rng.uniform(12.0, 32.0))
        veil = float(rng.uniform(0.12, 0.22))
    sky_top, sky_hor = _DAY_SKY[weather]
    clouds = {"partly cloudy": 0.45, "clear": 0.06}.get(weather, 0.0)
    shadow = {"clear": 110, "partly cloudy": 80}.get(weather, 0)
    sun: tuple[float, float] | None = None
    # Sensor noise: none on bright days, some in dim light, a lot at night.
    noise = 0 if weather in ("clear", "partly cloudy", "overcast") else 1
    blur = 1.0
    lights_on = weather in ("foggy", "rainy", "snowy")
    if tod == "dawn/dusk":
        light = (light[0] * _DUSK_TINT[0], light[1] * _DUSK_TINT[1], light[2] * _DUSK_TINT[2])
        haze = _mul(haze, (1.0, 0.82, 0.68))
        warm = (246, 160, 92) if weather in ("clear", "partly cloudy") else (190, 150, 128)
        sky_top = _mix(sky_top, (58, 62, 118), 0.6)
        sky_hor = _mix(sky_hor, warm, 0.75)
        lights_on = True
        shadow = shadow // 2
        noise = 1
        if weather in ("clear", "partly cloudy") and rng.random() < 0.6:
            sun = (float(rng.uniform(0.1, 0.9)) * cam.width, cam.horizon - float(rng.uniform(0.0, 0.12)) * cam.height)
    elif tod == "night":
        light = _NIGHT_LIGHT
        city_glow = scene in ("city street", "gas stations", "parking lot")
        haze = (52, 52, 58) if weather == "foggy" else (20, 20, 26)
        sky_top = (4, 6, 14)
        sky_hor = (40, 32, 34) if city_glow else (16, 17, 25)
        if weather in ("overcast", "rainy", "snowy"):
            sky_hor = _mix(sky_hor, (50, 45, 48), 0.4)
        clouds = 0.0
        shadow = 0
        lights_on = True
        noise = 2
    elif weather == "clear" and rng.random() < 0.15:
        sun = (float(rng.uniform(0.0, 1.0)) * cam.width, cam.horizon - float(rng.uniform(0.15, 0.4)) * cam.height)
    if weather == "foggy":
        sky_top = sky_hor = haze
        blur = 1.6
        sun = None
    if scene == "tunnel":
        light = _TUNNEL_LIGHT
        haze = (58, 48, 34)
        visibility = min(visibility, 500.0) if weather != "foggy" else 300.0
        veil = 0.0
        shadow = 0
        lights_on = True
        sun = None
        noise = max(noise, 1)
    precipitation = {"rainy": "rain", "snowy": "snow"}.get(weather) if scene != "tunnel" else None
    if precipitation == "rain":
        precip_color = (90, 92, 100) if tod == "night" else (196, 200, 210)
    else:
        precip_color = (150, 150, 160) if tod == "night" else (245, 246, 250)
    return Look(
        weather=weather,
        timeofday=tod,
        scene=scene,
        light=light,
        lamp=_LAMP,
        haze=haze,
        visibility=visibility,
        veil=veil,
        sky_top=sky_top,
        sky_horizon=sky_hor,
        clouds=clouds,
        shadow_alpha=shadow,
        lights_on=lights_on,
        wet=weather == "rainy",
        snow_ground=weather == "snowy" and scene != "tunnel",
        precipitation=precipitation,
        precip_color=precip_color,
        noise=noise,
        blur=blur,
        sun=sun,
    )


_INKS: dict[tuple, dict[str, dict[tuple, int]]] = {}


def _shared_inks(shading: tuple) -> dict[str, dict[tuple, int]]:
    if shading not in _INKS and len(_INKS) >= 256:
        _INKS.clear()  # a handful of looks in practice; bounded all the same
    return _INKS.setdefault(shading, {})


class Shader:
    """Colour seen by the camera: base colour x light (+ local lamp light), then haze.

    Callable as ``shader(color, z, glow)``; ``glow`` is the local lamp light at the
    spot (0 by day) or ``EMISSIVE`` for light sources, which are not darkened and
    cut through haze better.
    """

    def __init__(self, look: Look):
        self.light = look.light
        self.lamp = look.lamp
        self.haze = look.haze
        self.inv_vis = 1.0 / look.visibility
        self.veil = look.veil
        self.inks = _shared_inks((self.light, self.lamp, self.haze))
        """Drawing inks by image mode, then by ``key``, filled by ``Painter``. A key's colour
        depends on light, lamp and haze colour alone, so the inks are shared by all videos
        of a worker with the same three (every video of a condition), not made per video."""

    def key(self, color: Color, z: float, glow: float) -> tuple[Color, int, int]:
        """Quantized shading inputs: haze share in ``HAZE_STEPS``, lamp light in ``GLOW_STEPS``.

        The colour depends on the key alone, so caching by key is exact and the
        output does not depend on what was drawn before.
        """
        haze_q = int(HAZE_STEPS * (self.veil + (1.0 - self.veil) * (1.0 - math.exp(-z * self.inv_vis))))
        return (color, haze_q, -1 if glow == EMISSIVE else int(glow * GLOW_STEPS))

    def __call__(self, color: Color, z: float, glow: float = 0.0) -> Color:
        return self.color_of(self.key(color, z, glow))

    def color_of(self, key: tuple[Color, int, int]) -> Color:
        color, haze_q, glow_q = key
        a = (haze_q + 0.5) / HAZE_STEPS
        if glow_q < 0:
            a *= 0.75
            r, g, b = float(color[0]), float(color[1]), float(color[2])
        else:
            lr, lg, lb = self.light
            glow = glow_q / GLOW_STEPS
            if glow > 0.0:
                lr += self.lamp[0] * glow
                lg += self.lamp[1] * glow
                lb += self.lamp[2] * glow
            r, g, b = color[0] * lr, color[1] * lg, color[2] * lb
        hr, hg, hb = self.haze
        r += (hr - r) * a
        g += (hg - g) * a
        b += (hb - b) * a
        return (min(255, int(r)), min(255, int(g)), min(255, int(b)))


class Textures:
    """Per-worker precomputed layers for one frame size.

    Built from a fixed seed, so every worker holds the same layers and the output
    does not depend on which worker renders which video. Frames use random crops.
    """

    def __init__(self, width: int, height: int):
        rng = np.random.default_rng(0x5EED)
        self.width, self.height = width, height
        # Layers a little larger than a frame: each frame picks a crop at a random offset.
        tw, th = width + max(16, width // 8), height + max(16, height // 8)
        px = width / 640.0
        # Sensor noise n - off (n in [0, 2 off]) as two uint8 parts, up and down, one of
        # them 0 at every sample: adding it is a saturating add and a saturating subtract.
        noise: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for level, (sigma, off) in NOISE_LEVELS.items():
            g = rng.standard_normal(size=(th, tw, 3), dtype=np.float32) * sigma
            g = g.clip(-off, off) + off
            if level == 2:
                # Night sensor noise is partly luminance noise, common to all channels.
                g = 0.5 * g + 0.5 * g[..., :1]
            n = g.round().astype(np.uint8)
            noise[level] = (np.maximum(n, off) - np.uint8(off), np.uint8(off) - np.minimum(n, off))
        rain = self._streaks(rng, tw, th, px)
        snow = self._flakes(rng, tw, th, px)
        # Frame-sized crops made once: a frame picks one instead of cropping its own.
        offsets = [(int(rng.integers(0, tw - width + 1)), int(rng.integers(0, th - height + 1)))
                   for _ in range(_VARIANTS)]
        self.noise: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {
            level: [(up[oy : oy + height, ox : ox + width], down[oy : oy + height, ox : ox + width])
                    for ox, oy in offsets]
            for level, (up, down) in noise.items()
        }
        self.precipitation: dict[str, list[_Sparse]] = {
            name: [_Sparse(np.asarray(layer.crop((ox, oy, ox + width, oy + height)))) for ox, oy in offsets]
            for name, layer in (("rain", rain), ("snow", snow))
        }
        self._glow: dict[tuple[int, int, int], Image.Image] = {}
        self._tmp = np.empty((height, width, 3), np.uint8)
        self._out = np.empty((height, width, 3), np.uint8)

    @staticmethod
    def _streaks(rng: np.random.Generator, tw: int, th: int, px: float) -> Image.Image:
        mask = Image.new("L", (tw, th), 0)
        d = ImageDraw.Draw(mask)
        n = int(tw * th / 400)
        xs = rng.uniform(0, tw, n)
        ys = rng.uniform(0, th, n)
        lens = rng.uniform(8, 26, n) * px
        alphas = rng.integers(40, 120, n)
        slant = 0.22
        for x, y, ln, a in zip(xs, ys, lens, alphas, strict=True):
            d.line([(x, y), (x - slant * ln, y + ln)], fill=int(a), width=1)
        return mask.filter(ImageFilter.GaussianBlur(0.5 * px))

    @staticmethod
    def _flakes(rng: np.random.Generator, tw: int, th: int, px: float) -> Image.Image:
        mask = Image.new("L", (tw, th), 0)
        d = ImageDraw.Draw(mask)
        n = int(tw * th / 260)
        xs = rng.uniform(0, tw, n)
        ys = rng.uniform(0, th, n)
        rs = rng.choice([0.6, 0.9, 1.2, 1.8, 2.6], size=n, p=[0.35, 0.3, 0.2, 0.1, 0.05]) * px
        alphas = rng.integers(110, 235, n)
        for x, y, r, a in zip(xs, ys, rs, alphas, strict=True):
            d.ellipse((x - r, y - r, x + r, y + r), fill=int(a))
        return mask.filter(ImageFilter.GaussianBlur(0.6 * px))

    def glow(self, rx: int, ry: int, strength: float = 1.0) -> Image.Image:
        """A soft elliptic alpha sprite of size ``(2 rx + 1, 2 ry + 1)`` (cached)."""
        key = (max(1, rx), max(1, ry), round(strength * 20))
        sprite = self._glow.get(key)
        if sprite is None:
            sx = np.linspace(-1.0, 1.0, 2 * key[0] + 1, dtype=np.float32)
            sy = np.linspace(-1.0, 1.0, 2 * key[1] + 1, dtype=np.float32)
            d2 = sx[None, :] ** 2 + sy[:, None] ** 2
            a = np.exp(-d2 * 4.0) * (d2 < 1.0) * (key[2] / 20.0)
            sprite = Image.fromarray((np.clip(a, 0.0, 1.0) * 255).astype(np.uint8), "L")
            if len(self._glow) > 4096:
                self._glow.clear()
            self._glow[key] = sprite
        return sprite

    def add_precipitation(self, pixels: np.ndarray, kind: str, color: Color, rng: np.random.Generator) -> None:
        """Blend one of the ``kind`` ("rain", "snow") layers in ``color`` into ``pixels``, in place."""
        options = self.precipitation[kind]
        options[int(rng.integers(len(options)))].blend(pixels, color)

    def add_noise(self, src: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
        """``clip(src + noise)`` with one of the level's noise crops.

        Returns a buffer of this object that the next call overwrites: copy it (as
        ``Image.fromarray`` does) before then.
        """
        options = self.noise[level]
        up, down = options[int(rng.integers(len(options)))]
        tmp, out = self._tmp, self._out
        np.minimum(src, down, out=tmp)
        np.subtract(src, tmp, out=out)  # src - down, saturating at 0
        np.subtract(255, out, out=tmp)
        np.minimum(tmp, up, out=tmp)
        np.add(out, tmp, out=out)  # + up, saturating at 255
        return out


class _Sparse:
    """An alpha layer kept as its covered pixels only; blends exactly as ``Image.paste(color, mask)``."""

    def __init__(self, alpha: np.ndarray):
        covered = np.flatnonzero(alpha)
        # One entry per covered byte of an RGB frame: 1-D gathers are much faster than rows of 3.
        self.index = (covered[:, None] * 3 + np.arange(3)).ravel()
        self.alpha = np.repeat(alpha.ravel()[covered].astype(np.uint16), 3)
        self.inverse = np.uint16(255) - self.alpha
        self._ink: dict[Color, np.ndarray] = {}

    def blend(self, pixels: np.ndarray, color: Color) -> None:
        ink = self._ink.get(color)
        if ink is None:
            # PIL's rounded division by 255: (t + (t >> 8)) >> 8 with t = a (255 - m) + c m + 128.
            ink = self._ink[color] = self.alpha * np.tile(np.array(color, np.uint16), len(self.alpha) // 3) \
                + np.uint16(128)
        flat = pixels.reshape(-1)
        t = flat[self.index].astype(np.uint16)
        t *= self.inverse
        t += ink
        t += t >> 8
        t >>= 8
        flat[self.index] = t


def make_glare(look: Look, cam: Camera) -> Image.Image | None:
    """A low-sun glare layer (screen-blended over each frame), or None."""
    if look.sun is None:
        return None
    su, sv = look.sun
    # Rows and columns as 1-D terms broadcast over the frame (same float32 values as a full grid).
    dx = np.arange(cam.width, dtype=np.float32) - np.float32(su)
    dy = np.arange(cam.height, dtype=np.float32)[:, None] - np.float32(sv)
    d2 = (dx**2 + dy**2) / np.float32((0.22 * cam.width) ** 2)
    k = np.exp(d2 * np.float32(-6.0))
    k += np.exp(d2 * np.float32(-0.6)) * np.float32(0.45)
    k += np.exp(-(dy**2) / np.float32((0.01 * cam.height) ** 2) - np.abs(dx) / np.float32(0.5 * cam.width)) \
        * np.float32(0.35)
    np.clip(k, 0.0, 1.0, out=k)
    tint = np.array([255, 214, 160] if look.dusk else [255, 246, 225], dtype=np.float32)
    return Image.fromarray((k[..., None] * tint).astype(np.uint8), "RGB")


def apply_frame_effects(
    image: Image.Image, look: Look, textures: Textures, glare: Image.Image | None, rng: np.random.Generator
) -> Image.Image:
    """Precipitation, glare, fog softening and sensor noise, in that order.

    Precipitation and noise work on a numpy copy of the frame (one conversion each
    way, and none for a frame without either); glare and fog use PIL.
    """
    pixels = None
    if look.precipitation is not None:
        pixels = np.array(image)
        textures.add_precipitation(pixels, look.precipitation, look.precip_color, rng)
    if glare is not None or look.blur > 1.0:
        if pixels is not None:
            image, pixels = Image.fromarray(pixels), None
        if glare is not None:
            image = ImageChops.screen(image, glare)
        if look.blur > 1.0:
            w, h = image.size
            small = image.resize((round(w / look.blur), round(h / look.blur)), Image.Resampling.BILINEAR)
            image = small.resize((w, h), Image.Resampling.BILINEAR)
    if look.noise:
        pixels = textures.add_noise(np.asarray(image) if pixels is None else pixels, look.noise, rng)
    return image if pixels is None else Image.fromarray(pixels)
