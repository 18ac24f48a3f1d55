"""What fine-tuning with the approximation in the loop costs: one training epoch of LeNet-5 on
Fashion-MNIST with a product table in the forward pass (straight-through gradient, and the
table-difference gradient) against the same epoch in float32, same process, same batches, one
torch thread, the three runs interleaved and the fastest of the repeats kept (other processes
only ever add time).

Last line: `finetune_speed: ste X, table Y (x float epoch)`; goal (issue 20) X <= 1.5, Y <= 2.5.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.nn import Plan, approximate


def _epoch(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds of one pass of forward, backward and an SGD step over `batches`."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--samples", type=int, default=6000, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--multiplier", default="drum:4@u8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bundle = load_dataset(args.data)
    x, y = bundle.train.tensors
    x, y = x[: args.samples], y[: args.samples]
    batches = list(zip(x.split(args.batch_size), y.split(args.batch_size), strict=True))
    base = build_model("lenet5", in_channels=bundle.input_shape[0], num_classes=10)
    models = {"float": base}
    for gradient in ("ste", "table"):
        plan = Plan.uniform(args.multiplier, gradient=gradient)
        models[gradient] = approximate(base, plan, bundle.train, seed=0)
    best = {name: float("inf") for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            best[name] = min(best[name], _epoch(model, batches))
    print(f"LeNet-5, {args.data}, {len(x)} images, batch {args.batch_size}, {args.multiplier}, "
          f"1 thread, best of {args.repeats}")  # fmt: skip
    print(f"{'run':<8}{'epoch s':>10}{'x float':>10}")
    for name, seconds in best.items():
        print(f"{name:<8}{seconds:>10.2f}{seconds / best['float']:>10.2f}")
    ste, table = best["ste"] / best["float"], best["table"] / best["float"]
    print(f"finetune_speed: ste {ste:.2f}, table {table:.2f} (x float epoch)")


if __name__ == "__main__":
    main()
