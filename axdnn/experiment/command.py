"""One experiment step run from the command line: every `axdnn <command>` that has a step kind
builds that step's typed config from its options and runs it through the same `run` as
`axdnn run`, so a command and its step give the same record for the same settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from axdnn.errors import AxError, ConfigError
from axdnn.experiment.schema import STEP_KINDS, ExperimentHeader, StepConfig, reference
from axdnn.experiment.steps import StepContext


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_step(kind: str, *, nulls: tuple[str, ...] = (), **options: Any) -> StepConfig:
    """The `kind` step's config from command-line options (None: the step's default, except
    for the options in `nulls`, where None is a value); a bad value is a ConfigError naming
    the option."""
    cls = STEP_KINDS[kind]
    given = {k: v for k, v in options.items() if v is not None or k in nulls}
    for field, value in given.items():
        values = value if isinstance(value, list) else [value]
        if any(reference(v) is not None for v in values):
            raise ConfigError(
                f"{_option(field)} {value!r}: ${{step.output}} references work only in "
                "experiment files"
            )
    try:
        return cls(**given)
    except ValidationError as err:
        item = err.errors()[0]
        field = str(item["loc"][0]) if item["loc"] else kind
        got = item.get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict) else ""
        raise ConfigError(f"{_option(field)}: {item['msg']}{shown}") from None
    except AxError as err:
        raise type(err)(f"axdnn {kind}: {err}") from None


def run_step(
    step: StepConfig,
    *,
    folder: Path,
    outputs: dict[str, Path] | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Run one step as a command: its files go to `folder`, named outputs (e.g. a checkpoint
    given with --out) to `outputs`; relative paths are relative to the working directory."""
    header = ExperimentHeader(name=f"axdnn {step.kind}", seed=seed, device=device)
    context = StepContext(
        header, Path.cwd() / "command-line", Path(folder), progress, outputs=dict(outputs or {})
    )
    return step.run(context)


__all__ = ["build_step", "run_step"]
