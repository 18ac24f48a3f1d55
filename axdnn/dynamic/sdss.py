"""Significance-driven selective sampling (SDSS) for a conv layer (DyVEDeep): compute the output
on the even grid (a strided conv, a quarter of the positions), then in each 2x2 cell either
interpolate the three in-between positions bilinearly from the four surrounding samples, when
for every channel the samples are insignificant (all <= 0, so ReLU zeroes them) or similar
(spread <= delta * the channel's mean sampled magnitude), or compute them exactly: their im2col
rows are gathered, run as one dense product and scattered back."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.dynamic.accounting import Ledger
from axdnn.dynamic.chain import Affine
from axdnn.dynamic.rows import flat_weight, to_rows


class Sdss:
    """A conv(+ReLU) layer run with SDSS at tolerance `delta`."""

    mechanism = "sdss"

    def __init__(self, layer: Affine, delta: float) -> None:
        self.layer, self.delta, self.name = layer, float(delta), layer.name
        self.w_rows = flat_weight(layer).t().contiguous()  # K x O

    def __call__(self, x: torch.Tensor, ledger: Ledger | None, rows_idx: torch.Tensor):
        y, cost = self.run(x)
        if ledger is not None:
            ledger.add(self.name, rows_idx, cost.pop("executed"), **cost)
        return torch.relu(y) if self.layer.relu else y

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pre-activation output and per-input counts."""
        lay = self.layer
        n, out = x.shape[0], lay.weight.shape[0]
        ho, wo = lay.out_hw(tuple(x.shape[-2:]))
        stride2 = (2 * lay.stride[0], 2 * lay.stride[1])
        samples = F.conv2d(x, lay.weight, lay.bias, stride2, lay.padding, lay.dilation)
        hs, ws = samples.shape[-2:]
        padded = F.pad(samples, (0, 1, 0, 1), mode="replicate")
        a, b = padded[..., :-1, :-1], padded[..., 1:, :-1]
        c, d = padded[..., :-1, 1:], padded[..., 1:, 1:]
        corners = torch.stack((a, b, c, d))
        high, low = corners.amax(0), corners.amin(0)
        scale = samples.abs().mean((2, 3), keepdim=True)
        ok = (high <= 0) | (high - low <= self.delta * scale)
        need = ~ok.all(1)  # n x hs x ws: cells computed exactly
        full = torch.empty(n, out, 2 * hs, 2 * ws, dtype=samples.dtype)
        full[..., 0::2, 0::2] = a
        full[..., 1::2, 0::2] = (a + b) * 0.5
        full[..., 0::2, 1::2] = (a + c) * 0.5
        full[..., 1::2, 1::2] = (a + b + c + d) * 0.25
        y = full[..., :ho, :wo].contiguous()
        exact = need.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :ho, :wo].clone()
        exact[:, 0::2, 0::2] = False
        flat = exact.reshape(-1).nonzero().squeeze(1)
        if flat.numel():
            patches = to_rows(lay, x)[0].index_select(0, flat)
            values = torch.addmm(lay.bias, patches, self.w_rows)
            sample, pos = flat // (ho * wo), flat % (ho * wo)
            y_view = y.permute(0, 2, 3, 1).reshape(n, ho * wo, out)
            y_view[sample, pos] = values
            y = y_view.reshape(n, ho, wo, out).permute(0, 3, 1, 2)
        return y, self._cost(exact, need, (hs, ws), (ho, wo))

    def _cost(self, exact, need, sampled_hw, out_hw) -> dict[str, torch.Tensor]:
        k, out = self.w_rows.shape
        n = exact.shape[0]
        computed = exact.reshape(n, -1).sum(1)
        n_samples = sampled_hw[0] * sampled_hw[1]
        inbetween = out_hw[0] * out_hw[1] - _sampled_count(out_hw)
        interpolated = inbetween - computed
        return {
            "executed": (n_samples + computed) * k * out,
            "comparisons": torch.full((n,), n_samples * out * 8, dtype=torch.int64),
            "predictor": torch.full((n,), n_samples * out, dtype=torch.int64),
            "interpolation": interpolated * out * 2,
            "gathers": computed * (k + out),
        }


def _sampled_count(out_hw: tuple[int, int]) -> int:
    return ((out_hw[0] + 1) // 2) * ((out_hw[1] + 1) // 2)
