"""Per-trial overhead of axdnn's fault injection over fault-free inference, beside PyTorchFI.

Setup: batch 32, one fault per sample (a random-value replacement at a random element of a
random conv/linear layer output, the layer uniform per sample as in PyTorchFI's
`random_neuron_inj_batched`), eval mode, CPU, same inputs for every variant. One round times,
per block of 8 batches (256 trials, a campaign's default block):

- `clean`: the fault-free forward and top-1 of each batch, on a copy of the model that carries
  no injection hooks (the baseline);
- `axdnn`: a campaign block without storage (`BlockRunner.activation_block`): the faults drawn
  from the counter-based RNG and laid out (16 blocks at a time, as in a campaign), the injector
  armed per forward, the injected forwards, top-1 and the per-trial outcome arrays;
- `pytorchfi`: `random_neuron_inj_batched` (which deep-copies the model and draws a fault per
  sample) plus the forward and top-1, per batch.

The three run in every round in a rotating order (so none always follows another). A campaign
lays out its faults DRAW_CHUNK trials (16 blocks) at a time, so rounds are grouped into cycles
of 16, each holding one such layout; each ratio is the median over cycles of the cycle's total
time / its clean total. `axdnn+db` is a whole stored campaign (SQLite, 256-trial blocks)
divided by its batches, over the clean median. The last line is the worst axdnn ratio.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from threads import THREADS_HELP, set_threads

from axdnn.inject import CampaignConfig, Injector, parse_error_model, run_campaign
from axdnn.inject.campaign import DRAW_CHUNK, BlockRunner, golden_predictions, plan_campaign
from axdnn.models import build_model

BATCH = 32
BLOCK = 8  # batches per stored block (256 trials)
CYCLE = DRAW_CHUNK // (BATCH * BLOCK)  # rounds per fault layout


def _rounds(steps: dict, rounds: int) -> dict[str, list[float]]:
    """Per-round seconds of each step, run in a rotating order after one warm-up call each."""
    for step in steps.values():
        step()
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _cycles(times: list[float]) -> list[float]:
    """Total seconds of each cycle of CYCLE rounds."""
    return [sum(times[i : i + CYCLE]) for i in range(0, len(times), CYCLE)]


def _cycle_ratio(times: list[float], clean: list[float]) -> float:
    """Median over cycles of the cycle's total time / its total clean time."""
    return statistics.median(t / c for t, c in zip(_cycles(times), _cycles(clean), strict=True))


def _pytorchfi_step(model, shape):
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

    def step(batch):
        corrupted = random_neuron_inj_batched(fi, min_val=-1, max_val=1)
        corrupted(batch).argmax(dim=1)

    return step


def measure(name: str, in_ch: int, classes: int, hw: int, cycles: int) -> dict:
    rounds = cycles * CYCLE
    torch.manual_seed(0)
    model = build_model(name, in_ch, classes).eval()
    plain = copy.deepcopy(model)  # the baseline never runs through injection hooks
    inputs = torch.randn(4 * BATCH, in_ch, hw, hw)
    labels = torch.randint(0, classes, (len(inputs),))
    config = CampaignConfig(
        name=f"bench-{name}",
        error_model="random,low=-1,high=1",
        trials=BATCH * BLOCK * (rounds + 2),  # the campaign the timed blocks belong to
        site_weighting="uniform",
    )
    error_model = parse_error_model(config.error_model)
    plan = plan_campaign(model, inputs, config)
    golden = golden_predictions(model, inputs)
    counter = iter(range(10**9))
    batches = [torch.arange(BATCH) + BATCH * (i % 4) for i in range(BLOCK)]
    with torch.no_grad():
        injector = Injector(model, plan.sites, error_model, plan.shapes, None, config.seed)
        runner = BlockRunner(model, inputs, labels, golden, plan, config, error_model, injector)

        def clean():
            for idx in batches:
                plain(inputs[idx]).argmax(dim=1)

        def axdnn():
            start = BATCH * BLOCK * next(counter)
            runner.activation_block(start, start + BATCH * BLOCK).outcomes()

        steps = {"clean": clean, "axdnn": axdnn}
        pfi = _pytorchfi_step(copy.deepcopy(model), inputs.shape[1:])
        if pfi is not None:

            def pytorchfi():
                for idx in batches:
                    pfi(inputs[idx])

            steps["pytorchfi"] = pytorchfi
        with injector:
            times = _rounds(steps, rounds)
        per_batch = {k: statistics.median(_cycles(v)) / (CYCLE * BLOCK) for k, v in times.items()}
        ratio = {k: _cycle_ratio(v, times["clean"]) for k, v in times.items()}
        clean_s = per_batch["clean"]
        with tempfile.TemporaryDirectory() as tmp:
            db_times = []
            for r in range(3):
                cfg = CampaignConfig(
                    **{**config.to_dict(), "name": f"{config.name}-{r}", "trials": BATCH * 32}
                )
                start = time.perf_counter()
                run_campaign(model, inputs, labels, cfg, Path(tmp) / "bench.db")
                db_times.append((time.perf_counter() - start) / 32)
    return {
        "model": name,
        "clean_ms": clean_s * 1e3,
        "axdnn_ms": per_batch["axdnn"] * 1e3,
        "axdnn_ratio": ratio["axdnn"],
        "axdnn_db_ms": statistics.median(db_times) * 1e3,
        "pytorchfi_ms": per_batch["pytorchfi"] * 1e3 if pfi else None,
        "pytorchfi_ratio": ratio.get("pytorchfi"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=8, help=f"cycles of {CYCLE} rounds")
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} batch={BATCH}")
    rows = [
        measure("digits_cnn", 1, 10, 8, args.cycles),
        measure("resnet20", 3, 10, 32, max(2, args.cycles // 2)),
    ]
    print(
        f"{'model':<12}{'clean ms':>10}{'axdnn ms':>10}{'ratio':>8}{'+db ms':>9}{'ratio':>8}"
        f"{'pytorchfi ms':>14}{'ratio':>8}"
    )
    worst = 0.0
    for r in rows:
        worst = max(worst, r["axdnn_ratio"])
        pfi = r["pytorchfi_ms"]
        pfi_text = f"{pfi:>14.3f}{r['pytorchfi_ratio']:>8.3f}" if pfi else f"{'n/a':>14}{'':>8}"
        print(
            f"{r['model']:<12}{r['clean_ms']:>10.3f}{r['axdnn_ms']:>10.3f}{r['axdnn_ratio']:>8.3f}"
            f"{r['axdnn_db_ms']:>9.3f}{r['axdnn_db_ms'] / r['clean_ms']:>8.3f}{pfi_text}"
        )
    print(f"threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f}")
    print(f"injection_overhead: {worst:.3f}")


if __name__ == "__main__":
    main()
