"""Model-level benchmark: ResNet-20 inference on approximate multipliers against exact float32.

ResNet-20 (3x32x32, batch 128, random weights), exact float32 PyTorch inference of the same model
as the baseline in the same process, run alternately with each approximate model: the ratio is
the median over repeats of each approximate run's time over the float32 run right before it, so
that drifts in machine speed (shared, virtualised cores) cancel; images/s are medians too. For
tables drum:4, trunc:8 (column truncation), mitchell and a random full-rank table, images/s of each
CPU backend and of the dispatcher, and the ratio of inference time to the exact model's. Last
line: the worst dispatcher ratio. On a loaded machine use --threads 1: with two threads every
parallel region waits for a free core (about 12 ms each here), which swamps the timings.

Run: python benchmarks/lut_inference.py [--batch 128] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threads import THREADS_HELP, set_threads

from axdnn.kernels.factor import factorize
from axdnn.models.resnet import resnet20
from axdnn.nn.approximate import approximate
from axdnn.nn.plan import Plan


def random_table_spec(folder: Path) -> str:
    """A random full-rank 8x8 table written as a raw uint16 file, as a `lut:` spec."""
    path = folder / "random_u8.bin"
    rng = np.random.default_rng(0)
    rng.integers(0, 65536, size=(256, 256)).astype("<u2").tofile(path)
    return f"lut:{path}"


def paired_times(base, approx, repeats: int) -> tuple[float, float, float]:
    """Median wall times of `base` and `approx` and the median ratio of back-to-back pairs."""
    base(), approx()
    tb, ta = [], []
    for _ in range(repeats):
        for fn, out in ((base, tb), (approx, ta)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(ta, tb, strict=True)]
    return statistics.median(tb), statistics.median(ta), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.rand(args.batch, 3, 32, 32)
    calib = torch.rand(256, 3, 32, 32)
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} batch={args.batch} "
        "(float32 images/s measured alongside each row)"
    )
    print(f"{'table':10} {'backend':8} {'images/s':>9} {'float32':>9} {'ratio':>7}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        specs = {
            "drum:4": "drum:4",
            "trunc:8": "trunc:8",
            "mitchell": "mitchell",
            "random": random_table_spec(Path(tmp)),
        }
        for label, spec in specs.items():
            from axdnn.arith import get_multiplier

            # numba last: its own thread pool may still spin after it returns, which would slow
            # whatever runs next
            low_rank = ["lowrank"] if factorize(get_multiplier(spec).table) else []
            backends = ["native", *low_rank, "auto", "numba"]
            for backend in backends:
                approx = approximate(model, Plan.uniform(spec, backend=backend), calib)
                with torch.no_grad():
                    base, t, ratio = paired_times(
                        lambda: model(x), lambda approx=approx: approx(x), args.repeats
                    )
                print(
                    f"{label:10} {backend:8} {args.batch / t:9.1f} {args.batch / base:9.1f} "
                    f"{ratio:7.2f}"
                )
                if backend == "auto":
                    worst = max(worst, ratio)
    print(f"lut_inference: {worst:.2f}")


if __name__ == "__main__":
    main()
