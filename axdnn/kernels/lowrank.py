"""Low-rank exact backend: a table layer as a few float32 convs/matmuls of looked-up operands.

With the decomposition of `axdnn.kernels.factor` (D*T = const + row + col + sum of atoms
scale * u[a] * v[b], |u|, |v| <= 128), a layer is

    D * out = K*const + sum_k row[a_k] + sum_k col[b_k] + sum_i scale_i * conv(u_i[x], v_i[w]).

Exactness bound: float32 represents every integer up to 2^24, and every product u*v is an integer of
magnitude <= bound(atom) <= 2^14. When the atoms and input channels summed by one float32 call
satisfy sum(bound) * (products per atom) <= 2^24, every partial sum in *any* summation order is an
integer <= 2^24, hence exact, and so is the result (the same holds for TF32/bf16 inputs, which hold
|u|, |v| <= 128 exactly). The planner packs atoms of equal scale into one call while that holds and
splits input channels otherwise; row/col/const parts are summed in int64. Transform-based
convolution (Winograd/FFT, e.g. NNPACK or some cuDNN algorithms) would break this, so on CPU
NNPACK is disabled around the call and on CUDA the conv runs as unfold + GEMM. On CPU the operand
lookup + padding and the int64 output (scale, bias, row sums) are single compiled passes (native,
else numba).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from axdnn.errors import ConfigError
from axdnn.kernels import affine, gather_cpu, native
from axdnn.kernels.affine import code_of, weight_code_sums
from axdnn.kernels.affine import pad_index as affine_pad_index
from axdnn.kernels.factor import MAX_RANK, TableFactors, factorize, table_digest
from axdnn.kernels.geometry import ConvGeometry

EXACT_F32 = 1 << 24
# Elements of im2col columns materialised at once by the GEMM conv path.
GEMM_CHUNK = 1 << 25


@dataclass(frozen=True)
class Chunk:
    """One float32 call: atoms (indices, equal scale) over input channels [c0, c1)."""

    atoms: tuple[int, ...]
    scale: int
    c0: int
    c1: int


def plan_chunks(factors: TableFactors, channels: int, area: int) -> list[Chunk] | None:
    """Pack atoms (equal scale) and input channels so every call stays exact; None if impossible.

    `channels` input channels each contribute `area` products per output (kernel area; 1 for
    matmul, where `channels` is the reduction length).
    """
    by_scale: dict[int, list[int]] = {}
    for i, atom in enumerate(factors.atoms):
        by_scale.setdefault(atom.scale, []).append(i)
    chunks: list[Chunk] = []
    for scale, idx in by_scale.items():
        pack: list[int] = []
        load = 0
        for i in sorted(idx, key=lambda i: factors.atoms[i].bound):
            need = factors.atoms[i].bound * area * channels
            if need > EXACT_F32:
                per = EXACT_F32 // max(1, factors.atoms[i].bound * area)
                if per == 0:
                    return None
                chunks.extend(
                    Chunk((i,), scale, c, min(channels, c + per)) for c in range(0, channels, per)
                )
                continue
            if load + need > EXACT_F32:
                chunks.append(Chunk(tuple(pack), scale, 0, channels))
                pack, load = [], 0
            pack.append(i)
            load += need
        if pack:
            chunks.append(Chunk(tuple(pack), scale, 0, channels))
    return chunks


@dataclass(frozen=True)
class Plan:
    """A chosen decomposition and its chunks for one reduction shape."""

    factors: TableFactors
    chunks: list[Chunk]

    @property
    def calls(self) -> float:
        """Float32 work in units of one full-size conv/matmul of the layer."""
        total = sum(len(c.atoms) * (c.c1 - c.c0) for c in self.chunks)
        return total / max(1, self.chunks[0].c1 if self.chunks else 1)


_PLANS: OrderedDict[tuple[str, int, int], Plan | None] = OrderedDict()
_PLAN_CACHE_SIZE = 256


def plan_for(table: torch.Tensor, channels: int, area: int) -> Plan | None:
    """The cheapest exact plan over the table's decompositions, or None when there is none
    (cached by table content and reduction shape)."""
    key = (table_digest(table), int(channels), int(area))
    if key in _PLANS:
        _PLANS.move_to_end(key)
        return _PLANS[key]
    plan = _plan_uncached(table, key[0], channels, area)
    _PLANS[key] = plan
    while len(_PLANS) > _PLAN_CACHE_SIZE:
        _PLANS.popitem(last=False)
    return plan


def _plan_uncached(table: torch.Tensor, digest: str, channels: int, area: int) -> Plan | None:
    best: Plan | None = None
    best_key = None
    for factors in factorize(table, digest):
        chunks = plan_chunks(factors, channels, area)
        if chunks is None:
            continue
        work = sum(len(c.atoms) * (c.c1 - c.c0) for c in chunks) / max(1, channels)
        key = (work + 0.5 * len(chunks) + 0.2 * factors.has_offsets, factors.has_offsets)
        if best_key is None or key < best_key:
            best, best_key = Plan(factors, chunks), key
    return best


def conv_units(table: torch.Tensor, channels: int, area: int) -> float | None:
    """Float32 work of a layer in full-size conv/matmul units (atoms x channel fraction), or
    None when the table has no exact plan for this reduction."""
    plan = plan_for(table, channels, area)
    if plan is None:
        return None
    return sum(len(c.atoms) * (c.c1 - c.c0) for c in plan.chunks) / max(1, channels)


def call_count(table: torch.Tensor, channels: int, area: int) -> float | None:
    """`conv_units` plus the per-call overheads of the raw path (dispatcher cost), or None."""
    work = conv_units(table, channels, area)
    if work is None:
        return None
    plan = plan_for(table, channels, area)
    return work + 0.5 * len(plan.chunks) + 0.2 * plan.factors.has_offsets


def _plan_or_raise(table: torch.Tensor, channels: int, area: int) -> Plan:
    plan = plan_for(table, channels, area)
    if plan is None:
        raise ConfigError(
            f"kernel backend 'lowrank' cannot run this {tuple(table.shape)} table exactly: it has "
            f"no integer decomposition of rank <= {MAX_RANK} that keeps a reduction of {channels} "
            f"x {area} products within float32's exact range; use backend 'auto' (it picks an "
            "installed backend that can)"
        )
    return plan


def _luts(factors: TableFactors, atoms: tuple[int, ...], device: torch.device):
    u = np.stack([factors.atoms[i].u for i in atoms]).astype(np.float32)
    v = np.stack([factors.atoms[i].v for i in atoms]).astype(np.float32)
    return torch.from_numpy(u).to(device), torch.from_numpy(v).to(device)


def _lookup(lut: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """lut[idx] for a 1-D lut (index_select on the flat index is the fastest CPU gather)."""
    return lut.index_select(0, idx.reshape(-1)).view(idx.shape)


def _box_sum(x: torch.Tensor, geom: ConvGeometry, out_hw: tuple[int, int]) -> torch.Tensor:
    """Sum of an (already padded) int64 map over each receptive field (stride, dilation)."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    ho, wo = out_hw
    total = torch.zeros(*x.shape[:-2], ho, wo, dtype=torch.int64, device=x.device)
    for i in range(kh):
        for j in range(kw):
            total += x[
                ...,
                i * dh : i * dh + sh * (ho - 1) + 1 : sh,
                j * dw : j * dw + sw * (wo - 1) + 1 : sw,
            ]
    return total


