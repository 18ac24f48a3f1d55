"""Native CPU backend: the product-table MAC of `native.c`, compiled for this machine.

The C source is compiled on first use with the system compiler and `-march=native` (AVX-512 or
AVX2 register tiles where the CPU has them; a portable build otherwise; $AXDNN_NATIVE_ARCH names
another -march target) into a per-user cache ($AXDNN_CACHE_DIR, default ~/.cache/axdnn) keyed by
the source, the compiler, the flags and the CPU's feature flags, then called through ctypes with
the GIL released and torch's thread count. It supports tables of up to 256 rows (activation
operands of up to 8 bits) on CPU tensors; `available()` is False without a working compiler,
and the dispatcher then never picks it.

Besides raw table sums it computes the zero-point MAC of `axdnn.kernels.affine` natively and,
for layers in inference, the whole chain float input -> codes -> MAC -> float output in two
passes (quantize + pad, MAC + dequantize) instead of a dozen torch element-wise passes.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import tempfile
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from axdnn.cbuild import BuildFailure, compile_shared, compiler_identity
from axdnn.errors import ConfigError
from axdnn.kernels.affine import ActQuant, ZeroPoints, pad_index, weight_code_sums
from axdnn.kernels.factor import table_digest
from axdnn.kernels.geometry import ConvGeometry

SOURCE = Path(__file__).with_name("native.c")
# Other builds in the cache older than this are removed when a new one is made (a build in use
# by a running process stays mapped; one younger may belong to another installed version).
STALE_SECONDS = 7 * 24 * 3600
FLAGS = ["-O3", "-ffp-contract=off", "-fexcess-precision=standard", "-pthread"]
MAX_ROWS = 256
# Output channels per slab row, in vector lanes; 64-channel layers run as two 32-lane blocks
# (measured faster than one 64-lane block: a tap's slab then fits the L1 cache).
MAX_VECTORS = 2
# Why this backend cannot run where the library cannot be built (error messages name it).
MISSING = (
    "its C source could not be compiled: no working C compiler (install gcc or clang, or set CC)"
)

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_I32 = ctypes.c_int32
_INT = ctypes.c_int
_F32 = ctypes.c_float


class _Prep(ctypes.Structure):
    _fields_ = [
        ("xf", _P), ("xi", _P), ("N", _I64), ("C", _INT), ("H", _INT), ("W", _INT),
        ("ph", _INT), ("pw", _INT), ("G", _INT), ("scale", _F32), ("zero", _F32),
        ("qmin", _F32), ("qmax", _F32), ("mask", _I32), ("pad_index", _INT), ("rows", _INT),
        ("a_signed", _INT), ("zx", _I32), ("xp", _P), ("D", _P),
    ]  # fmt: skip


class _Lowrank(ctypes.Structure):
    _fields_ = [
        ("x", _P), ("N", _I64), ("C", _INT), ("H", _INT), ("W", _INT), ("ph", _INT),
        ("pw", _INT), ("pad_index", _INT), ("G", _INT), ("luts", _P), ("na", _INT),
        ("lut_len", _INT), ("c0", _INT), ("c1", _INT), ("row", _P), ("out", _P), ("res", _P),
        ("O", _INT), ("og", _INT), ("HW", _I64), ("chunk_scale", _I64), ("bias", _P),
        ("rowmap", _P), ("first", _INT), ("acc", _P), ("denominator", _I64), ("zw", _P),
        ("zsw", _P), ("sxmap", _P), ("out_scale", _P), ("saturate", _INT), ("lo", _I64),
        ("hi", _I64),
    ]  # fmt: skip


class _Mac(ctypes.Structure):
    _fields_ = [
        ("xp", _P), ("img_stride", _I64), ("grp_stride", _I64), ("N", _I64), ("G", _INT),
        ("og", _INT), ("K", _INT), ("pix", _P), ("dpix", _P), ("npix", _INT),
        ("npix_pad", _INT), ("tap", _P), ("w", _P), ("w8", _P), ("t16", _P), ("tt16", _P),
        ("t32", _P),
        ("rows", _INT), ("cols", _INT), ("base", _I64), ("maxabs", _I64), ("zw", _P),
        ("zx", _I64), ("sw", _P), ("D", _P), ("a_signed", _INT), ("plane", _I64),
        ("spat", _P), ("nspat", _INT),
        ("out_float", _INT), ("out", _P), ("o_img", _I64), ("o_ch", _I64), ("o_pix", _I64),
        ("scale", _P), ("saturate", _INT), ("lo", _I64), ("hi", _I64), ("OB", _INT),
        ("P", _INT), ("kernel", _INT), ("acc32", _INT), ("img_parts", _I64), ("tb8", _P),
    ]  # fmt: skip


class _LowrankIn(ctypes.Structure):
    _fields_ = [
        ("xf", _P), ("N", _I64), ("C", _INT), ("H", _INT), ("W", _INT), ("ph", _INT),
        ("pw", _INT), ("G", _INT), ("scale", _F32), ("zero", _F32), ("qmin", _F32),
        ("qmax", _F32), ("mask", _I32), ("pad_index", _INT), ("luts", _P), ("na", _INT),
        ("lut_len", _INT), ("c0", _INT), ("c1", _INT), ("out", _P), ("codes", _P), ("v0", _P),
        ("s0", _P), ("s1", _P), ("rows", _INT), ("a_signed", _INT), ("zx", _I64),
    ]  # fmt: skip


class _Box(ctypes.Structure):
    _fields_ = [
        ("planes", _P), ("T", _I64), ("Hp", _INT), ("Wp", _INT), ("kh", _INT), ("kw", _INT),
        ("sh", _INT), ("sw", _INT), ("dh", _INT), ("dw", _INT), ("Ho", _INT), ("Wo", _INT),
        ("out", _P),
    ]  # fmt: skip


def _cache_dir() -> Path:
    root = os.environ.get("AXDNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "axdnn"
    )
    return Path(root) / "native"


def _cpu_identity() -> str:
    """The CPU's feature flags (a build with -march=native only runs where they all exist)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _arch() -> str:
    return "-march=" + (os.environ.get("AXDNN_NATIVE_ARCH", "").strip() or "native")


