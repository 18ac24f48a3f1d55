"""Fine-tuning through approximate multipliers: straight-through (STE) vs table-difference
gradient vs distillation, recovered fraction of the lost accuracy after 1 and 3 epochs.

Protocol (one run, seed 0): the model (default LeNet-5, which has no batch norm, so recovery is
not just re-estimated normalisation statistics) is trained in float; for each multiplier every
conv/linear layer runs on it (bit-exact table simulation, calibrated on training batches); the
approximated model is fine-tuned with Adam lr 1e-3 (cosine over the run) for 1 epoch and, from
the same start, for 3 epochs, with
- `ste`: straight-through gradient of the quantized product,
- `table`: the table-difference gradient (Meng et al., DATE 2025),
- `distill`: STE plus knowledge distillation from the float model (Hinton et al. 2015,
  alpha 0.5, T 4).
"rec" = (after - before) / (float - before), on the test split. "s/epoch" is the 3-epoch run's
seconds per epoch (validation included) and "x float" its ratio to a float epoch of the same
model, timed in this run. The header also gives the float model fine-tuned the same way (same
epochs, lr, seed): a short float training leaves room that any further epoch fills, so
recovery past 1.0 is that, not the method.

Last line: `finetune_gradients: best recovered fraction X, table/STE Y` with X the best 3-epoch
recovered fraction of any row and Y the mean 3-epoch recovered fraction with `table` over that
with `ste`.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from threads import THREADS_HELP, set_threads

from axdnn.data import load_dataset
from axdnn.models import build_model, default_lr
from axdnn.nn import Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit
from axdnn.train.finetune import FinetuneOptions, finetune

MULTIPLIERS = ("drum:4@u8", "mitchell@u8", "trunc:8@u8")  # growing error on LeNet-5
METHODS = {  # name -> (gradient, distillation weight)
    "ste": ("ste", 0.0),
    "table": ("table", 0.0),
    "distill": ("ste", 0.5),
}
FINETUNE_LR = 1e-3


def tuned_top1(model, spec, method, epochs, data) -> tuple[float, float, float]:
    """(before, after, seconds) of fine-tuning `model` on `spec` with `method` for `epochs`."""
    gradient, alpha = METHODS[method]
    approx = approximate(model, Plan.uniform(spec, gradient=gradient), data.train, seed=0)
    before = evaluate(approx, data.test, data.num_classes).top1
    config = TrainConfig(epochs=epochs, lr=FINETUNE_LR, seed=0)
    options = FinetuneOptions(distill_alpha=alpha)
    start = time.perf_counter()
    finetune(approx, data.train, data.val, data.num_classes, config, options, teacher=model)
    seconds = time.perf_counter() - start
    return before, evaluate(approx, data.test, data.num_classes).top1, seconds


def float_finetuned(model, data, epochs: int) -> tuple[float, float]:
    """(test top-1, seconds per epoch) of a float copy of `model` fine-tuned like the rows: the
    control that tells recovery from the extra training itself."""
    tuned = copy.deepcopy(model)
    start = time.perf_counter()
    config = TrainConfig(epochs=epochs, lr=FINETUNE_LR, seed=0)
    fit(tuned, data.train, data.val, data.num_classes, config)
    seconds = (time.perf_counter() - start) / max(epochs, 1)
    return evaluate(tuned, data.test, data.num_classes).top1, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--multipliers", nargs="+", default=list(MULTIPLIERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    data = load_dataset(args.data)
    torch.manual_seed(0)
    model = build_model(args.model, data.input_shape[0], data.num_classes)
    config = TrainConfig(epochs=args.train_epochs, lr=default_lr(args.model), seed=0)
    fit(model, data.train, data.val, data.num_classes, config)
    model.eval()
    float_top1 = evaluate(model, data.test, data.num_classes).top1
    control = {e: float_finetuned(model, data, e) for e in args.epochs}
    float_s = control[max(args.epochs)][1]
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f}; {args.model} on "
        f"{args.data}: float test top-1 {float_top1:.4f} ({len(data.test)} images), float epoch "
        f"{float_s:.1f} s; fine-tuning lr {FINETUNE_LR}; float model fine-tuned the same way: "
        + ", ".join(f"{e} epochs {top1:.4f}" for e, (top1, _) in control.items())
    )
    last = max(args.epochs)
    header = f"{'multiplier':<13}{'method':<9}{'before':>8}"
    header += "".join(f"{f'after {e}':>9}{f'rec {e}':>7}" for e in args.epochs)
    print(header + f"{'s/epoch':>9}{'x float':>8}")
    recovered: dict[str, list[float]] = {m: [] for m in args.methods}
    for spec in args.multipliers:
        for method in args.methods:
            cells, per_epoch = "", float("nan")
            for epochs in args.epochs:
                before, after, seconds = tuned_top1(model, spec, method, epochs, data)
                lost = float_top1 - before
                rec = (after - before) / lost if lost > 0 else float("nan")
                cells += f"{after:>9.4f}{rec:>7.2f}"
                if epochs == last:
                    recovered[method].append(rec)
                    per_epoch = seconds / last
            print(
                f"{spec:<13}{method:<9}{before:>8.4f}{cells}{per_epoch:>9.1f}"
                f"{per_epoch / float_s:>8.1f}",
                flush=True,
            )
    best = max(r for rows in recovered.values() for r in rows)
    mean = {m: sum(v) / len(v) for m, v in recovered.items() if v}
    ratio = mean["table"] / mean["ste"] if "table" in mean and "ste" in mean else float("nan")
    print(f"finetune_gradients: best recovered fraction {best:.2f}, table/STE {ratio:.2f}")


if __name__ == "__main__":
    main()
