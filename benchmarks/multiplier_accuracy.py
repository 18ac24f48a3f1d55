"""Accuracy drop of every built-in multiplier (`@u8` and `@s8`) and of real EvoApprox 8-bit
unsigned tables, post-training (no fine-tuning), on a model without batch norm (LeNet-5) and one
with it (digits_cnn).

Protocol (one run, seed 0): each model is trained in float (`TrainConfig(epochs=E, lr=the
model's default, seed=0)`); then every conv/linear layer runs on the multiplier through the
bit-exact table simulation (`approximate(model, Plan.uniform(spec), train)`: per-channel weights,
activations calibrated on training batches) and is evaluated on the test split (or its first
`--test-limit` images). "drop" is float top-1 minus approximate top-1 in points; "vs exact" is
the drop beyond the exact 8-bit table of the same signedness (quantization alone). EvoApprox
tables are unsigned, so they run `@u8` only; their published 45 nm power is printed beside them.
With 10,000 test images a 95% interval on a top-1 near 85% is about +-0.7 points.

Last line: `multiplier_accuracy: <model> median drop X points over N multipliers, ...`.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
from threads import THREADS_HELP, set_threads
from torch.utils.data import Subset

from axdnn.arith.catalogue import catalogue
from axdnn.data import load_dataset
from axdnn.models import build_model, default_lr
from axdnn.nn import Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit

EVOAPPROX = Path(__file__).resolve().parents[2] / "shared" / "data" / "evoapprox8u"
EPOCHS = {"lenet5": 3, "digits_cnn": 3}


def builtin_specs() -> list[str]:
    """The catalogue's representative multipliers, unsigned then signed, exact first."""
    return [row["spec"] for signed in (False, True) for row in catalogue(8, signed)]


def evoapprox_tables(folder: Path) -> list[tuple[str, float | None]]:
    """(`lut:` spec, published power in mW or None) of every EvoApprox table in `folder`."""
    if not folder.is_dir():
        return []
    power = {}
    metrics = folder / "published_metrics.csv"
    if metrics.is_file():
        with metrics.open() as f:
            power = {row["name"]: float(row["pdk45_power_mw"]) for row in csv.DictReader(f)}
    return [
        (f"lut:{path}@u8", power.get(path.stem))
        for path in sorted(folder.glob("mul8u_*.bin"))
        if path.stem != "mul8u_199Z"  # outputs 0 for every input (see the folder's README)
    ]


def trained(name: str, data, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, data.input_shape[0], data.num_classes)
    config = TrainConfig(epochs=epochs, lr=default_lr(name), seed=0)
    fit(model, data.train, data.val, data.num_classes, config)
    return model.eval()


def short(spec: str) -> str:
    return Path(spec[4:]).stem + "@u8" if spec.startswith("lut:") else spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--models", nargs="+", default=list(EPOCHS))
    parser.add_argument("--epochs", type=int, default=0, help="0: the per-model default (3)")
    parser.add_argument(
        "--test-limit",
        type=int,
        nargs="+",
        default=[0],
        help="test images per model (one value, or one per model; 0: all)",
    )
    parser.add_argument("--evoapprox", type=Path, default=EVOAPPROX)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} data={args.data}")
    data = load_dataset(args.data)
    limits = args.test_limit * len(args.models) if len(args.test_limit) == 1 else args.test_limit
    evo = evoapprox_tables(args.evoapprox)
    summary = []
    for name, limit in zip(args.models, limits, strict=True):
        test = Subset(data.test, range(min(limit, len(data.test)))) if limit else data.test
        start = time.perf_counter()
        model = trained(name, data, args.epochs or EPOCHS.get(name, 3))
        float_top1 = evaluate(model, test, data.num_classes).top1
        print(
            f"\n{name}: float test top-1 {float_top1:.4f} on {len(test)} images "
            f"(trained in {time.perf_counter() - start:.0f} s)"
        )
        print(f"{'multiplier':<16}{'power mW':>9}{'top-1':>8}{'drop':>7}{'vs exact':>9}")
        exact = {}
        drops = []
        rows = [(s, None) for s in builtin_specs()] + evo
        for spec, power in rows:
            approx = approximate(model, Plan.uniform(spec), data.train, seed=0)
            top1 = evaluate(approx, test, data.num_classes).top1
            domain = spec.rsplit("@", 1)[1]
            if spec.startswith("exact"):
                exact[domain] = top1
            else:
                drops.append((float_top1 - top1) * 100)
            beyond = (exact[domain] - top1) * 100
            watts = f"{power:.4f}" if power is not None else "-"
            print(
                f"{short(spec):<16}{watts:>9}{top1:>8.4f}{(float_top1 - top1) * 100:>7.2f}"
                f"{beyond:>9.2f}",
                flush=True,
            )
        summary.append(f"{name} median drop {statistics.median(drops):.2f} points")
        summary[-1] += f" over {len(drops)} multipliers"
    print("multiplier_accuracy: " + ", ".join(summary))


if __name__ == "__main__":
    main()