def _build(output: Path) -> None:
    """Compile with OpenMP and -march, dropping what the compiler does not support; remove
    builds of other sources or flags from the cache."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=output.parent)
    os.close(fd)
    arch = _arch()
    try:
        for extra in (["-fopenmp", arch], [arch], ["-fopenmp"], []):
            try:
                compile_shared([SOURCE], Path(tmp), [*FLAGS, *extra])
                break
            except BuildFailure:
                if not extra:
                    raise
        os.replace(tmp, output)  # atomic: concurrent processes see a whole library or none
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for stale in output.parent.glob("axdnn_native_*.so"):
        if stale != output and time.time() - stale.stat().st_mtime > STALE_SECONDS:
            stale.unlink(missing_ok=True)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The compiled library, built on first use; None when it cannot be built or loaded."""
    try:
        key = hashlib.sha256(
            SOURCE.read_bytes()
            + compiler_identity().encode()
            + _cpu_identity().encode()
            + " ".join([*FLAGS, _arch()]).encode()
        ).hexdigest()[:20]
        path = _cache_dir() / f"axdnn_native_{key}.so"
        if not path.exists():
            _build(path)
        lib = ctypes.CDLL(str(path))
    except (BuildFailure, OSError):
        return None
    lib.axn_prepare.argtypes = [ctypes.POINTER(_Prep), _INT]
    lib.axn_mac.argtypes = [ctypes.POINTER(_Mac), _INT]
    lib.axn_lanes.restype = _INT
    lib.axn_tile_pixels.restype = _INT
    lib.axn_tile_pixels.argtypes = [_INT]
    lib.axn_has_column_kernel.restype = _INT
    for name in ("axn_lut_pad", "axn_row_sums", "axn_finish_chunk", "axn_lowrank_out"):
        getattr(lib, name).argtypes = [ctypes.POINTER(_Lowrank), _INT]
    lib.axn_lowrank_in.argtypes = [ctypes.POINTER(_LowrankIn), _INT]
    lib.axn_box_sums.argtypes = [ctypes.POINTER(_Box), _INT]
    return lib


def available() -> bool:
    """True when the native library is built (or can be) and loaded."""
    return _library() is not None


def supports(table: torch.Tensor, device: torch.device) -> bool:
    """CPU tensors and tables of at most 256 rows, with a working compiler."""
    return device.type == "cpu" and table.shape[0] <= MAX_ROWS and available()


def quantize(x: torch.Tensor, act: ActQuant) -> torch.Tensor:
    """Table indices of quantized x (uint8, same shape; N, C, H, W), in one compiled pass."""
    xf = x.detach().to("cpu", torch.float32).contiguous()
    return _prepare(xf, (0, 0), 1, 1 << act.bits, act, 0, None, False)[0]


