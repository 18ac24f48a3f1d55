"""Runner for approximate evaluation, fine-tuning and the multiplier catalogue."""

from __future__ import annotations

import time
from pathlib import Path

from torch import nn

from axdnn.arith import catalogue, get_multiplier
from axdnn.cost import count_ops
from axdnn.data import DatasetBundle
from axdnn.errors import ConfigError
from axdnn.experiment.common import check_writable, load_checkpoint_and_data, split_of
from axdnn.models.checkpoint import Checkpoint, save_checkpoint
from axdnn.nn import LayerSpec, Plan, approximate
from axdnn.report.multiplier_plots import plot_error_heatmap, plot_error_histogram
from axdnn.runtime import resolve_device, seed_everything
from axdnn.train import TrainConfig, evaluate
from axdnn.train.finetune import FinetuneOptions, finetune

GRADIENT_CHOICES = ("ste", "table")


def resolve_plan(
    plan: Path | Plan | None,
    multiplier: str | None,
    gradient: str | None = None,
    backend: str | None = None,
) -> Plan | None:
    """`--plan FILE` or the `--multiplier SPEC` shorthand (not both); None when neither.
    `--gradient` / `--backend` override those fields of every layer spec."""
    if plan is not None and multiplier is not None:
        raise ConfigError("give either --plan or --multiplier, not both")
    overrides = {k: v for k, v in (("gradient", gradient), ("backend", backend)) if v is not None}
    if plan is not None:
        loaded = plan if isinstance(plan, Plan) else Plan.load(plan)
        if not overrides:
            return loaded
        layers = {k: _overridden(v, overrides) for k, v in loaded.layers.items()}
        return Plan(layers=layers, description=loaded.description)
    if multiplier is not None:
        return Plan.uniform(multiplier, **overrides)
    if backend is not None:
        raise ConfigError("--backend chooses the kernels of a plan: give --plan or --multiplier")
    return None


def _overridden(spec: LayerSpec, overrides: dict) -> LayerSpec:
    """The spec with --gradient/--backend applied to its multiplier (format layers have none)."""
    if spec.multiplier is None:
        return spec
    return LayerSpec(**{**spec.model_dump(), **overrides})


def approximated_model(
    checkpoint: Checkpoint,
    model: nn.Module,
    bundle: DatasetBundle,
    plan: Plan | None,
    *,
    seed: int = 0,
) -> tuple[nn.Module, Plan | None]:
    """The checkpoint's model under its own stored plan, or calibrated under a new plan."""
    stored = checkpoint.extra.get("plan")
    if stored is not None:
        if plan is not None:
            raise ConfigError(
                f"checkpoint {checkpoint.path!r} is already approximate (fine-tuned under a plan); "
                "drop --plan/--multiplier to evaluate it as saved"
            )
        return model, Plan.from_dict(stored, source=f"checkpoint {checkpoint.path!r}")
    if plan is None:
        return model, None
    return approximate(model, plan, bundle.train, seed=seed), plan


