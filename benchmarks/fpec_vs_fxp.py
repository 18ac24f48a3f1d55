"""FPEC (Compensated-DNN, Jain et al., DAC 2018) against plain fixed point: post-training accuracy
versus computation bits (2..8) and the energy ratio from the cost model.

Protocol (all in this run, seed 0):

- Train (float, Adam at the model's `default_lr`) for a few epochs: with `--data digits` (default)
  `digits_cnn` on `digits` and `resnet20` on `digits:3x32x32`; with `--data fashion-mnist`
  `lenet5` (no batch norm) and `digits_cnn` (batch norm) on `fashion-mnist`.
- For every Conv2d/Linear, weights and inputs get a fixed-point format with n computation bits.
  The integer/fraction split is calibrated per layer and per operand: the I in `fxp:[s|u]I.F`
  (F = n - I) that minimises the mean squared quantization error over the layer's weights, or
  over its inputs seen on 4 training batches; inputs are unsigned where none was negative.
- FPEC uses the same computation bits and split plus compensation bits. "k compensation bits"
  counts the bits of the error estimate: 1 = the error-direction bit alone (`fpec:...,c=0`, one
  magnitude level step/3), 2 = direction plus one magnitude bit (`c=1`, levels step/5 and
  2step/5). The error-is-zero skip bit is stored on top (2 + c stored bits) and charged as memory.
- Energy: `count_ops` + `precision_from_model` + `estimate_energy` (Horowitz 45 nm, SRAM
  traffic), relative to the same network in 8-bit and 16-bit fixed point (same calibration).
- Two tables per model. "Equal computation bits": fxp with n bits against FPEC with n computation
  bits (plus its 2 + c stored compensation bits). "Equal stored bits": fxp with n bits against
  FPEC whose computation bits + stored compensation bits = n (n - 2 computation bits for 1
  compensation bit, n - 3 for 2), where that leaves at least 1 computation bit.
- Headline per model, over the `--bits` grid of computation bits: the cheapest FPEC configuration
  whose top-1 is within 0.5 points of 8-bit fixed point; its energy gain over 8-bit and 16-bit
  fixed point. The last line is the smaller (conservative) of the two models' gains over 8-bit
  fixed point.

Published (Jain et al., DAC 2018): 1.13x-1.7x over 8-bit and 2.65x-4.88x over 16-bit fixed point
at under 0.5% accuracy loss.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass

import torch
from threads import THREADS_HELP, set_threads
from torch import nn

from axdnn.cost import count_ops, estimate_energy, precision_from_model
from axdnn.data import load_dataset
from axdnn.formats import FixedPoint
from axdnn.models import build_model, default_lr
from axdnn.nn import LayerSpec, Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit

BITS = range(2, 9)
SCHEMES = {"fxp": None, "fpec1": 0, "fpec2": 1}  # name -> FPEC magnitude bits c (None: plain)
TOLERANCE = 0.005
OBSERVE_BATCHES = 4
# --data -> model -> (dataset spec, training epochs)
DATASETS = {
    "digits": {"digits_cnn": ("digits", 5), "resnet20": ("digits:3x32x32", 4)},
    "fashion-mnist": {"lenet5": ("fashion-mnist", 3), "digits_cnn": ("fashion-mnist", 3)},
}
MIN_COMPUTE_BITS = 1


def stored_extra(scheme: str) -> int:
    """Stored bits on top of the computation bits: ZEB + EDB + c magnitude bits for FPEC."""
    comp = SCHEMES[scheme]
    return 0 if comp is None else 2 + comp


@dataclass
class Row:
    model: str
    scheme: str
    bits: int
    top1: float
    energy_pj: float
    compute_pj: float


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(name: str, spec: str, epochs: int):
    bundle = load_dataset(spec)
    torch.manual_seed(0)
    model = build_model(name, in_channels=bundle.input_shape[0], num_classes=bundle.num_classes)
    start = time.perf_counter()
    config = TrainConfig(epochs=epochs, lr=default_lr(name), seed=0)
    fit(model, bundle.train, bundle.val, bundle.num_classes, config)
    log(
        f"{name}: trained {epochs} epochs (lr {config.lr:g}) in {time.perf_counter() - start:.0f} s"
    )
    return model.eval(), bundle


@torch.no_grad()
def observe_inputs(model: nn.Module, bundle) -> dict[str, torch.Tensor]:
    """A sample of every conv/linear layer's inputs over a few training batches."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):

            def hook(mod, args, name=name):
                seen.setdefault(name, []).append(args[0].detach().flatten()[::7])

            hooks.append(module.register_forward_pre_hook(hook))
    loader = torch.utils.data.DataLoader(bundle.train, batch_size=64, shuffle=False)
    for i, (x, _) in enumerate(loader):
        if i >= OBSERVE_BATCHES:
            break
        model(x)
    for h in hooks:
        h.remove()
    return {k: torch.cat(v) for k, v in seen.items()}


