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

Conditional model (`conditional_component_noise`, the default of `axdnn.analysis`). The errors
of approximate multipliers scale with the operands (a truncated, DRUM or Mitchell product of a
small or zero activation is exact or nearly so), and activations are sparse and sample-dependent
(a digit's background is zero in one image and a stroke in another). Noise with moments averaged
over all samples corrupts quiet samples that in reality stay exact and underrates loud ones, so
it mispredicts accuracy by up to tens of points for aggressive multipliers. The conditional
model therefore sorts activation codes into a few classes (sign and magnitude octave of the
operand: 0, 1, 2-3, 4-7, ...; a code holding at least `DOMINANT_SHARE` of the calibration
histogram, such as the zero point or a background level, is a class of its own) and takes the
moments of e(a, b) over p(a | class) per input channel. Per sample, each tap's moments are those
of the class its activation falls in:

    mean E_j = s_x s_w[j] * sum_k mu(class(x_k), w_jk),   var E_j = (s_x s_w[j])^2 * sum_k var(..)

computed as one convolution (or matmul) of the one-hot class map of the input with the moment
tables indexed by the known weight codes. Within a class the activation is still a random draw
from the calibration histogram, so this remains a noise model: it needs the input's classes,
never the product table's entries for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject.error_models import ComponentNoise, Draws
from axdnn.nn import ApproxConv2d, ApproxLinear
from axdnn.nn.quant import QuantScheme, code_index, quantize_codes
from axdnn.runtime import TemporaryHooks, eval_mode


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


def _tap_channels(wi: torch.Tensor, groups: int) -> torch.Tensor:
    """The input channel each tap (j, c, ...) of a weight-shaped tensor reads: c of its group."""
    per_group = wi.shape[1]
    chan = torch.arange(per_group).reshape([1, per_group] + [1] * (wi.dim() - 2))
    first = torch.arange(wi.shape[0]) // (wi.shape[0] // groups) * per_group
    return (chan + first.reshape([-1] + [1] * (wi.dim() - 1))).expand_as(wi)


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
    else:
        chan = _tap_channels(wi, getattr(layer, "groups", 1))
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

    missing = [name for name in layers if name not in modules]
    if missing:
        raise InjectionError(
            f"layer {missing[0]!r} of the approximate model is not in the float model"
        )
    with TemporaryHooks() as hooks, eval_mode(model):
        for name in layers:
            hooks.pre(modules[name], hook(name))
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size])
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


DOMINANT_SHARE = 0.05  # a code with at least this share of the calibration histogram: own class


