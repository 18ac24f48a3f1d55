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
    result = run_experiment(file, folder, not quiet, say, device=device)
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
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a dataset and save a checkpoint."""
    from axdnn.experiment.commands import render_train, run_train
    from axdnn.models import default_lr
    from axdnn.train import TrainConfig

    config = TrainConfig(
        epochs=epochs,
        lr=default_lr(model) if lr is None else lr,
        batch_size=batch_size,
        optimizer=optimizer,
        seed=seed,
    )
    record = run_train(model, data, out, config, device=device, progress=not quiet)
    _emit(record, as_json, render_train)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `axdnn train`.")],
    data: Annotated[
        str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")
    ] = None,
    plan: Annotated[
        Path | None, typer.Option(help="Plan file (YAML/JSON): layer globs to specs.")
    ] = None,
    multiplier: Annotated[
        str | None,
        typer.Option(help="Run every conv/linear layer on this multiplier, e.g. drum:4@u8."),
    ] = None,
    split: Annotated[str, typer.Option(help="test, val or train.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 256,
    backend: BackendOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint (optionally on approximate hardware): top-1, top-5, loss, per-class
    accuracy, confusion matrix, and the multiplier of every layer."""
    from axdnn.experiment.approx import render_approx_evaluate, run_approx_evaluate

    record = run_approx_evaluate(
        checkpoint,
        data,
        plan,
        multiplier,
        split,
        batch_size,
        device,
        seed,
        progress=not quiet,
        backend=backend,
    )
    _emit(record, as_json, render_approx_evaluate)


@app.command()
def finetune(
    checkpoint: Annotated[Path, typer.Option(help="Float checkpoint to start from.")],
    out: Annotated[Path, typer.Option(help="Checkpoint file to write.")],
    data: Annotated[
        str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")
    ] = None,
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
    from axdnn.experiment.approx import render_finetune, run_finetune
    from axdnn.train import TrainConfig
    from axdnn.train.finetune import FinetuneOptions

    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    options = FinetuneOptions(distill, temperature, hw_reg)
    record = run_finetune(
        checkpoint,
        out,
        config,
        options,
        data,
        plan,
        multiplier,
        gradient,
        device,
        not quiet,
        backend=backend,
    )
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
    spec: Annotated[str, typer.Argument(help="Multiplier spec, e.g. drum:4@u8 or lut:file.bin.")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the error heatmap/histogram PNGs.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Error metrics of one multiplier, and its error heatmap and histogram as PNG."""
    from axdnn.experiment.approx import render_multipliers_show, run_multipliers_show

    _emit(run_multipliers_show(spec, out), as_json, render_multipliers_show)


@app.command()
def cost(
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint to cost.")] = None,
    model: Annotated[str | None, typer.Option(help="Zoo model to cost (with --input).")] = None,
    input: Annotated[str | None, typer.Option(help="Input shape CxHxW, e.g. 3x32x32.")] = None,
    num_classes: Annotated[int, typer.Option(help="Classes, with --model.")] = 10,
    energy_table: Annotated[
        Path | None, typer.Option(help="YAML energy table for another technology node.")
    ] = None,
    memory: Annotated[str, typer.Option(help="Memory level for traffic: sram or dram.")] = "sram",
    as_json: JsonOpt = False,
) -> None:
    """Per-layer MACs, parameters, activation sizes and energy, with totals."""
    from axdnn.experiment.commands import render_cost, run_cost

    record = run_cost(
        checkpoint=checkpoint,
        model=model,
        input_shape=input,
        num_classes=num_classes,
        energy_table=energy_table,
        memory=memory,
    )
    _emit(record, as_json, render_cost)


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
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to analyse.")],
    out: Annotated[Path, typer.Option(help="Folder for resilience.json and plots.")] = Path(
        "axdnn-resilience"
    ),
    data: Annotated[
        str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option(help="Injection site (repeatable), e.g. features.0:output.")
    ] = None,
    error_model: Annotated[
        str, typer.Option(help="Error-model template; {m} takes each magnitude.")
    ] = "gaussian:{m},rel=std",
    magnitudes: Annotated[str, typer.Option(help="Comma-separated magnitudes.")] = "0.25,0.5,1,2",
    repeats: Annotated[int, typer.Option(help="Repeats per site and magnitude.")] = 2,
    split: Annotated[str, typer.Option(help="test, val or train.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Use only the first N samples.")] = None,
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
    from axdnn.experiment.resilience import render_resilience, run_resilience

    record = run_resilience(
        checkpoint,
        data,
        out,
        site or None,
        error_model,
        _floats(magnitudes, "--magnitudes"),
        repeats,
        split,
        limit,
        campaign,
        trials,
        store,
        seed,
        device,
        campaign_name,
    )
    _emit(record, as_json, render_resilience)


@app.command()
def significance(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to analyse.")],
    out: Annotated[Path, typer.Option(help="Folder for significance.json and plots.")] = Path(
        "axdnn-significance"
    ),
    data: Annotated[
        str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")
    ] = None,
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
    limit: Annotated[int | None, typer.Option(help="Use only the first N samples.")] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Per-filter significance, and significance-driven vs L1-norm filter pruning."""
    from axdnn.experiment.resilience import render_significance, run_significance

    record = run_significance(
        checkpoint,
        data,
        out,
        layer or None,
        error_model,
        threshold,
        repeats,
        _floats(fractions, "--fractions"),
        limit,
        seed,
        device,
    )
    _emit(record, as_json, render_significance)


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
