"""Multi-process data-parallel training (DistributedDataParallel) with gradient compression and,
optionally, reduced-precision storage: `train_data_parallel` spawns `workers` processes on this
machine (gloo on CPU, NCCL where every worker has a GPU); `python -m axdnn.train.distributed`
does the same from the shell, and runs under `torchrun` as one worker per process.

Each rank trains on its own shard (every `workers`-th training sample), with the same seed, so
that DDP's identical averaged gradients keep the replicas identical; the parent (or rank 0 under
torchrun) checks that every rank ended with the same state dict, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset

from axdnn.data import load_dataset
from axdnn.errors import ConfigError
from axdnn.models import build_model, default_lr
from axdnn.train.compression import (
    COMPRESSORS,
    CommCounter,
    CompressionConfig,
    counting_torch_hooks,
    make_hook,
)
from axdnn.train.evaluate import evaluate
from axdnn.train.loop import TrainConfig, fit
from axdnn.train.memory import price_traffic
from axdnn.train.precision import PrecisionSession, TrainPrecision


@dataclass
class ParallelJob:
    """Everything a worker needs (plain, picklable data)."""

    model: str
    data: str
    config: TrainConfig
    runs: list[CompressionConfig]
    precision: TrainPrecision | None = None
    backend: str = "gloo"
    memory: str = "dram"
    model_kwargs: dict = field(default_factory=dict)
    progress: bool = False
    train_limit: int | None = None  # use only the first N training samples


def shard(dataset, rank: int, world: int) -> Subset:
    """Every `world`-th sample from `rank`; all shards the same length (a remainder is dropped)."""
    usable = len(dataset) - len(dataset) % world
    return Subset(dataset, list(range(rank, usable, world)))


def _sync_buffers(model: torch.nn.Module) -> None:
    """Batch-norm running statistics from rank 0 (as DDP does before every forward)."""
    for buf in model.buffers():
        dist.broadcast(buf, src=0)


def _device(job: ParallelJob, rank: int) -> torch.device:
    """CPU under gloo; GPU `rank` under NCCL."""
    return torch.device(f"cuda:{rank}") if job.backend == "nccl" else torch.device("cpu")


def _run_one(job: ParallelJob, run: CompressionConfig, bundle, rank: int, world: int) -> dict:
    torch.manual_seed(job.config.seed)
    kwargs = {"in_channels": bundle.input_shape[0], "num_classes": bundle.num_classes}
    device = _device(job, rank)
    model = build_model(job.model, **{**kwargs, **job.model_kwargs}).to(device)
    session = PrecisionSession(model, job.precision, rank=rank) if job.precision else None
    ddp = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
    counter = CommCounter(world_size=world)
    state, hook = make_hook(run, counter)
    ddp.register_comm_hook(state, hook)
    losses: list[float] = []
    train = bundle.train
    if job.train_limit is not None:
        train = Subset(train, range(min(job.train_limit, len(train))))
    start = time.perf_counter()
    with counting_torch_hooks(counter):
        history = fit(
            ddp, shard(train, rank, world), bundle.val, bundle.num_classes, job.config,
            device, job.progress and rank == 0, session=session,
            on_step=lambda _n, loss: losses.append(loss),
        )  # fmt: skip
    seconds = time.perf_counter() - start
    _sync_buffers(model)
    record = {
        "compression": run.to_dict(),
        "train_seconds": seconds,
        "losses": losses,
        "history": history.to_dict(),
        "communication": counter.to_dict(),
        "test": evaluate(model, bundle.test, bundle.num_classes, device=device).to_dict(),
    }
    if session is not None:
        record["memory_energy"] = price_traffic(
            session.traffic, session.reference, memory=job.memory
        ).to_dict()
        session.detach()
    return {"record": record, "state": {k: v.cpu() for k, v in model.state_dict().items()}}


def run_worker(job: ParallelJob, rank: int, world: int, out_dir: str | None = None) -> list[dict]:
    """One rank's share: train every run in `job` in turn (the process group is up)."""
    torch.set_num_threads(1)
    bundle = load_dataset(job.data, seed=job.config.seed)
    results = [_run_one(job, run, bundle, rank, world) for run in job.runs]
    if out_dir is not None:
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    return results


def _spawned(rank: int, world: int, init: str, job: ParallelJob, out_dir: str) -> None:
    dist.init_process_group(job.backend, init_method=init, rank=rank, world_size=world)
    try:
        run_worker(job, rank, world, out_dir)
    finally:
        dist.destroy_process_group()


