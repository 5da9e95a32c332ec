"""The synthetic driving world: BDD100K det_20 layout, determinism, atomicity, statistics."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from bddengine.bdd.categories import ATTRIBUTE_VALUES, CLASSES, IGNORED_NAMES, UNDEFINED
from bddengine.synth import SynthResult, generate_world, placement
from bddengine.synth import world as world_module
from bddengine.synth.attributes import attribute_marginals, make_conditions, sample_conditions
from bddengine.synth.draws import uniform
from bddengine.synth.geometry import Camera
from bddengine.synth.look import NOISE_LEVELS, Textures, _Sparse
from bddengine.synth.scene import sample_layout
from bddengine.synth.world import render_video

W, H = 160, 90
NAME_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}$")
SMALL = {"n_train": 18, "n_val": 6, "width": W, "height": H, "frames_per_video": 3, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthResult]:
    root = tmp_path_factory.mktemp("synth") / "world"
    return root, generate_world(root, workers=1, **SMALL)


def _load(root: Path, split: str) -> list[dict]:
    return json.loads((root / "labels" / "det_20" / f"det_{split}.json").read_text())


def test_layout_and_counts(tiny: tuple[Path, SynthResult]) -> None:
    root, result = tiny
    assert result.root == root
    assert result.n_frames == {"train": 18, "val": 6}
    assert result.n_videos == 8
    for split, n in (("train", 18), ("val", 6)):
        frames = _load(root, split)
        assert len(frames) == n
        images = sorted(p.name for p in (root / "images" / "100k" / split).iterdir())
        assert images == sorted(f["name"] for f in frames)
        with Image.open(root / "images" / "100k" / split / images[0]) as im:
            assert im.size == (W, H) and im.format == "JPEG"
    meta = json.loads((root / "synth_meta.json").read_text())
    assert meta["seed"] == 42 and meta["params"]["width"] == W
    assert meta["counts"]["boxes"] == result.n_boxes == sum(len(f.get("labels", [])) for s in ("train", "val")
                                                           for f in _load(root, s))
    assert not list(root.parent.glob("world.tmp-*"))


def test_records_follow_det20_schema(tiny: tuple[Path, SynthResult]) -> None:
    root, _ = tiny
    valid_categories = set(CLASSES) | set(IGNORED_NAMES)
    names = set()
    for split in ("train", "val"):
        ids = []
        for f in _load(root, split):
            assert set(f) <= {"name", "videoName", "frameIndex", "attributes", "timestamp", "labels"}
            assert NAME_RE.match(f["name"].removesuffix(".jpg")) and f["name"].endswith(".jpg")
            assert NAME_RE.match(f["videoName"])
            assert f["name"] not in names
            names.add(f["name"])
            assert isinstance(f["timestamp"], int)
            for key in ("weather", "timeofday", "scene"):
                assert f["attributes"][key] in ATTRIBUTE_VALUES[key]
            for label in f.get("labels", []):
                assert set(label) == {"id", "category", "attributes", "box2d"}
                ids.append(int(label["id"]))
                assert label["category"] in valid_categories
                attrs = label["attributes"]
                assert isinstance(attrs["occluded"], bool) and isinstance(attrs["truncated"], bool)
                if label["category"] == "traffic light":
                    assert attrs["trafficLightColor"] in ("R", "Y", "G", "NA")
                else:
                    assert attrs["trafficLightColor"] == "NA"
                assert set(attrs) <= {"occluded", "truncated", "trafficLightColor", "crowd"}
                b = label["box2d"]
                assert 0 <= b["x1"] < b["x2"] <= W and 0 <= b["y1"] < b["y2"] <= H
                assert b["x2"] - b["x1"] >= 4 and b["y2"] - b["y1"] >= 4
        assert ids == list(range(len(ids)))  # one running id per file, as det_20


def test_frames_of_a_video_share_scene_and_attributes(tiny: tuple[Path, SynthResult]) -> None:
    root, _ = tiny
    videos: dict[str, list[dict]] = defaultdict(list)
    for split in ("train", "val"):
        for f in _load(root, split):
            videos[f["videoName"]].append(f)
    assert len(videos) == 8
    for frames in videos.values():
        assert [f["frameIndex"] for f in frames] == list(range(len(frames)))
        assert len({json.dumps(f["attributes"], sort_keys=True) for f in frames}) == 1
        assert len({f["name"] for f in frames}) == len(frames)
        assert [f["timestamp"] for f in frames] == sorted({f["timestamp"] for f in frames})


def test_same_seed_same_bytes_any_workers(tiny: tuple[Path, SynthResult], tmp_path: Path) -> None:
    root, _ = tiny
    again = tmp_path / "again"
    generate_world(again, workers=2, **SMALL)
    for rel in ("labels/det_20/det_train.json", "labels/det_20/det_val.json"):
        assert (root / rel).read_bytes() == (again / rel).read_bytes()
    for split in ("train", "val"):
        for p in (root / "images" / "100k" / split).iterdir():
            assert p.read_bytes() == (again / "images" / "100k" / split / p.name).read_bytes()
    other = tmp_path / "other"
    generate_world(other, workers=1, seed=7, **SMALL)
    assert (root / "labels/det_20/det_train.json").read_bytes() != (other / "labels/det_20/det_train.json").read_bytes()


def test_refuses_to_overwrite_and_replaces_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "world"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_world(root, workers=1, **SMALL)
    assert (root / "keep.txt").read_text() == "mine"
    with pytest.raises(world_module.NotAWorldError, match="keep.txt"):  # not a world it made
        generate_world(root, workers=1, overwrite=True, **SMALL)
    assert (root / "keep.txt").read_text() == "mine"
    (root / "keep.txt").unlink()
    generate_world(root, workers=1, **SMALL)
    generate_world(root, workers=1, overwrite=True, seed=7, **SMALL)  # its own world is replaced
    assert json.loads((root / "synth_meta.json").read_text())["seed"] == 7
    assert (root / "labels" / "det_20" / "det_train.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def test_a_world_with_a_user_file_added_is_not_replaced(tmp_path: Path) -> None:
    root = tmp_path / "world"
    generate_world(root, workers=1, **SMALL)
    assert world_module.foreign_files(root) == []
    (root / "images" / "100k" / "train" / "notes.txt").write_text("mine")
    (root / "photos").mkdir()
    assert world_module.foreign_files(root) == ["photos", "images/100k/train/notes.txt"]
    with pytest.raises(world_module.NotAWorldError):
        generate_world(root, workers=1, overwrite=True, **SMALL)
    assert (root / "images" / "100k" / "train" / "notes.txt").read_text() == "mine"


def test_temp_trees_of_dead_runs_are_cleaned_at_the_next_start(tmp_path: Path) -> None:
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"world.tmp-{dead.pid}-0000abcd"
    (stale / "images").mkdir(parents=True)
    live = tmp_path / f"world.tmp-{os.getpid() + 0}-0000abce"  # this process: never treated as dead
    live.mkdir()
    generate_world(tmp_path / "world", workers=1, **SMALL)
    assert not stale.exists() and live.exists()


def test_failure_leaves_no_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = world_module._render_job

    def flaky(args):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(args)

    monkeypatch.setattr(world_module, "_render_job", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_world(tmp_path / "world", workers=1, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_parameters_all_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        generate_world(tmp_path / "w", n_train=-1, n_val=0, width=8, height=90, frames_per_video=0, jpeg_quality=0)
    message = str(err.value)
    for key in ("n_train", "width", "frames_per_video", "jpeg_quality"):
        assert key in message
    assert not (tmp_path / "w").exists()


def test_attribute_marginals_match_bdd_table() -> None:
    n = 20_000
    rng = np.random.default_rng(123)
    draws = [sample_conditions(rng) for _ in range(n)]
    for key, target in attribute_marginals().items():
        counts = Counter(getattr(d, key) for d in draws)
        assert set(counts) <= set(ATTRIBUTE_VALUES[key])
        for value, p in target.items():
            tolerance = 4.5 * math.sqrt(p * (1 - p) / n) + 1e-3
            assert abs(counts[value] / n - p) <= tolerance, (key, value, counts[value] / n, p)
    assert all(UNDEFINED not in (d.look_weather, d.look_timeofday, d.look_scene) for d in draws)
    # Every video whose label is undefined is still rendered with a concrete condition.
    assert any(d.weather == UNDEFINED for d in draws)


def _gray(weather: str, timeofday: str, scene: str, seed: int) -> np.ndarray:
    frames = render_video(make_conditions(weather, timeofday, scene), width=320, height=180, n_frames=1,
                          layout_rng=np.random.default_rng(seed), look_rng=np.random.default_rng(seed + 1),
                          frame_rng=np.random.default_rng(seed + 2))
    image, _ = next(frames)
    return np.asarray(image.convert("L"), dtype=np.float32)


def _spread(gray: np.ndarray) -> float:
    """Median absolute deviation: contrast of the bulk of the image, blind to a few bright lamps."""
    return float(np.median(np.abs(gray - np.median(gray))))


@pytest.mark.parametrize("scene", ["highway", "city street"])
def test_fog_and_night_have_less_contrast_than_clear_day(scene: str) -> None:
    for seed in (1, 2, 3):
        day = _gray("clear", "daytime", scene, seed)
        fog = _gray("foggy", "daytime", scene, seed)
        assert fog.std() < 0.8 * day.std()
        assert _spread(_gray("clear", "night", scene, seed)) < 0.85 * _spread(day)
        assert _spread(_gray("foggy", "night", scene, seed)) < 0.75 * _spread(day)
        assert _gray("clear", "night", scene, seed).mean() < 0.6 * day.mean()


def test_fog_hides_far_objects_from_the_labels() -> None:
    def boxes(weather: str) -> int:
        n = 0
        for seed in range(4):
            frames = render_video(make_conditions(weather, "daytime", "highway"), width=320, height=180, n_frames=1,
                                  layout_rng=np.random.default_rng(seed), look_rng=np.random.default_rng(seed),
                                  frame_rng=np.random.default_rng(seed))
            n += len(next(frames)[1])
        return n

    assert boxes("foggy") < boxes("clear")


# The narrowest view make_camera draws: longest focal length, vanishing point off-centre.
NARROW = Camera(width=640, height=360, f=0.8 * 640 * 1.06, cx=640 * 0.46, horizon=360 * 0.46)


@pytest.mark.parametrize("z_max", [45.0, 55.0, 75.0])
def test_wide_walk_band_leaves_a_depth_range(z_max: float) -> None:
    """Regression: `ValueError: high - low < 0` in ``_people`` at demo size.

    A parking lot's walk band spans 120 m; its ends are outside the image even at
    the farthest depth people stand at, so the in-view depth range was empty.
    """
    layout = sample_layout("parking lot", NARROW, np.random.default_rng(0))
    band = layout.walk_bands[0]
    assert placement._x_in_view(layout, z_max) < band[1]  # the bad case is there
    half = min(NARROW.cx, NARROW.width - NARROW.cx)
    rng = np.random.default_rng(1)
    for lo, hi in (band, (band[1] - 5.0, band[1]), (band[0], band[0] + 5.0)):
        for _ in range(50):
            x = placement._x_on_band(layout, (lo, hi), z_max, rng)
            assert lo <= x <= hi or abs(x) == pytest.approx(placement._x_in_view(layout, z_max))
            assert 0.9 * abs(x) * NARROW.f / half <= z_max * (1 + 1e-9)  # in view before z_max
            z = rng.uniform(placement._z_in_view(layout, x, z_max), z_max)
            assert abs(NARROW.u(x, z) - NARROW.cx) <= half / 0.9 * (1 + 1e-9)


def test_parking_lot_people_stand_in_view() -> None:
    for seed in range(150):
        rng = np.random.default_rng(seed)
        layout = sample_layout("parking lot", NARROW, rng)
        things = placement.sample_things(layout, rng)
        on_band = [th for th in things if th.kind in ("pedestrian", "other person")
                   or (th.kind == "two-wheeler" and not th.data["ridden"])]
        half = min(NARROW.cx, NARROW.width - NARROW.cx)
        for th in on_band:
            assert abs(NARROW.u(th.x, th.z) - NARROW.cx) <= half / 0.9 * (1 + 1e-9), (seed, th.kind, th.x, th.z)


def test_uniform_draws_what_numpy_draws() -> None:
    ours, numpy = np.random.default_rng(5), np.random.default_rng(5)
    for low, high in [(0, 9), (-0.12, 0.12), (5.0, 10.0), (2.5, 2.5), (-60.0, 60.0)] * 20:
        assert uniform(ours, low, high) == float(numpy.uniform(low, high))
    assert ours.random() == numpy.random()  # the streams stay in step
    with pytest.raises(ValueError, match="high - low < 0"):
        uniform(ours, 1.0, 0.5)


def test_rain_and_noise_change_pixels_as_pil_blends_do() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    mask[mask < 128] = 0
    pasted = Image.fromarray(pixels)
    pasted.paste((196, 200, 210), (0, 0), Image.fromarray(mask))
    blended = pixels.copy()
    _Sparse(mask).blend(blended, (196, 200, 210))
    assert np.array_equal(blended, np.asarray(pasted))

    textures = Textures(40, 24)
    for level, (_, off) in NOISE_LEVELS.items():
        up, down = textures.noise[level][int(np.random.default_rng(3).integers(8))]
        noise = Image.fromarray((up.astype(np.int16) - down + off).astype(np.uint8))
        expected = ImageChops.add(Image.fromarray(pixels), noise, 1.0, -off)
        assert np.array_equal(textures.add_noise(pixels, level, np.random.default_rng(3)), np.asarray(expected))


def test_weather_boost_raises_the_share_of_a_rare_condition() -> None:
    from bddengine.synth.attributes import _weather_time_joint

    pairs, base = _weather_time_joint()
    _, boosted = _weather_time_joint({"foggy": 30})
    share = lambda p: sum(q for (w, _), q in zip(pairs, p, strict=True) if w == "foggy")  # noqa: E731
    assert share(base) < 0.003 and 0.04 < share(boosted) < 0.07
    assert abs(boosted.sum() - 1) < 1e-12
    with pytest.raises(ValueError, match="sunny"):
        _weather_time_joint({"sunny": 2})


def test_synth_stage_regenerates_a_world_made_with_other_parameters(tmp_path: Path) -> None:
    from bddengine.config import load_config
    from bddengine.stages import synth as synth_stage

    cfg_args = [f"data.root={tmp_path / 'w'}", "synth.n_train=4", "synth.n_val=2", "synth.width=96",
                "synth.height=54", "synth.workers=1"]
    cfg = load_config(Path("configs/smoke.yaml"), cfg_args)
    first = synth_stage.run(cfg, progress=False)
    assert not first.skipped
    assert synth_stage.run(cfg, progress=False).skipped  # same parameters: nothing to do
    boosted = load_config(Path("configs/smoke.yaml"), [*cfg_args, "synth.weather_boost={foggy: 50}"])
    again = synth_stage.run(boosted, progress=False)
    assert not again.skipped
    meta = json.loads((tmp_path / "w" / "synth_meta.json").read_text())
    assert meta["params"]["weather_boost"] == {"foggy": 50}


def test_classes_keeps_some_labels_and_turns_other_objects_into_ignored_regions(tmp_path: Path) -> None:
    from bddengine.synth.world import restrict_labels

    labels = [{"category": c, "box2d": {}} for c in
              ("car", "bus", "rider", "traffic sign", "traffic light", "pedestrian", "trailer")]
    kept = [lab["category"] for lab in restrict_labels(labels, ("car", "pedestrian"))]
    assert kept == ["car", "other vehicle", "other person", "pedestrian", "trailer"]

    generate_world(tmp_path / "w", n_train=12, n_val=0, width=160, height=90, frames_per_video=2, seed=3,
                   workers=1, progress=False, classes=["car", "pedestrian"])
    frames = json.loads((tmp_path / "w/labels/det_20/det_train.json").read_text())
    cats = {lab["category"] for f in frames for lab in f.get("labels", [])}
    assert "car" in cats and cats <= {"car", "pedestrian", "other vehicle", "other person", "trailer"}
    with pytest.raises(ValueError, match="bike"):
        generate_world(tmp_path / "x", n_train=2, n_val=0, classes=["bike"], progress=False)
