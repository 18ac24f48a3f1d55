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
from axdnn.runtime import eval_mode


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


def product_moments(
    error_table: torch.Tensor, act_hist: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of e(a, b) over a ~ act_hist, for every weight index b (float64).
    A 2-d histogram (one row per input channel) gives one row of moments per channel."""
    p = act_hist.double()
    total = p.sum(dim=-1, keepdim=True)
    if bool((total <= 0).all()):
        raise InjectionError("activation histogram is empty; calibrate the layer on data first")
    p = p / total.clamp(min=1)
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
    `input_shape` (C, H, W for conv, (F,) for linear). `act_hist` is one histogram of activation
    codes, or one per input channel (C x 2**bits, more faithful: channels differ, e.g. in how
    often ReLU zeroes them); it defaults to the layer's own calibration histogram."""
    if not isinstance(layer, (ApproxConv2d, ApproxLinear)):
        raise InjectionError(
            f"component noise needs an approximate layer, got {type(layer).__name__}"
        )
    name = name or layer.layer_name
    hist = layer.act_hist if act_hist is None else act_hist
    if isinstance(layer, ApproxConv2d) and hist.dim() == 4:
        return _positional_conv(layer, hist, name)
    mu, var = product_moments(layer.multiplier.error_table(), hist.cpu())
    wi, ws = _weight_indices(layer)
    if mu.dim() == 1:
        mu_w, var_w = mu[wi], var[wi]
    else:  # per input channel: tap (j, c, ...) reads channel c (of its group)
        groups = getattr(layer, "groups", 1)
        per_group = wi.shape[1]
        shape = [1, per_group] + [1] * (wi.dim() - 2)
        chan = torch.arange(per_group).reshape(shape)
        chan = chan + (torch.arange(wi.shape[0]) // (wi.shape[0] // groups) * per_group).reshape(
            [-1] + [1] * (wi.dim() - 1)
        )
        chan = chan.expand_as(wi)
        mu_w, var_w = mu[chan, wi], var[chan, wi]
    scale = float(layer.act_scale) * ws
    if isinstance(layer, ApproxLinear):
        mean = mu_w.sum(dim=1) * scale
        std = var_w.sum(dim=1).sqrt() * scale
    else:
        pad_index = int(code_index(layer.act_zero.cpu().long(), layer.a_scheme.bits))
        pad_err = layer.multiplier.error_table().double()[pad_index][wi]
        ones = torch.ones(1, *input_shape, dtype=torch.float64)
        kw = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )
        real_mu = F.conv2d(ones, mu_w, **kw)[0]
        real_var = F.conv2d(ones, var_w, **kw)[0]
        pad_mu = pad_err.sum(dim=(1, 2, 3)).reshape(-1, 1, 1) - F.conv2d(ones, pad_err, **kw)[0]
        view = scale.reshape(-1, 1, 1)
        mean = (real_mu + pad_mu) * view
        std = real_var.clamp(min=0).sqrt() * view
    noise = ComponentNoise(
        mean=mean.float(), std=std.float(), label=f"{name}:{layer.multiplier.name}"
    )
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
    model: nn.Module,
    approx: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 256,
    positional: bool = False,
) -> dict[str, torch.Tensor]:
    """Histogram of each approximate layer's activation codes per input channel (C x 2**bits),
    observed at the inputs of the same-named layers of the float `model` and quantized with the
    approximate layer's final calibrated scale and zero point (the layer's own `act_hist` is one
    histogram for all channels, taken with the range as it grew)."""
    layers = {
        n: m for n, m in approx.named_modules() if isinstance(m, (ApproxConv2d, ApproxLinear))
    }
    hists: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = []

    def hook(name):
        layer = layers[name]

        def record(_module, args):
            x = args[0].detach().float()
            codes = quantize_codes(x, layer.act_scale, layer.act_zero, layer.a_scheme)
            idx = code_index(codes, layer.a_scheme.bits).cpu()
            if positional and isinstance(layer, ApproxConv2d):
                bins = 1 << layer.a_scheme.bits
                cells = idx[0].numel()
                flat = (
                    idx.reshape(idx.shape[0], -1) * 0
                    + torch.arange(cells) * bins
                    + idx.reshape(idx.shape[0], -1)
                )
                counts = torch.bincount(flat.flatten(), minlength=cells * bins).reshape(
                    *idx.shape[1:], bins
                )
                hists[name] = hists[name] + counts if name in hists else counts
                return
            channels = idx.shape[1] if isinstance(layer, ApproxConv2d) else idx.shape[-1]
            bins = 1 << layer.a_scheme.bits
            per_channel = (
                idx.movedim(1, 0)
                if isinstance(layer, ApproxConv2d)
                else idx.reshape(-1, channels).T
            )
            flat = per_channel.reshape(channels, -1) + torch.arange(channels).reshape(-1, 1) * bins
            counts = torch.bincount(flat.flatten(), minlength=channels * bins).reshape(
                channels, bins
            )
            hists[name] = hists[name] + counts if name in hists else counts

        return record

    for name in layers:
        if name not in modules:
            raise InjectionError(
                f"layer {name!r} of the approximate model is not in the float model"
            )
        handles.append(modules[name].register_forward_pre_hook(hook(name)))
    try:
        with eval_mode(model):
            for start in range(0, len(inputs), batch_size):
                model(inputs[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
    return hists


def _positional_conv(
    layer: ApproxConv2d, hist: torch.Tensor, name: str
) -> tuple[ComponentNoise, ComponentSummary]:
    """Conv noise from histograms per input channel AND position (C x H x W x 2**bits): the mean
    and variance of every tap's error come from the distribution at the pixel it reads, so the
    maps follow the spatial structure of the data (e.g. digit strokes vs background). Computed
    as one convolution of the per-pixel moment maps with one-hot weight codes."""
    err = layer.multiplier.error_table().double()
    c, h, w, a = hist.shape
    p = hist.double() / hist.double().sum(-1, keepdim=True).clamp(min=1)
    mu = (p.reshape(-1, a) @ err).reshape(c, h, w, -1)
    var = (p.reshape(-1, a) @ err.square()).reshape(c, h, w, -1) - mu.square()
    nb = err.shape[1]
    wi, ws = _weight_indices(layer)
    pad_index = int(code_index(layer.act_zero.cpu().long(), layer.a_scheme.bits))
    ph, pw = layer.padding
    maps = []
    for moments, pad_value in (
        (mu, err[pad_index]),
        (var.clamp(min=0), torch.zeros(nb, dtype=torch.float64)),
    ):
        m = moments.permute(0, 3, 1, 2)  # C, B, H, W
        padded = pad_value.reshape(1, nb, 1, 1).expand(c, nb, h + 2 * ph, w + 2 * pw).clone()
        padded[:, :, ph : ph + h, pw : pw + w] = m
        onehot = F.one_hot(wi, nb).double().permute(0, 1, 4, 2, 3)  # O, C/g, B, kh, kw
        onehot = onehot.reshape(wi.shape[0], -1, *wi.shape[2:])
        maps.append(
            F.conv2d(
                padded.reshape(1, c * nb, h + 2 * ph, w + 2 * pw),
                onehot,
                stride=layer.stride,
                dilation=layer.dilation,
                groups=layer.groups,
            )[0]
        )
    scale = (float(layer.act_scale) * ws).reshape(-1, 1, 1)
    mean, std = maps[0] * scale, maps[1].clamp(min=0).sqrt() * scale
    noise = ComponentNoise(
        mean=mean.float(), std=std.float(), label=f"{name}:{layer.multiplier.name}"
    )
    summary = ComponentSummary(
        name,
        layer.multiplier.name,
        int(layer.weight[0].numel()),
        float(mean.mean()),
        float(std.square().mean().sqrt()),
    )
    return noise, summary
