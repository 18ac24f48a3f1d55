"""Approximate training: truncated fp16 storage (PCM), 8-bit stochastic rounding and gradient
compression against exact (fp32) training: test accuracy, memory energy saved, bytes sent.

Protocol (seed 0, Adam at the model's default lr, cosine schedule, the epoch with the best
validation top-1 kept): for each (model, data) pair,
- `exact`: plain fp32 training;
- `fp16 k=K`: weights (fp32 master copy kept), activations saved for backward and gradients held
  in fp16 with K mantissa LSBs truncated (K = 0, 2, 4, 6, 8);
- `sr8 fxp`: all three kinds in 8-bit fixed point `fxp:s1.7` with per-tensor power-of-two
  scaling and stochastic rounding; `sr8 fp8`: weights/activations fp8 e4m3 and gradients
  fp8 e5m2, stochastic rounding, per-tensor scaling;
- each gradient compressor on 2 gloo processes, each rank training on half of the samples with
  its own `batch_size` batches (so the global batch is twice the single-process one), fp32
  all-reduce (`ddp none`) as their baseline (their delta column is against `ddp none`).
Memory energy: the traffic a `PrecisionSession` counts per step (weights 3x, saved activations
2x, gradients 2x, ideal reuse) priced at the Horowitz 45 nm DRAM 64-bit access energy; "saved"
is against the same values at fp32 (and, in its own column, at plain fp16). Communication: ring
model bytes per rank against an fp32 all-reduce of the same buckets.

Last line: `approx_training: truncation k=K keeps accuracy within 0.5 points, memory energy saved
X%` with K the largest k whose test top-1 is at most 0.5 points below exact on every model
(-1 if none) and X the memory energy that truncation saves against fp32 training.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import Subset

from axdnn.data import load_dataset
from axdnn.models import build_model, default_lr
from axdnn.train import PrecisionSession, TrainConfig, TrainPrecision, evaluate, fit
from axdnn.train.compression import COMPRESSORS, CompressionConfig
from axdnn.train.distributed import ParallelJob, train_data_parallel
from axdnn.train.memory import price_traffic

TRUNCATIONS = (0, 2, 4, 6, 8)
SR8 = {
    "sr8 fxp": TrainPrecision.uniform("fxp:s1.7,round=stochastic", scaling="tensor"),
    "sr8 fp8": TrainPrecision(
        weights="fp8_e4m3,round=stochastic",
        activations="fp8_e4m3,round=stochastic",
        gradients="fp8_e5m2,round=stochastic",
        scaling="tensor",
    ),
}


def single_run(model_name: str, bundle, train, config: TrainConfig, precision) -> dict:
    """Test top-1 and memory energy of one single-process run."""
    torch.manual_seed(config.seed)
    model = build_model(model_name, bundle.input_shape[0], bundle.num_classes)
    session = PrecisionSession(model, precision) if precision is not None else None
    start = time.perf_counter()
    fit(model, train, bundle.val, bundle.num_classes, config, session=session)
    row = {"seconds": time.perf_counter() - start}
    row["top1"] = evaluate(model, bundle.test, bundle.num_classes).top1
    if session is not None:
        row["memory"] = price_traffic(session.traffic, session.reference).to_dict()
    return row


def compression_runs(model_name: str, data: str, config: TrainConfig, args) -> list[dict]:
    runs = [CompressionConfig(c, ratio=args.topk_ratio) for c in args.compressors]
    job = ParallelJob(model_name, data, config, runs, train_limit=args.train_size)
    records, _ = train_data_parallel(job, workers=2)
    return records


def fmt_row(label: str, top1: float, exact: float, *, memory=None, comm=None) -> str:
    saved32 = f"{memory['saved_vs_fp32']:>9.1%}" if memory else f"{'-':>9}"
    saved16 = f"{memory['saved_vs_fp16']:>9.1%}" if memory else f"{'-':>9}"
    ratio = f"{comm['compression_ratio']:>9.1f}" if comm else f"{'-':>9}"
    sent = f"{comm['wire_bytes'] / 1e6:>10.3f}" if comm else f"{'-':>10}"
    delta = 100 * (top1 - exact)
    return f"{label:<14}{100 * top1:>8.2f}{delta:>+8.2f}{saved32}{saved16}{sent}{ratio}"


def bench_pair(model_name: str, data: str, args) -> dict[int, tuple[float, float]]:
    """Print the table of one (model, data) pair; return {k: (top-1 drop, saved vs fp32)}."""
    bundle = load_dataset(data)
    train = bundle.train
    if args.train_size is not None:
        train = Subset(train, range(min(args.train_size, len(train))))
    config = TrainConfig(epochs=args.epochs, lr=default_lr(model_name), seed=0)
    exact = single_run(model_name, bundle, train, config, None)
    print(
        f"\n{model_name} on {data}: {len(train)} training samples, {len(bundle.test)} test, "
        f"{args.epochs} epochs, exact training {exact['seconds']:.1f} s"
    )
    print(
        f"{'run':<14}{'top-1':>8}{'delta':>8}{'mem-32':>9}{'mem-16':>9}{'MB sent':>10}{'comm x':>9}"
    )
    print(fmt_row("exact", exact["top1"], exact["top1"]), flush=True)
    result = {}
    for k in TRUNCATIONS:
        row = single_run(model_name, bundle, train, config, TrainPrecision.truncated(k))
        print(fmt_row(f"fp16 k={k}", row["top1"], exact["top1"], memory=row["memory"]), flush=True)
        result[k] = (exact["top1"] - row["top1"], row["memory"]["saved_vs_fp32"])
    for label, precision in SR8.items():
        row = single_run(model_name, bundle, train, config, precision)
        print(fmt_row(label, row["top1"], exact["top1"], memory=row["memory"]), flush=True)
    if args.compressors:
        records = compression_runs(model_name, data, config, args)
        base = next((r["test"]["top1"] for r in records if r["compressor"] == "none"), None)
        reference = exact["top1"] if base is None else base
        print(f"(ddp rows: delta against {'ddp none' if base is not None else 'exact'})")
        for record in records:
            label = f"ddp {record['compressor']}"
            comm = record["communication"]
            print(fmt_row(label, record["test"]["top1"], reference, comm=comm), flush=True)
            if not record["ranks_identical"]:
                print(f"  WARNING: {label}: the ranks ended with different models")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", nargs="+", default=["lenet5:fashion-mnist", "digits_cnn:digits"],
        help="model:data pairs",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None, help="first N training samples")
    parser.add_argument("--compressors", nargs="*", default=list(COMPRESSORS))
    parser.add_argument("--topk-ratio", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (timings only)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f}; top-1 and delta in "
        "points; mem-32/mem-16: memory energy saved vs fp32 / fp16 storage (DRAM, Horowitz "
        "45 nm); MB sent per rank and comm x: fewer bytes than fp32 all-reduce"
    )
    per_pair = []
    for pair in args.pairs:
        model_name, data = pair.split(":", 1)
        per_pair.append(bench_pair(model_name, data, args))
    kept = [k for k in TRUNCATIONS if all(r[k][0] <= 0.005 for r in per_pair)]
    best = max(kept) if kept else -1
    saved = min(r[best][1] for r in per_pair) if kept else 0.0
    print(
        f"approx_training: truncation k={best} keeps accuracy within 0.5 points, "
        f"memory energy saved {100 * saved:.1f}%"
    )


if __name__ == "__main__":
    main()
