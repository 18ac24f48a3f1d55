"""The `axdnn` command: parses options, calls the experiment runner, prints its records."""

from __future__ import annotations

import contextvars
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from axdnn.errors import AxError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="axdnn: what happens to a neural network on approximate hardware, and how far to push it.",
)


@app.callback()
def _trust(
    trust_model: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-model",
            help="Let checkpoints build this user factory (file.py:f or module:f; repeatable). "
            "Without it a checkpoint never makes axdnn import or call code.",
        ),
    ] = None,
    trust_c_models: Annotated[
        bool,
        typer.Option(
            "--trust-c-models", help="Let a checkpoint's stored plan compile its c: models."
        ),
    ] = False,
) -> None:
    from axdnn.runtime import trust

    trust(trust_model or (), trust_c_models)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for every random choice.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        help="Product-table kernel for every layer of the plan: auto (fastest exact), "
        "native, lowrank, numba, torch or reference."
    ),
]


DataOpt = Annotated[str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")]
AnalysedOpt = Annotated[Path, typer.Option("--checkpoint", help="Checkpoint to analyse.")]
SplitOpt = Annotated[str, typer.Option(help="test, val or train.")]
LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N samples.")]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Build the checkpoint's weights with this factory instead of the one it stores "
        "(zoo name, package.module:f or file.py:f, e.g. after moving the file); naming it "
        "trusts it.",
    ),
]


def _step(kind: str, options: dict, *, folder: Path, outputs=None, nulls=(), **run) -> dict:
    """Build the `kind` experiment step from the command's options and run it as `axdnn run`
    would (axdnn.experiment.command); `nulls`: options whose None is a value, not a default."""
    from axdnn.experiment.command import build_step, run_step

    step = build_step(kind, nulls=nulls, **options)
    return run_step(step, folder=folder, outputs=outputs, **run)


def _emit(record: dict[str, Any], as_json: bool, render) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        typer.echo(render(record))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's run.")] = Path("axdnn-demo"),
    show: Annotated[bool, typer.Option("--show", help="Print the demo's experiment file.")] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the shipped demo experiment (digits_cnn on the embedded digits data) and write its
    report."""
    from axdnn.experiment.demo import demo_text, render_demo, run_demo

    if show:
        typer.echo(demo_text(), nl=False)
        return
    say = _say(quiet or as_json)
    _emit(run_demo(out, device=device, progress=not quiet, say=say), as_json, render_demo)


def _say(quiet: bool):
    return (lambda _line: None) if quiet else (lambda line: typer.echo(line, err=True))


@app.command()
def run(
    file: Annotated[Path | None, typer.Argument(help="Experiment file (YAML).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder; default: axdnn-runs/<experiment name>.")
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of experiment files.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="Override the file's device.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an experiment file's steps (finished ones are cached), then write its HTML report."""
    from axdnn.errors import ConfigError
    from axdnn.experiment.runner import render_run, run_experiment
    from axdnn.experiment.schema import experiment_schema, load_experiment

    if schema:
        typer.echo(json.dumps(experiment_schema(), indent=2))
        return
    if file is None:
        raise ConfigError("axdnn run needs an experiment file (or --schema)")
    folder = out or Path("axdnn-runs") / load_experiment(file).name
    say = _say(quiet or as_json)
    result = run_experiment(file, folder, progress=not quiet, say=say, device=device)
    _emit(result, as_json, render_run)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `axdnn run`.")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file; default: RUN_DIR/report.html.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the self-contained HTML report of a run folder from its records alone."""
    from axdnn.report import build_report

    path = build_report(run_dir, out)
    _emit({"report": str(path)}, as_json, lambda r: f"report: {r['report']}")


