"""Error heatmap and histogram PNGs of a multiplier."""

from __future__ import annotations

import numpy as np
from PIL import Image

from axdnn.arith import get_multiplier
from axdnn.report.multiplier_plots import plot_error_heatmap, plot_error_histogram


def _pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def test_heatmap_and_histogram_png(tmp_path):
    m = get_multiplier("drum:3@s6")
    heat = plot_error_heatmap(m, tmp_path / "sub" / "heat.png")
    hist = plot_error_histogram(m, tmp_path / "hist.png")
    for path in (heat, hist):
        px = _pixels(path)
        assert px.shape[0] > 100 and px.shape[1] > 100
        assert len(np.unique(px.reshape(-1, 3), axis=0)) > 10  # something was drawn


def test_exact_multiplier_heatmap_is_uniform_inside(tmp_path):
    """All-zero error: the heatmap's image area has a single colour, unlike an approximate one."""
    exact = _pixels(plot_error_heatmap(get_multiplier("exact@u4"), tmp_path / "e.png"))
    approx = _pixels(plot_error_heatmap(get_multiplier("trunc:4@u4"), tmp_path / "t.png"))
    h, w, _ = exact.shape
    crop = (slice(h // 3, h // 2), slice(w // 4, w // 2))
    assert len(np.unique(exact[crop].reshape(-1, 3), axis=0)) == 1
    assert len(np.unique(approx[crop].reshape(-1, 3), axis=0)) > 1
    plot_error_histogram(get_multiplier("exact@u4"), tmp_path / "eh.png")
