"""The saliency figure: EigenCAM on a YOLOv8n built from its YAML, two models side by side, one row per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytorch_grad_cam")

from bddengine.integrations.ultralytics import eigencam_maps  # noqa: E402
from bddengine.report.figures import plot_saliency  # noqa: E402


def test_eigencam_figure_has_two_columns_and_a_row_per_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(3):
        p = tmp_path / f"f{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)).save(p)
        frames.append(p)
    maps = eigencam_maps("yolov8n.yaml", frames, imgsz=64)  # an untrained YOLOv8n: no weights needed
    assert len(maps) == 3
    for rgb, heat in maps:
        assert rgb.shape == (32, 64, 3) and heat.shape == (32, 64)  # 64 wide, height rounded to the stride
        assert 0.0 <= heat.min() and heat.max() <= 1.0 + 1e-6 and np.isfinite(heat).all()

    out = tmp_path / "gradcam.png"
    plot_saliency([(p.stem, a, b) for p, a, b in zip(frames, maps, maps[::-1], strict=True)], out,
                  left="iteration 0", right="iteration 1")
    with Image.open(out) as im:
        w, h = im.size
    # 2 columns of 2.4 in, and 3 rows of 2.4 in x (32 / 64) plus the titles, at 150 dpi
    assert (w, h) == (round((2 * 2.4 + 0.2) * 150), round((3 * 2.4 * 32 / 64 + 0.55) * 150))

    from bddengine.plotting import plt

    shapes = []
    real = plt.subplots

    def spy(*args, **kwargs):
        shapes.append(args[:2])
        return real(*args, **kwargs)

    monkeypatch.setattr(plt, "subplots", spy)
    plot_saliency([(p.stem, a, a) for p, a in zip(frames[:2], maps, strict=False)], out, left="a", right="b")
    assert shapes == [(2, 2)]  # N rows x 2 columns
