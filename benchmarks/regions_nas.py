"""Best-effort neural approximation (Chen et al., DATE 2020) against the fixed topologies of
Esmaeilzadeh et al. (MICRO 2012) on the seven AxBench regions, in one process.

Per region: an Optuna search (error vs energy, the region's quality bound a constraint) over MLPs
with number formats, and the fixed topology trained the same way in float32 (best of three
activations). Both are scored on a test sample neither saw and timed against the numpy region on
one batch (best of 5, torch on one thread: `torch.set_num_threads(1)` for the whole run). A win:
the searched network meets the bound on the test sample at lower energy than the baseline. Means
are geometric. Last line: `regions_nas: wins W/7, mean energy reduction X, mean speed-up Y vs
baseline`. The paper's averages over earlier neural acceleration: 1.43x speed-up, 1.74x energy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from axdnn.experiment.regions import summarise
from axdnn.regions import list_regions
from axdnn.regions.mlp import TrainSettings
from axdnn.regions.search import SearchSettings, search_region

HEADER = (
    f"{'region':<13}{'metric':<20}{'bound':>6}  {'network':<46}{'test err':>9}{'MACs':>6}"
    f"{'energy pJ':>11}{'vs numpy':>9}"
)


def row(name: str, metric: str, bound: float, c: dict) -> str:
    mark = "" if c["test_meets_bound"] else " (misses)"
    return (
        f"{name:<13}{metric:<20}{bound:>6g}  {c['text'][:45]:<46}{c['test_error']:>9.4f}"
        f"{c['macs']:>6}{c['energy_pj']:>11.1f}{c['speedup_vs_region']:>8.2f}x{mark}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", nargs="*", default=list_regions()[:7])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--held-out", type=int, default=2048)
    parser.add_argument("--test", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = SearchSettings(
        trials=args.trials,
        samples=args.samples,
        held_out=args.held_out,
        test=args.test,
        seed=args.seed,
        train=TrainSettings(epochs=args.epochs),
    )
    print(f"regions_nas: {args.trials} trials, {args.samples} training pairs, {args.epochs} epochs")
    print(HEADER)
    records, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.regions:
            t0 = time.perf_counter()
            result = search_region(name, settings, out_dir=Path(tmp) / name, progress=False)
            record = result.to_dict()
            records.append(record)
            metric, bound = record["region"]["metric"], record["bound"]
            print(row(name, metric, bound, record["baseline"]))
            print(row("  searched", "", bound, record["chosen"]))
            cmp = record["comparison"]
            print(
                f"{'':13}energy reduction {cmp['energy_reduction']:.2f}x, MAC reduction "
                f"{cmp['mac_reduction']:.2f}x, speed-up {cmp['speedup']:.2f}x vs baseline, "
                f"win: {'yes' if cmp['win'] else 'no'} ({time.perf_counter() - t0:.0f} s)"
            )
    summary = summarise(records)
    print(
        f"total {time.perf_counter() - start:.0f} s; paper (DATE 2020): 1.43x speed-up, "
        "1.74x energy reduction over earlier neural acceleration"
    )
    print(
        f"regions_nas: wins {summary['wins']}/{len(records)}, mean energy reduction "
        f"{summary['mean_energy_reduction']:.2f}x, mean speed-up {summary['mean_speedup']:.2f}x "
        "vs baseline"
    )


if __name__ == "__main__":
    main()
