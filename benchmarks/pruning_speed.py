"""Real slimming pays in wall time: ResNet-20 with half the filters of every block (Torch-Pruning
via `axdnn.compress.prune_structured`, L1 criterion) against the original, same process, same
inputs, batch 1 and batch 128, one torch thread (`torch.set_num_threads(1)`: the timing is not
at the mercy of other processes' use of the cores), baseline and pruned runs interleaved, the fastest
of the repeats (other processes only ever add time; `timeit`'s advice). MACs and parameters come from the cost model (`axdnn.cost.count_ops`).

Two forms of each model are timed, each as its checkpoint reloads: as built (conv, batch norm,
ReLU modules: `axdnn prune`) and deployed, batch norm folded into the convolutions
(`axdnn prune --fold-bn`, `axdnn.compress.fold_batchnorm`, what every inference runtime does;
the original is folded the same way). Batch norm, ReLU and the residual additions work on
activations, which pruning halves, not quarters, so unfolded they dilute the speed-up; at batch 1
the fixed cost of each layer's dispatch dominates a network this small.

Speed depends on the weights' shapes only, so the network is the seeded, untrained ResNet-20.
Last line: `pruning_speed: resnet20 50% filters, speed-up X (MACs ratio Y)`, X the batch-128
speed-up of the deployed form (`--fold-bn`); goal X >= 0.8 Y.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from axdnn.compress import compressed_checkpoint, fold_batchnorm, prune_structured
from axdnn.cost import count_ops
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SHAPE = (3, 32, 32)


def _time(model: torch.nn.Module, x: torch.Tensor, runs: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(runs):
            model(x)
        return (time.perf_counter() - start) / runs


def timings(base, pruned, batch: int, repeats: int, runs: int) -> tuple[float, float]:
    """Fastest seconds per forward of each model over the repeats, interleaved so that drifts
    hit both alike."""
    x = torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(0))
    _time(base, x, 2), _time(pruned, x, 2)  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(_time(base, x, runs))
        b.append(_time(pruned, x, runs))
    return min(a), min(b)


def reloaded(
    base: Checkpoint, model: torch.nn.Module, *, folded: bool, **record
) -> torch.nn.Module:
    """`model` as its checkpoint reloads (batch norm folded first when `folded`)."""
    folds = {}
    if folded:
        model, folds = fold_batchnorm(model, SHAPE)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = compressed_checkpoint(base, model, folded=folds, **record)
        return load_checkpoint(save_checkpoint(Path(tmp) / "model.pt", ckpt)).build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = build_model("resnet20", in_channels=3, num_classes=10).eval()
    pruned, record = prune_structured(base, SHAPE, args.ratio, "l1")
    pruned.eval()
    b, p = count_ops(base, SHAPE), count_ops(pruned, SHAPE)
    assert (p.total_macs, p.total_params) == (record.macs_after, record.params_after)
    macs_ratio = b.total_macs / p.total_macs
    print(f"resnet20, {args.ratio:.0%} of the filters of every block removed (L1), 1 thread")
    print(f"  MACs   {b.total_macs:>12,} -> {p.total_macs:>12,}  ratio {macs_ratio:.2f}")
    print(f"  params {b.total_params:>12,} -> {p.total_params:>12,}  "
          f"ratio {b.total_params / p.total_params:.2f}")  # fmt: skip
    print(f"{'form':<10}{'batch':>6}{'original ms':>14}{'pruned ms':>12}{'speed-up':>10}"
          f"{'/ MACs ratio':>14}")  # fmt: skip
    speedups = {}
    ckpt = Checkpoint("resnet20", {"in_channels": 3, "num_classes": 10}, base.state_dict(),
                      input_shape=SHAPE)  # fmt: skip
    forms = {
        form: (reloaded(ckpt, base, folded=folded),
               reloaded(ckpt, pruned, folded=folded, pruning=record.to_dict()))
        for form, folded in (("as built", False), ("BN folded", True))
    }  # fmt: skip
    for form, (a, b) in forms.items():
        for batch, runs in ((1, 50), (128, 2)):
            t_base, t_pruned = timings(a, b, batch, args.repeats, runs)
            speedups[form, batch] = t_base / t_pruned
            print(f"{form:<10}{batch:>6}{1e3 * t_base:>14.2f}{1e3 * t_pruned:>12.2f}"
                  f"{t_base / t_pruned:>10.2f}{t_base / t_pruned / macs_ratio:>14.2f}")  # fmt: skip
    print(
        f"pruning_speed: resnet20 {args.ratio:.0%} filters, speed-up "
        f"{speedups['BN folded', 128]:.2f} "
        f"(MACs ratio {macs_ratio:.2f})"
    )


if __name__ == "__main__":
    main()
