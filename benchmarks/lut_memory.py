"""Peak memory of approximate inference against exact float32 inference at the same batch size.

Each measurement runs in a fresh process: build the model (and approximate and calibrate it),
read the resident set size, reset the kernel's high-water mark (/proc/self/clear_refs) and run a
forward; the figure is the high-water mark minus the resident size before it, i.e. what that
forward added at its peak. Measured for the first forward (which also builds caches: quantized
weights, the native library) and for a second one (steady state, which may reuse memory the
allocator kept from the first). Linux only (reads /proc/self/status).

Run: python benchmarks/lut_memory.py [--model resnet20] [--batch 128] [--threads N]
Last line: `lut_memory: <worst approximate / exact ratio>`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TABLES = ["drum:4", "trunc:8", "mitchell", "random"]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(model_name: str, batch: int, spec: str, threads: int) -> dict:
    import torch

    from axdnn.models import build_model
    from axdnn.nn.approximate import approximate
    from axdnn.nn.plan import Plan

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(model_name, in_channels=3, num_classes=10).eval()
    x = torch.rand(batch, 3, 32, 32)
    if spec != "exact-float":
        model = approximate(model, Plan.uniform(spec), torch.rand(64, 3, 32, 32))
    added = []
    with torch.no_grad():
        for _ in range(2):
            before = _status_kib("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            model(x)
            added.append((_status_kib("VmHWM") - before) / 1024)
    return {"spec": spec, "first_mib": added[0], "steady_mib": added[1]}


def measure(model: str, batch: int, spec: str, threads: int) -> tuple[float, float]:
    """(MiB added by the first forward, by the second) in a fresh process."""
    cmd = [sys.executable, __file__, "--child", spec, "--model", model, "--batch", str(batch),
           "--threads", str(threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record["first_mib"], record["steady_mib"]


def random_table_spec(folder: Path) -> str:
    path = folder / "random_u8.bin"
    np.random.default_rng(0).integers(0, 65536, size=(256, 256)).astype("<u2").tofile(path)
    return f"lut:{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.batch, args.child, args.threads)))
        return
    exact = measure(args.model, args.batch, "exact-float", args.threads)
    print(
        f"{args.model}, batch {args.batch}: an exact float32 forward adds {exact[0]:.1f} MiB "
        f"(first) and {exact[1]:.1f} MiB (steady) at its peak"
    )
    print(f"{'table':10} {'first MiB':>10} {'ratio':>6} {'steady MiB':>11} {'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for label in TABLES:
            spec = random_table_spec(Path(tmp)) if label == "random" else label
            added = measure(args.model, args.batch, spec, args.threads)
            ratios = [a / max(e, 1.0) for a, e in zip(added, exact, strict=True)]
            worst = max(worst, *ratios)
            print(f"{label:10} {added[0]:10.1f} {ratios[0]:6.2f} {added[1]:11.1f} {ratios[1]:6.2f}")
    print(f"lut_memory: {worst:.2f}")


if __name__ == "__main__":
    main()
