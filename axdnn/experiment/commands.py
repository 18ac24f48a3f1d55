"""The runners behind `axdnn train` and `axdnn cost`: each returns a JSON-ready record."""

from __future__ import annotations

import time
from pathlib import Path

from axdnn.cost.counting import CostReport, count_ops
from axdnn.cost.energy import EnergyReport, EnergyTable, estimate_energy
from axdnn.cost.precision import precision_from_model
from axdnn.cost.table import format_cost_table
from axdnn.data import load_dataset
from axdnn.errors import ConfigError
from axdnn.experiment.common import (
    build_checkpoint,
    check_writable,
    parse_input_shape,
    try_forward,
)
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, save_checkpoint
from axdnn.runtime import resolve_device, seed_everything
from axdnn.train import TrainConfig, evaluate, fit
from axdnn.train.approximate import ApproxTraining, train_approximately


def run_train(
    model_name: str,
    data: str,
    out: Path,
    config: TrainConfig,
    *,
    device: str = "auto",
    progress: bool = True,
    approx: ApproxTraining | None = None,
) -> dict:
    """Train a model from scratch and write a checkpoint with its test metrics; `approx` trains
    it in reduced precision and/or data-parallel with gradient compression."""
    if config.epochs < 1:
        raise ConfigError(
            f"training for {config.epochs} epochs would save an untrained model; give --epochs >= 1"
        )
    check_writable(out, "checkpoint")
    dev = resolve_device(device)
    bundle = load_dataset(data, seed=config.seed)
    seed_everything(config.seed)
    kwargs = {"in_channels": bundle.input_shape[0], "num_classes": bundle.num_classes}
    model = build_model(model_name, **kwargs)
    try_forward(model, bundle.input_shape, f"model {model_name!r}")
    start = time.perf_counter()
    extra: dict = {}
    if approx is None:
        history = fit(model, bundle.train, bundle.val, bundle.num_classes, config, dev, progress)
        history_record = history.to_dict()
    else:
        history_record, extra = train_approximately(
            model, bundle, config, approx, model_name=model_name, data=data, device=dev,
            progress=progress,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    result = evaluate(model, bundle.test, bundle.num_classes, device=dev)
    metrics = {"test_top1": result.top1, "test_top5": result.top5, "test_loss": result.loss}
    checkpoint = Checkpoint(
        model_name=model_name,
        model_kwargs=kwargs,
        state_dict=model.state_dict(),
        data_spec=data,
        input_shape=bundle.input_shape,
        metrics=metrics,
        extra={
            "train_config": vars(config),
            **({"approx_training": approx.to_dict()} if approx else {}),
        },
    )
    save_checkpoint(out, checkpoint)
    return {
        "checkpoint": str(out),
        "model": model_name,
        "data": bundle.summary(),
        "config": vars(config),
        "train_seconds": seconds,
        "history": history_record,
        "test": result.to_dict(),
        **extra,
    }


def render_train(record: dict) -> str:
    t = record["test"]
    lines = [
        f"trained {record['model']} on {record['data']['spec']} in {record['train_seconds']:.1f} s "
        f"(best val epoch {record['history']['best_epoch']})",
        f"test top-1 {t['top1']:.2%}  top-5 {t['top5']:.2%}  loss {t['loss']:.4f}",
    ]
    if "memory_energy" in record:
        m = record["memory_energy"]
        lines.append(
            f"memory energy ({m['memory']}): {m['saved_vs_fp32']:.1%} saved vs fp32, "
            f"{m['saved_vs_fp16']:.1%} vs fp16"
        )
    if "parallel" in record:
        p, c = record["parallel"], record["parallel"]["communication"]
        lines.append(
            f"{p['workers']} workers: sent {c['wire_bytes'] / 1e6:.3f} MB per rank "
            f"({c['compression_ratio']:.1f}x less than fp32 all-reduce), "
            f"ranks identical: {p['ranks_identical']}"
        )
    lines.append(f"checkpoint: {record['checkpoint']}")
    return "\n".join(lines)


def run_cost(
    checkpoint: Path | None = None,
    *,
    model: str | None = None,
    input_shape: str | None = None,
    num_classes: int = 10,
    energy_table: Path | None = None,
    memory: str = "sram",
) -> dict:
    """Count MACs, parameters, activations and energy of a checkpoint or a zoo model (`model`
    with `input_shape`; beside a checkpoint, `model` builds its weights instead)."""
    if checkpoint is not None:  # `model`, if given, overrides the checkpoint's factory
        ck, net = build_checkpoint(checkpoint, model=model)
        shape = parse_input_shape(input_shape) if input_shape else ck.input_shape
        if shape is None:
            raise ConfigError(
                f"checkpoint {str(checkpoint)!r} records no input shape; pass --input"
            )
        name = ck.model_name
    elif model is not None:
        if not input_shape:
            raise ConfigError("--model needs --input CxHxW (e.g. --input 3x32x32)")
        shape = parse_input_shape(input_shape)
        net = build_model(model, in_channels=shape[0], num_classes=num_classes)
        name = model
    else:
        raise ConfigError("give --checkpoint, or --model with --input")
    table = EnergyTable.from_yaml(energy_table) if energy_table else None
    report = count_ops(net, tuple(shape))
    precision = precision_from_model(net, table)  # approximate/format layers at their precision
    energy = estimate_energy(report, precision, table=table, memory=memory)
    return {"model": name, "cost": report.to_dict(), "energy": energy.to_dict()}


def render_cost(record: dict) -> str:
    report = CostReport.from_dict(record["cost"])
    energy = EnergyReport.from_dict(record["energy"])
    return f"{record['model']}\n{format_cost_table(report, energy)}"
