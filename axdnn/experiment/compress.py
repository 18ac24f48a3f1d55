"""The runners behind `axdnn prune` and `axdnn share` and their experiment steps: plain arguments
in, a JSON-ready record out (the compressed checkpoint written to `out`), plus `render_*`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from axdnn.compress import (
    compressed_checkpoint,
    cost_summary,
    finetune_codebooks,
    fold_batchnorm,
    layer_codes,
    prune_structured,
    search_sharing,
    share_weights,
    sharing_cost,
)
from axdnn.errors import ConfigError
from axdnn.experiment.common import check_writable, load_checkpoint_and_data
from axdnn.experiment.schema import register_step
from axdnn.experiment.steps import CheckpointStep, StepContext
from axdnn.models.checkpoint import load_checkpoint, save_checkpoint
from axdnn.runtime import resolve_device, seed_everything
from axdnn.train import TrainConfig, evaluate, fit


def _top1(model, bundle, device) -> float:
    return evaluate(model, bundle.test, bundle.num_classes, device=device).top1


def _scores(model, bundle, limit: int, seed: int) -> dict[str, list[float]]:
    """Per-filter significance (accuracy drop when the filter's output is corrupted) on val."""
    from axdnn.analysis import filter_significance

    vx, vy = bundle.val.tensors
    with torch.no_grad():
        result = filter_significance(model, vx[:limit], vy[:limit], seed=seed)
    return {layer: [s.drop for s in result.layer_scores(layer)] for layer in result.layers}


def _identical_after_reload(out: Path, model, shape) -> bool:
    """The written checkpoint rebuilds a model with exactly the same outputs."""
    again = load_checkpoint(out).build()
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return bool(torch.equal(again(x), model.cpu().eval()(x)))


def _header(command: str, paths, ckpt, bundle, *, accuracies) -> dict:
    """The record keys both commands share: files, model, data, test top-1 before and after."""
    (source, out), (before, after) = paths, accuracies
    return {
        "command": command,
        "checkpoint": str(out),
        "source": str(source),
        "model": ckpt.model_name,
        "data": bundle.spec,
        "accuracy_before": before,
        "accuracy_after": after,
    }


def run_prune(
    checkpoint: Path,
    out: Path,
    data: str | None = None,
    *,
    ratio: float = 0.5,
    criterion: str = "l1",
    global_pruning: bool = False,
    steps: int = 1,
    epochs: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    limit: int = 256,
    fold_bn: bool = False,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    model_factory: str | None = None,
) -> dict:
    """Structured pruning that slims the model, in `steps` steps each followed by `epochs` of
    fine-tuning, and with `fold_bn` batch norm folded into the layers before it (the deployed
    form); writes a normal checkpoint and checks that it reloads to the same outputs."""
    check_writable(Path(out), "pruned checkpoint")
    seed_everything(seed)
    ckpt, model, bundle = load_checkpoint_and_data(
        Path(checkpoint), data, seed, model=model_factory
    )
    dev = resolve_device(device)
    before = _top1(model, bundle, dev)
    tx, ty = bundle.train.tensors
    scores = _scores(model, bundle, limit, seed) if criterion == "significance" else None
    config = TrainConfig(epochs=max(epochs, 1), lr=lr, batch_size=batch_size, seed=seed)

    def finetune(net, _step):
        if epochs:
            fit(net, bundle.train, bundle.val, bundle.num_classes, config, dev, progress)
            net.cpu()

    pruned, record = prune_structured(
        model.cpu(), bundle.input_shape, ratio, criterion, global_pruning=global_pruning,
        scores=scores, data=(tx[:limit], ty[:limit]), steps=steps, finetune=finetune,
        progress=progress,
    )  # fmt: skip
    folds = {}
    if fold_bn:
        pruned, folds = fold_batchnorm(pruned, bundle.input_shape)
    after = _top1(pruned, bundle, dev)
    metrics = {"test_top1": after, "test_top1_before_pruning": before}
    pruned.cpu()
    save_checkpoint(out, compressed_checkpoint(ckpt, pruned, pruning=record.to_dict(),
                                               folded=folds, metrics=metrics))  # fmt: skip
    return {
        **_header("prune", (checkpoint, out), ckpt, bundle, accuracies=(before, after)),
        "finetune_epochs_per_step": epochs,
        "reload_identical": _identical_after_reload(Path(out), pruned, bundle.input_shape),
        "pruning": record.to_dict(),
        "folded_batchnorm": len(folds),
        "params_saved": sum(p.numel() for p in pruned.parameters()),
    }


def render_prune(record: dict) -> str:
    p = record["pruning"]
    lines = [
        f"pruned {record['source']} ({record['model']}) by {p['ratio']:.0%} ({p['criterion']}, "
        f"{'global' if p['global_pruning'] else 'per layer'}, {p['steps']} step(s)) -> "
        f"{record['checkpoint']}",
        f"  MACs   {p['macs_before']:>12,} -> {p['macs_after']:>12,}  ({p['macs_ratio']:.2f}x)",
        f"  params {p['params_before']:>12,} -> {p['params_after']:>12,}  "
        f"({p['params_ratio']:.2f}x)",
        f"  test top-1 {record['accuracy_before']:.2%} -> {record['accuracy_after']:.2%}",
        f"  reloads to identical outputs: {'yes' if record['reload_identical'] else 'NO'}",
    ]
    if record.get("folded_batchnorm"):
        lines.append(
            f"  {record['folded_batchnorm']} batch norm(s) folded into the layer before: "
            f"{record['params_saved']:,} params saved"
        )
    lines.append(f"  {'layer':<28}{'filters':>12}")
    lines += [f"  {w['name']:<28}{w['before']:>5} -> {w['after']:<5}" for w in p["layers"]]
    return "\n".join(lines)


def run_share(
    checkpoint: Path,
    out: Path,
    data: str | None = None,
    *,
    budget: float = 0.005,
    bits: int = 16,
    k_range: tuple[int, int] = (2, 64),
    powers_of_two: bool = True,
    trials: int = 100,
    population: int = 16,
    limit: int | None = None,
    finetune_epochs: int = 0,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    model_factory: str | None = None,
) -> dict:
    """Search k per layer on the validation split (no retraining), share the weights of the best
    point within `budget`, optionally fine-tune the codebooks, and write the checkpoint."""
    check_writable(Path(out), "shared checkpoint")
    seed_everything(seed)
    ckpt, model, bundle = load_checkpoint_and_data(
        Path(checkpoint), data, seed, model=model_factory
    )
    dev = resolve_device(device)
    model = model.to(dev).eval()
    vx, vy = (t[:limit] for t in bundle.val.tensors)
    before = _top1(model, bundle, dev)
    result = search_sharing(model, vx.to(dev), vy, budget, bits=bits, k_range=k_range,
                            powers_of_two=powers_of_two,
                            trials=trials, population=population, seed=seed,
                            progress=progress)  # fmt: skip
    best = result.best
    if best is None:
        raise ConfigError(
            f"no choice of k in {list(k_range)} keeps the accuracy drop within {budget} on "
            f"{result.samples} validation images; raise --budget or --k-max"
        )
    records = share_weights(model, best.ks, bits)
    tuned = _tune(model, records, bundle, epochs=finetune_epochs, lr=lr, seed=seed, dev=dev)
    after = _top1(model, bundle, dev)
    model.cpu()
    metrics = {"test_top1": after, "test_top1_before_sharing": before}
    save_checkpoint(out, compressed_checkpoint(ckpt, model, sharing=records, metrics=metrics))
    cost = cost_summary(sharing_cost(model, bundle.input_shape, best.ks, bits))
    return {
        **_header("share", (checkpoint, out), ckpt, bundle, accuracies=(before, after)),
        "drop": before - after,
        "codebook_finetune": tuned,
        "ks": best.ks,
        "cost": cost,
        "search": result.to_dict(),
    }


def _tune(model, records, bundle, *, epochs: int, lr: float, seed: int, dev) -> dict | None:
    if not epochs:
        return None
    codes = layer_codes(model, {n: r.to_dict() for n, r in records.items()})
    x, y = bundle.train.tensors
    batches = [(x[i : i + 128].to(dev), y[i : i + 128].to(dev)) for i in range(0, len(y), 128)]
    losses = finetune_codebooks(model, codes, batches, epochs=epochs, lr=lr, seed=seed)
    for name, code in codes.items():
        records[name].codebook = code.codebook.tolist()
    return {"epochs": epochs, "lr": lr, "losses": losses}


def render_share(record: dict) -> str:
    s, c = record["search"], record["cost"]
    lines = [
        f"shared the weights of {record['source']} ({record['model']}) -> {record['checkpoint']}",
        f"  search: {len(s['trials'])} trials, val baseline {s['baseline_accuracy']:.2%}, "
        f"budget {s['budget']:.2%}, {s['bits']}-bit weights",
        f"  compression ratio {c['compression_ratio']:.2f} "
        f"({c['dense_weight_bits']:,} -> {c['shared_weight_bits']:,} bits), "
        f"{c['codebook_lookups']:,} codebook lookups per inference",
        f"  test top-1 {record['accuracy_before']:.2%} -> {record['accuracy_after']:.2%} "
        f"(drop {100 * record['drop']:.2f} points)",
        f"  {'layer':<28}{'k':>5}{'weights':>10}",
    ]
    weights = s["layers"]
    lines += [f"  {n:<28}{k:>5}{weights[n]:>10,}" for n, k in record["ks"].items()]
    return "\n".join(lines)


@register_step
class PruneStep(CheckpointStep):
    """Structured pruning that really slims the model, with optional fine-tuning after each step
    (`axdnn prune`)."""

    kind: Literal["prune"] = "prune"
    ratio: float = Field(0.5, ge=0, lt=1, description="Fraction of channels removed per group.")
    criterion: Literal["l1", "l2", "bn", "taylor", "significance"] = "l1"
    global_pruning: bool = False
    steps: int = Field(1, ge=1, description="Prune in this many equal steps.")
    epochs: int = Field(0, ge=0, description="Fine-tuning epochs after each step.")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    limit: int = Field(256, ge=1, description="Images for Taylor gradients / significance.")
    fold_bn: bool = Field(
        False, description="Fold batch norm into the layer before it (the inference form)."
    )
    OUTPUTS = ("checkpoint",)

    def run(self, ctx: StepContext) -> dict:
        return run_prune(
            ctx.path(self.checkpoint), ctx.output("checkpoint", "pruned.pt"), self.data,
            ratio=self.ratio, criterion=self.criterion, global_pruning=self.global_pruning,
            steps=self.steps, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
            limit=self.limit, fold_bn=self.fold_bn, seed=ctx.header.seed,
            device=ctx.header.device, progress=ctx.progress, model_factory=self.model,
        )  # fmt: skip


@register_step
class ShareStep(CheckpointStep):
    """Weight sharing with a search over k per layer under an accuracy budget (`axdnn share`)."""

    kind: Literal["share"] = "share"
    budget: float = Field(0.005, ge=0, lt=1, description="Allowed top-1 drop (0.005: 0.5 pt).")
    bits: int = Field(16, ge=1, le=64, description="Bits of one unshared weight.")
    k_min: int = Field(2, ge=1)
    k_max: int = Field(64, ge=1)
    powers_of_two: bool = Field(True, description="k in k_min, powers of two, k_max only.")
    trials: int = Field(100, ge=1)
    population: int = Field(16, ge=2)
    limit: int | None = Field(None, ge=1, description="Validation images for the search.")
    finetune_epochs: int = Field(0, ge=0, description="Codebook fine-tuning epochs (0: off).")
    lr: float = Field(1e-4, gt=0)
    OUTPUTS = ("checkpoint",)

    def run(self, ctx: StepContext) -> dict:
        return run_share(
            ctx.path(self.checkpoint), ctx.output("checkpoint", "shared.pt"), self.data,
            budget=self.budget, bits=self.bits, k_range=(self.k_min, self.k_max),
            powers_of_two=self.powers_of_two,
            trials=self.trials, population=self.population, limit=self.limit,
            finetune_epochs=self.finetune_epochs, lr=self.lr, seed=ctx.header.seed,
            device=ctx.header.device, progress=ctx.progress, model_factory=self.model,
        )  # fmt: skip