def _report(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> dict | None:
    """The approximation report, with every layer's and functional op's MACs and share when the
    input shape is known; counted MAC-bearing modules no plan can convert are listed exact."""
    report = getattr(model, "approximation", None)
    if report is None:
        return None
    data = report.to_dict()
    if input_shape is None:
        return data
    macs = {r.name: r.macs for r in count_ops(model, tuple(input_shape)).layers if r.macs}
    listed = {layer["name"] for layer in data["layers"]}
    for name in macs.keys() - listed:
        data["layers"].append(
            {
                "name": name,
                "kind": "module",
                "status": "exact",
                "multiplier": None,
                "reason": "axdnn has no approximate layer for its type",
            }
        )
    total = sum(macs.values())
    for layer in data["layers"]:
        layer["macs"] = macs.get(layer["name"], 0)
        layer["mac_share"] = layer["macs"] / total if total else None
    approximate = sum(x["macs"] for x in data["layers"] if x["status"] == "approximate")
    data["macs"] = total
    data["approximate_mac_share"] = approximate / total if total else None
    return data


def run_approx_evaluate(
    checkpoint: Path,
    *,
    data: str | None = None,
    plan: Path | Plan | None = None,
    multiplier: str | None = None,
    split: str = "test",
    batch_size: int = 256,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    backend: str | None = None,
    model_factory: str | None = None,
) -> dict:
    """Evaluate a checkpoint as float and under a plan; per-layer multipliers and exact layers.
    `model_factory` builds the weights instead of the factory the checkpoint stores."""
    dev = resolve_device(device)
    ck, model, bundle = load_checkpoint_and_data(checkpoint, data, model=model_factory)
    chosen = resolve_plan(plan, multiplier, backend=backend)
    dataset = split_of(bundle, split)
    approx, used = approximated_model(ck, model, bundle, chosen, seed=seed)
    start = time.perf_counter()
    result = evaluate(approx.to(dev), dataset, bundle.num_classes, batch_size, dev, progress)
    record = {
        "checkpoint": str(checkpoint),
        "model": ck.model_name,
        "data": bundle.spec,
        "split": split,
        "plan": used.model_dump() if used else None,
        "approximation": _report(approx, bundle.input_shape),
        "seconds": time.perf_counter() - start,
        **result.to_dict(),
    }
    if used is not None and "plan" not in ck.extra:
        base = evaluate(model.to(dev), dataset, bundle.num_classes, batch_size, dev)
        record["float_top1"] = base.top1
    return record


def render_approx_evaluate(record: dict) -> str:
    lines = [
        f"{record['model']} on {record['data']} ({record['split']}, {record['samples']} samples)",
        f"top-1 {record['top1']:.2%}  top-5 {record['top5']:.2%}  loss {record['loss']:.4f}",
    ]
    if record.get("float_top1") is not None:
        drop = record["float_top1"] - record["top1"]
        lines.append(f"float top-1 {record['float_top1']:.2%}  (drop {drop * 100:.2f} points)")
    if record["approximation"]:
        share = record["approximation"].get("approximate_mac_share")
        lines.append(
            "layers and functional ops:"
            if share is None
            else f"layers and functional ops ({share:.1%} of the MACs approximate):"
        )
        for layer in record["approximation"]["layers"]:
            how = (
                _layer_hardware(layer)
                if layer["status"] == "approximate"
                else f"exact: {layer['reason']}"
            )
            macs = "" if layer.get("mac_share") is None else f"{layer['mac_share']:6.1%}  "
            lines.append(f"  {layer['name']:<24} {layer['kind']:<8} {macs}{how}")
    return "\n".join(lines)


def render_evaluate(record: dict) -> str:
    """Every run of an evaluate step or command: accuracy, energy, and each layer's hardware."""
    blocks = []
    for run in record["runs"]:
        energy = run.get("energy") or {}
        head = f"== {run['label']}"
        if energy.get("total_pj") is not None:
            head += f"  ({energy['total_pj'] / 1e6:.3f} uJ per inference)"
        blocks.append(f"{head}\n{render_approx_evaluate(run)}")
    return "\n\n".join(blocks)


def _layer_hardware(layer: dict) -> str:
    if layer.get("multiplier"):
        return layer["multiplier"]
    weights = layer.get("weight_format") or "float"
    return f"weights {weights}, inputs {layer.get('act_format') or 'float'}"


def run_finetune(
    checkpoint: Path,
    out: Path,
    config: TrainConfig,
    options: FinetuneOptions,
    *,
    data: str | None = None,
    plan: Path | None = None,
    multiplier: str | None = None,
    gradient: str | None = None,
    device: str = "auto",
    progress: bool = True,
    backend: str | None = None,
    model_factory: str | None = None,
) -> dict:
    """Fine-tune a float checkpoint with the plan's approximation in the forward pass."""
    if gradient is not None and gradient not in GRADIENT_CHOICES:
        raise ConfigError(f"unknown gradient {gradient!r}; expected one of {GRADIENT_CHOICES}")
    chosen = resolve_plan(plan, multiplier, gradient, backend)
    if chosen is None:
        raise ConfigError("finetune needs --plan FILE or --multiplier SPEC")
    check_writable(out, "checkpoint")
    dev = resolve_device(device)
    ck, model, bundle = load_checkpoint_and_data(checkpoint, data, model=model_factory)
    if "plan" in ck.extra:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is already fine-tuned; start from the float one"
        )
    seed_everything(config.seed)
    approx = approximate(model, chosen, bundle.train, seed=config.seed).to(dev)
    n = bundle.num_classes
    before = evaluate(approx, bundle.test, n, device=dev)
    start = time.perf_counter()
    history = finetune(approx, bundle.train, bundle.val, n, config, options, model, dev, progress)
    seconds = time.perf_counter() - start
    after = evaluate(approx, bundle.test, n, device=dev)
    float_top1 = evaluate(model.to(dev), bundle.test, n, device=dev).top1
    save_checkpoint(
        out,
        Checkpoint(
            model_name=ck.model_name,
            model_kwargs=ck.model_kwargs,
            state_dict=approx.state_dict(),
            data_spec=bundle.spec,
            input_shape=bundle.input_shape,
            metrics={"test_top1": after.top1, "before_finetune_top1": before.top1},
            extra={
                "plan": chosen.model_dump(),
                "table_hashes": table_hashes(chosen),
                "finetune_config": vars(config),
                "options": vars(options),
            },
        ),
    )
    return {
        "checkpoint": str(out),
        "model": ck.model_name,
        "plan": chosen.model_dump(),
        "float_top1": float_top1,
        "before_top1": before.top1,
        "after_top1": after.top1,
        "recovered_fraction": _recovered(float_top1, before.top1, after.top1),
        "seconds": seconds,
        "history": history.to_dict(),
        "approximation": _report(approx, bundle.input_shape),
    }


