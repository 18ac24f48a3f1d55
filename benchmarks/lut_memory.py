"""Peak memory of approximate inference against exact float32 inference at the same batch size.

Each measurement runs in a fresh process: build the model (and approximate it), run one forward
to warm up, read the resident set size, reset the kernel's high-water mark (/proc/self/clear_refs)
and run one more forward; the figure is the high-water mark minus the resident size before it,
i.e. what that forward added at its peak. Linux only (reads /proc/self/status).

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
    with torch.no_grad():
        model(x)
        before = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        model(x)
        peak = _status_kib("VmHWM")
    return {"spec": spec, "added_mib": (peak - before) / 1024}


def measure(model: str, batch: int, spec: str, threads: int) -> float:
    cmd = [sys.executable, __file__, "--child", spec, "--model", model, "--batch", str(batch),
           "--threads", str(threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["added_mib"]


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
    print(f"{args.model}, batch {args.batch}: exact float32 forward adds {exact:.1f} MiB at peak")
    print(f"{'table':10} {'MiB':>8} {'ratio':>7}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for label in TABLES:
            spec = random_table_spec(Path(tmp)) if label == "random" else label
            added = measure(args.model, args.batch, spec, args.threads)
            worst = max(worst, added / exact)
            print(f"{label:10} {added:8.1f} {added / exact:7.2f}")
    print(f"lut_memory: {worst:.2f}")


if __name__ == "__main__":
    main()