@app.command()
def train(
    model: Annotated[
        str, typer.Option(help="Zoo name, package.module:factory or file.py:factory.")
    ],
    out: Annotated[Path, typer.Option(help="Checkpoint file to write.")],
    data: Annotated[
        str,
        typer.Option(
            help="Dataset spec: digits (embedded), fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, "
            "cifar100:DIR, folder:DIR, synthetic:CxHxW:CLASSES; each may end in :CxHxW."
        ),
    ] = "digits",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate; default: the model's (3e-3 for lenet5, else 1e-2)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    truncate: Annotated[
        int | None,
        typer.Option(
            help="Hold weights, saved activations and gradients in fp16 with this many mantissa "
            "LSBs truncated (PCM)."
        ),
    ] = None,
    train_format: Annotated[
        str | None,
        typer.Option(help="One format for all three kinds, e.g. fxp:s1.7,round=stochastic."),
    ] = None,
    weight_format: Annotated[str | None, typer.Option(help="Format of the weights.")] = None,
    act_format: Annotated[
        str | None, typer.Option(help="Format of activations saved for backward.")
    ] = None,
    grad_format: Annotated[str | None, typer.Option(help="Format of the gradients.")] = None,
    precision: Annotated[
        Path | None,
        typer.Option(
            help="YAML file: weights/activations/gradients specs, layers {glob: {kind: spec}}, "
            "scaling, master_weights."
        ),
    ] = None,
    scaling: Annotated[
        str | None, typer.Option(help="none or tensor (power-of-two scale per tensor).")
    ] = None,
    master_weights: Annotated[
        bool | None, typer.Option(help="Keep an fp32 master copy of the weights (default).")
    ] = None,
    memory: Annotated[str, typer.Option(help="Memory level priced: dram or sram.")] = "dram",
    workers: Annotated[int, typer.Option(help="Data-parallel processes (gloo on CPU).")] = 1,
    compressor: Annotated[
        str | None, typer.Option(help="none, fp16, powersgd, topk, sign or adacomp.")
    ] = None,
    compress_ratio: Annotated[float, typer.Option(help="Top-k fraction sent.")] = 0.01,
    bin_size: Annotated[int, typer.Option(help="AdaComp bin length.")] = 50,
    powersgd_rank: Annotated[int, typer.Option(help="PowerSGD rank.")] = 1,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a dataset and save a checkpoint; optionally in reduced precision
    (--truncate, --train-format, ...) and data-parallel with gradient compression (--workers,
    --compressor)."""
    from axdnn.experiment.commands import render_train

    options = dict(
        model=model, data=data, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
        truncate=truncate, train_format=train_format, weight_format=weight_format,
        act_format=act_format, grad_format=grad_format, scaling=scaling,
        master_weights=master_weights, memory=memory, workers=workers, compressor=compressor,
        compress_ratio=compress_ratio, bin_size=bin_size, powersgd_rank=powersgd_rank,
        precision=str(precision) if precision else None,
    )  # fmt: skip
    run = dict(seed=seed, device=device, progress=not quiet)
    record = _step("train", options, folder=out.parent, outputs={"checkpoint": out}, **run)
    _emit(record, as_json, render_train)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `axdnn train`.")],
    data: DataOpt = None,
    model: ModelOpt = None,
    plan: Annotated[
        list[Path] | None,
        typer.Option(help="Plan file (YAML/JSON): layer globs to specs; one run each (repeat)."),
    ] = None,
    multiplier: Annotated[
        list[str] | None,
        typer.Option(
            help="Run every conv/linear layer on this multiplier, e.g. drum:4@u8; one run each "
            "(repeatable)."
        ),
    ] = None,
    include_float: Annotated[
        bool, typer.Option("--float/--no-float", help="Also run the float model, first.")
    ] = True,
    split: SplitOpt = "test",
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 256,
    backend: BackendOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint in float and on approximate hardware: top-1, top-5, loss,
    per-class accuracy, confusion matrix, energy, and the multiplier of every layer."""
    from axdnn.experiment.approx import render_evaluate

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, multipliers=multiplier or [],
        plans=[str(p) for p in plan or []], include_float=include_float, split=split,
        batch_size=batch_size, backend=backend,
    )  # fmt: skip
    run = dict(seed=seed, device=device, progress=not quiet)
    _emit(_step("evaluate", options, folder=Path.cwd(), **run), as_json, render_evaluate)


