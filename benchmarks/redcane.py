"""ReD-CaNe on Fashion-MNIST: which CapsNet operations tolerate noise, and which approximate
multipliers each may use within a 1-point budget (Marchisio et al., DATE 2020, found the
dynamic-routing operations more resilient than the convolutions).

Trains the 28x28 CapsNet (or takes --checkpoint), sweeps Gaussian noise (NM in units of each
operation's output std, NA = 0) over every named operation, ranks them with 95% intervals, picks
per MAC-bearing operation the cheapest EvoApprox 8-bit multiplier (published 45 nm power) whose
noise model (NM and the bias NA, which grows with the reduction length) fits, and confirms the choice by simulating the real tables (backing off until the
measured drop is within the budget). The exact multiplier is the baseline in the same run.
Without the shared EvoApprox tables it falls back to the built-in catalogue and the 1 - NMED
cost proxy, and says so. Last line:
`redcane: routing more resilient than convolutions: yes|no, energy saving X% at drop Y`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from axdnn.analysis.redcane import compare_groups, redcane
from axdnn.arith.catalogue import catalogue
from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.models.capsnet import CONVOLUTIONS, ROUTING
from axdnn.models.checkpoint import load_checkpoint
from axdnn.train import TrainConfig, evaluate, fit

EVOAPPROX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "evoapprox8u"
EXACT_TABLE = "mul8u_1JFF"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="trained CapsNet checkpoint")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=3, help="training epochs without --checkpoint")
    p.add_argument("--train-limit", type=int, default=None, help="training images used")
    p.add_argument("--limit", type=int, default=500, help="test images in the sweep")
    p.add_argument("--calib-limit", type=int, default=256)
    p.add_argument("--magnitudes", default="0.05,0.1,0.2,0.5,1,2")
    p.add_argument("--means", default="0.02,0.05,0.2", help="noise averages NA swept (NM 0)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--budget", type=float, default=1.0, help="accuracy drop allowed, points")
    p.add_argument("--evoapprox", type=Path, default=EVOAPPROX)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def first(dataset, n: int | None):
    n = len(dataset) if n is None else min(n, len(dataset))
    return next(iter(DataLoader(Subset(dataset, range(n)), batch_size=n)))


def trained_capsnet(args, bundle):
    if args.checkpoint is not None:
        return load_checkpoint(args.checkpoint).build(), None
    torch.manual_seed(args.seed)
    model = build_model("capsnet", bundle.input_shape[0], bundle.num_classes)
    model(torch.zeros(1, *bundle.input_shape))  # build before the optimizer
    train = bundle.train
    if args.train_limit:
        train = Subset(train, range(min(args.train_limit, len(train))))
    start = time.perf_counter()
    config = TrainConfig(epochs=args.epochs, lr=5e-3, batch_size=128, seed=args.seed)
    fit(model, train, bundle.val, bundle.num_classes, config, progress=True)
    return model.eval(), time.perf_counter() - start


def candidates(folder: Path) -> tuple[list[str], str, dict[str, float] | None, str]:
    """(candidate specs, exact spec, costs, where the costs come from)."""
    published = folder / "published_metrics.csv"
    if published.is_file():
        with open(published, newline="") as fh:
            power = {r["name"]: float(r["pdk45_power_mw"]) for r in csv.DictReader(fh)}
        specs = {n: f"lut:{folder / n}.bin@u8" for n in power if (folder / f"{n}.bin").is_file()}
        exact = specs[EXACT_TABLE]
        costs = {spec: power[n] for n, spec in specs.items()}
        chosen = [s for n, s in specs.items() if n != EXACT_TABLE]
        return chosen, exact, costs, "EvoApprox published 45 nm power"
    specs = [r["spec"] for r in catalogue(8) if r["model"] != "exact"]
    return specs, "exact@u8", None, "built-in catalogue, 1 - NMED cost proxy (no power figures)"


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    bundle = load_dataset(args.data, seed=args.seed)
    model, seconds = trained_capsnet(args, bundle)
    test = evaluate(model, bundle.test, bundle.num_classes).top1
    trained = f"trained {args.epochs} epochs in {seconds:.0f} s" if seconds else "checkpoint"
    print(
        f"CapsNet on {args.data}: test top-1 {test:.2%} ({trained}, {torch.get_num_threads()} threads)"
    )
    x, y = first(bundle.test, args.limit)
    calib = first(bundle.train, args.calib_limit)[0]
    specs, exact, costs, rule = candidates(args.evoapprox)
    print(f"candidates: {len(specs)} multipliers; costs: {rule}")
    start = time.perf_counter()
    result = redcane(
        model, calib, x, y,
        candidates=specs, costs=costs, exact=exact,
        magnitudes=[float(m) for m in args.magnitudes.split(",")],
        means=[float(a) for a in args.means.split(",") if a.strip()],
        budget=args.budget / 100, repeats=args.repeats, seed=args.seed, progress=True,
    )  # fmt: skip
    print(f"analysis: {time.perf_counter() - start:.0f} s on {len(y)} test images")
    print(f"\nbaseline accuracy on the sweep's images: {result.baseline_accuracy:.2%}")
    print(f"{'rank':>4}  {'operation':<16}{'tolerated NM':>13}  mean drop, points (95% CI)")
    for r in result.ranking:
        print(
            f"{r['rank']:>4}  {r['operation']:<16}{r['tolerated_magnitude']:>13g}  "
            f"{100 * r['score']:6.2f} [{100 * r['score_low']:6.2f}, {100 * r['score_high']:6.2f}]"
        )
    verdict = compare_groups(result, ROUTING, CONVOLUTIONS)
    print(
        f"\nrouting ops mean drop {100 * verdict['first_score']:.2f} points, convolutions "
        f"{100 * verdict['second_score']:.2f}; mean tolerated NM "
        f"{verdict['first_tolerated_magnitude']:.3g} vs {verdict['second_tolerated_magnitude']:.3g}"
    )
    print(f"\n{'operation':<16}{'multiplier':<40}{'NM':>8}{'cost x':>8}")
    for c in result.choices:
        name = Path(c.multiplier.split(":", 1)[1]).stem if c.multiplier else "exact"
        print(f"{c.operation:<16}{name:<40}{c.noise_magnitude:>8.4f}{c.relative_cost:>8.3f}")
    conf, energy = result.confirmation, result.energy
    rounds = len(conf["rounds"])
    print(
        f"\nconfirmed with the real tables: {conf['accuracy']:.2%} (baseline "
        f"{conf['baseline_accuracy']:.2%}), drop {100 * conf['drop']:.2f} points after "
        f"{rounds} round(s); functional sites simulated: {conf['functional_sites_simulated']}"
    )
    for n in result.notes:
        print(f"note: {n}")
    answer = "yes" if verdict["first_more_resilient"] else "no"
    print(
        f"redcane: routing more resilient than convolutions: {answer}, energy saving "
        f"{100 * energy['saving']:.1f}% at drop {100 * conf['drop']:.2f}"
    )


if __name__ == "__main__":
    main()
