"""The `axdnn` command: parses options, calls the experiment runner, prints its records."""

from __future__ import annotations

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

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for every random choice.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _emit(record: dict[str, Any], as_json: bool, render) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        typer.echo(render(record))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path("axdnn-demo"),
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train digits_cnn on the embedded digits data, evaluate it and cost it."""
    from axdnn.experiment.demo import render_demo, run_demo

    _emit(run_demo(out, device=device, progress=not quiet), as_json, render_demo)


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Zoo name, package.module:factory or file.py:factory.")],
    out: Annotated[Path, typer.Option(help="Checkpoint file to write.")],
    data: Annotated[str, typer.Option(help="Dataset spec, e.g. digits, mnist:DIR.")] = "digits",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-2,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a dataset and save a checkpoint."""
    from axdnn.experiment.commands import render_train, run_train
    from axdnn.train import TrainConfig

    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, seed=seed)
    record = run_train(model, data, out, config, device=device, progress=not quiet)
    _emit(record, as_json, render_train)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `axdnn train`.")],
    data: Annotated[str | None, typer.Option(help="Dataset spec; default: the checkpoint's.")] = None,
    split: Annotated[str, typer.Option(help="test, val or train.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 256,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint: top-1, top-5, loss, per-class accuracy, confusion matrix."""
    from axdnn.experiment.commands import render_evaluate, run_evaluate

    record = run_evaluate(
        checkpoint, data, split=split, batch_size=batch_size, device=device, progress=not quiet
    )
    _emit(record, as_json, render_evaluate)


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


def main(argv: list[str] | None = None) -> int:
    """Entry point: AxErrors become a one-paragraph message and exit status 2, no traceback."""
    try:
        app(args=argv, prog_name="axdnn")
    except AxError as err:
        typer.echo(f"axdnn: error: {err}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("axdnn: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
