"""Frame attributes of a synthetic video: what the label says and what the image shows.

The label values are BDD100K's native ``weather``/``timeofday``/``scene`` values,
drawn so that their marginal frequencies follow the det_20 train table
(docs: bdd100k-facts.md). "undefined" is a label, not a look: a video labelled
``undefined`` is still rendered with some concrete condition, chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bddengine.bdd.categories import ATTRIBUTE_VALUES, UNDEFINED

WEATHER_COUNTS: dict[str, int] = {
    "clear": 37_344,
    "overcast": 8_770,
    "undefined": 8_119,
    "snowy": 5_549,
    "rainy": 5_070,
    "partly cloudy": 4_881,
    "foggy": 130,
}
"""det_20 train frame counts per weather value."""

TIMEOFDAY_COUNTS: dict[str, int] = {
    "daytime": 36_728,
    "night": 27_971,
    "dawn/dusk": 5_027,
    "undefined": 137,
}
"""det_20 train frame counts per timeofday value."""

SCENE_COUNTS: dict[str, int] = {
    "city street": 43_516,
    "highway": 17_379,
    "residential": 8_074,
    "parking lot": 377,
    "undefined": 361,
    "tunnel": 129,
    "gas stations": 27,
}
"""det_20 train frame counts per scene value."""

# In BDD100K "undefined" weather is mostly night footage where the weather cannot
# be told. We move this share of the undefined-weather mass from daytime to night
# (and the same mass of clear weather from night to daytime), which keeps every
# marginal exact while making the joint a little more realistic than independence.
_UNDEFINED_WEATHER_NIGHT_SHIFT = 0.6

# What an "undefined" label is rendered as (weights over concrete looks).
_UNDEFINED_WEATHER_LOOKS: dict[str, float] = {
    "clear": 0.45,
    "overcast": 0.3,
    "partly cloudy": 0.1,
    "rainy": 0.15,
}
_UNDEFINED_TIME_LOOKS: dict[str, float] = {"daytime": 0.55, "night": 0.35, "dawn/dusk": 0.1}
_UNDEFINED_SCENE_LOOKS: dict[str, float] = {"city street": 0.5, "highway": 0.25, "residential": 0.25}


@dataclass(frozen=True)
class VideoConditions:
    """The attributes of one video: label values and the concrete look they render as.

    Attributes:
        weather: label value, one of ``ATTRIBUTE_VALUES["weather"]``.
        timeofday: label value, one of ``ATTRIBUTE_VALUES["timeofday"]``.
        scene: label value, one of ``ATTRIBUTE_VALUES["scene"]``.
        look_weather: the weather the image shows (never ``"undefined"``).
        look_timeofday: the time of day the image shows (never ``"undefined"``).
        look_scene: the scene the image shows (never ``"undefined"``).
    """

    weather: str
    timeofday: str
    scene: str
    look_weather: str
    look_timeofday: str
    look_scene: str

    def label_attributes(self) -> dict[str, str]:
        """The ``attributes`` dict of a det_20 frame record."""
        return {"weather": self.weather, "timeofday": self.timeofday, "scene": self.scene}


def attribute_marginals() -> dict[str, dict[str, float]]:
    """Target marginal probability of every attribute value (det_20 train table)."""
    out: dict[str, dict[str, float]] = {}
    for key, counts in (
        ("weather", WEATHER_COUNTS),
        ("timeofday", TIMEOFDAY_COUNTS),
        ("scene", SCENE_COUNTS),
    ):
        total = sum(counts.values())
        out[key] = {value: counts[value] / total for value in ATTRIBUTE_VALUES[key]}
    return out


def _weather_time_joint(weather_boost: dict[str, float] | None = None) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Joint distribution of (weather, timeofday) with the table's marginals.

    ``weather_boost`` multiplies the probability of the named weather values (then
    renormalises): a small world can hold enough of a rare condition to evaluate it.
    """
    marg = attribute_marginals()
    weathers = list(ATTRIBUTE_VALUES["weather"])
    times = list(ATTRIBUTE_VALUES["timeofday"])
    pw = np.array([marg["weather"][w] for w in weathers])
    pt = np.array([marg["timeofday"][t] for t in times])
    joint = np.outer(pw, pt)
    iu, ic = weathers.index(UNDEFINED), weathers.index("clear")
    iday, inight = times.index("daytime"), times.index("night")
    shift = _UNDEFINED_WEATHER_NIGHT_SHIFT * joint[iu, iday]
    joint[iu, iday] -= shift
    joint[iu, inight] += shift
    joint[ic, iday] += shift
    joint[ic, inight] -= shift
    for name, factor in (weather_boost or {}).items():
        if name not in weathers or factor < 0:
            raise ValueError(f"weather_boost: {name!r}: {factor} (expected one of {weathers}, factor >= 0)")
        joint[weathers.index(name), :] *= factor
    pairs = [(w, t) for w in weathers for t in times]
    return pairs, joint.ravel() / joint.sum()


def weather_time_cdf(weather_boost: dict[str, float] | None = None) -> np.ndarray:
    """Cumulative distribution over ``(weather, timeofday)`` pairs, for `sample_conditions`."""
    return np.cumsum(_weather_time_joint(weather_boost)[1])


_PAIRS, _PAIR_P = _weather_time_joint()
_PAIR_CDF = np.cumsum(_PAIR_P)
_SCENES = list(ATTRIBUTE_VALUES["scene"])
_SCENE_CDF = np.cumsum([attribute_marginals()["scene"][s] for s in _SCENES])


def _index(cdf: np.ndarray, u: float) -> int:
    return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(cdf) - 1)


def _choose(u: float, weights: dict[str, float]) -> str:
    keys = list(weights)
    return keys[_index(np.cumsum([weights[k] for k in keys]), u)]


def sample_conditions(rng: np.random.Generator, pair_cdf: np.ndarray | None = None) -> VideoConditions:
    """Draw the attributes of one video.

    Weather and time of day follow a joint whose marginals are the det_20 train
    table; the scene is independent of both. Undefined labels get a concrete look.

    Args:
        rng: the video's generator; the same number of draws is consumed whatever the outcome.
        pair_cdf: weather x timeofday distribution from `weather_time_cdf` (default: BDD's).

    Returns:
        The video's label values and look.
    """
    weather, timeofday = _PAIRS[_index(_PAIR_CDF if pair_cdf is None else pair_cdf, rng.random())]
    scene = _SCENES[_index(_SCENE_CDF, rng.random())]
    u_weather, u_time, u_scene = rng.random(3)  # always drawn: the stream does not depend on labels
    look_weather, look_time, look_scene = weather, timeofday, scene
    if weather == UNDEFINED:
        look_weather = _choose(u_weather, _UNDEFINED_WEATHER_LOOKS)
    if timeofday == UNDEFINED:
        look_time = _choose(u_time, _UNDEFINED_TIME_LOOKS)
    if scene == UNDEFINED:
        look_scene = _choose(u_scene, _UNDEFINED_SCENE_LOOKS)
    return VideoConditions(weather, timeofday, scene, look_weather, look_time, look_scene)


def make_conditions(weather: str, timeofday: str, scene: str) -> VideoConditions:
    """Conditions whose look equals the label (for tests and sample images)."""
    for key, value in (("weather", weather), ("timeofday", timeofday), ("scene", scene)):
        if value not in ATTRIBUTE_VALUES[key] or value == UNDEFINED:
            raise ValueError(f"{key}={value!r}: expected one of {ATTRIBUTE_VALUES[key][:-1]}")
    return VideoConditions(weather, timeofday, scene, weather, timeofday, scene)