def _float_conv(
    xf: torch.Tensor, wf: torch.Tensor, geom: ConvGeometry, out_hw: tuple[int, int], impl: str
) -> torch.Tensor:
    """Direct (non-transform) float32 convolution of pre-padded input; exact under the bound."""
    if impl == "conv":
        with torch.backends.nnpack.flags(enabled=False):
            return F.conv2d(xf, wf, stride=geom.stride, dilation=geom.dilation, groups=geom.groups)
    n = xf.shape[0]
    g = geom.groups
    o = wf.shape[0]
    w2 = wf.reshape(g, o // g, -1)
    per_image = wf.shape[1] * g * geom.kernel[0] * geom.kernel[1] * out_hw[0] * out_hw[1]
    step = max(1, GEMM_CHUNK // max(1, per_image))
    outs = []
    for s in range(0, n, step):
        cols = F.unfold(xf[s : s + step], geom.kernel, dilation=geom.dilation, stride=geom.stride)
        cols = cols.reshape(cols.shape[0], g, -1, cols.shape[-1])
        outs.append(torch.matmul(w2, cols).reshape(cols.shape[0], o, *out_hw))
    return torch.cat(outs)


def _gather_stack(luts: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """Stack lut_i[idx] for each row lut_i of `luts` along a new dimension `dim`."""
    if luts.shape[0] == 1:
        return _lookup(luts[0], idx).unsqueeze(dim)
    return torch.stack([_lookup(lut, idx) for lut in luts], dim=dim)


def conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int = 0,
    *,
    conv_impl: str = "auto",
    fused: bool | None = None,
) -> torch.Tensor:
    """Exact int64 table convolution (see kernels.reference.conv2d) via float32 convs.

    `conv_impl`: 'conv' (F.conv2d, CPU default) or 'gemm' (unfold + matmul, CUDA default);
    `fused`: use compiled operand/output passes (default: on CPU, native or numba).
    Indices must be in range (the dispatcher checks them).
    """
    device = x_idx.device
    impl = conv_impl if conv_impl != "auto" else ("gemm" if device.type == "cuda" else "conv")
    plan, wg, bias = _conv_setup(w_idx, table, geom)
    out_hw = geom.output_size(x_idx.shape[-2:])
    passes = _cpu_passes(table) if device.type == "cpu" else None
    if fused is None:
        fused = passes is not None
    if fused:
        out = _conv_fused(x_idx, wg, plan, geom, int(pad_index), bias, out_hw, impl, passes)
    else:
        out = _conv_torch(x_idx, wg, plan, geom, int(pad_index), bias, out_hw, impl)
    if plan.factors.denominator != 1:
        out = torch.div(out, plan.factors.denominator, rounding_mode="floor")
    return out


def _conv_setup(w_idx: torch.Tensor, table: torch.Tensor, geom: ConvGeometry):
    """The plan for this reduction, the weights as (groups, out, in, kh, kw) int32 and the
    per-output constant K * const + sum_k col[w_k] (D-scaled)."""
    o, cg, kh, kw = w_idx.shape
    g = geom.groups
    plan = _plan_or_raise(table, cg, kh * kw)
    factors = plan.factors
    wg = w_idx.to(torch.int32).view(g, o // g, cg, kh, kw)
    bias = torch.full((o,), factors.const * cg * kh * kw, dtype=torch.int64, device=w_idx.device)
    if factors.col.any():
        col = torch.from_numpy(factors.col).to(w_idx.device)
        bias += _lookup(col, wg).view(o, -1).sum(dim=1)
    return plan, wg, bias


def fuses(device: torch.device) -> bool:
    """Whether `conv2d_float` runs fused here (CPU with the native library)."""
    return device.type == "cpu" and native.available()


def conv2d_float(x, act, w_idx, table, geom: ConvGeometry, zero, scale, acc_bits=None):
    """A table convolution layer's float chain (see `dispatch.lut_conv2d_float`), fused on CPU:
    one input pass (quantize, the first chunk's operand lookup, the row and zero-point sums),
    one float32 conv per chunk of atoms, and one output pass that applies the decomposition's
    constants, the zero points, saturation and the scale. Activation tables of more than 256
    rows (indices wider than the passes' bytes) compose the chain from exact parts instead."""
    if table.shape[0] > native.MAX_ROWS:
        return _conv_float_composed(x, act, w_idx, table, geom, zero, scale, acc_bits)
    plan, wg, bias = _conv_setup(w_idx, table, geom)
    out_hw = geom.output_size(x.shape[-2:])
    layer = _LayerOut(zero, table.shape, weight_code_sums(w_idx, table.shape[1], zero), scale,
                      acc_bits)  # fmt: skip
    pad = affine_pad_index(zero, table.shape[0])
    kern = native.LowrankPasses()
    pre = _input_pass(kern, x, act, plan, geom=geom, pad=pad, layer=layer, out_hw=out_hw)
    return _conv_fused(x, wg, plan, geom, pad, bias, out_hw, "conv", kern, layer, pre)


def _conv_float_composed(x, act, w_idx, table, geom, zero, scale, acc_bits) -> torch.Tensor:
    """quantize, the int64 table convolution in torch ops, zero-point terms, saturate, scale."""
    codes = affine.index_of(affine.quantize(x, act.scale, act.zero, act.qmin, act.qmax), act.bits)
    pad = affine_pad_index(zero, table.shape[0])
    acc = conv2d(codes, w_idx, table, geom, pad, fused=False)
    acc = acc + affine.conv_correction(codes, w_idx, tuple(table.shape), geom, zero)
    return affine.dequantize(affine.saturate(acc, acc_bits), scale, 1)


@dataclass(frozen=True)
class _Prepared:
    """What a layer's input pass gives: indices (None when no later pass reads them), the first
    chunk's looked-up operands (None without atoms), the receptive-field sums of the row table
    and of the centred codes (the zero-point term; None when zw is 0)."""

    codes: np.ndarray | None
    first: np.ndarray | None
    rowmap: np.ndarray
    sxmap: np.ndarray | None


def _centred(layer: _LayerOut) -> np.ndarray | None:
    """code - zx per table row, the values the zero-point term sums (None when zw is 0)."""
    zero, rows = layer.zero, layer.table_shape[0]
    if not bool(zero.w.any()):
        return None
    return code_of(torch.arange(rows), rows, zero.a_signed).numpy() - zero.x


def _input_pass(kern, x, act, plan: Plan, *, geom, pad: int, layer: _LayerOut, out_hw) -> _Prepared:
    """The native input pass of `conv2d_float` and the receptive-field sums it feeds."""
    factors = plan.factors
    first = None
    if plan.chunks:
        chunk = plan.chunks[0]
        lut_u, _ = _luts(factors, chunk.atoms, torch.device("cpu"))
        first = (lut_u.numpy(), chunk.c0, chunk.c1)
    zero = layer.zero
    centred = (layer.table_shape[0], zero.a_signed, zero.x) if bool(zero.w.any()) else None
    row = factors.row if factors.row.any() else None
    codes, operands, sums = kern.quantize_lookup(
        x,
        act,
        first,
        pad=geom.padding,
        pad_index=pad,
        groups=geom.groups,
        sums=(row, centred),
        codes=len(plan.chunks) > 1,
    )
    boxed = [None if s is None else kern.box_sums(s, geom, out_hw) for s in sums]
    rowmap = boxed[0] if boxed[0] is not None else np.zeros((0, 0, 0, 0), np.int64)
    return _Prepared(codes, operands, rowmap, boxed[1])


def _weights(lut_v: torch.Tensor, wg: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """Looked-up weights of one chunk, laid out (O, atoms * channels, kh, kw)."""
    cc = chunk.c1 - chunk.c0
    wsel = wg if cc == wg.shape[2] else wg[:, :, chunk.c0 : chunk.c1]
    o = wg.shape[0] * wg.shape[1]
    return _gather_stack(lut_v, wsel, 2).view(o, len(chunk.atoms) * cc, *wg.shape[-2:])


def _cpu_passes(table: torch.Tensor):
    """The compiled passes of the fused CPU path: native (no JIT, no numba memory) when built
    and the indices fit uint8, else numba; None when neither is available."""
    if native.available() and table.shape[0] <= native.MAX_ROWS:
        return native.LowrankPasses()
    return gather_cpu.kernels() if gather_cpu.available() else None


@dataclass(frozen=True)
class _LayerOut:
    """What the fused float path applies after the table sums (see `conv2d_float`)."""

    zero: object  # ZeroPoints
    table_shape: tuple[int, int]
    w_sums: torch.Tensor
    scale: torch.Tensor
    acc_bits: int | None


def _map_sums(kern, xn, values: np.ndarray, geom, pad_index, groups, out_hw) -> np.ndarray:
    """Box sums over each receptive field of values[index], summed over a group's channels."""
    n, _, h, w = xn.shape
    (ph, pw) = geom.padding
    sums = np.empty((n, groups, h + 2 * ph, w + 2 * pw), np.int64)
    kern.row_sums(xn, values, ph, pw, pad_index, groups, sums)
    return _box_sum(torch.from_numpy(sums), geom, out_hw).numpy()


def _conv_fused(
    x_idx, wg, plan: Plan, geom, pad_index, bias, out_hw, impl, kern, layer=None, pre=None
) -> torch.Tensor:
    """CPU path: compiled passes look up and pad operands and finish outputs in single passes;
    with `layer` (native passes), the last chunk writes the layer's float32 outputs; with `pre`
    (`_Prepared`), `x_idx` is the layer's float input and the input pass has run."""
    factors = plan.factors
    n, _, h, w = x_idx.shape
    g, og = wg.shape[0], wg.shape[1]
    ph, pw = geom.padding
    hp, wp = h + 2 * ph, w + 2 * pw
    if pre is None:
        xn = x_idx.contiguous().numpy()
        rowmap = np.zeros((0, 0, 0, 0), np.int64)
        if factors.row.any():
            rowmap = _map_sums(kern, xn, factors.row, geom, pad_index, g, out_hw)
    else:
        xn, rowmap = pre.codes, pre.rowmap
    out = np.empty((n, g * og, *out_hw), np.int64)
    bias_np = bias.numpy()
    chunks = plan.chunks or [Chunk((), 0, 0, 0)]
    for i, chunk in enumerate(chunks):
        if chunk.atoms:
            lut_u, lut_v = _luts(factors, chunk.atoms, torch.device("cpu"))
            if i == 0 and pre is not None:
                xf = pre.first
            else:
                xf = np.empty((n, g * len(chunk.atoms) * (chunk.c1 - chunk.c0), hp, wp), np.float32)
                kern.lookup_pad(xn, lut_u.numpy(), ph, pw, pad_index, g, chunk.c0, chunk.c1, xf)
            res = _float_conv(torch.from_numpy(xf), _weights(lut_v, wg, chunk), geom, out_hw, impl)
            res = res.contiguous().numpy()
        else:
            res = np.zeros(out.shape, np.float32)
        if layer is not None and i == len(chunks) - 1:
            sxmap = (
                pre.sxmap
                if pre is not None
                else _sx_map(kern, xn, geom, pad=pad_index, out_hw=out_hw, layer=layer)
            )
            return _layer_out(kern, res, chunk.scale, out if i else None, bias_np, rowmap, sxmap,
                              plan, og, layer)  # fmt: skip
        kern.finish(res, chunk.scale, bias_np, rowmap, og, out, i == 0)
    return torch.from_numpy(out)


def _sx_map(kern, xn, geom, *, pad, out_hw, layer: _LayerOut) -> np.ndarray | None:
    """Receptive-field sums of the centred codes (the zero-point term), or None (zw is 0)."""
    centred = _centred(layer)
    return None if centred is None else _map_sums(kern, xn, centred, geom, pad, geom.groups, out_hw)


def _layer_out(kern, res, scale, earlier, bias, rowmap, sxmap, plan, og, layer):
    zero = layer.zero
    return kern.layer_out(
        res, scale, earlier, bias, rowmap, plan.factors.denominator, zero.w, sxmap,
        zero.x * layer.w_sums, layer.scale, layer.acc_bits, og,
    )  # fmt: skip


def _conv_torch(x_idx, wg, plan: Plan, geom, pad_index, bias, out_hw, impl) -> torch.Tensor:
    """Any-device path in torch ops."""
    factors = plan.factors
    device = x_idx.device
    ph, pw = geom.padding
    xp = F.pad(x_idx.to(torch.int32), (pw, pw, ph, ph), value=pad_index)
    n = xp.shape[0]
    g, og, cg = wg.shape[:3]
    hp, wp = xp.shape[-2:]
    xg = xp.view(n, g, cg, hp, wp)
    out: torch.Tensor | None = None
    for chunk in plan.chunks:
        lut_u, lut_v = _luts(factors, chunk.atoms, device)
        na, cc = len(chunk.atoms), chunk.c1 - chunk.c0
        xsel = xg if cc == cg else xg[:, :, chunk.c0 : chunk.c1]
        xf = _gather_stack(lut_u, xsel, 2).view(n, g * na * cc, hp, wp)
        res = _float_conv(xf, _weights(lut_v, wg, chunk), geom, out_hw, impl).to(torch.int64)
        if chunk.scale != 1:
            res *= chunk.scale
        out = res if out is None else out.add_(res)
    if out is None:
        out = torch.zeros((n, g * og, *out_hw), dtype=torch.int64, device=device)
    out += bias.view(1, -1, 1, 1)
    if factors.row.any():
        row = torch.from_numpy(factors.row).to(device)
        row_map = _box_sum(_lookup(row, xg).sum(dim=2), geom, out_hw)  # (n, g, ho, wo)
        out.view(n, g, og, *out_hw).add_(row_map.unsqueeze(2))
    return out


def matmul(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 batched table matmul (see kernels.reference.matmul) via float32 matmuls."""
    device = a_idx.device
    k = a_idx.shape[-1]
    plan = _plan_or_raise(table, k, 1)
    factors, chunks = plan.factors, plan.chunks
    a, b = a_idx.to(torch.int32), b_idx.to(torch.int32)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = torch.full(
        (*batch, a.shape[-2], b.shape[-1]), factors.const * k, dtype=torch.int64, device=device
    )
    if factors.row.any():
        out += _lookup(torch.from_numpy(factors.row).to(device), a).sum(dim=-1, keepdim=True)
    if factors.col.any():
        out += _lookup(torch.from_numpy(factors.col).to(device), b).sum(dim=-2, keepdim=True)
    for chunk in chunks:
        lut_u, lut_v = _luts(factors, chunk.atoms, device)
        na, kk = len(chunk.atoms), chunk.c1 - chunk.c0
        af = _gather_stack(lut_u, a[..., chunk.c0 : chunk.c1], -2)  # (..., m, na, kk)
        af = af.reshape(*a.shape[:-1], na * kk)
        bf = _gather_stack(lut_v, b[..., chunk.c0 : chunk.c1, :], -3)  # (..., na, kk, n)
        bf = bf.reshape(*b.shape[:-2], na * kk, b.shape[-1])
        out.add_(torch.matmul(af, bf).to(torch.int64), alpha=chunk.scale)
    if factors.denominator != 1:
        out = torch.div(out, factors.denominator, rounding_mode="floor")
    return out


def linear(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]] via float32 matmuls."""
    return matmul(a_idx, b_idx.transpose(0, 1), table)
