"""Reduced-precision training: truncated fp16 storage (PCM), stochastic rounding, memory pricing."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from axdnn.errors import ConfigError
from axdnn.formats import parse_format
from axdnn.train import TrainConfig, fit
from axdnn.train.memory import price_traffic
from axdnn.train.precision import PrecisionSession, TensorRounder, TrainPrecision


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    )


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
    return TensorDataset(x, y)


def train(data, precision, epochs=2, **kwargs):
    model = tiny_model()
    session = PrecisionSession(model, precision) if precision is not None else None
    config = TrainConfig(epochs=epochs, lr=1e-2, batch_size=32, schedule="none")
    history = fit(model, data, data, 10, config, restore_best=False, session=session, **kwargs)
    return model, session, history


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_truncation_by_zero_equals_fp16_storage_bit_for_bit(data, monkeypatch):
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(4000, generator=g) * 10.0**e for e in range(-9, 6)])
    packed = TensorRounder("fp16,trunc=0", "none", g).pack(x)
    assert packed.dtype == torch.float16
    assert torch.equal(packed.view(torch.int16), x.half().view(torch.int16))

    model, _, _ = train(data, TrainPrecision.truncated(0))
    monkeypatch.setattr(TensorRounder, "round", lambda self, t: t.half().to(t.dtype))
    monkeypatch.setattr(TensorRounder, "pack", lambda self, t: t.half())
    cast, _, _ = train(data, TrainPrecision.truncated(0))
    assert same_state(model, cast)
    exact, _, _ = train(data, None)
    assert not same_state(model, exact)  # fp16 storage changed something


@pytest.mark.parametrize("k", [2, 4, 8])
def test_truncation_zeroes_k_mantissa_lsbs(k):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5000, generator=g)
    rounder = TensorRounder(f"fp16,trunc={k}", "none", g)
    bits = rounder.pack(x).view(torch.int16).to(torch.int32)
    assert rounder.bits == 16 - k
    assert int((bits & (2**k - 1)).abs().max()) == 0
    assert (rounder.round(x).abs() <= x.half().float().abs()).all()  # toward zero


def test_stored_weights_hold_the_format_without_master_copy(data):
    model, _, _ = train(data, TrainPrecision.truncated(6, master_weights=False), epochs=1)
    for p in model.parameters():
        bits = p.detach().half().view(torch.int16).to(torch.int32)
        assert torch.equal(p.detach().half().float(), p.detach())
        assert int((bits & 63).abs().max()) == 0


def test_memory_saving_follows_the_stored_width(data):
    _, session, _ = train(data, TrainPrecision.truncated(4), epochs=1)
    energy = price_traffic(session.traffic, session.reference)
    assert energy.saved_vs_fp32 == pytest.approx(1 - 12 / 32)
    assert energy.saved_vs_fp16 == pytest.approx(1 - 12 / 16)
    assert energy.steps == 3
    assert all(v > 0 for v in energy.bytes_per_step.values())
    # every saved activation of the conv (its input) and the ReLU/Linear is counted, twice
    assert session.traffic.kinds["activations"].values > 0
    _, plain, _ = train(data, TrainPrecision(), epochs=1)
    assert price_traffic(plain.traffic, plain.reference).saved_vs_fp32 == 0


def test_per_layer_override_keeps_one_layer_exact(data):
    precision = TrainPrecision.truncated(8, layers={"3": {"activations": "fp32"}})
    assert precision.for_layer("3").activations == "fp32"
    assert precision.for_layer("0").activations == "fp16,trunc=8"
    _, mixed, _ = train(data, precision, epochs=1)
    _, full, _ = train(data, TrainPrecision.truncated(8), epochs=1)
    assert mixed.traffic.kinds["activations"].bits > full.traffic.kinds["activations"].bits
    assert mixed.traffic.kinds["weights"].bits == full.traffic.kinds["weights"].bits


def test_loss_falls_with_truncated_storage(data):
    _, _, history = train(data, TrainPrecision.truncated(4), epochs=4)
    losses = [e.train_loss for e in history.epochs]
    assert losses[-1] < losses[0]


def test_stochastic_rounding_training_is_reproducible(data):
    spec = "fxp:s1.7,round=stochastic"
    a, _, _ = train(data, TrainPrecision.uniform(spec, scaling="tensor", seed=3), epochs=1)
    b, _, _ = train(data, TrainPrecision.uniform(spec, scaling="tensor", seed=3), epochs=1)
    c, _, _ = train(data, TrainPrecision.uniform(spec, scaling="tensor", seed=4), epochs=1)
    assert same_state(a, b)
    assert not same_state(a, c)


def _bias_within_bound(spec: str, x: torch.Tensor, step: torch.Tensor, repeats: int) -> bool:
    """Whether the mean of `repeats` roundings of every element lies within 5 standard errors of
    the worst case (step / 2 per rounding) of x."""
    rounder = TensorRounder(spec, "none", torch.Generator().manual_seed(0))
    total = torch.zeros_like(x, dtype=torch.float64)
    for _ in range(repeats):
        total += rounder.round(x).double()
    mean = total / repeats
    bound = 5 * step / (2 * math.sqrt(repeats))
    return bool(((mean - x.double()).abs() <= bound).all())


def test_stochastic_rounding_is_unbiased_and_nearest_is_not():
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(500, generator=g) * 1.8 - 0.9).float()
    step = torch.full_like(x, 2**-7, dtype=torch.float64)
    assert _bias_within_bound("fxp:s1.7,round=stochastic", x, step, 2000)
    assert not _bias_within_bound("fxp:s1.7", x, step, 2000)
    # fp8: the grid step is relative to each value's binade (fixed below the normals, 2^-6)
    exp = torch.floor(torch.log2(x.abs().double())).clamp(min=-6)
    fp8_step = 2.0 ** (exp - 3)
    assert _bias_within_bound("fp8_e4m3,round=stochastic", x, fp8_step, 2000)
    assert not _bias_within_bound("fp8_e4m3", x, fp8_step, 2000)


def test_tensor_scaling_serves_any_magnitude():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1000, generator=g) * 1e-4
    rounder = TensorRounder("fxp:s1.7", "tensor", g)
    y = rounder.round(x)
    assert (y != 0).float().mean() > 0.9
    assert (y - x).abs().max() <= x.abs().max() * 2 * 2**-7
    assert (TensorRounder("fxp:s1.7", "none", g).round(x) == 0).all()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"weights": "fp17"}, "fp17"),
        ({"scaling": "layer"}, "'layer'"),
        ({"layers": {"fc*": {"acts": "fp16"}}}, "'acts'"),
        ({"layers": {"fc*": {"weights": "fp16,trunc=11"}}}, "trunc"),
    ],
)
def test_bad_precision_names_the_value(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        TrainPrecision(**kwargs)


def test_from_dict_rejects_unknown_keys():
    assert TrainPrecision.from_dict({"weights": "bf16"}).weights == "bf16"
    with pytest.raises(ConfigError, match="wieghts"):
        TrainPrecision.from_dict({"wieghts": "bf16"})


@pytest.mark.parametrize(
    "base, k", [("fp16", 0), ("fp16", 3), ("fp16", 9), ("fp16", 10), ("bf16", 0), ("bf16", 4),
                ("bf16", 7)],
)  # fmt: skip
def test_cast_fast_path_equals_the_float_format(base, k):
    g = torch.Generator().manual_seed(7)
    x = torch.cat([torch.randn(3000, generator=g) * 10.0**e for e in range(-44, 39, 4)])
    x = torch.cat([x, torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 65520.0, 1e-8])])
    spec = f"{base},trunc={k}"
    fast = TensorRounder(spec, "none", g).round(x)
    reference = parse_format(spec).round_values(x).to(torch.float32)
    assert torch.equal(fast.view(torch.int32), reference.view(torch.int32))
    nan = TensorRounder(spec, "none", g).round(torch.tensor([float("nan"), -float("nan")]))
    assert torch.isnan(nan).all()


def test_a_tensor_two_layers_save_is_stored_and_counted_once():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    session = PrecisionSession(model, TrainPrecision.truncated(2))
    with session.step():
        model(torch.randn(4, 6)).sum().backward()
    # saved: the input (4x6); the ReLU output (4x5) is saved by ReLU and by the second Linear
    assert session.traffic.kinds["activations"].values == 2 * (4 * 6 + 4 * 5)
    assert session._saved == {}


def test_gradients_are_held_in_the_format_and_inplace_relu_works():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(108, 2)
    )
    session = PrecisionSession(model, TrainPrecision(gradients="fp16,trunc=5"))
    with session.step():
        model(torch.randn(2, 1, 8, 8)).sum().backward()
    for p in model.parameters():
        bits = p.grad.half().view(torch.int16).to(torch.int32)
        assert torch.equal(p.grad.half().float(), p.grad)
        assert int((bits & 31).abs().max()) == 0
