"""Per-trial overhead of axdnn's fault injection over fault-free inference, beside PyTorchFI.

Setup: batch 32, one fault per sample (a random-value replacement at a random element of a
random conv/linear layer output, chosen per sample, PyTorchFI's `random_neuron_inj_batched`),
eval mode, CPU, one thread. For each model we time, per batch of 32 trials:

- `clean`: the fault-free forward and top-1 of the batch (the baseline);
- `axdnn`: a campaign step (draw the faults from the counter-based RNG, arm the injection, the
  injected forward, top-1 and per-trial outcomes as arrays), without storage; timed alternately
  with `clean` in blocks of 8 batches;
- `axdnn+db`: a whole stored campaign (SQLite, 256-trial blocks) divided by its batches;
- `pytorchfi`: `random_neuron_inj_batched` (which deep-copies the model) plus the forward.

Overhead = time / clean. Medians of repeated runs. The last line is the worst axdnn ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from axdnn.inject import CampaignConfig, Injector, parse_error_model, run_campaign
from axdnn.inject.campaign import _Runner, golden_predictions, plan_campaign
from axdnn.models import build_model

BATCH = 32


def _median_time(fn, repeats: int, inner: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def _interleaved(clean, faulty, repeats: int) -> tuple[float, float]:
    """Median per-call times of two functions timed alternately (robust to a busy machine)."""
    clean(), faulty()
    tc, tf = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        clean()
        tc.append(time.perf_counter() - start)
        start = time.perf_counter()
        faulty()
        tf.append(time.perf_counter() - start)
    return statistics.median(tc), statistics.median(tf)


def _pytorchfi_step(model, x, shape):
    try:
        from pytorchfi import core
        from pytorchfi.neuron_error_models import random_neuron_inj_batched
    except ImportError:
        return None
    import logging

    logging.disable(logging.CRITICAL)
    fi = core.fault_injection(
        model, BATCH, input_shape=list(shape), layer_types=[torch.nn.Conv2d, torch.nn.Linear]
    )

    def step():
        corrupted = random_neuron_inj_batched(fi, min_val=-1, max_val=1)
        corrupted(x)

    return step


def measure(name: str, in_ch: int, classes: int, hw: int, repeats: int, inner: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, in_ch, classes).eval()
    inputs = torch.randn(4 * BATCH, in_ch, hw, hw)
    labels = torch.randint(0, classes, (len(inputs),))
    x = inputs[:BATCH]
    config = CampaignConfig(
        name=f"bench-{name}",
        error_model="random,low=-1,high=1",
        trials=BATCH * inner,
        site_weighting="uniform",
    )
    error_model = parse_error_model(config.error_model)
    plan = plan_campaign(model, inputs, config)
    golden = golden_predictions(model, inputs)
    block = 8  # batches per stored block (256 trials)
    with torch.no_grad():
        injector = Injector(model, plan.sites, error_model, plan.shapes, None, config.seed)
        runner = _Runner(model, inputs, labels, golden, plan, config, error_model, injector)
        counter = iter(range(10**9))
        batches = [torch.arange(BATCH) + BATCH * (i % 4) for i in range(block)]

        def clean_block():
            for idx in batches:
                model(inputs[idx]).argmax(dim=1)

        def faulty_block():
            runner.activation_block(np.arange(BATCH * block) + BATCH * block * next(counter))

        with injector:
            clean, axdnn = _interleaved(clean_block, faulty_block, repeats * inner // block + 3)
        clean, axdnn = clean / block, axdnn / block
        with tempfile.TemporaryDirectory() as tmp:
            db_times = []
            for r in range(max(3, repeats // 2)):
                cfg = CampaignConfig(
                    **{**config.to_dict(), "name": f"{config.name}-{r}", "trials": BATCH * 8 * 4}
                )
                start = time.perf_counter()
                run_campaign(model, inputs, labels, cfg, Path(tmp) / "bench.db")
                db_times.append((time.perf_counter() - start) / (8 * 4))
            with_db = statistics.median(db_times)
        step = _pytorchfi_step(model, x, inputs.shape[1:])
        pfi = _median_time(step, max(3, repeats // 2), max(2, inner // 4)) if step else None
    return {
        "model": name,
        "clean_ms": clean * 1e3,
        "axdnn_ms": axdnn * 1e3,
        "axdnn_db_ms": with_db * 1e3,
        "pytorchfi_ms": None if pfi is None else pfi * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        measure("digits_cnn", 1, 10, 8, args.repeats, args.inner),
        measure("resnet20", 3, 10, 32, max(3, args.repeats // 2), max(4, args.inner // 4)),
    ]
    print(
        f"{'model':<12}{'clean ms':>10}{'axdnn ms':>10}{'ratio':>8}{'+db ms':>9}{'ratio':>8}"
        f"{'pytorchfi ms':>14}{'ratio':>8}"
    )
    worst = 0.0
    for r in rows:
        ratio = r["axdnn_ms"] / r["clean_ms"]
        worst = max(worst, ratio)
        pfi = r["pytorchfi_ms"]
        pfi_text = f"{pfi:>14.3f}{pfi / r['clean_ms']:>8.3f}" if pfi else f"{'n/a':>14}{'':>8}"
        print(
            f"{r['model']:<12}{r['clean_ms']:>10.3f}{r['axdnn_ms']:>10.3f}{ratio:>8.3f}"
            f"{r['axdnn_db_ms']:>9.3f}{r['axdnn_db_ms'] / r['clean_ms']:>8.3f}{pfi_text}"
        )
    print(f"injection_overhead: {worst:.3f}")


if __name__ == "__main__":
    main()
