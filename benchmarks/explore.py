"""Design-space exploration: the energy saving each strategy finds within a 1-point top-1 budget.

For LeNet-5 on Fashion-MNIST and ResNet-20 on digits at 32x32 (trained here, seeded), over the
built-in multipliers (exact at 8..4 bits and the catalogue's 6-bit multipliers with MAE below
0.5 %) and fixed-point formats per layer (ResNet-20: tied per stage), every strategy (greedy,
NSGA-II, TPE, random) gets the same number of evaluations (Optuna trials, real table simulation
on a validation subset). Each strategy's front is confirmed on the whole validation split, the
cheapest point within the budget there is chosen, and that point is measured on the test split.
Baseline: the best uniform assignment (the cheapest single option on every layer within the
budget on validation), measured on test the same way. Savings are of the cost model's energy per
sample (`axdnn.cost`, Horowitz 45 nm, SRAM traffic) against every layer on exact@u8.

    python benchmarks/explore.py                       # both models, defaults below
    python benchmarks/explore.py --models lenet5 --trials 20

Last line: `explore: best strategy S, energy saving X% vs uniform Y% at drop <= 1` (savings are
the mean over the models; the best strategy is the one with the highest mean saving).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.models.registry import default_lr
from axdnn.nn import approximate, multiplying_layers
from axdnn.search import Evaluator, Explorer, SearchSettings, Space, pareto_front
from axdnn.train import TrainConfig, fit

STRATEGIES = ("greedy", "nsga2", "tpe", "random")
CHOICES = {
    "multiplier": [
        "exact@u8", "exact@u6", "exact@u5", "exact@u4", "exact@u3", "exact@u8x4", "exact@u6x3",
        "exact@u4x3", "exact@u4x2", {"where": "mae_percent < 1", "width": 4},
    ],
    "formats": ["fxp:s2.4"],
}  # fmt: skip
"""Operand widths `@uAxW`: A activation bits, W weight bits (multipliers without published power
are priced by their widths alone: the cost model's quadratic multiplier energy)."""
MODELS = {
    "lenet5": {"data": "fashion-mnist", "groups": [{"layers": ["*"], **CHOICES}]},
    "resnet20": {
        "data": "digits:1x32x32",
        "groups": [
            {"layers": ["*"], **CHOICES},
            *({"name": s, "layers": [f"{s}.*"], "tied": True, **CHOICES}
              for s in ("layer1", "layer2", "layer3")),
        ],
    },
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--trials", type=int, default=24, help="evaluations per strategy, LeNet-5")
    p.add_argument("--resnet-trials", type=int, default=24, help="evaluations, ResNet-20")
    p.add_argument("--subset", type=int, default=500, help="validation images per trial")
    p.add_argument("--val-limit", type=int, default=2000, help="validation images to confirm")
    p.add_argument("--train-limit", type=int, default=12000, help="training images (LeNet-5)")
    p.add_argument("--epochs", type=int, default=2, help="LeNet-5 training epochs")
    p.add_argument("--resnet-epochs", type=int, default=4)
    p.add_argument("--budget", type=float, default=0.01, help="top-1 drop limit (0.01: 1 point)")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", default=None, help="study storage (default: a temporary file)")
    return p.parse_args()


def trained(name: str, bundle, epochs: int, limit: int | None, seed: int):
    torch.manual_seed(seed)
    model = build_model(name, bundle.input_shape[0], bundle.num_classes)
    x, y = bundle.train.tensors
    train = TensorDataset(x[:limit], y[:limit]) if limit else bundle.train
    fit(model, train, bundle.val, bundle.num_classes,
        TrainConfig(epochs=epochs, lr=default_lr(name), seed=seed))  # fmt: skip
    return model.eval()


def test_point(model, plan, bundle, seed: int) -> float:
    """Test top-1 of a plan, calibrated exactly as `axdnn evaluate --plan` does."""
    x, y = bundle.test.tensors
    return tensor_accuracy(approximate(model, plan, bundle.train, seed=seed), x, y)


def uniform_baseline(bound, evaluator, model, bundle, args) -> dict:
    """The cheapest single option on every layer within the budget on the whole val split."""
    best = None
    for label in bound.labels():
        plan = bound.to_plan(bound.uniform(label))
        energy = evaluator.cost(plan).energy_pj
        drop = evaluator.float_accuracy_full - evaluator.accuracy(plan, full=True)
        if drop <= args.budget and (best is None or energy < best[1]):
            best = (label, energy, plan, drop)
    label, energy, plan, drop = best
    return {"choice": label, "energy": energy, "val_drop": drop,
            "test_acc": test_point(model, plan, bundle, args.seed), "evaluations": len(bound.labels())}  # fmt: skip


def run_strategy(strategy, bound, evaluator, model, bundle, storage, study, args, trials) -> dict:
    settings = SearchSettings(strategy=strategy, trials=trials, subset=args.subset,
                              population=args.population, study=study)  # fmt: skip
    start = time.perf_counter()
    ex = Explorer(bound, evaluator, settings, storage, args.seed)
    ex.run(progress=False)
    records = ex.records()
    front = ex.confirm(pareto_front(records, settings.objectives))
    ok = [r for r in front if r.confirmed["drop"] <= args.budget]
    row = {"strategy": strategy, "evaluations": len(records), "front": len(front),
           "seconds": time.perf_counter() - start}  # fmt: skip
    if not ok:
        return {**row, "energy": ex.reference_energy, "val_drop": None, "test_acc": None}
    chosen = min(ok, key=lambda r: r.measure["energy_pj"])
    from axdnn.nn import Plan

    plan = Plan.from_dict(chosen.plan)
    return {**row, "energy": chosen.measure["energy_pj"], "val_drop": chosen.confirmed["drop"],
            "test_acc": test_point(model, plan, bundle, args.seed)}  # fmt: skip


def bench_model(name: str, args, storage: str) -> tuple[dict, list[dict]]:
    cfg = MODELS[name]
    bundle = load_dataset(cfg["data"], seed=args.seed)
    is_resnet = name == "resnet20"
    epochs = args.resnet_epochs if is_resnet else args.epochs
    t0 = time.perf_counter()
    model = trained(name, bundle, epochs, None if is_resnet else args.train_limit, args.seed)
    print(f"{name}: trained {epochs} epochs in {time.perf_counter() - t0:.0f} s", flush=True)
    space = Space.from_dict({"groups": cfg["groups"], "constraints": {"max_drop": args.budget}})
    bound = space.bind(list(multiplying_layers(model)))
    vx, vy = bundle.val.tensors
    evaluator = Evaluator(model, bundle.train, (vx[: args.val_limit], vy[: args.val_limit]),
                          bundle.input_shape,
                          subset=args.subset, seed=args.seed)  # fmt: skip
    float_test = tensor_accuracy(model, *bundle.test.tensors)
    reference = Explorer(bound, evaluator, SearchSettings(strategy="random", trials=1,
                         study=f"{name}-reference"), storage, args.seed).reference_energy  # fmt: skip
    t0 = time.perf_counter()
    uniform = uniform_baseline(bound, evaluator, model, bundle, args)
    uniform["seconds"] = time.perf_counter() - t0
    trials = args.resnet_trials if is_resnet else args.trials
    rows = [{"strategy": f"uniform ({uniform['choice']})", **uniform}]
    for strategy in STRATEGIES:
        rows.append(run_strategy(strategy, bound, evaluator, model, bundle, storage,
                                 f"{name}-{strategy}", args, trials))  # fmt: skip
    for row in rows:
        row["saving"] = 1.0 - row["energy"] / reference
        row["test_drop"] = None if row["test_acc"] is None else float_test - row["test_acc"]
    info = {"model": name, "data": bundle.spec, "units": len(bound.units), "size": bound.size(),
            "float_val": evaluator.float_accuracy_full, "float_test": float_test,
            "reference_pj": reference, "trials": trials}  # fmt: skip
    return info, rows


def show(info: dict, rows: list[dict]) -> None:
    print(f"\n{info['model']} on {info['data']}: {info['units']} decisions, {info['size']:.3g} "
          f"candidates, {info['trials']} evaluations per strategy; float val "
          f"{info['float_val']:.2%}, test {info['float_test']:.2%}; exact@u8 "
          f"{info['reference_pj']:.0f} pJ/sample")  # fmt: skip
    print(f"{'strategy':<28}{'evals':>6}{'val drop':>10}{'test drop':>10}{'energy pJ':>12}"
          f"{'saving':>8}{'seconds':>9}")  # fmt: skip
    for r in rows:
        vd = "-" if r["val_drop"] is None else f"{100 * r['val_drop']:.2f}"
        td = "-" if r["test_drop"] is None else f"{100 * r['test_drop']:.2f}"
        print(f"{r['strategy']:<28}{r['evaluations']:>6}{vd:>10}{td:>10}{r['energy']:>12.0f}"
              f"{r['saving']:>8.1%}{r['seconds']:>9.1f}")  # fmt: skip


def main() -> None:
    args = parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    tmp = tempfile.TemporaryDirectory()
    storage = args.storage or str(Path(tmp.name) / "bench.db")
    start = time.perf_counter()
    results = {}
    for name in names:
        info, rows = bench_model(name, args, storage)
        show(info, rows)
        results[name] = rows
    mean = {}
    for i, label in enumerate(["uniform", *STRATEGIES]):
        mean[label] = sum(results[n][i]["saving"] for n in names) / len(names)
    best = max(STRATEGIES, key=lambda s: mean[s])
    print(f"\nmean saving over {', '.join(names)}: "
          + ", ".join(f"{k} {v:.1%}" for k, v in mean.items()))  # fmt: skip
    beats = mean[best] > mean["uniform"] and (best == "random" or mean[best] > mean["random"])
    print(
        f"best strategy beats uniform and random: {'yes' if beats else 'NO'}; "
        f"{time.perf_counter() - start:.0f} s in all, {torch.get_num_threads()} threads"
    )
    print(
        f"explore: best strategy {best}, energy saving {100 * mean[best]:.1f}% vs uniform "
        f"{100 * mean['uniform']:.1f}% at drop <= {100 * args.budget:g}"
    )


if __name__ == "__main__":
    main()