@app.command()
def finetune(
    checkpoint: Annotated[Path, typer.Option(help="Float checkpoint to start from.")],
    out: Annotated[Path, typer.Option(help="Checkpoint file to write.")],
    data: DataOpt = None,
    model: ModelOpt = None,
    plan: Annotated[Path | None, typer.Option(help="Plan file (YAML/JSON).")] = None,
    multiplier: Annotated[str | None, typer.Option(help="One multiplier for every layer.")] = None,
    gradient: Annotated[
        str | None,
        typer.Option(help="ste (straight-through) or table (Meng et al. table difference)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    distill: Annotated[
        float, typer.Option(help="Distillation weight alpha in [0, 1) (0: off).")
    ] = 0.0,
    temperature: Annotated[float, typer.Option(help="Distillation temperature.")] = 4.0,
    hw_reg: Annotated[
        float, typer.Option(help="Hardware-aware regulariser weight (0: off).")
    ] = 0.0,
    backend: BackendOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune with the approximate multipliers in the forward pass."""
    from axdnn.experiment.approx import render_finetune

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, plan=str(plan) if plan else None,
        multiplier=multiplier, gradient=gradient, epochs=epochs, lr=lr, batch_size=batch_size,
        distill=distill, temperature=temperature, hw_reg=hw_reg, backend=backend,
    )  # fmt: skip
    run = dict(seed=seed, device=device, progress=not quiet)
    record = _step("finetune", options, folder=out.parent, outputs={"checkpoint": out}, **run)
    _emit(record, as_json, render_finetune)


multipliers_app = typer.Typer(no_args_is_help=True, help="The multiplier library.")
app.add_typer(multipliers_app, name="multipliers")


@multipliers_app.command("list")
def multipliers_list(
    width: Annotated[int, typer.Option(help="Operand width in bits (2..8).")] = 8,
    signed: Annotated[bool, typer.Option(help="Signed operands.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Built-in behavioural multipliers with their error metrics."""
    from axdnn.experiment.approx import render_multipliers_list, run_multipliers_list

    _emit(run_multipliers_list(width, signed), as_json, render_multipliers_list)


@multipliers_app.command("show")
def multipliers_show(
    spec: Annotated[
        list[str],
        typer.Argument(help="Multiplier specs, e.g. drum:4@u8 or lut:file.bin (one or more)."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the error heatmap/histogram PNGs.")] = Path(
        "axdnn-multipliers"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Error metrics of multipliers, and each one's error heatmap and histogram as PNG (the
    `multipliers` experiment step)."""
    from axdnn.experiment.approx import render_multipliers_step

    record = _step("multipliers", {"specs": spec}, folder=out)
    _emit(record, as_json, render_multipliers_step)


@app.command()
def cost(
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint to cost.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Zoo model to cost (with --input); beside --checkpoint, the factory that builds "
            "its weights instead of the stored one."
        ),
    ] = None,
    input: Annotated[str | None, typer.Option(help="Input shape CxHxW, e.g. 3x32x32.")] = None,
    num_classes: Annotated[int, typer.Option(help="Classes, with --model.")] = 10,
    energy_table: Annotated[
        Path | None, typer.Option(help="YAML energy table for another technology node.")
    ] = None,
    memory: Annotated[str, typer.Option(help="Memory level for traffic: sram or dram.")] = "sram",
    as_json: JsonOpt = False,
) -> None:
    """Per-layer MACs, parameters, activation sizes and energy, with totals."""
    from axdnn.experiment.commands import render_cost

    options = dict(
        checkpoint=str(checkpoint) if checkpoint else None, model=model, input=input,
        num_classes=num_classes, energy_table=str(energy_table) if energy_table else None,
        memory=memory,
    )  # fmt: skip
    _emit(_step("cost", options, folder=Path.cwd()), as_json, render_cost)


def _floats(text: str, what: str) -> tuple[float, ...]:
    from axdnn.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: expected comma-separated numbers, e.g. 0.25,0.5,1"
        ) from None


@app.command()
def resilience(
    checkpoint: AnalysedOpt,
    out: Annotated[Path, typer.Option(help="Folder for resilience.json and plots.")] = Path(
        "axdnn-resilience"
    ),
    data: DataOpt = None,
    model: ModelOpt = None,
    site: Annotated[
        list[str] | None, typer.Option(help="Injection site (repeatable), e.g. features.0:output.")
    ] = None,
    error_model: Annotated[
        str, typer.Option(help="Error-model template; {m} takes each magnitude.")
    ] = "gaussian:{m},rel=std",
    magnitudes: Annotated[str, typer.Option(help="Comma-separated magnitudes.")] = "0.25,0.5,1,2",
    repeats: Annotated[int, typer.Option(help="Repeats per site and magnitude.")] = 2,
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    campaign: Annotated[
        str | None, typer.Option(help="Also run a stored fault campaign with this error model.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Campaign trials (default: Leveugle sample size).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL or SQLite file for trials.")
    ] = None,
    campaign_name: Annotated[
        str | None,
        typer.Option(
            help="Campaign (study) name in the store: workers and reruns with the same name "
            "share and resume it; default resilience-<checkpoint stem>-<error model>."
        ),
    ] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Per-layer sensitivity sweep and resilience ranking (with an optional fault campaign)."""
    from axdnn.experiment.resilience import render_resilience

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, sites=site or None,
        error_model=error_model, magnitudes=list(_floats(magnitudes, "--magnitudes")),
        repeats=repeats, split=split, limit=limit, campaign=campaign, trials=trials, store=store,
        campaign_name=campaign_name,
    )  # fmt: skip
    record = _step("resilience", options, folder=out, seed=seed, device=device)
    _emit(record, as_json, render_resilience)


@app.command()
def significance(
    checkpoint: AnalysedOpt,
    out: Annotated[Path, typer.Option(help="Folder for significance.json and plots.")] = Path(
        "axdnn-significance"
    ),
    data: DataOpt = None,
    model: ModelOpt = None,
    layer: Annotated[
        list[str] | None, typer.Option(help="Conv layer to analyse (repeatable).")
    ] = None,
    error_model: Annotated[
        str, typer.Option(help="Error model injected into each filter.")
    ] = "gaussian:1.0,rel=std",
    threshold: Annotated[
        float, typer.Option(help="Accuracy drop above which a filter is significant.")
    ] = 0.01,
    fractions: Annotated[
        str, typer.Option(help="Pruned filter fractions to compare with L1.")
    ] = "0.125,0.25,0.375,0.5",
    repeats: Annotated[int, typer.Option(help="Repeats per filter.")] = 1,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Per-filter significance, and significance-driven vs L1-norm filter pruning."""
    from axdnn.experiment.resilience import render_significance

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, layers=layer or None,
        error_model=error_model, threshold=threshold, repeats=repeats,
        fractions=list(_floats(fractions, "--fractions")), limit=limit,
    )  # fmt: skip
    record = _step("significance", options, folder=out, seed=seed, device=device)
    _emit(record, as_json, render_significance)


@app.command()
def prune(
    checkpoint: Annotated[Path, typer.Option(help="Float checkpoint to prune.")],
    out: Annotated[Path, typer.Option(help="Pruned checkpoint file to write.")],
    data: DataOpt = None,
    model: ModelOpt = None,
    ratio: Annotated[float, typer.Option(help="Fraction of channels removed, in [0, 1).")] = 0.5,
    criterion: Annotated[
        str, typer.Option(help="l1, l2, bn (batch-norm scale), taylor or significance.")
    ] = "l1",
    global_pruning: Annotated[
        bool, typer.Option("--global", help="Rank channels across layers, not per layer.")
    ] = False,
    steps: Annotated[int, typer.Option(help="Prune in this many equal steps.")] = 1,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs after each step.")] = 0,
    lr: Annotated[float, typer.Option(help="Fine-tuning learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Fine-tuning mini-batch size.")] = 64,
    limit: Annotated[
        int, typer.Option(help="Images for Taylor gradients or significance scores.")
    ] = 256,
    fold_bn: Annotated[
        bool,
        typer.Option(
            "--fold-bn", help="Fold batch norm into the layer before it (the inference form)."
        ),
    ] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Structured pruning that really slims the model (Torch-Pruning), saved as a checkpoint."""
    from axdnn.experiment.compress import render_prune

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, ratio=ratio, criterion=criterion,
        global_pruning=global_pruning, steps=steps, epochs=epochs, lr=lr, batch_size=batch_size,
        limit=limit, fold_bn=fold_bn,
    )  # fmt: skip
    run = dict(seed=seed, device=device, progress=not quiet)
    record = _step("prune", options, folder=out.parent, outputs={"checkpoint": out}, **run)
    _emit(record, as_json, render_prune)


@app.command()
def share(
    checkpoint: Annotated[Path, typer.Option(help="Float checkpoint to compress.")],
    out: Annotated[Path, typer.Option(help="Shared-weight checkpoint file to write.")],
    data: DataOpt = None,
    model: ModelOpt = None,
    budget: Annotated[
        float, typer.Option(help="Allowed validation top-1 drop (0.005: half a point).")
    ] = 0.005,
    bits: Annotated[int, typer.Option(help="Bits of one unshared weight.")] = 16,
    k_min: Annotated[int, typer.Option(help="Fewest shared values per layer.")] = 2,
    k_max: Annotated[int, typer.Option(help="Most shared values per layer.")] = 64,
    any_k: Annotated[
        bool, typer.Option("--any-k", help="Search every k, not only k-min, powers of two, k-max.")
    ] = False,
    trials: Annotated[int, typer.Option(help="NSGA-II trials.")] = 100,
    population: Annotated[int, typer.Option(help="NSGA-II population size.")] = 16,
    limit: Annotated[int | None, typer.Option(help="Validation images for the search.")] = None,
    finetune_epochs: Annotated[
        int, typer.Option(help="Codebook fine-tuning epochs (0: none, no retraining).")
    ] = 0,
    lr: Annotated[float, typer.Option(help="Codebook fine-tuning learning rate.")] = 1e-4,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Weight sharing: k shared values per layer, k searched under an accuracy budget."""
    from axdnn.experiment.compress import render_share

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, budget=budget, bits=bits,
        k_min=k_min, k_max=k_max, powers_of_two=not any_k, trials=trials, population=population,
        limit=limit, finetune_epochs=finetune_epochs, lr=lr,
    )  # fmt: skip
    run = dict(seed=seed, device=device, progress=not quiet)
    record = _step("share", options, folder=out.parent, outputs={"checkpoint": out}, **run)
    _emit(record, as_json, render_share)


@app.command()
def explore(
    checkpoint: Annotated[Path, typer.Option(help="Float checkpoint to explore.")],
    space: Annotated[Path, typer.Option(help="Space file (YAML): layer groups and choices.")],
    out: Annotated[Path, typer.Option(help="Folder for front plans, plot, explore.json.")] = Path(
        "axdnn-explore"
    ),
    data: Annotated[
        str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")
    ] = None,
    strategy: Annotated[str, typer.Option(help="greedy, nsga2, tpe or random.")] = "nsga2",
    trials: Annotated[int, typer.Option(help="Completed trials (evaluations) in the study.")] = 40,
    objectives: Annotated[
        str, typer.Option(help="Comma-separated: accuracy, energy, macs, weight_memory.")
    ] = "accuracy,energy",
    subset: Annotated[
        int | None, typer.Option(help="Validation images per trial (0: all).")
    ] = 1000,
    population: Annotated[int, typer.Option(help="NSGA-II population size.")] = 8,
    storage: Annotated[
        str | None,
        typer.Option(help="Study storage: SQLite file or postgresql:// URL (OUT/explore.db)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (join or resume it); default explore-STRATEGY.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on the study.")] = 1,
    screen: Annotated[
        bool, typer.Option(help="Greedy: skip multipliers the noise model rejects.")
    ] = True,
    confirm: Annotated[bool, typer.Option(help="Re-measure the front on all val images.")] = True,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Design-space exploration: per-layer multipliers and formats under an accuracy limit, as an
    Optuna study (resumable; several workers); the Pareto front is saved as plan files."""
    from axdnn.experiment.explore import render_explore

    options = dict(
        checkpoint=str(checkpoint), space=str(space), data=data, strategy=strategy,
        trials=trials, subset=subset or None, population=population, storage=storage,
        study=study, workers=workers, screen=screen, confirm=confirm,
        objectives=[o.strip() for o in objectives.split(",") if o.strip()],
    )  # fmt: skip
    run = dict(seed=seed, progress=not quiet)
    record = _step("explore", options, folder=out, nulls=("subset",) if not subset else (), **run)
    _emit(record, as_json, render_explore)


regions_app = typer.Typer(
    no_args_is_help=True, help="Neural approximation of code regions (AxBench kernels)."
)
app.add_typer(regions_app, name="regions")


@regions_app.command("list")
def regions_list(as_json: JsonOpt = False) -> None:
    """Built-in regions with their metric, default bound and MICRO 2012 baseline topology."""
    from axdnn.experiment.regions import render_regions_list, run_regions_list

    _emit(run_regions_list(), as_json, render_regions_list)


def _ints(text: str, what: str) -> tuple[int, ...]:
    from axdnn.errors import ConfigError

    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: expected comma-separated integers, e.g. 2,4,8"
        ) from None


@regions_app.command("search")
def regions_search(
    region: Annotated[
        list[str],
        typer.Argument(help="Region names, package.module:name or file.py:name (one or more)."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for <region>.pt and regions.db.")] = Path(
        "axdnn-regions"
    ),
    trials: Annotated[int, typer.Option(help="Complete trials the study should reach.")] = 30,
    samples: Annotated[int, typer.Option(help="Training pairs per candidate.")] = 4096,
    held_out: Annotated[int, typer.Option(help="Held-out pairs scoring candidates.")] = 2048,
    test: Annotated[int, typer.Option(help="Pairs for the chosen network's figures.")] = 4096,
    epochs: Annotated[int, typer.Option(help="Training epochs per candidate.")] = 40,
    bound: Annotated[
        float | None, typer.Option(help="Quality bound; default: the region's own.")
    ] = None,
    cost: Annotated[str, typer.Option(help="Cost objective: energy or macs.")] = "energy",
    latency: Annotated[
        bool, typer.Option("--latency", help="Measured latency as a third objective.")
    ] = False,
    depths: Annotated[str, typer.Option(help="Hidden-layer counts to try.")] = "0,1,2,3",
    widths: Annotated[str, typer.Option(help="Hidden widths to try.")] = "2,4,8,16,32",
    weight_formats: Annotated[
        str, typer.Option(help="Weight formats to try (;-separated specs).")
    ] = "fp32;fp16;fxp:s4.8;fxp:s4.4",
    act_formats: Annotated[
        str, typer.Option(help="Activation formats to try (;-separated specs).")
    ] = "fp32;fp16;fxp:s4.8",
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL or SQLite file; default OUT/regions.db."),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Study name: reruns and workers with the same one share and resume it."),
    ] = None,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="Skip the fixed MICRO 2012 topology.")
    ] = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Search the cheapest MLP within each region's quality bound, against the fixed baseline
    (the `regions` experiment step)."""
    from axdnn.experiment.regions import render_regions_step

    options = dict(
        regions=region, trials=trials, samples=samples, held_out=held_out, test=test,
        epochs=epochs, bound=bound, cost=cost, latency=latency,
        depths=list(_ints(depths, "--depths")), widths=list(_ints(widths, "--widths")),
        weight_formats=weight_formats.split(";"), act_formats=act_formats.split(";"),
        baseline=not no_baseline, storage=storage, study=study,
    )  # fmt: skip
    record = _step("regions", options, folder=out, seed=seed, progress=not quiet)
    _emit(record, as_json, render_regions_step)


@regions_app.command("evaluate")
def regions_evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Network written by `axdnn regions search`.")],
    region: Annotated[
        str | None, typer.Option(help="Region (needed for user regions); default: stored name.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Fresh input samples.")] = 4096,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Error, MACs, energy and measured speed-up of a saved region network vs the numpy code."""
    from axdnn.experiment.regions import render_regions_evaluate, run_regions_evaluate

    _emit(run_regions_evaluate(checkpoint, region, samples, seed), as_json, render_regions_evaluate)


@app.command()
def dynamic(
    checkpoint: Annotated[Path, typer.Option(help="Trained checkpoint to run dynamically.")],
    out: Annotated[Path, typer.Option(help="Folder for dynamic.json.")] = Path("axdnn-dynamic"),
    data: DataOpt = None,
    model: ModelOpt = None,
    budget: Annotated[
        float, typer.Option(help="Accuracy drop allowed on held-out training data, in points.")
    ] = 0.5,
    config: Annotated[
        list[str] | None,
        typer.Option(
            help="spet-exact, spet, sdss, sfma, exit or combined (repeatable); default: all."
        ),
    ] = None,
    exit_after: Annotated[
        list[str] | None, typer.Option("--exit", help="Chain step to put an exit after.")
    ] = None,
    train_limit: Annotated[int, typer.Option(help="Training samples for exit heads.")] = 20000,
    calib_limit: Annotated[int, typer.Option(help="Held-out samples for calibration.")] = 2000,
    test_limit: Annotated[int | None, typer.Option(help="Use only N test samples.")] = None,
    timing_batch: Annotated[
        str, typer.Option(help="Batch sizes timed, comma-separated.")
    ] = "1,256",
    timing_samples: Annotated[int, typer.Option(help="Inputs timed at batch 1.")] = 300,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Dynamic-effort inference (SPET, SDSS, SFMA, early exit) calibrated against a budget."""
    from axdnn.experiment.dynamic import render_dynamic

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, budget=budget, configs=config,
        exits=exit_after or None, train_limit=train_limit, calib_limit=calib_limit,
        test_limit=test_limit, timing_samples=timing_samples,
        timing_batches=[int(b) for b in _floats(timing_batch, "--timing-batch")],
    )  # fmt: skip
    record = _step("dynamic", options, folder=out, seed=seed, progress=not quiet)
    _emit(record, as_json, render_dynamic)


@app.command()
def redcane(
    checkpoint: Annotated[Path, typer.Option(help="Trained checkpoint (e.g. a CapsNet).")],
    out: Annotated[Path, typer.Option(help="Folder for redcane.json.")] = Path("axdnn-redcane"),
    data: DataOpt = None,
    model: ModelOpt = None,
    magnitudes: Annotated[
        str, typer.Option(help="Noise magnitudes NM swept, comma-separated.")
    ] = "0.05,0.1,0.2,0.5,1",
    means: Annotated[str, typer.Option(help="Noise averages NA swept (at NM 0).")] = "0.05,0.2",
    relative_to: Annotated[str, typer.Option(help="std or max_abs of each op's output.")] = "std",
    budget: Annotated[float, typer.Option(help="Accuracy drop allowed, in points.")] = 1.0,
    repeats: Annotated[int, typer.Option(help="Noise draws per sample and point.")] = 2,
    limit: Annotated[int | None, typer.Option(help="Use only N samples of the split.")] = 500,
    calib_limit: Annotated[int, typer.Option(help="Training samples that calibrate.")] = 256,
    candidate: Annotated[
        list[str] | None,
        typer.Option("--multiplier", help="Candidate multiplier (repeatable); default: catalogue."),
    ] = None,
    no_confirm: Annotated[
        bool, typer.Option("--no-confirm", help="Skip the real-table confirmation.")
    ] = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """ReD-CaNe: noise resilience per operation and a multiplier per operation within a budget."""
    from axdnn.experiment.redcane import render_redcane

    options = dict(
        checkpoint=str(checkpoint), data=data, model=model, budget=budget, repeats=repeats,
        magnitudes=list(_floats(magnitudes, "--magnitudes")),
        means=list(_floats(means, "--means")) if means.strip() else [],
        relative_to=relative_to, limit=limit, calib_limit=calib_limit, candidates=candidate,
        confirm=not no_confirm,
    )  # fmt: skip
    record = _step("redcane", options, folder=out, seed=seed, progress=not quiet)
    _emit(record, as_json, render_redcane)


def main(argv: list[str] | None = None) -> int:
    """Entry point: AxErrors become a one-paragraph message and exit status 2, no traceback."""
    try:
        # a context of its own: what --trust-* allow ends with the command
        contextvars.copy_context().run(app, args=argv, prog_name="axdnn")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except AxError as err:
        typer.echo(f"axdnn: error: {err}", err=True)
        return 2
    except OSError as err:
        where = f" {str(err.filename)!r}" if err.filename else ""
        typer.echo(f"axdnn: error: cannot use{where}: {err.strerror or err}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("axdnn: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
