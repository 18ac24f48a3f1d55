"""Kernel-level benchmark: product-table convolutions against exact float32 F.conv2d.

Three layers (batch 128, 3x3, pad 1: ResNet-20's 16->16 channels at 32x32 and 64->64 at 8x8, and a
VGG-like 256->256 at 4x4, where few pixels per weight make slabs costly), four tables (DRUM-4: rank 1; column truncation of 8 columns: rank <= 8; Mitchell's logarithmic
multiplier: general; a random full-rank table), the CPU backends that can run each table (the
'torch' gather backend is the GPU path and far slower on CPU, so it is left out), and the
dispatcher ('auto'). Times are medians of several runs interleaved with the baseline so that load
from other processes hits both alike. Last line: the worst dispatcher ratio.

Run: python benchmarks/lut_kernels.py [--repeats N] [--batch B] [--threads N]
(--threads 1 on a loaded machine: with two threads each parallel region waits for a free core)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from threads import THREADS_HELP, set_threads

from axdnn.kernels import ConvGeometry, lut_conv2d, native, reference
from axdnn.kernels.dispatch import choose_backend, conv_problem
from axdnn.kernels.factor import factorize


def drum(k: int = 4) -> torch.Tensor:
    """DRUM (Hashemi et al., ICCAD 2015) 8x8 unsigned."""

    def approx(x: int) -> int:
        if x < 1 << k:
            return x
        shift = x.bit_length() - k
        return ((x >> shift) | 1) << shift

    v = np.array([approx(x) for x in range(256)])
    return torch.from_numpy(np.outer(v, v).astype(np.int32))


def column_truncation(k: int = 8) -> torch.Tensor:
    """Array multiplier without partial-product bits of weight < 2^k."""
    a = np.arange(256)
    av, bv = np.meshgrid(a, a, indexing="ij")
    t = av * bv
    for i in range(8):
        for j in range(8):
            if i + j < k:
                t -= ((av >> i) & 1) * ((bv >> j) & 1) << (i + j)
    return torch.from_numpy(t.astype(np.int32))


def mitchell() -> torch.Tensor:
    """Mitchell's logarithmic multiplier (IRE Trans. EC-11, 1962), 8x8 unsigned."""
    out = np.zeros((256, 256), np.int64)
    for a in range(1, 256):
        ka = a.bit_length() - 1
        for b in range(1, 256):
            kb = b.bit_length() - 1
            s = ((a - (1 << ka)) << kb) + ((b - (1 << kb)) << ka)
            out[a, b] = (1 << (ka + kb)) + s if s < 1 << (ka + kb) else s << 1
    return torch.from_numpy(out.astype(np.int32))


def random_table() -> torch.Tensor:
    return torch.from_numpy(
        np.random.default_rng(0).integers(0, 65536, (256, 256)).astype(np.int32)
    )


def median_of(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function, runs interleaved round-robin so that load from other
    processes hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    layers = {"16x32x32": (16, 32), "64x8x8": (64, 8), "256x4x4": (256, 4)}
    tables = {
        "drum:4": drum(),
        "trunc:8": column_truncation(),
        "mitchell": mitchell(),
        "random": random_table(),
    }
    geom = ConvGeometry.of(3, padding=1)
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} batch={args.batch} "
        "(times in ms, ratio = time / float32 F.conv2d)"
    )
    print(f"{'layer':10} {'table':9} {'rank':>4} {'backend':9} {'ms':>9} {'ratio':>7}  auto->")
    worst = 0.0
    for lname, (ch, hw) in layers.items():
        xf = torch.randn(args.batch, ch, hw, hw)
        wf = torch.randn(ch, ch, 3, 3)
        # post-ReLU-like activation codes (half zeros, the rest skewed to small values), as the
        # layers of a network see them; uniform random codes touch every table row equally
        x = (torch.rand(args.batch, ch, hw, hw).pow(3) * 256).long().clamp(max=255)
        x[torch.rand(x.shape) < 0.5] = 0
        w = torch.randint(0, 256, (ch, ch, 3, 3))
        for tname, table in tables.items():
            variants = factorize(table)
            rank = str(variants[0].rank) if variants else ">48"
            names = (["native"] if native.available() else []) + ["numba"]
            names += ["lowrank"] if variants else []
            fns = {"float32": lambda xf=xf, wf=wf: F.conv2d(xf, wf, padding=1)}
            for name in names + ["auto"]:
                fns[name] = lambda name=name, x=x, w=w, table=table: lut_conv2d(
                    x, w, table, geom, backend=name
                )
            # Check exactness on a slice before timing.
            ref = reference.conv2d(x[:2], w, table, geom)
            for name in names:
                assert torch.equal(lut_conv2d(x[:2], w, table, geom, backend=name), ref), name
            times = median_of(fns, args.repeats)
            problem = conv_problem(tuple(x.shape), tuple(w.shape), geom, x.device)
            chosen = choose_backend(table, x.device, "auto", problem).name
            base = times["float32"]
            for name in ["float32", *names, "auto"]:
                ratio = times[name] / base
                extra = chosen if name == "auto" else ""
                print(
                    f"{lname:10} {tname:9} {rank:>4} {name:9} {times[name] * 1e3:9.1f} "
                    f"{ratio:7.2f}  {extra}"
                )
            worst = max(worst, times["auto"] / base)
    print(f"lut_kernels: {worst:.2f}")


if __name__ == "__main__":
    main()