def lanes() -> int:
    """int32 lanes of one vector register in the compiled build (16 with AVX-512)."""
    lib = _library()
    return lib.axn_lanes() if lib is not None else 4


def _lib() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        raise ConfigError(
            f"kernel backend 'native' is not installed: {MISSING}; use backend 'auto'"
        )
    return lib


@dataclass(frozen=True)
class _Table:
    """A table as the kernels read it: int32, and as uint16 minus `base` when it fits (also
    transposed, each column padded to 256 entries, for the column kernel)."""

    t32: torch.Tensor
    t16: torch.Tensor | None
    tt16: torch.Tensor | None
    base: int
    maxabs: int
    tb8: torch.Tensor | None = None  # tt16's columns as a low-byte and a high-byte plane


_TABLES: OrderedDict[str, _Table] = OrderedDict()


def _prepared(table: torch.Tensor) -> _Table:
    key = table_digest(table)
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    t = table.detach().to("cpu", torch.int64)
    lo, hi = int(t.min()), int(t.max())
    t16 = tt16 = tb8 = None
    if hi - lo <= 0xFFFF:
        # two bytes of slack: the kernels may read one 32-bit word at the last entry
        flat = (t - lo).to(torch.int32).flatten()
        t16 = torch.cat([flat, flat.new_zeros(2)]).to(torch.uint16)
        tt16 = torch.zeros((t.shape[1], MAX_ROWS), dtype=torch.int32)
        tt16[:, : t.shape[0]] = (t - lo).T
        tb8 = torch.cat([tt16 & 0xFF, tt16 >> 8], dim=1).to(torch.uint8).contiguous()
        tt16 = tt16.to(torch.uint16)
    prepared = _Table(t.to(torch.int32).contiguous(), t16, tt16, lo, max(abs(lo), abs(hi)), tb8)
    _TABLES[key] = prepared
    while len(_TABLES) > 32:
        _TABLES.popitem(last=False)
    return prepared


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _np_ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _prepare(
    x: torch.Tensor,
    geom_pad: tuple[int, int],
    groups: int,
    rows: int,
    act: ActQuant | None,
    pad: int,
    zero: ZeroPoints | None,
    sums: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Padded uint8 indices of x (quantized first when `act` is given) and, with `sums`, the
    per-group channel sums D of (code - zx) per padded pixel."""
    n, c, h, w = x.shape
    ph, pw = geom_pad
    xp = torch.empty((n, c, h + 2 * ph, w + 2 * pw), dtype=torch.uint8)
    d = torch.empty((n, groups, h + 2 * ph, w + 2 * pw), dtype=torch.int32) if sums else None
    args = _Prep(
        xf=_ptr(x) if act is not None else None, xi=_ptr(x) if act is None else None, N=n,
        C=c, H=h, W=w, ph=ph, pw=pw, G=groups, pad_index=pad, rows=rows,
        a_signed=int(zero.a_signed) if zero is not None else 0,
        zx=zero.x if zero is not None else 0, xp=_ptr(xp), D=_ptr(d),
    )  # fmt: skip
    if act is not None:
        args.scale, args.zero = float(act.scale), float(act.zero)
        args.qmin, args.qmax, args.mask = float(act.qmin), float(act.qmax), (1 << act.bits) - 1
    _lib().axn_prepare(ctypes.byref(args), _threads())
    return xp, d


@dataclass(frozen=True)
class _Layout:
    """Offsets of the MAC for one input shape: output pixels, taps, and the D box sum."""

    pix: torch.Tensor  # int64, padded to the tile size
    dpix: torch.Tensor
    tap: torch.Tensor  # int32
    spat: torch.Tensor  # int64
    npix: int
    plane: int
    img_stride: int
    grp_stride: int


@functools.lru_cache(maxsize=256)
def _conv_layout(shape: tuple[int, ...], geom: ConvGeometry, tile: int) -> _Layout:
    _, c, h, w = shape
    (ph, pw), (sh, sw), (dh, dw) = geom.padding, geom.stride, geom.dilation
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = geom.output_size((h, w))
    kh, kw = geom.kernel
    cg = c // geom.groups
    oy, ox = torch.meshgrid(torch.arange(ho), torch.arange(wo), indexing="ij")
    dpix = (oy * sh * wp + ox * sw).flatten()
    ki, kj = torch.meshgrid(torch.arange(kh), torch.arange(kw), indexing="ij")
    spat = (ki * dh * wp + kj * dw).flatten()
    tap = (torch.arange(cg)[:, None] * hp * wp + spat[None, :]).flatten().to(torch.int32)
    return _Layout(
        _pad_to(dpix, tile), dpix.contiguous(), tap.contiguous(), spat.contiguous(), ho * wo,
        hp * wp, c * hp * wp, cg * hp * wp,
    )  # fmt: skip


@functools.lru_cache(maxsize=256)
def _linear_layout(m: int, k: int, tile: int) -> _Layout:
    rows = torch.arange(m, dtype=torch.int64)
    return _Layout(
        _pad_to(rows * k, tile), rows, torch.arange(k, dtype=torch.int32),
        torch.zeros(1, dtype=torch.int64), m, m, 0, 0,
    )  # fmt: skip


def _pad_to(offsets: torch.Tensor, tile: int) -> torch.Tensor:
    """Offsets repeated at the end up to a multiple of `tile` (tail tiles compute duplicates)."""
    extra = -len(offsets) % tile
    if extra:
        offsets = torch.cat([offsets, offsets[-1:].expand(extra)])
    return offsets.contiguous()


# Throughputs (per thread) behind the choice between the kernels, measured with
# benchmarks/lut_kernels.py on the 2-core AVX-512 EPYC (Zen 5); only their ratios matter.
SLAB_LOOKUPS = {1: 2.9e10, 2: 5e10}  # table values added per second, by vectors per slab row
SLAB_BUILD = 5e9  # slab entries written per second (word permutes; scalar: about 1e9)
COLUMN_LOOKUPS = 1.5e10  # table values per second by word permutes of one column
DIRECT_LOOKUPS = 1.5e9  # scalar lookups per second
ELEMENTS = 2e9  # input and output elements quantized or dequantized per second
SLAB, DIRECT, COLUMN = 0, 1, 2  # kernel codes of native.c
# Tests and benchmarks set this to one of them to run that kernel wherever it can run.
FORCE_KERNEL: int | None = None


def _vectors(per_group: int) -> int:
    """Vector registers per slab row for `per_group` output channels."""
    lanes_ = lanes()
    return min(MAX_VECTORS, max(1, -(-per_group // lanes_)))


def narrow(table: torch.Tensor) -> bool:
    """Whether the table spans at most 65535, so that kernels read it as uint16."""
    return _prepared(table).t16 is not None


def _has_column_kernel() -> bool:
    lib = _library()
    return lib is not None and bool(lib.axn_has_column_kernel())


def plan_cost(
    rows: int, groups: int, per_group: int, taps: int, pixels: int, narrow: bool = True
) -> tuple[float, int]:
    """(estimated single-thread seconds, kernel code) of the cheapest kernel for `pixels`
    outputs (images x positions) of `groups` x `per_group` channels over `taps`; `narrow`: the
    table fits uint16 (the column kernel needs that)."""
    ob = lanes() * _vectors(per_group)
    padded = groups * -(-per_group // ob) * ob
    lookups = pixels * taps * groups * per_group
    costs = {DIRECT: lookups / DIRECT_LOOKUPS}
    if per_group * 2 >= lanes():  # else most of each slab row would be padding
        rate = SLAB_LOOKUPS.get(_vectors(per_group), min(SLAB_LOOKUPS.values()))
        costs[SLAB] = pixels * taps * padded / rate + taps * rows * padded / SLAB_BUILD
    if narrow and _has_column_kernel():
        costs[COLUMN] = groups * per_group * taps * -(-pixels // 64) * 64 / COLUMN_LOOKUPS
    kernel = min(costs, key=costs.get)
    return costs[kernel], kernel


@dataclass(frozen=True)
class _Call:
    """One MAC: the kernel (slab, direct or column), its vector width and the tile of pixels."""

    groups: int
    per_group: int
    taps: int
    kernel: int
    vectors: int
    tile: int

    @classmethod
    def of(cls, table: torch.Tensor, groups: int, per_group: int, taps: int, pixels: int) -> _Call:
        args = (table.shape[0], narrow(table), groups, per_group, taps, pixels, FORCE_KERNEL)
        return _call_of(*args)

    def sums(self, zero: ZeroPoints | None) -> bool:
        """Whether the slab kernel needs the channel sums D (the others sum inline)."""
        return zero is not None and self.kernel == SLAB and bool(zero.w.any())


@functools.lru_cache(maxsize=1024)
def _call_of(rows, fits, groups, per_group, taps, pixels, force) -> _Call:
    _, kernel = plan_cost(rows, groups, per_group, taps, pixels, fits)
    if force is not None and (force != COLUMN or fits):
        kernel = force
    vectors = _vectors(per_group)
    return _Call(groups, per_group, taps, kernel, vectors, _lib().axn_tile_pixels(vectors))


def _weights(w_idx: torch.Tensor, cols: int, outputs: int, taps: int) -> torch.Tensor:
    """Weight indices as the kernel reads them: bytes for tables of <= 256 columns."""
    dtype = torch.uint8 if cols <= 256 else torch.int32
    return w_idx.detach().to("cpu", dtype).reshape(outputs, taps).contiguous()


def _mac(
    call: _Call,
    xp: torch.Tensor,
    d: torch.Tensor | None,
    layout: _Layout,
    n: int,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    zero: ZeroPoints | None,
    out: torch.Tensor,
    out_strides: tuple[int, int, int],
    scale: torch.Tensor | None,
    acc_bits: int | None,
) -> None:
    """Run the C MAC of `xp` (prepared input) into `out` (int64, or float32 with `scale`)."""
    tab = _prepared(table)
    w, sw, zw, acc32 = _weight_terms(call, w_idx, table, tab, zero)
    bound = 1 << (acc_bits - 1) if acc_bits is not None else 0
    scale32 = None if scale is None else scale.to(torch.float32).contiguous()
    args = _Mac(
        xp=_ptr(xp), img_stride=layout.img_stride, grp_stride=layout.grp_stride, N=n,
        G=call.groups, og=call.per_group, K=call.taps, pix=_ptr(layout.pix),
        dpix=_ptr(layout.dpix), npix=layout.npix, npix_pad=layout.pix.numel(),
        tap=_ptr(layout.tap), w=_ptr(w) if w.dtype == torch.int32 else None,
        w8=_ptr(w) if w.dtype == torch.uint8 else None, t16=_ptr(tab.t16), tt16=_ptr(tab.tt16),
        t32=_ptr(tab.t32),
        rows=table.shape[0], cols=table.shape[1], base=tab.base, maxabs=tab.maxabs,
        zw=_ptr(zw), zx=zero.x if zero is not None else 0, sw=_ptr(sw), D=_ptr(d),
        a_signed=int(zero.a_signed) if zero is not None else 0, plane=layout.plane,
        spat=_ptr(layout.spat), nspat=layout.spat.numel(), out_float=int(scale is not None),
        out=_ptr(out), o_img=out_strides[0], o_ch=out_strides[1], o_pix=out_strides[2],
        scale=_ptr(scale32), saturate=int(acc_bits is not None), lo=-bound, hi=bound - 1,
        OB=call.vectors * lanes(), P=call.tile, kernel=call.kernel,
        acc32=acc32, img_parts=1,
        tb8=_ptr(tab.tb8),
    )  # fmt: skip
    _lib().axn_mac(ctypes.byref(args), _threads())


_WEIGHT_TERMS: OrderedDict[tuple, tuple] = OrderedDict()


def _weight_terms(call: _Call, w_idx: torch.Tensor, table, tab: _Table, zero: ZeroPoints | None):
    """The weights as the kernel reads them, their code sums and zero points, and whether the
    output pass fits int32; remembered per weight tensor and zero-point object (layers keep
    both between calls) until either is freed or modified in place."""
    key = (id(w_idx), id(zero), id(tab), call.taps)
    hit = _WEIGHT_TERMS.get(key)
    if hit is not None and hit[0]() is w_idx and hit[1] == w_idx._version:
        if zero is None or (hit[2]() is zero and hit[3] == zero.w._version):
            return hit[4]
    o = call.groups * call.per_group
    w = _weights(w_idx, table.shape[1], o, call.taps)
    zw = sw = None
    if zero is not None:
        sw = weight_code_sums(w, table.shape[1], zero).to("cpu", torch.int64).contiguous()
        if bool(zero.w.any()):
            zw = zero.w.to(torch.int64).contiguous()
    fits = int(_finish_bound(tab, call.taps, zero, sw, table.shape[0]) < 1 << 31)
    terms = (w, sw, zw, fits)
    try:
        refs = (weakref.ref(w_idx), weakref.ref(zero) if zero is not None else None)
    except TypeError:  # not weakly referenceable: not remembered
        return terms
    _WEIGHT_TERMS[key] = (refs[0], w_idx._version, refs[1],
                          zero.w._version if zero is not None else 0, terms)  # fmt: skip
    while len(_WEIGHT_TERMS) > 256:
        _WEIGHT_TERMS.popitem(last=False)
    return terms


def _finish_bound(tab: _Table, taps: int, zero, sw, rows: int) -> int:
    """A bound on every value and term the output pass computes from uint16 slab sums:
    sums of (T - base), base * K, zx * sum_k w_k, zw * sum_k (x_k - zx)."""
    bound = taps * (0x10000 + abs(tab.base))  # signed slabs: sums of +-32768, base + 32768
    if zero is not None:
        bound += abs(zero.x) * int(sw.abs().max()) if sw.numel() else 0
        x_span = taps * (rows + abs(zero.x))
        bound += int(zero.w.abs().max()) * x_span if zero.w.numel() else 0
    return bound


def _out_dtype(scale: torch.Tensor | None) -> torch.dtype:
    return torch.int64 if scale is None else torch.float32


def _conv(x, w_idx, table, geom, pad, zero, act, scale, acc_bits):
    n, _, h, w = x.shape
    o, cg, kh, kw = w_idx.shape
    ho, wo = geom.output_size((h, w))
    g = geom.groups
    call = _Call.of(table, g, o // g, cg * kh * kw, n * ho * wo)
    xp, d = _prepare(x, geom.padding, g, table.shape[0], act, pad, zero, call.sums(zero))
    layout = _conv_layout(tuple(x.shape), geom, call.tile)
    out = torch.empty((n, o, ho, wo), dtype=_out_dtype(scale))
    strides = (o * ho * wo, ho * wo, 1)
    _mac(call, xp, d, layout, n, w_idx, table, zero, out, strides, scale, acc_bits)
    return out


def _linear(a, b_idx, table, zero, act, scale, acc_bits):
    m, k = a.shape
    o = b_idx.shape[0]
    call = _Call.of(table, 1, o, k, m)
    xp, d = _prepare_rows(a, table.shape[0], act, zero, call.sums(zero))
    layout = _linear_layout(m, k, call.tile)
    out = torch.empty((m, o), dtype=_out_dtype(scale))
    _mac(call, xp, d, layout, 1, b_idx, table, zero, out, (0, 1, o), scale, acc_bits)
    return out


def _prepare_rows(a, rows: int, act: ActQuant | None, zero: ZeroPoints | None, sums: bool):
    """uint8 indices of a linear input (M, K) in its own layout and, with `sums`, each row's sum
    of (code - zx). Quantized in a few large blocks of rows: `_prepare` on an (M, K, 1, 1) view
    would walk M x K one-pixel planes."""
    m, k = a.shape
    if act is None:
        xp = a
    else:
        parts = _row_blocks(m)
        xp = _prepare(a.reshape(parts, 1, m // parts, k), (0, 0), 1, rows, act, 0, None, False)[0]
        xp = xp.reshape(m, k)
    if not sums:
        return xp, None
    codes = xp.to(torch.int32)
    if zero.a_signed:
        codes = torch.where(codes >= rows // 2, codes - rows, codes)
    return xp, (codes - zero.x).sum(1, dtype=torch.int32)


def _row_blocks(m: int, most: int = 64) -> int:
    """The largest divisor of m up to `most`: blocks of rows the threads quantize in parallel."""
    return max(b for b in range(1, min(m, most) + 1) if m % b == 0)


def _indices(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.uint8).contiguous()


def _pad_for(zero: ZeroPoints | None, rows: int, given: int) -> int:
    return pad_index(zero, rows) if zero is not None else int(given)


def conv2d(x_idx, w_idx, table, geom: ConvGeometry, pad_index: int = 0, zero=None):
    """Exact int64 table convolution (kernels.reference.conv2d), or the zero-point MAC."""
    pad = _pad_for(zero, table.shape[0], pad_index)
    return _conv(_indices(x_idx), w_idx, table, geom, pad, zero, None, None, None)


def linear(a_idx, b_idx, table, zero=None):
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]], or the zero-point MAC."""
    return _linear(_indices(a_idx), b_idx, table, zero, None, None, None)


def matmul(a_idx, b_idx, table):
    """Exact int64 batched table matmul with broadcasting batch dims (one slab per matrix)."""
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    m, n = a_idx.shape[-2], b_idx.shape[-1]
    a = a_idx.expand(*batch, *a_idx.shape[-2:]).reshape(-1, *a_idx.shape[-2:])
    b = b_idx.expand(*batch, *b_idx.shape[-2:]).reshape(-1, *b_idx.shape[-2:])
    out = torch.empty((a.shape[0], m, n), dtype=torch.int64)
    for i in range(a.shape[0]):
        out[i] = linear(a[i], b[i].transpose(0, 1), table)
    return out.reshape(*batch, m, n)


def conv2d_float(x, act: ActQuant, w_idx, table, geom, zero: ZeroPoints, scale, acc_bits=None):
    """float32(saturate(zero-point MAC of quantize(x))) * scale[o], fused (see affine)."""
    xf = x.detach().to("cpu", torch.float32).contiguous()
    pad = pad_index(zero, table.shape[0])
    return _conv(xf, w_idx, table, geom, pad, zero, act, scale, acc_bits)


def linear_float(x, act: ActQuant, w_idx, table, zero: ZeroPoints, scale, acc_bits=None):
    """The same for a linear map over the last dimension of a 2-D input."""
    xf = x.detach().to("cpu", torch.float32).contiguous()
    return _linear(xf, w_idx, table, zero, act, scale, acc_bits)


class LowrankPasses:
    """The low-rank backend's passes around its float32 convolutions (operand lookup with
    padding, row sums, output accumulation), on numpy arrays with the signatures of the numba
    versions in `_numba_kernels`; activation indices must fit uint8."""

    @staticmethod
    def _x(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.uint8)

    def lookup_pad(self, x, luts, ph, pw, pad_index, groups, c0, c1, out) -> None:
        xs = self._x(x)
        luts = np.ascontiguousarray(luts, dtype=np.float32)
        n, c, h, w = xs.shape
        args = _Lowrank(
            x=xs.ctypes.data, N=n, C=c, H=h, W=w, ph=ph, pw=pw, pad_index=pad_index, G=groups,
            luts=luts.ctypes.data, na=luts.shape[0], lut_len=luts.shape[1], c0=c0, c1=c1,
            out=out.ctypes.data,
        )  # fmt: skip
        _lib().axn_lut_pad(ctypes.byref(args), _threads())

    def quantize_lookup(self, x, act: ActQuant, first, *, pad, pad_index, groups, sums, codes):
        """One pass over float input x (N, C, H, W): quantize with `act`, look up the operands
        of channels [c0, c1) (`first`: (luts, c0, c1) or None) padded by `pad` (ph, pw) with
        row `pad_index`, and sum over each group's channels per padded pixel `sums` = (row:
        an int64 table by index, or None; centred: (rows, a_signed, zx) for code - zx, or
        None). Returns (indices, or None when not `codes`; float operands or None; the two
        sums: int64 (N, G, Hp, Wp) arrays or None)."""
        xf = x.detach().to("cpu", torch.float32).contiguous()
        n, c, h, w = xf.shape
        (ph, pw), hp, wp = pad, h + 2 * pad[0], w + 2 * pad[1]
        row, centred = sums
        v0 = None if row is None else np.ascontiguousarray(row, dtype=np.int64)
        s0, s1 = (
            None if v is None else np.empty((n, groups, hp, wp), np.int64) for v in (row, centred)
        )
        idx = np.empty((n, c, h, w), np.uint8) if codes else None
        out = luts = None
        c0 = c1 = na = lut_len = 0
        if first is not None:
            luts = np.ascontiguousarray(first[0], dtype=np.float32)
            c0, c1 = first[1], first[2]
            na, lut_len = luts.shape
            out = np.empty((n, groups * na * (c1 - c0), hp, wp), np.float32)
        rows, a_signed, zx = centred if centred is not None else (1 << act.bits, False, 0)
        args = _LowrankIn(
            xf=xf.data_ptr(), N=n, C=c, H=h, W=w, ph=ph, pw=pw, G=groups,
            scale=float(act.scale), zero=float(act.zero), qmin=float(act.qmin),
            qmax=float(act.qmax), mask=(1 << act.bits) - 1, pad_index=pad_index,
            luts=_np_ptr(luts), na=na, lut_len=lut_len, c0=c0, c1=c1, out=_np_ptr(out),
            codes=_np_ptr(idx), v0=_np_ptr(v0), s0=_np_ptr(s0), s1=_np_ptr(s1), rows=rows,
            a_signed=int(a_signed), zx=int(zx),
        )  # fmt: skip
        _lib().axn_lowrank_in(ctypes.byref(args), _threads())
        return idx, out, (s0, s1)

    def box_sums(self, planes: np.ndarray, geom: ConvGeometry, out_hw) -> np.ndarray:
        """Sums of padded int64 planes (..., Hp, Wp) over each output's kernel window."""
        planes = np.ascontiguousarray(planes, dtype=np.int64)
        *lead, hp, wp = planes.shape
        out = np.empty((*lead, *out_hw), np.int64)
        (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
        args = _Box(
            planes=planes.ctypes.data, T=int(np.prod(lead)), Hp=hp, Wp=wp, kh=kh, kw=kw, sh=sh,
            sw=sw, dh=dh, dw=dw, Ho=out_hw[0], Wo=out_hw[1], out=out.ctypes.data,
        )  # fmt: skip
        _lib().axn_box_sums(ctypes.byref(args), _threads())
        return out

    def row_sums(self, x, row, ph, pw, pad_index, groups, out) -> None:
        xs = self._x(x)
        row = np.ascontiguousarray(row, dtype=np.int64)
        n, c, h, w = xs.shape
        args = _Lowrank(
            x=xs.ctypes.data, N=n, C=c, H=h, W=w, ph=ph, pw=pw, pad_index=pad_index, G=groups,
            row=row.ctypes.data, out=out.ctypes.data,
        )  # fmt: skip
        _lib().axn_row_sums(ctypes.byref(args), _threads())

    def finish(self, res, scale, bias, rowmap, og, out, first) -> None:
        res = np.ascontiguousarray(res, dtype=np.float32)
        bias = np.ascontiguousarray(bias, dtype=np.int64)
        rowmap = np.ascontiguousarray(rowmap, dtype=np.int64) if rowmap.size else None
        n, o = res.shape[:2]
        args = _Lowrank(
            res=res.ctypes.data, N=n, O=o, og=og, HW=res[0, 0].size, chunk_scale=int(scale),
            bias=bias.ctypes.data, rowmap=None if rowmap is None else rowmap.ctypes.data,
            out=out.ctypes.data, first=int(first),
        )  # fmt: skip
        _lib().axn_finish_chunk(ctypes.byref(args), _threads())

    def layer_out(
        self,
        res,
        scale,
        earlier,
        bias,
        rowmap,
        denominator,
        zw,
        sxmap,
        zsw,
        out_scale,
        acc_bits,
        og,
    ) -> torch.Tensor:
        """float32 layer outputs from the last chunk's convolution `res`: see
        axn_lowrank_out in native.c (`earlier`: int64 sums of the chunks before, or None)."""
        res = np.ascontiguousarray(res, dtype=np.float32)
        n, o = res.shape[:2]
        keep = [np.ascontiguousarray(bias, dtype=np.int64)]
        zw_np = zsw_np = None
        if sxmap is not None:
            zw_np = np.ascontiguousarray(zw.cpu().numpy(), dtype=np.int64)
            sxmap = np.ascontiguousarray(sxmap, dtype=np.int64)
        zsw_np = np.ascontiguousarray(zsw.cpu().numpy(), dtype=np.int64)
        scale32 = np.ascontiguousarray(out_scale.detach().cpu().numpy(), dtype=np.float32)
        rowmap = np.ascontiguousarray(rowmap, dtype=np.int64) if rowmap.size else None
        out = torch.empty(res.shape, dtype=torch.float32)
        bound = 1 << (acc_bits - 1) if acc_bits is not None else 0
        args = _Lowrank(
            res=res.ctypes.data, N=n, O=o, og=og, HW=res[0, 0].size, chunk_scale=int(scale),
            bias=keep[0].ctypes.data, rowmap=None if rowmap is None else rowmap.ctypes.data,
            first=int(earlier is None), acc=None if earlier is None else earlier.ctypes.data,
            denominator=int(denominator), zw=None if zw_np is None else zw_np.ctypes.data,
            zsw=zsw_np.ctypes.data, sxmap=None if sxmap is None else sxmap.ctypes.data,
            out_scale=scale32.ctypes.data, saturate=int(acc_bits is not None), lo=-bound,
            hi=bound - 1, out=out.data_ptr(),
        )  # fmt: skip
        _lib().axn_lowrank_out(ctypes.byref(args), _threads())
        return out
