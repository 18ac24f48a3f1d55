"""Dynamic-effort inference (DyVEDeep mechanisms and early exit): operations and measured
wall-clock speed-up against the same model run densely, at a budgeted accuracy drop.

Protocol: each model is trained once (Adam at its `default_lr`, cosine schedule, seed 0) and
cached under `--cache` (default /tmp/axdnn_bench_dynamic): LeNet-5 on Fashion-MNIST (28x28,
3 epochs on the full training split), the batch-norm digits CNN on Fashion-MNIST resized to
1x32x32 (`fashion-mnist:1x32x32`, 4 epochs on the first `--bn-train` training images), and the
digits CNN on the embedded digits (10 epochs). `axdnn.dynamic.run_study` then trains exit heads
on the frozen model (first `--exit-train` training images), calibrates every configuration
(SPET, SDSS, SFMA, early exit, all combined) on the first `--calib` images of the validation
split (10% held out of the training files) against a `--budget` of accuracy points, and measures
on the first `--test` test images: top-1, the operations ratio dense MACs / (executed MACs +
overhead ops) and the wall-clock speed-up at batch 1 (`--timing-samples` inputs) and batch 256
(at most 1024 inputs), best of 3 interleaved runs, against the stricter of two dense
baselines: the original nn.Module and the same chain run densely (batch norm folded, adaptive
pools as fixed windows). `spet-exact` is SPET's exact mode on every ReLU layer, uncalibrated.
The 32x32 model uses a third of every sample count and no SPET calibration (see PER_MODEL).
Timing runs with `--threads` torch threads (default 1, stable on a shared machine).

Last line: `dynamic_effort: best ops reduction X, speed-up Y at drop Z`: over all models, the
configuration within the budget on the test split with the largest operations ratio, its best
measured speed-up over the two batch sizes, and its test drop in points.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from threads import THREADS_HELP, set_threads

from axdnn.data import load_dataset
from axdnn.dynamic import StudySettings, run_study
from axdnn.models import build_model
from axdnn.models.registry import default_lr
from axdnn.train import TrainConfig, fit

MODELS = {  # key: (model, data, epochs, training-image limit option, batch size)
    "lenet5": ("lenet5", "fashion-mnist", 3, None, 64),
    "bn_cnn32": ("digits_cnn", "fashion-mnist:1x32x32", 4, "bn_train", 64),
    "resnet20": ("resnet20", "fashion-mnist:1x32x32", 4, "resnet_train", 128),
    "digits_cnn": ("digits_cnn", "digits", 10, None, 64),
}
ALL = ("spet-exact", "spet", "sdss", "sfma", "exit", "combined")
PER_MODEL = {
    # SPET's per-neuron products on 32x32 maps cost minutes per calibration candidate on two
    # cores: this model gets SPET's exact mode only, and combines SDSS, SFMA and exits
    "bn_cnn32": {
        "configs": ("spet-exact", "sdss", "sfma", "exit", "combined"),
        "combined": ("sdss", "sfma", "exit"),
        "scale": 3,
    },
    # the same budget of work for the residual network (SPET's exact mode included)
    "resnet20": {
        "configs": ("spet-exact", "sdss", "sfma", "exit", "combined"),
        "combined": ("sdss", "sfma", "exit"),
        "scale": 3,
    },
}


def trained(key: str, args) -> tuple[torch.nn.Module, object]:
    name, spec, epochs, limit_arg, batch = MODELS[key]
    bundle = load_dataset(spec, seed=0)
    model = build_model(name, bundle.input_shape[0], bundle.num_classes)
    size = f"_n{getattr(args, limit_arg)}" if limit_arg else ""
    batch_tag = f"_b{batch}" if batch != 64 else ""
    path = Path(args.cache) / f"{key}_e{epochs}{size}{batch_tag}_seed0.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), bundle
    train = bundle.train
    if limit_arg:
        x, y = train.tensors
        n = getattr(args, limit_arg)
        train = torch.utils.data.TensorDataset(x[:n], y[:n])
    start = time.perf_counter()
    fit(
        model,
        train,
        bundle.val,
        bundle.num_classes,
        TrainConfig(epochs=epochs, lr=default_lr(name), batch_size=batch, seed=0),
        progress=not args.quiet,
    )
    print(f"trained {key} in {time.perf_counter() - start:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval(), bundle


def table(key: str, record: dict) -> list[str]:
    lines = [
        f"\n{key}: {record['model']} on {record['data']}, dense test top-1 "
        f"{record['dense_accuracy']:.2%} ({record['samples']['test']} images), "
        f"{record['dense_macs_per_input']} MACs/input, exits after "
        f"{', '.join(record['exit_heads']['points']) or 'none'}",
        f"{'config':<12}{'top-1':>8}{'drop':>7}{'ops x':>8}{'speed b1':>10}{'speed b256':>11}"
        f"{'changed':>9}  exits",
    ]
    for c in record["configs"]:
        speeds = {t["batch_size"]: t["speedup"] for t in c["timing"]}
        exits = ", ".join(f"{k} {v}" for k, v in c["effort"]["exits"].items() if k != "end")
        lines.append(
            f"{c['name']:<12}{c['accuracy']:>8.2%}{c['drop_points']:>7.2f}"
            f"{c['effort']['ops_ratio']:>7.2f}x{speeds.get(1, float('nan')):>9.2f}x"
            f"{speeds.get(256, float('nan')):>10.2f}x{c['changed_predictions']:>9}  {exits}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"from {list(MODELS)}")
    parser.add_argument("--budget", type=float, default=0.5, help="accuracy points")
    parser.add_argument("--cache", default="/tmp/axdnn_bench_dynamic")
    parser.add_argument("--bn-train", type=int, default=12000)
    parser.add_argument("--resnet-train", type=int, default=20000)
    parser.add_argument("--exit-train", type=int, default=10000)
    parser.add_argument("--calib", type=int, default=1000)
    parser.add_argument("--test", type=int, default=3000)
    parser.add_argument("--timing-samples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    parser.add_argument("--json", default=None, help="also write every record here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    start = time.perf_counter()
    records, lines = {}, []
    for key in args.models.split(","):
        model, bundle = trained(key, args)
        extra = PER_MODEL.get(key, {})
        scale = extra.get("scale", 1)
        settings = StudySettings(
            budget=args.budget,
            configs=extra.get("configs", ALL),
            combined=extra.get("combined", ("spet", "sdss", "sfma", "exit")),
            train_limit=args.exit_train // scale,
            calib_limit=args.calib // scale,
            test_limit=args.test // scale,
            timing_samples=args.timing_samples // scale,
            timing_limit=1024 // scale,
            seed=0,
        )
        records[key] = run_study(model, bundle, settings)
        lines += table(key, records[key])
        print("\n".join(table(key, records[key])), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    best = [dict(r["best"], model=k) for k, r in records.items() if r["best"]]
    print(f"\nthreads {torch.get_num_threads()}, total {time.perf_counter() - start:.0f} s")
    if not best:
        print("dynamic_effort: best ops reduction 1.00, speed-up 1.00 at drop nan")
        return
    top = max(best, key=lambda b: b["ops_ratio"])
    print(f"best: {top['model']} {top['name']}")
    print(
        f"dynamic_effort: best ops reduction {top['ops_ratio']:.2f}, speed-up "
        f"{top['speedup']:.2f} at drop {top['drop_points']:.2f}"
    )


if __name__ == "__main__":
    main()