def best_split(values: torch.Tensor, bits: int, signed: bool) -> int:
    """Integer bits I of `fxp:[s|u]I.(bits-I)` with the least quantization MSE on `values`."""
    low = 1 if signed else 0
    errors = {}
    for int_bits in range(low, bits + 1):
        fmt = FixedPoint(int_bits, bits - int_bits, signed=signed)
        errors[int_bits] = float((fmt.quantize(values) - values).pow(2).mean())
    return min(errors, key=errors.get)


def fmt(bits: int, int_bits: int, signed: bool, comp: int | None) -> str:
    body = f"{'s' if signed else 'u'}{int_bits}.{bits - int_bits}"
    return f"fxp:{body}" if comp is None else f"fpec:{body},c={comp}"


def plan_for(
    model: nn.Module, inputs: dict[str, torch.Tensor], bits: int, comp: int | None
) -> Plan:
    layers = {}
    for name, module in model.named_modules():
        if name not in inputs:
            continue
        w = module.weight.detach().flatten()
        x = inputs[name]
        x_signed = bool((x < 0).any())
        wf = fmt(bits, best_split(w, bits, True), True, comp)
        af = fmt(bits, best_split(x, bits, x_signed), x_signed, comp)
        layers[name] = LayerSpec(weight_format=wf, act_format=af)
    return Plan(layers=layers)


def measure(model, bundle, plan: Plan, name: str, scheme: str, bits: int) -> Row:
    approx = approximate(model, plan, bundle.train, batches=2)
    top1 = evaluate(approx, bundle.test, bundle.num_classes).top1
    report = count_ops(approx, tuple(bundle.input_shape))
    precision = precision_from_model(approx)
    total = estimate_energy(report, precision, memory="sram").total_pj
    compute = estimate_energy(report, precision, memory="none").total_pj
    return Row(name, scheme, bits, top1, total, compute)


def stored_points(scheme: str, bits: list[int]) -> list[int]:
    """Computation bits of the equal-stored-bits points of `scheme` that are not on the grid."""
    extra = {n - stored_extra(scheme) for n in bits}
    return sorted(b for b in extra - set(bits) if b >= MIN_COMPUTE_BITS)


def run_model(name: str, spec: str, epochs: int, bits: list[int]) -> tuple[list[Row], dict]:
    model, bundle = train(name, spec, epochs)
    float_top1 = evaluate(model, bundle.test, bundle.num_classes).top1
    inputs = observe_inputs(model, bundle)
    rows = []
    for ref_bits in (8, 16):
        plan = plan_for(model, inputs, ref_bits, None)
        rows.append(measure(model, bundle, plan, name, "ref", ref_bits))
    # the grid first, then the equal-stored-bits points off the grid
    points = [(s, b) for s in SCHEMES for b in bits]
    points += [(s, b) for s in SCHEMES for b in stored_points(s, bits)]
    for scheme, b in points:
        plan = plan_for(model, inputs, b, SCHEMES[scheme])
        rows.append(measure(model, bundle, plan, name, scheme, b))
        log(f"{name} {scheme} {b} bits: top-1 {rows[-1].top1:.2%}")
    return rows, summarise(name, float_top1, rows, bits)


def summarise(name: str, float_top1: float, rows: list[Row], bits: list[int]) -> dict:
    ref8 = next(r for r in rows if r.scheme == "ref" and r.bits == 8)
    ref16 = next(r for r in rows if r.scheme == "ref" and r.bits == 16)
    target = ref8.top1 - TOLERANCE
    ok = [r for r in rows if r.scheme != "ref" and r.bits in bits and r.top1 >= target]
    min_bits = {s: min((r.bits for r in ok if r.scheme == s), default=None) for s in SCHEMES}
    fpec = [r for r in ok if r.scheme.startswith("fpec")]
    fxp = [r for r in ok if r.scheme == "fxp"]
    best = min(fpec, key=lambda r: r.energy_pj, default=None)
    best_fxp = min(fxp, key=lambda r: r.energy_pj, default=None)
    out = {
        "model": name,
        "float_top1": float_top1,
        "fxp8_top1": ref8.top1,
        "fxp16_top1": ref16.top1,
        "min_bits": min_bits,
        "best_fpec": asdict(best) if best else None,
        "best_fxp": asdict(best_fxp) if best_fxp else None,
    }
    if best is not None:
        out["gain_vs_8"] = ref8.energy_pj / best.energy_pj
        out["gain_vs_16"] = ref16.energy_pj / best.energy_pj
        out["compute_gain_vs_8"] = ref8.compute_pj / best.compute_pj
        out["compute_gain_vs_16"] = ref16.compute_pj / best.compute_pj
        if best_fxp is not None:
            out["gain_vs_best_fxp"] = best_fxp.energy_pj / best.energy_pj
    return out