def activation_classes(
    scheme: QuantScheme, hist: torch.Tensor, dominant: float = DOMINANT_SHARE
) -> torch.Tensor:
    """Class (0..K-1, int64) of every activation table index: the operand's sign and magnitude
    octave (0, 1, 2-3, 4-7, ...), except that each code holding at least `dominant` of the
    histogram `hist` (any shape ending in 2**bits) is a class of its own."""
    size = 1 << scheme.bits
    index = torch.arange(size)
    value = torch.where(index >= size // 2, index - size, index) if scheme.signed else index
    magnitude = value.abs()
    octave = torch.where(
        magnitude == 0, 0, torch.floor(torch.log2(magnitude.clamp(min=1).double())).long() + 1
    )
    key = octave + (value < 0).long() * (scheme.bits + 2)
    counts = hist.reshape(-1, size).sum(0).double()
    if dominant <= 0 or dominant > 1:
        raise InjectionError(f"dominant share must be in (0, 1], got {dominant}")
    if counts.sum() > 0:
        heavy = torch.nonzero(counts / counts.sum() >= dominant).flatten()
        key[heavy] = 2 * (scheme.bits + 2) + torch.arange(len(heavy))
    return torch.unique(key, return_inverse=True)[1]


def class_moments(
    error_table: torch.Tensor, hist: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of e(a, b) over a ~ hist restricted to each class, per input channel
    and weight index: two C x K x 2**b_bits float64 tensors (`hist` is C x 2**a_bits, or one
    histogram). A class a channel never showed in calibration falls back to the layer's
    histogram, and one the layer never showed to a uniform draw over the class's codes."""
    hist = hist.reshape(-1, hist.shape[-1]).double()
    if bool((hist.sum() <= 0).all()):
        raise InjectionError("activation histogram is empty; calibrate the layer on data first")
    member = F.one_hot(classes, int(classes.max()) + 1).double()  # A x K
    counts = hist[:, :, None] * member  # C x A x K
    layer = counts.sum(0, keepdim=True)
    seen = counts.sum(1, keepdim=True) > 0
    layer_seen = layer.sum(1, keepdim=True) > 0
    p = torch.where(seen, counts, torch.where(layer_seen, layer, member[None]))
    p = p / p.sum(1, keepdim=True)
    err = error_table.double()
    mu = torch.einsum("cak,ab->ckb", p, err)
    var = (torch.einsum("cak,ab->ckb", p, err.square()) - mu.square()).clamp(min=0)
    return mu, var


@dataclass(frozen=True, eq=False, kw_only=True)
class ConditionalComponentNoise(ComponentNoise):
    """Component noise whose per-output mean and std depend on the classes of the sample's own
    input activations (see the module docstring); `mean` and `std` keep the unconditional
    figures (over all calibration samples). It reads the layer's input, so it sits at the
    layer's output (scope `all`)."""

    classes: torch.Tensor = field(repr=False)
    moments: torch.Tensor = field(repr=False)  # (2*O, C/g*K[, kh, kw]): means, then variances
    scale: torch.Tensor = field(repr=False)  # (O,) s_x * s_w
    act_scale: float = 1.0
    act_zero: int = 0
    scheme: QuantScheme = field(default_factory=QuantScheme)
    conv: dict[str, Any] | None = None  # stride/padding/dilation/groups; None for linear
    pad_mean: torch.Tensor | None = field(default=None, repr=False)  # (O, H', W')

    def needs_input(self) -> bool:
        return True

    def moments_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample mean and std of the error of every output, (n, outputs) each."""
        codes = quantize_codes(x.detach().float(), self.act_scale, self.act_zero, self.scheme)
        cls = self.classes.to(x.device)[code_index(codes, self.scheme.bits)]
        k = int(self.classes.max()) + 1
        onehot = F.one_hot(cls, k).to(self.moments.dtype)
        n, outputs = x.shape[0], self.scale.numel()
        if self.conv is not None:  # (n, C, H, W, K) -> (n, C*K, H, W), channel-major
            onehot = onehot.permute(0, 1, 4, 2, 3).reshape(n, -1, *x.shape[2:])
            both = F.conv2d(onehot, self.moments.to(x.device), **self.conv)
            mean, var = both[:, :outputs], both[:, outputs:]
            if self.pad_mean is not None:
                mean = mean + self.pad_mean.to(x.device)
            scale = self.scale.to(x.device).reshape(1, -1, 1, 1)
        else:  # (n, ..., F, K) -> (n, ..., F*K); outputs on the last dim
            both = onehot.reshape(*x.shape[:-1], -1) @ self.moments.to(x.device).T
            mean, var = both[..., :outputs], both[..., outputs:]
            scale = self.scale.to(x.device)
        mean, std = mean * scale, var.clamp(min=0).sqrt() * scale
        return mean.reshape(n, -1), std.reshape(n, -1)

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        if draws.inputs is None:
            raise InjectionError(f"component noise {self.label!r} needs the layer's input")
        mean, std = self.moments_of(draws.inputs)
        m = values.shape[1]
        if mean.shape[1] != m:
            raise InjectionError(
                f"component noise {self.label!r} gives {mean.shape[1]} elements but the site "
                f"region has {m}; inject it at the whole output of the layer it was derived for"
            )
        z = draws.normal(m, 3).to(values.device)
        return values + (mean + std * z).to(values.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "conditional": True, "classes": int(self.classes.max()) + 1}


def conditional_component_noise(
    layer: ApproxConv2d | ApproxLinear,
    input_shape: tuple[int, ...],
    act_hist: torch.Tensor | None = None,
    name: str | None = None,
    dominant: float = DOMINANT_SHARE,
) -> tuple[ConditionalComponentNoise, ComponentSummary]:
    """The conditional component model of `layer` (module docstring), from its multiplier and
    the activation-code histogram (one, or one per input channel: C x 2**bits; default the
    layer's calibration histogram). The summary gives the unconditional figures."""
    if not isinstance(layer, (ApproxConv2d, ApproxLinear)):
        raise InjectionError(
            f"component noise needs an approximate layer, got {type(layer).__name__}"
        )
    name = name or layer.layer_name
    hist = (layer.act_hist if act_hist is None else act_hist).cpu()
    if hist.dim() > 2:
        raise InjectionError(
            f"conditional component noise of {name!r} takes one activation histogram or one per "
            f"input channel, got shape {tuple(hist.shape)} (use activation_histograms(..., "
            "positional=False))"
        )
    overall, summary = component_noise(layer, input_shape, hist, name)
    err = layer.multiplier.error_table()
    classes = activation_classes(layer.a_scheme, hist, dominant)
    mu, var = class_moments(err, hist, classes)
    wi, ws = _weight_indices(layer)
    groups = getattr(layer, "groups", 1)
    if mu.shape[0] not in (1, wi.shape[1] * groups):
        raise InjectionError(
            f"layer {name!r} has {wi.shape[1] * groups} input channels but the activation "
            f"histogram has {mu.shape[0]} rows; give one histogram or one per channel"
        )
    chan = _tap_channels(wi, groups) if mu.shape[0] > 1 else torch.zeros_like(wi)
    tables = []
    for moment in (mu, var):
        per_tap = moment[chan, :, wi]  # O, C/g, [kh, kw,] K
        if wi.dim() == 4:
            per_tap = per_tap.permute(0, 1, 4, 2, 3).reshape(wi.shape[0], -1, *wi.shape[2:])
        else:
            per_tap = per_tap.reshape(wi.shape[0], -1)
        tables.append(per_tap)
    conv, pad_mean = None, None
    if isinstance(layer, ApproxConv2d):
        conv = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )
        pad_index = int(code_index(layer.act_zero.cpu().long(), layer.a_scheme.bits))
        pad_err = err.double()[pad_index][wi]
        ones = torch.ones(1, *input_shape, dtype=torch.float64)
        pad_mean = pad_err.sum(dim=(1, 2, 3)).reshape(-1, 1, 1) - F.conv2d(ones, pad_err, **conv)[0]
        pad_mean = pad_mean.float()
    noise = ConditionalComponentNoise(
        mean=overall.mean,
        std=overall.std,
        classes=classes,
        moments=torch.cat(tables).float(),
        scale=(float(layer.act_scale) * ws).float(),
        act_scale=float(layer.act_scale),
        act_zero=int(layer.act_zero),
        scheme=layer.a_scheme,
        conv=conv,
        pad_mean=pad_mean,
        label=f"{name}:{layer.multiplier.name}",
    )
    return noise, summary
