"""SDSS interpolates where samples agree and computes the rest exactly; SFMA merges similar
input maps; both count what they did."""

import torch

from axdnn.dynamic.accounting import Ledger
from axdnn.dynamic.chain import Affine
from axdnn.dynamic.sdss import Sdss
from axdnn.dynamic.sfma import Sfma


def _conv(c=3, o=4, seed=0, stride=1, padding=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(o, c, 3, 3, generator=g)
    return Affine(
        "c",
        "conv",
        w,
        torch.randn(o, generator=g),
        True,
        (stride, stride),
        (padding, padding),
        (1, 1),
    )


def _run(mech, x):
    ledger = Ledger(len(x))
    ledger.layer(mech.name, mech.mechanism, mech.layer.macs_per_input(tuple(x.shape[1:])))
    y = mech(x, ledger, torch.arange(len(x)))
    return y, ledger.report().layers[0]


def test_sdss_at_zero_tolerance_is_exact_on_smooth_and_rough_inputs():
    layer = _conv()
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.ones(1, 3, 9, 9), torch.randn(1, 3, 9, 9, generator=g)])
    y, effort = _run(Sdss(layer, 0.0), x)
    # the constant input's interior is interpolated exactly; the random one is computed
    y_dense = layer.dense(x)
    assert torch.allclose(y[1], y_dense[1], atol=1e-5)
    assert torch.allclose(y[0, :, 1:-1, 1:-1], y_dense[0, :, 1:-1, 1:-1], atol=1e-5)
    assert 0 < effort.skipped_macs < effort.dense_macs
    assert effort.overhead["interpolation"] > 0 and effort.overhead["gathers"] > 0


def test_sdss_large_tolerance_interpolates_every_cell():
    layer = _conv(padding=0)
    x = torch.randn(2, 3, 10, 10)
    y, effort = _run(Sdss(layer, 1e9), x)
    ho = layer.out_hw((10, 10))
    samples = ((ho[0] + 1) // 2) * ((ho[1] + 1) // 2)
    assert effort.executed_macs == 2 * samples * 27 * 4
    assert effort.overhead["gathers"] == 0 and y.shape == (2, 4, *ho)


def test_sfma_merges_identical_maps_exactly_and_runs_fewer_channels():
    layer = _conv(c=4)
    base = torch.randn(2, 2, 6, 6)
    x = torch.cat([base, base], 1)  # channels 2, 3 repeat channels 0, 1
    y, effort = _run(Sfma(layer, 0.0), x)
    assert torch.allclose(y, layer.dense(x), atol=1e-5)
    assert effort.executed_macs == effort.dense_macs // 2
    assert effort.overhead["gathers"] > 0


def test_sfma_keeps_distinct_maps_apart():
    layer = _conv(c=3)
    x = torch.randn(1, 3, 6, 6)
    y, effort = _run(Sfma(layer, 0.01), x)
    assert torch.allclose(y, layer.dense(x), atol=1e-5) and effort.skipped_macs == 0
