"""FPEC (Compensated-DNN, Jain et al., DAC 2018) against plain fixed point: post-training accuracy
versus computation bits (2..8) and the energy ratio from the cost model.

Protocol (all in this run, seed 0):

- Train `digits_cnn` on `digits` and `resnet20` on `digits:3x32x32` for a few epochs (float).
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
- Headline per model: the cheapest FPEC configuration whose top-1 is within 0.5 points of 8-bit
  fixed point; its energy gain over 8-bit and 16-bit fixed point. The last line is the smaller
  (conservative) of the two models' gains over 8-bit fixed point.

Published (Jain et al., DAC 2018): 1.13x-1.7x over 8-bit and 2.65x-4.88x over 16-bit fixed point
at under 0.5% accuracy loss.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from axdnn.cost import count_ops, estimate_energy, precision_from_model
from axdnn.data import load_dataset
from axdnn.formats import FixedPoint
from axdnn.models import build_model
from axdnn.nn import LayerSpec, Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit

BITS = range(2, 9)
SCHEMES = {"fxp": None, "fpec1": 0, "fpec2": 1}  # name -> FPEC magnitude bits c (None: plain)
TOLERANCE = 0.005
OBSERVE_BATCHES = 4
MODELS = {"digits_cnn": ("digits", 5), "resnet20": ("digits:3x32x32", 4)}


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
    fit(model, bundle.train, bundle.val, bundle.num_classes, TrainConfig(epochs=epochs, seed=0))
    log(f"{name}: trained {epochs} epochs in {time.perf_counter() - start:.0f} s")
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


def run_model(name: str, spec: str, epochs: int) -> tuple[list[Row], dict]:
    model, bundle = train(name, spec, epochs)
    float_top1 = evaluate(model, bundle.test, bundle.num_classes).top1
    inputs = observe_inputs(model, bundle)
    rows = []
    for bits in (8, 16):
        rows.append(measure(model, bundle, plan_for(model, inputs, bits, None), name, "ref", bits))
    for scheme, comp in SCHEMES.items():
        for bits in BITS:
            plan = plan_for(model, inputs, bits, comp)
            rows.append(measure(model, bundle, plan, name, scheme, bits))
            log(f"{name} {scheme} {bits} bits: top-1 {rows[-1].top1:.2%}")
    return rows, summarise(name, float_top1, rows)


def summarise(name: str, float_top1: float, rows: list[Row]) -> dict:
    ref8 = next(r for r in rows if r.scheme == "ref" and r.bits == 8)
    ref16 = next(r for r in rows if r.scheme == "ref" and r.bits == 16)
    target = ref8.top1 - TOLERANCE
    ok = [r for r in rows if r.scheme != "ref" and r.top1 >= target]
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


def print_table(rows: list[Row], summary: dict) -> None:
    name = summary["model"]
    ref8 = next(r for r in rows if r.scheme == "ref" and r.bits == 8)
    print(
        f"\n{name}: float top-1 {summary['float_top1']:.2%}, 8-bit fxp {summary['fxp8_top1']:.2%}"
        f", 16-bit fxp {summary['fxp16_top1']:.2%}"
    )
    print(f"{'bits':>4} | " + " | ".join(f"{s:>6} top-1  E/E8" for s in SCHEMES))
    for bits in BITS:
        cells = []
        for s in SCHEMES:
            r = next(r for r in rows if r.scheme == s and r.bits == bits)
            cells.append(f"{r.top1:>11.2%} {r.energy_pj / ref8.energy_pj:5.2f}")
        print(f"{bits:>4} | " + " | ".join(cells))
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
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=None, help="override training epochs")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gains = []
    for name in args.models:
        spec, epochs = MODELS[name]
        rows, summary = run_model(name, spec, args.epochs or epochs)
        print_table(rows, summary)
        if "gain_vs_8" in summary:
            gains.append(summary["gain_vs_8"])
    print("published (Jain et al., DAC 2018): 1.13x-1.7x vs 8-bit, 2.65x-4.88x vs 16-bit fxp")
    ratio = min(gains) if len(gains) == len(args.models) else 0.0
    print(f"fpec_vs_fxp: {ratio:.2f}")


if __name__ == "__main__":
    main()