def _recovered(float_top1: float, before: float, after: float) -> float | None:
    lost = float_top1 - before
    return (after - before) / lost if lost > 0 else None


def render_finetune(record: dict) -> str:
    rec = record["recovered_fraction"]
    rec_text = f", recovered {rec:.0%} of the loss" if rec is not None else ""
    return (
        f"fine-tuned {record['model']} in {record['seconds']:.1f} s\n"
        f"float {record['float_top1']:.2%}  approximate before {record['before_top1']:.2%}  "
        f"after {record['after_top1']:.2%}{rec_text}\ncheckpoint: {record['checkpoint']}"
    )


def run_multipliers_list(width: int = 8, signed: bool = False) -> dict:
    return {"width": width, "signed": signed, "multipliers": catalogue(width, signed)}


def render_multipliers_list(record: dict) -> str:
    head = (
        f"{'spec':<20}{'ER %':>8}{'MRED %':>9}{'NMED %':>9}{'WCE':>8}{'WCRE %':>9}"
        f"{'bias':>10}{'rank':>6}"
    )
    lines = [head, "-" * len(head)]
    for row in record["multipliers"]:
        m = row["metrics"]
        lines.append(
            f"{row['spec']:<20}{m['er_percent']:>8.2f}{m['mred_percent']:>9.2f}{m['nmed_percent']:>9.3f}"
            f"{m['wce']:>8}{m['wcre_percent']:>9.2f}{m['mean_error']:>10.1f}{m['rank']:>6}"
        )
    return "\n".join(lines)


def run_multipliers_show(spec: str, out: Path | None = None) -> dict:
    """Metrics of one multiplier and, with `out`, its error heatmap and histogram as PNG."""
    m = get_multiplier(spec)
    record = {"spec": spec, **m.describe(), "metrics": m.metrics().to_dict(), "plots": {}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in spec)
        record["plots"] = {
            "heatmap": str(plot_error_heatmap(m, out / f"{stem}_error_heatmap.png")),
            "histogram": str(plot_error_histogram(m, out / f"{stem}_error_histogram.png")),
        }
    return record


def render_multipliers_step(record: dict) -> str:
    """Every multiplier of a `multipliers` step or `axdnn multipliers show`."""
    return "\n".join(render_multipliers_show(m) for m in record["multipliers"])


def render_multipliers_show(record: dict) -> str:
    lines = [f"{record['spec']}  ({record['name']}, content {record['content_hash'][:12]})"]
    lines += [f"  {k:<14} {v}" for k, v in record["metrics"].items()]
    lines += [f"  plot: {p}" for p in record["plots"].values()]
    return "\n".join(lines)


def table_hashes(plan: Plan) -> dict[str, str]:
    """{multiplier spec: content hash of its table} for every multiplier a plan names, so a
    checkpoint can tell when a table file it was fine-tuned on has changed since."""
    specs = {spec.multiplier for spec in plan.layers.values() if spec.multiplier is not None}
    return {spec: get_multiplier(spec).content_hash for spec in sorted(specs)}


def configuration_energy(
    checkpoint: Path,
    plan: Path | Plan | None,
    multiplier: str | None,
    model_factory: str | None = None,
) -> dict:
    """Energy of one inference of the checkpoint's model under a plan (float when neither plan
    nor multiplier is given), from the cost model: totals in pJ."""
    from axdnn.cost import estimate_energy, precision_from_model
    from axdnn.experiment.common import build_checkpoint

    ck, model = build_checkpoint(checkpoint, model=model_factory)
    chosen = resolve_plan(plan, multiplier)
    # operations are counted on the float model (the same MACs); the precision of each layer
    # is read from the uncalibrated approximate copy's hardware profiles
    hardware = model if chosen is None else approximate(model, chosen, None)
    ops = count_ops(model, tuple(ck.input_shape))
    report = estimate_energy(ops, precision_from_model(hardware))
    specs = {spec.multiplier for spec in chosen.layers.values()} if chosen else set()
    unpriced = sorted(s for s in specs - {None} if get_multiplier(s).power_mw is None)
    return {
        "total_pj": report.total_pj,
        "compute_pj": report.total_compute_pj,
        "memory_pj": report.total_memory_pj,
        "priced_as_exact": unpriced,  # no published power: priced as the exact multiplier
    }
