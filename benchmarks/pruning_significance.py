"""Significance-driven vs L1-norm filter pruning, with confidence intervals (filters masked, no
fine-tuning).

Protocol: each model in `--models` is trained on `--data` (default Fashion-MNIST) once per seed in
`--seeds` (Adam at the model's `default_lr`, cosine schedule; lenet5 3 epochs, digits_cnn 2).
Filter significance (`axdnn.analysis.filter_significance`, threshold 1%, 1 repeat) is computed on
the first `--val` images of the val split (0: all 6000) under two error models: the default
Gaussian noise with std equal to the feature map's own std (Hanif et al., DATE 2018) and
`value:0` (the filter's output zeroed). `axdnn.analysis.prune_comparison` then masks, in every
conv layer, round(fraction x that layer's filters) filters chosen by significance (least
significant first) and by L1 norm (smallest sum |w| first; Li et al., ICLR 2017), at the same
counts, and measures top-1 on the first `--test` test images (0: all 10000). The fractions
10/20/30/40% apply per layer, so the pruned share of all conv filters differs slightly from the
nominal level because of rounding (the table prints the exact count).

Intervals: every accuracy carries its 95% Wilson score interval over the n test images
(`axdnn.inject.wilson_interval`); with several seeds the per-level summary gives the mean over
seeds, the sample standard deviation and the min..max range, and the significance - L1 difference
per seed.

Last line: `pruning_significance: significance - L1, mean over levels: <+x.xx> points`, the mean
over the 4 levels, all models and all seeds of (top-1 with the default noise-injection
significance) - (top-1 with L1), in percentage points; positive means significance-driven pruning
keeps more accuracy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from threads import THREADS_HELP, set_threads

from axdnn.analysis import filter_significance, prune_comparison
from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.data import load_dataset
from axdnn.inject import wilson_interval
from axdnn.models import build_model, default_lr
from axdnn.train import TrainConfig, fit

EPOCHS = {"lenet5": 3, "digits_cnn": 2}
FRACTIONS = (0.1, 0.2, 0.3, 0.4)
CRITERIA = {  # column -> significance error model (None: L1 norm)
    "sig. gaussian": "gaussian:1.0,rel=std",
    "sig. value:0": "value:0",
    "L1 norm": None,
}


def trained(name: str, bundle, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, bundle.input_shape[0], bundle.num_classes)
    config = TrainConfig(epochs=EPOCHS[name], lr=default_lr(name), seed=seed)
    fit(model, bundle.train, bundle.val, bundle.num_classes, config)
    return model.eval()


def interval(accuracy: float, n: int) -> tuple[float, float, float]:
    """(estimate, low, high) in percent: the 95% Wilson interval of accuracy over n images."""
    ci = wilson_interval(int(round(accuracy * n)), n, 0.95)
    return ci.estimate * 100, ci.low * 100, ci.high * 100


def fmt(acc: tuple[float, float, float]) -> str:
    return f"{acc[0]:6.2f} [{acc[1]:5.2f},{acc[2]:6.2f}]"


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:6.2f}"
    sd = statistics.stdev(values)
    return f"{mean:6.2f} sd {sd:5.2f} ({min(values):5.2f}..{max(values):5.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--models", nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--val", type=int, default=0, help="first N val images (0: all)")
    parser.add_argument("--test", type=int, default=0, help="first N test images (0: all)")
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    bundle = load_dataset(args.data)
    vx, vy = bundle.val.tensors
    tx, ty = bundle.test.tensors
    if args.val > 0:
        vx, vy = vx[: args.val], vy[: args.val]
    if args.test > 0:
        tx, ty = tx[: args.test], ty[: args.test]
    n = len(ty)
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} data={args.data} "
        f"models={','.join(args.models)} seeds={args.seeds} val={len(vy)} test={n} "
        f"levels={','.join(f'{f:.0%}' for f in FRACTIONS)} per layer"
    )
    # results[model][fraction index][criterion] -> list over seeds of accuracy in percent
    results: dict[str, list[dict[str, list[float]]]] = {}
    counts: dict[str, list[int]] = {}
    head = f"{'model':<11}{'seed':>4}{'pruned':>9}" + "".join(f"{c:>25}" for c in CRITERIA)
    for name in args.models:
        results[name] = [{c: [] for c in CRITERIA} for _ in FRACTIONS]
        for seed in args.seeds:
            t0 = time.perf_counter()
            model = trained(name, bundle, seed)
            t1 = time.perf_counter()
            rows = {}
            with torch.no_grad():
                for column, em in CRITERIA.items():
                    if em is None:
                        continue
                    result = filter_significance(model, vx, vy, error_model=em, seed=seed)
                    rows[column] = prune_comparison(model, result, tx, ty, FRACTIONS)
            t2 = time.perf_counter()
            total = len(result.filters)
            base = interval(result.baseline_accuracy, len(vy))
            test_base = interval(tensor_accuracy(model, tx, ty), n)
            print(
                f"\n{name} seed {seed}: {total} conv filters, unpruned top-1 test {fmt(test_base)}"
                f" (val {base[0]:.2f}); train {t1 - t0:.0f} s, significance+pruning {t2 - t1:.0f} s"
            )
            print(head)
            counts[name] = []
            for i, _ in enumerate(FRACTIONS):
                gauss = rows["sig. gaussian"][i]
                zero = rows["sig. value:0"][i]
                if (
                    gauss["pruned_filters"] != zero["pruned_filters"]
                    or abs(gauss["l1_accuracy"] - zero["l1_accuracy"]) > 1e-9
                ):
                    raise RuntimeError("L1 pruning differs between the two significance runs")
                k = gauss["pruned_filters"]
                counts[name].append(k)
                accs = {
                    "sig. gaussian": interval(gauss["significance_accuracy"], n),
                    "sig. value:0": interval(zero["significance_accuracy"], n),
                    "L1 norm": interval(gauss["l1_accuracy"], n),
                }
                for column, acc in accs.items():
                    results[name][i][column].append(acc[0])
                pruned = f"{k} ({k / total:.0%})"
                print(
                    f"{name:<11}{seed:>4}{pruned:>9}"
                    + "".join(f"{fmt(accs[c]):>25}" for c in CRITERIA)
                )

    diffs = []
    print(f"\nsummary over seeds {args.seeds} (top-1 %, mean sd (min..max)); 95% Wilson half-width")
    print(f"at n={n} is at most {100 * 1.96 * 0.5 / n**0.5:.2f} points per accuracy")
    print(
        f"{'model':<11}{'pruned':>7}"
        + "".join(f"{c:>34}" for c in CRITERIA)
        + f"{'gauss-L1':>10}{'value:0-L1':>12}"
    )
    for name in args.models:
        for i, _ in enumerate(FRACTIONS):
            cell = results[name][i]
            d_gauss = [g - b for g, b in zip(cell["sig. gaussian"], cell["L1 norm"], strict=True)]
            d_zero = [z - b for z, b in zip(cell["sig. value:0"], cell["L1 norm"], strict=True)]
            diffs.extend(d_gauss)
            print(
                f"{name:<11}{counts[name][i]:>7}"
                + "".join(f"{spread(cell[c]):>34}" for c in CRITERIA)
                + f"{statistics.fmean(d_gauss):>+10.2f}{statistics.fmean(d_zero):>+12.2f}"
            )
            print(
                f"{'':<18}per-seed gauss-L1: {' '.join(f'{d:+.2f}' for d in d_gauss)}; "
                f"value:0-L1: {' '.join(f'{d:+.2f}' for d in d_zero)}"
            )
    print(
        f"pruning_significance: significance - L1, mean over levels: {statistics.fmean(diffs):+.2f} points"
    )


if __name__ == "__main__":
    main()
