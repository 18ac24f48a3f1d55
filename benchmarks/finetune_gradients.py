"""Fine-tuning through approximate multipliers: straight-through vs table-difference gradient.

digits_cnn trained on digits; for each multiplier that costs accuracy, fine-tune the approximated
model for the same epochs and seed with each gradient and report test top-1 before and after.
Last line: `finetune_gradients: <mean recovered fraction with table / with ste>`.
"""

from __future__ import annotations

import argparse
import time

import torch

from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.nn import Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit
from axdnn.train.finetune import finetune

MULTIPLIERS = ("trunc:8", "drum:4", "otrunc:4", "trunc:10", "etm:4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--multipliers", nargs="*", default=list(MULTIPLIERS))
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("digits_cnn", in_channels=1, num_classes=10)
    fit(model, data.train, data.val, 10, TrainConfig(epochs=12, seed=0))
    float_top1 = evaluate(model, data.test, 10).top1
    print(
        f"float digits_cnn test top-1: {float_top1:.4f}; fine-tuning {args.epochs} epochs, lr 1e-3"
    )
    print(
        f"{'multiplier':<12}{'before':>8}{'ste':>8}{'table':>8}{'rec ste':>9}{'rec table':>10}{'s ste':>7}{'s table':>8}"
    )
    recovered = {"ste": [], "table": []}
    for spec in args.multipliers:
        row = {}
        for gradient in ("ste", "table"):
            approx = approximate(model, Plan.uniform(spec, gradient=gradient), data.train, seed=0)
            before = evaluate(approx, data.test, 10).top1
            start = time.perf_counter()
            finetune(
                approx, data.train, data.val, 10, TrainConfig(epochs=args.epochs, lr=1e-3, seed=0)
            )
            row[gradient] = (evaluate(approx, data.test, 10).top1, time.perf_counter() - start)
        lost = float_top1 - before
        rec = {g: (row[g][0] - before) / lost if lost > 0 else float("nan") for g in row}
        if lost >= 0.05:
            for g in rec:
                recovered[g].append(rec[g])
        print(
            f"{spec:<12}{before:>8.4f}{row['ste'][0]:>8.4f}{row['table'][0]:>8.4f}"
            f"{rec['ste']:>9.2f}{rec['table']:>10.2f}{row['ste'][1]:>7.1f}{row['table'][1]:>8.1f}"
        )
    mean = {g: sum(v) / len(v) for g, v in recovered.items() if v}
    print(f"finetune_gradients: {mean['table'] / mean['ste']:.3f}")


if __name__ == "__main__":
    main()