def identical_states(states: Sequence[dict]) -> bool:
    """Whether every state dict equals the first, bit for bit."""
    first = states[0]
    return all(
        s.keys() == first.keys() and all(torch.equal(s[k], first[k]) for k in first)
        for s in states[1:]
    )


def merge_ranks(job: ParallelJob, per_rank: list[list[dict]]) -> list[dict]:
    """Rank 0's record of each run, with whether all ranks ended identical."""
    records = []
    for i, run in enumerate(job.runs):
        record = dict(per_rank[0][i]["record"])
        record["ranks_identical"] = identical_states([r[i]["state"] for r in per_rank])
        record["workers"] = len(per_rank)
        record["compressor"] = run.compressor
        records.append(record)
    return records


def train_data_parallel(job: ParallelJob, workers: int = 2) -> tuple[list[dict], list[dict]]:
    """Spawn `workers` processes that train every run of `job`; return one record per run and
    rank 0's final state dict of each run."""
    if workers < 2:
        raise ConfigError(f"data-parallel training needs --workers >= 2, got {workers}")
    if job.backend not in ("gloo", "nccl"):
        raise ConfigError(f"backend {job.backend!r} is unknown; expected gloo or nccl")
    if job.backend == "nccl" and torch.cuda.device_count() < workers:
        raise ConfigError(
            f"backend nccl needs one GPU per worker: {workers} workers, "
            f"{torch.cuda.device_count()} GPU(s); use gloo (CPU)"
        )
    with tempfile.TemporaryDirectory(prefix="axdnn-ddp-") as tmp:
        init = f"file://{Path(tmp) / 'rendezvous'}"
        mp.start_processes(
            _spawned, args=(workers, init, job, tmp), nprocs=workers, start_method="spawn"
        )
        files = [Path(tmp) / f"rank{r}.pt" for r in range(workers)]
        per_rank = [torch.load(f, weights_only=False) for f in files]
    return merge_ranks(job, per_rank), [r["state"] for r in per_rank[0]]


# ---------------------------------------------------------------------------------------------
# Command line: python -m axdnn.train.distributed (or under torchrun)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m axdnn.train.distributed",
        description="Data-parallel training with gradient compression (gloo on CPU).",
    )
    p.add_argument("--model", default="digits_cnn")
    p.add_argument("--data", default="digits")
    p.add_argument("--workers", type=int, default=2, help="processes to spawn (not under torchrun)")
    p.add_argument("--compressor", action="append", choices=COMPRESSORS, help="repeatable")
    p.add_argument("--ratio", type=float, default=0.01, help="top-k fraction sent")
    p.add_argument("--bin-size", type=int, default=50, help="AdaComp bin length")
    p.add_argument("--rank", type=int, default=1, help="PowerSGD rank")
    p.add_argument("--truncate", type=int, default=None, help="fp16 mantissa LSBs truncated")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the records")
    return p


def job_from_args(args: argparse.Namespace) -> ParallelJob:
    lr = default_lr(args.model) if args.lr is None else args.lr
    config = TrainConfig(args.epochs, lr, args.batch_size, seed=args.seed)
    runs = [
        CompressionConfig(name, args.ratio, args.bin_size, args.rank)
        for name in args.compressor or ["none"]
    ]
    precision = None if args.truncate is None else TrainPrecision.truncated(args.truncate)
    return ParallelJob(args.model, args.data, config, runs, precision)


def _emit(records: list[dict], out: Path | None) -> None:
    text = json.dumps(records, indent=2, default=str)
    if out is not None:
        out.write_text(text)
    for r in records:
        c = r["communication"]
        print(
            f"{r['compressor']:>9}: test top-1 {r['test']['top1']:.2%}, sent "
            f"{c['wire_bytes'] / 1e6:.3f} MB (x{c['compression_ratio']:.1f} less than fp32), "
            f"ranks identical: {r['ranks_identical']}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    job = job_from_args(args)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # under torchrun
        dist.init_process_group(job.backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        results = run_worker(job, rank, world)
        gathered: list = [None] * world
        dist.all_gather_object(gathered, results)
        dist.destroy_process_group()
        if rank == 0:
            _emit(merge_ranks(job, gathered), args.out)
        return 0
    records, _ = train_data_parallel(job, args.workers)
    _emit(records, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
