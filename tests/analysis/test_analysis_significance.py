import torch

from axdnn.analysis import filter_significance, mask_points, masked_filters, prune_comparison
from axdnn.inject import state_hash
from axdnn.report.resilience_plots import plot_filter_significance


def test_mask_points_and_masking(trained_cnn, digits):
    model, x = trained_cnn, digits.test.tensors[0][:8]
    assert mask_points(model, ["features.0", "features.3"], x[:1]) == {
        "features.0": "features.1",
        "features.3": "features.4",
    }
    seen = {}
    with masked_filters(model, {"features.0": [2, 5]}, x[:1]), torch.no_grad():
        hook = model.features[2].register_forward_hook(
            lambda m, a, out: seen.setdefault("relu", out)
        )
        model(x)
    hook.remove()
    assert seen["relu"][:, [2, 5]].abs().sum() == 0 and seen["relu"][:, 0].abs().sum() > 0


def test_significance_vs_l1_pruning_at_equal_counts(tmp_path, trained_cnn, digits):
    """The comparison the issue asks for (significance on val, accuracy on test). On this model
    significance-driven pruning does NOT robustly beat L1 (figures in docs/resilience.md), so
    the test checks the comparison itself: equal counts, the right filters, nothing leaked."""
    model = trained_cnn
    before = state_hash(model)
    vx, vy = digits.val.tensors
    tx, ty = digits.test.tensors
    result = filter_significance(model, vx, vy, threshold=0.01, seed=0)
    assert len(result.filters) == 16 + 32 + 64
    assert any(f.significant for f in result.filters)
    assert not all(f.significant for f in result.filters)
    for f in result.filters:
        assert f.low <= f.accuracy <= f.high and f.significant == (f.drop >= 0.01)
    rows = prune_comparison(model, result, tx, ty, fractions=(0.125, 0.25, 0.375, 0.5))
    assert [r["pruned_filters"] for r in rows] == [14, 28, 42, 56]
    for r in rows:
        assert 0 <= r["significance_accuracy"] <= 1 and 0 <= r["l1_accuracy"] <= 1
    # pruning more filters by L1 never helps much on this net; pruning none changes nothing
    assert rows[0]["l1_accuracy"] >= rows[-1]["l1_accuracy"]
    assert prune_comparison(model, result, tx, ty, fractions=(0.0,))[0]["advantage"] == 0
    assert state_hash(model) == before
    png = plot_filter_significance(result.to_dict(), tmp_path / "f.png")
    assert png.stat().st_size > 1000
