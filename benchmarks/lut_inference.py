"""Model-level benchmark: ResNet-20 inference on approximate multipliers against exact float32.

ResNet-20 (3x32x32, batch 128, random weights), exact float32 PyTorch inference of the same model
as the baseline in the same process, run alternately with each approximate model: the ratio is
the median over repeats of each approximate run's time over the float32 run right before it, so
that drifts in machine speed (shared, virtualised cores) cancel; images/s are medians too. For
tables drum:4, trunc:8 (column truncation), mitchell and a random full-rank table, images/s of each
CPU backend and of the dispatcher, and the ratio of inference time to the exact model's. Last
line: the worst dispatcher ratio. On a loaded machine use --threads 1: with two threads every
parallel region waits for a free core (about 12 ms each here), which swamps the timings.

With --device cuda (the GPU benchmark) the same comparison runs on the GPU with the backends that
run there (triton, lowrank, torch); without a CUDA device it says so and measures nothing.

Run: python benchmarks/lut_inference.py [--batch 128] [--repeats 5] [--threads N] [--device cuda]
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

from axdnn.kernels import available_backends
from axdnn.models.resnet import resnet20
from axdnn.nn.approximate import approximate
from axdnn.nn.plan import Plan


def random_table_spec(folder: Path) -> str:
    """A random full-rank 8x8 table written as a raw uint16 file, as a `lut:` spec."""
    path = folder / "random_u8.bin"
    rng = np.random.default_rng(0)
    rng.integers(0, 65536, size=(256, 256)).astype("<u2").tofile(path)
    return f"lut:{path}"


# the order rows are printed in; numba last: its own thread pool may still spin after it
# returns, which would slow whatever runs next
BACKENDS = {
    "cpu": ("native", "lowrank", "auto", "numba"),
    "cuda": ("triton", "lowrank", "torch", "auto"),
}


def backends_for(table: torch.Tensor, device: str = "cpu") -> list[str]:
    """The benchmarked backends installed here that can run `table` on `device` (others are
    skipped, not failed)."""
    runnable = set(available_backends(table, torch.device(device)))
    return [name for name in BACKENDS[device] if name in runnable]


def timed(fn, device: str):
    """`fn` followed by a device synchronisation (GPU work is asynchronous)."""
    if device != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


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
    parser.add_argument("--device", choices=sorted(BACKENDS), default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: the GPU benchmark measured nothing (no GPU figure)")
        raise SystemExit(2)
    set_threads(args.threads)
    torch.manual_seed(0)
    model = resnet20().eval().to(args.device)
    x = torch.rand(args.batch, 3, 32, 32, device=args.device)
    calib = torch.rand(256, 3, 32, 32)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"device={where} threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} "
        f"batch={args.batch} (float32 images/s measured alongside each row)"
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

            for backend in backends_for(get_multiplier(spec).table, args.device):
                plan = Plan.uniform(spec, backend=backend)
                approx = approximate(model.cpu(), plan, calib).to(args.device)
                model.to(args.device)
                with torch.no_grad():
                    base, t, ratio = paired_times(
                        timed(lambda: model(x), args.device),
                        timed(lambda approx=approx: approx(x), args.device),
                        args.repeats,
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