def print_table(rows: list[Row], summary: dict, bits: list[int]) -> None:
    name = summary["model"]
    ref8 = next(r for r in rows if r.scheme == "ref" and r.bits == 8)
    print(
        f"\n{name}: float top-1 {summary['float_top1']:.2%}, 8-bit fxp {summary['fxp8_top1']:.2%}"
        f", 16-bit fxp {summary['fxp16_top1']:.2%}"
    )

    def cell(scheme: str, compute_bits: int) -> str:
        r = next((r for r in rows if r.scheme == scheme and r.bits == compute_bits), None)
        if r is None:
            return f"{'-':>11} {'-':>5}"
        return f"{r.top1:>11.2%} {r.energy_pj / ref8.energy_pj:5.2f}"

    print("equal computation bits (FPEC stores 2 or 3 more bits per value):")
    print(f"{'bits':>4} | " + " | ".join(f"{s:>6} top-1  E/E8" for s in SCHEMES))
    for n in bits:
        print(f"{n:>4} | " + " | ".join(cell(s, n) for s in SCHEMES))
    print(
        "equal stored bits (computation + compensation = n; FPEC computation bits "
        + ", ".join(f"{s} n-{stored_extra(s)}" for s in SCHEMES if stored_extra(s))
        + "):"
    )
    print(f"{'n':>4} | " + " | ".join(f"{s:>6} top-1  E/E8" for s in SCHEMES))
    for n in bits:
        print(f"{n:>4} | " + " | ".join(cell(s, n - stored_extra(s)) for s in SCHEMES))
    mb = summary["min_bits"]
    print(
        f"fewest computation bits within 0.5 points of 8-bit fxp: fxp {mb['fxp']}, "
        f"FPEC 1 comp bit {mb['fpec1']}, FPEC 2 comp bits {mb['fpec2']}"
    )
    best = summary["best_fpec"]
    if best is None:
        print("no FPEC configuration reaches 8-bit fixed point accuracy within 0.5 points")
        return
    print(
        f"cheapest FPEC within 0.5 points: {best['scheme']} at {best['bits']} bits, top-1 "
        f"{best['top1']:.2%}; energy gain {summary['gain_vs_8']:.2f}x vs 8-bit, "
        f"{summary['gain_vs_16']:.2f}x vs 16-bit (compute only {summary['compute_gain_vs_8']:.2f}x"
        f" / {summary['compute_gain_vs_16']:.2f}x)"
    )
    if "gain_vs_best_fxp" in summary:
        bf = summary["best_fxp"]
        print(
            f"vs the cheapest plain fxp within 0.5 points ({bf['bits']} bits): "
            f"{summary['gain_vs_best_fxp']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=list(DATASETS))
    models = sorted({m for d in DATASETS.values() for m in d})
    parser.add_argument(
        "--models", nargs="+", default=None, choices=models, help="default: all of --data's"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override training epochs")
    parser.add_argument(
        "--bits", type=int, nargs="+", default=list(BITS), help="computation bits (default 2..8)"
    )
    parser.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    args = parser.parse_args()
    table = DATASETS[args.data]
    args.models = args.models or list(table)
    unknown = [m for m in args.models if m not in table]
    if unknown:
        parser.error(f"--data {args.data} runs {list(table)}, not {unknown}")
    bits = sorted(set(args.bits))
    if bits[0] < MIN_COMPUTE_BITS:
        parser.error(f"--bits must be >= {MIN_COMPUTE_BITS}")
    if args.threads > 0:
        set_threads(args.threads)
    else:
        torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"data={args.data} threads={torch.get_num_threads()} bits={bits}")
    gains = []
    for name in args.models:
        spec, epochs = table[name]
        rows, summary = run_model(name, spec, args.epochs or epochs, bits)
        print_table(rows, summary, bits)
        if "gain_vs_8" in summary:
            gains.append(summary["gain_vs_8"])
    print("published (Jain et al., DAC 2018): 1.13x-1.7x vs 8-bit, 2.65x-4.88x vs 16-bit fxp")
    ratio = min(gains) if len(gains) == len(args.models) else 0.0
    print(f"fpec_vs_fxp: {ratio:.2f}")


if __name__ == "__main__":
    main()
