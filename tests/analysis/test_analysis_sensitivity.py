import pytest

from axdnn.analysis import sensitivity_sweep
from axdnn.errors import InjectionError
from axdnn.report.resilience_plots import plot_sensitivity


def test_sweep_curves_ranking_and_plot(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    x, y = x[:150], y[:150]
    result = sensitivity_sweep(
        trained_cnn,
        x,
        y,
        ["features.0", "features.7", "fc"],
        magnitudes=(0.1, 3.0),
        repeats=2,
        bootstrap=50,
    )
    curves = result.curves
    assert set(curves) == {"features.0", "features.7", "fc"}
    for points in curves.values():
        assert points[0]["low"] <= points[0]["accuracy"] <= points[0]["high"]
        assert points[1]["accuracy"] <= points[0]["accuracy"] + 0.02  # more noise, no better
    assert curves["features.0"][1]["accuracy"] < result.baseline_accuracy - 0.1
    assert sorted(r["rank"] for r in result.ranking) == [1, 2, 3]
    assert [r["rank"] for r in result.ranking] == [1, 2, 3]
    assert all(r["rank_low"] <= r["rank"] <= r["rank_high"] for r in result.ranking)
    assert set(result.rank_stability) >= {
        "kendall_tau_mean",
        "kendall_tau_p05",
        "stable",
        "repeat_split_tau",
    }
    again = sensitivity_sweep(
        trained_cnn,
        x,
        y,
        ["features.0", "features.7", "fc"],
        magnitudes=(0.1, 3.0),
        repeats=2,
        bootstrap=50,
    )
    assert again.to_dict() == result.to_dict()
    png = plot_sensitivity(result.to_dict(), tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_template_needs_magnitude(trained_cnn, digits):
    x, y = digits.test.tensors
    with pytest.raises(InjectionError, match="magnitude"):
        sensitivity_sweep(trained_cnn, x[:4], y[:4], template="gaussian:0.1")
