"""Weight sharing without retraining (Dupuis et al., DATE 2020): LeNet-5 on Fashion-MNIST and
digits_cnn on digits, 16-bit weights. For each trained model, `axdnn.compress.search_sharing`
searches k per conv/linear layer (NSGA-II, k in 2..64, seed 0) on the validation split for the
highest compression ratio CR = sum(W*B) / sum(W*ceil(log2 k) + k*B) with a validation top-1
drop of at most 0.5 points; the chosen point is then measured on the test split, which the search
never saw. Baselines in the same run: the unshared model, and uniform k for every layer.

Trained checkpoints are cached in /tmp/axdnn-bench (trained here when absent: LeNet-5 3 epochs at
`default_lr("lenet5")`, digits_cnn 10 epochs, seed 0). Last line: `weight_sharing: CR X at drop
Y` for LeNet-5 on Fashion-MNIST, Y the test drop in points; goal CR >= 4 at drop <= 0.5.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from axdnn.compress import (
    accuracy,
    compression_ratio,
    search_sharing,
    share_weights,
    shareable_layers,
)
from axdnn.data import load_dataset
from axdnn.models import build_model, default_lr
from axdnn.train import TrainConfig, fit

CACHE = Path("/tmp/axdnn-bench")
MODELS = {"lenet5": ("fashion-mnist", 3), "digits_cnn": ("digits", 10)}


def trained(name: str, bundle) -> torch.nn.Module:
    """The model trained on the bundle (from the cache when there)."""
    data, epochs = MODELS[name]
    path = CACHE / f"{name}_{data}_e{epochs}_seed0.pt"
    torch.manual_seed(0)
    model = build_model(name, in_channels=bundle.input_shape[0], num_classes=bundle.num_classes)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        config = TrainConfig(epochs=epochs, lr=default_lr(name), seed=0)
        fit(model, bundle.train, bundle.val, bundle.num_classes, config, progress=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval()


def shared_test_accuracy(model, ks, test) -> float:
    work = copy.deepcopy(model)
    share_weights(work, ks, 16)
    return accuracy(work, *test)


def bench(name: str, trials: int, budget: float) -> dict:
    data, _ = MODELS[name]
    bundle = load_dataset(data, seed=0)
    model = trained(name, bundle)
    val, test = bundle.val.tensors, bundle.test.tensors
    base_test = accuracy(model, *test)
    start = time.perf_counter()
    result = search_sharing(model, *val, budget, bits=16, k_range=(2, 64), trials=trials,
                            population=16, seed=0, progress=True)  # fmt: skip
    seconds = time.perf_counter() - start
    best = result.best
    layers = shareable_layers(model)
    rows = []
    for k in (4, 8, 16, 32):
        ks = {n: k for n in layers}
        acc = shared_test_accuracy(model, ks, test)
        rows.append((f"uniform k={k}", compression_ratio(layers, ks), acc))
    acc = shared_test_accuracy(model, best.ks, test)
    rows.append(("searched k", best.compression_ratio, acc))
    print(f"\n{name} on {data}: test top-1 {base_test:.2%} unshared, val {result.baseline_accuracy:.2%}"
          f"; search {len(result.trials)} trials in {seconds:.0f} s")  # fmt: skip
    print(f"  {'configuration':<16}{'CR':>7}{'test top-1':>12}{'drop (pt)':>11}")
    for label, cr, a in rows:
        print(f"  {label:<16}{cr:>7.2f}{a:>12.2%}{100 * (base_test - a):>11.2f}")
    print("  k per layer: " + ", ".join(f"{n}={k}" for n, k in best.ks.items()))
    return {"cr": best.compression_ratio, "drop": 100 * (base_test - acc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--budget", type=float, default=0.005)
    args = parser.parse_args()
    torch.set_num_threads(1)  # reproducible and gentle on shared machines
    results = {name: bench(name, args.trials, args.budget) for name in ("digits_cnn", "lenet5")}
    lenet = results["lenet5"]
    print(f"weight_sharing: CR {lenet['cr']:.2f} at drop {lenet['drop']:.2f}")


if __name__ == "__main__":
    main()
