"""Component error model: the noise an approximate multiplier adds to each output of a layer.

Derivation (after ReD-CaNe, Mrazek et al., DATE 2020, which models approximate components as
noise sources). An approximate layer computes, per output j (DESIGN.md, integer MAC)

    y_j = s_x * s_w[j] * (sum_k M[x_k, w_jk] - zero-point terms),

and with e(a, b) = M[a, b] - a*b (the multiplier's error table) the error against the exact
table is  E_j = s_x * s_w[j] * sum_k e(x_k, w_jk)  because the zero-point terms are exact.
The weight codes w_jk are known; the activation codes x_k are modelled as independent draws from
the histogram p(a) observed at the layer's input during calibration. Per weight code b:

    mu(b)  = sum_a p(a) e(a, b),        var(b) = sum_a p(a) e(a, b)^2 - mu(b)^2,

so over the reduction (the K taps of output j, K = C_in/groups * kh * kw or in_features)

    mean E_j = s_x s_w[j] * sum_k mu(w_jk),   var E_j = (s_x s_w[j])^2 * sum_k var(w_jk).

With a weight *histogram* instead of the weights this is K * E[e] and K * Var[e] ("per-product
moments times reduction length times scales"). A zero-padded tap feeds the code of real zero
z_x into the table: its error e(z_x, w_jk) is deterministic (mean, no variance), so conv maps
differ at the borders; they are computed exactly with two convolutions of an all-ones input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject.error_models import ComponentNoise
from axdnn.nn import ApproxConv2d, ApproxLinear
from axdnn.nn.quant import code_index, quantize_codes


@dataclass
class ComponentSummary:
    """JSON-ready figures of one layer's component noise."""

    layer: str
    multiplier: str
    reduction_length: int
    mean_error: float
    error_std: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def product_moments(error_table: torch.Tensor, act_hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of e(a, b) over a ~ act_hist, for every weight index b (float64)."""
    p = act_hist.double()
    total = p.sum()
    if total <= 0:
        raise InjectionError("activation histogram is empty; calibrate the layer on data first")
    p = p / total
    err = error_table.double()
    mu = p @ err
    var = (p @ err.square() - mu.square()).clamp(min=0)
    return mu, var


def _weight_indices(layer: ApproxConv2d | ApproxLinear) -> tuple[torch.Tensor, torch.Tensor]:
    ws, wz = layer.weight_qparams()
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    w = layer.weight.detach().float().cpu()
    codes = quantize_codes(w, ws.cpu().reshape(shape), wz.cpu().reshape(shape), layer.b_scheme)
    return code_index(codes, layer.b_scheme.bits), ws.detach().double().cpu()


def component_noise(
    layer: ApproxConv2d | ApproxLinear,
    input_shape: tuple[int, ...],
    act_hist: torch.Tensor | None = None,
    name: str | None = None,
) -> tuple[ComponentNoise, ComponentSummary]:
    """Per-output mean/std of the error `layer`'s multiplier adds, for one sample of shape
    `input_shape` (C, H, W for conv, (F,) for linear); act_hist defaults to the layer's own."""
    if not isinstance(layer, (ApproxConv2d, ApproxLinear)):
        raise InjectionError(f"component noise needs an approximate layer, got {type(layer).__name__}")
    name = name or layer.layer_name
    hist = layer.act_hist if act_hist is None else act_hist
    mu, var = product_moments(layer.multiplier.error_table(), hist.cpu())
    wi, ws = _weight_indices(layer)
    mu_w, var_w = mu[wi], var[wi]
    scale = float(layer.act_scale) * ws
    if isinstance(layer, ApproxLinear):
        mean = mu_w.sum(dim=1) * scale
        std = var_w.sum(dim=1).sqrt() * scale
    else:
        pad_index = int(code_index(layer.act_zero.cpu().long(), layer.a_scheme.bits))
        pad_err = layer.multiplier.error_table().double()[pad_index][wi]
        ones = torch.ones(1, *input_shape, dtype=torch.float64)
        kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
        real_mu = F.conv2d(ones, mu_w, **kw)[0]
        real_var = F.conv2d(ones, var_w, **kw)[0]
        pad_mu = pad_err.sum(dim=(1, 2, 3)).reshape(-1, 1, 1) - F.conv2d(ones, pad_err, **kw)[0]
        view = scale.reshape(-1, 1, 1)
        mean = (real_mu + pad_mu) * view
        std = real_var.clamp(min=0).sqrt() * view
    noise = ComponentNoise(mean=mean.float(), std=std.float(), label=f"{name}:{layer.multiplier.name}")
    summary = ComponentSummary(
        layer=name,
        multiplier=layer.multiplier.name,
        reduction_length=int(layer.weight[0].numel()),
        mean_error=float(mean.mean()),
        error_std=float(std.square().mean().sqrt()),
    )
    return noise, summary


@torch.no_grad()
def activation_histograms(
    model: nn.Module, approx: nn.Module, inputs: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Histogram of each approximate layer's activation codes, observed at the inputs of the
    same-named layers of the float `model` and quantized with the approximate layer's final
    calibrated scale and zero point (the layer's own `act_hist` uses the range as it grew)."""
    layers = {n: m for n, m in approx.named_modules() if isinstance(m, (ApproxConv2d, ApproxLinear))}
    hists = {n: torch.zeros(1 << m.a_scheme.bits, dtype=torch.int64) for n, m in layers.items()}
    modules = dict(model.named_modules())
    handles = []

    def hook(name):
        layer = layers[name]

        def record(_module, args):
            codes = quantize_codes(args[0].detach().float(), layer.act_scale, layer.act_zero, layer.a_scheme)
            idx = code_index(codes, layer.a_scheme.bits).flatten().cpu()
            hists[name] += torch.bincount(idx, minlength=hists[name].numel())

        return record

    for name in layers:
        if name not in modules:
            raise InjectionError(f"layer {name!r} of the approximate model is not in the float model")
        handles.append(modules[name].register_forward_pre_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return hists
