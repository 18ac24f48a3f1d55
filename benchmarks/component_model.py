"""Component noise model vs real table simulation on digits_cnn: predicted and real top-1.

Protocol (the analysis tests' fixture, reproduced): `digits_cnn` trained 8 epochs on `digits`
(seed S), every conv/linear layer on the multiplier (calibrated on 512 training images), top-1 on
the 359 test images. `--data fashion-mnist --model lenet5|digits_cnn` trains that model on
Fashion-MNIST instead (3 epochs, Adam at the model's `default_lr`) and, with `--test N`, takes
top-1 on the first N test images. "real" runs the bit-exact table simulation
(`axdnn.nn.approximate`); "conditional" and "unconditional" inject the component model's
Gaussian noise into the float model (`axdnn.analysis.component_model_check`, 5 seeded repeats):
moments per class of each sample's own activation codes, or per input channel and pixel over all
calibration samples.

The first four multipliers are the acceptance test's (one per error family, chosen before
measuring); the others are aggressive ones shown for the model's limits. The last line is the
worst |conditional - real| in points over the first four and all seeds.
"""

from __future__ import annotations

import argparse
import os

import torch
from threads import THREADS_HELP, set_threads

from axdnn.analysis import component_model_check
from axdnn.data import load_dataset
from axdnn.models import build_model, default_lr
from axdnn.train import TrainConfig, fit

TESTED = ["trunc:7@u8", "drum:5@u8", "drum:5@s8", "mitchell@u8"]
OTHERS = ["drum:4@u8", "drum:4@s8", "udm@u8", "trunc:8@u8"]
EPOCHS = {"digits": 8, "fashion-mnist": 3}  # --data -> training epochs


def trained(seed: int, bundle, name: str = "digits_cnn", epochs: int = 8) -> torch.nn.Module:
    """`name` trained as the test fixture trains digits_cnn (Adam at the model's default lr)."""
    torch.manual_seed(seed)
    model = build_model(name, bundle.input_shape[0], bundle.num_classes)
    config = TrainConfig(epochs=epochs, lr=default_lr(name), seed=seed)
    fit(model, bundle.train, bundle.val, bundle.num_classes, config)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    parser.add_argument("--data", default="digits", choices=list(EPOCHS))
    parser.add_argument("--model", default="digits_cnn", choices=["digits_cnn", "lenet5"])
    parser.add_argument("--epochs", type=int, default=None, help="default: 8 digits, 3 fashion")
    parser.add_argument("--test", type=int, default=0, help="first N test images (0: all)")
    args = parser.parse_args()
    set_threads(args.threads)
    epochs = args.epochs or EPOCHS[args.data]
    bundle = load_dataset(args.data)
    calib = bundle.train.tensors[0][:512]
    x, y = bundle.test.tensors
    if args.test > 0:
        x, y = x[: args.test], y[: args.test]
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} data={args.data} "
        f"model={args.model} epochs={epochs} lr={default_lr(args.model):g} test={len(y)}"
    )
    worst = 0.0
    print(
        f"{'seed':>4} {'multiplier':<12}{'real':>8}{'cond.':>8}{'diff':>7}{'uncond.':>9}{'diff':>7}"
    )
    for seed in args.seeds:
        model = trained(seed, bundle, args.model, epochs)
        specs = TESTED + OTHERS
        cond = component_model_check(model, specs, calib, x, y, args.repeats)
        flat = component_model_check(model, specs, calib, x, y, args.repeats, conditional=False)
        print(f"{seed:>4} {'float':<12}{cond[0]['float_accuracy'] * 100:>8.2f}")
        for c, u in zip(cond, flat, strict=True):
            print(
                f"{seed:>4} {c['multiplier']:<12}{c['real_accuracy'] * 100:>8.2f}"
                f"{c['predicted_accuracy'] * 100:>8.2f}{c['difference'] * 100:>+7.2f}"
                f"{u['predicted_accuracy'] * 100:>9.2f}{u['difference'] * 100:>+7.2f}"
            )
            if c["multiplier"] in TESTED:
                worst = max(worst, abs(c["difference"]) * 100)
    print(f"component_model: {worst:.2f}")


if __name__ == "__main__":
    main()
