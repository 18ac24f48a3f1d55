"""Experiment files: one YAML file names the model, the data and an ordered list of steps, each
step kind one typed settings model. Validated before anything runs; errors name the file, line,
key, the bad value and what is accepted. `experiment_schema()` is the JSON Schema editors use.

Step kinds register themselves (`register_step`), so a new capability adds its kind in its own
module; the Experiment model is built from the registry.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from axdnn.errors import ConfigError
from axdnn.experiment.yaml_lines import line_of, load_yaml_with_lines

REFERENCE = re.compile(r"^\$\{\s*([A-Za-z_][\w-]*)\s*\.\s*([A-Za-z_]\w*)\s*\}$")
"""`${step.output}`: the named output of an earlier step, e.g. `${train.checkpoint}`."""

STEP_KINDS: dict[str, type[StepConfig]] = {}


class StepConfig(BaseModel):
    """Settings every step has; subclasses add their kind's settings and a `kind` literal."""

    model_config = ConfigDict(extra="forbid")
    OUTPUTS: ClassVar[tuple[str, ...]] = ()
    """Record keys later steps may reference as `${name.key}`."""
    PATHS: ClassVar[tuple[str, ...]] = ()
    """Fields holding files that must exist (relative to the experiment file)."""

    name: str | None = Field(
        None, description="Unique step name for references and records; default: the kind."
    )

    @property
    def step_name(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


def register_step(cls: type[StepConfig]) -> type[StepConfig]:
    """Class decorator adding a step kind (its `kind` field's literal) to experiment files."""
    kind = cls.model_fields["kind"].default
    STEP_KINDS[kind] = cls
    experiment_model.cache_clear()
    return cls


class ExperimentHeader(BaseModel):
    """What every step shares unless it overrides it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Experiment name, shown in the report.")
    description: str = ""
    model: str | None = Field(None, description="Zoo name, package.module:factory or file.py:f.")
    checkpoint: str | None = Field(None, description="A trained checkpoint to start from.")
    data: str = Field("digits", description="Dataset spec, e.g. digits, fashion-mnist.")
    seed: int = 0
    device: str = "auto"


@functools.cache
def experiment_model() -> type[ExperimentHeader]:
    """The pydantic model of a whole file, with every registered step kind."""
    import axdnn.experiment.steps  # noqa: F401  (the built-in kinds register on import)

    kinds = tuple(STEP_KINDS.values())
    step = Annotated[Union[kinds], Field(discriminator="kind")]  # noqa: UP007
    return create_model("Experiment", __base__=ExperimentHeader, steps=(list[step], ...))


def experiment_schema() -> dict[str, Any]:
    """JSON Schema of experiment files (`axdnn run --schema`)."""
    return experiment_model().model_json_schema()


def reference(value: Any) -> tuple[str, str] | None:
    """(step, output) when `value` is a `${step.output}` reference, else None."""
    match = REFERENCE.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def _error(file: Path, lines: dict, loc: tuple, message: str) -> ConfigError:
    line = line_of(lines, loc)
    key = ".".join(str(p) for p in loc) or "(top level)"
    return ConfigError(f"{file}:{line or '?'}: {key}: {message}")


def _describe(error: dict, model: type[BaseModel]) -> str:
    got = error.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    message = f"{error['msg']}{shown}"
    if error["type"] == "extra_forbidden":
        message += f"; accepted keys here: {', '.join(_accepted_keys(error['loc'], model))}"
    return message


def _accepted_keys(loc: tuple, model: type[BaseModel]) -> list[str]:
    if len(loc) >= 3 and loc[0] == "steps" and isinstance(loc[2], str) and loc[2] in STEP_KINDS:
        return list(STEP_KINDS[loc[2]].model_fields)
    return list(model.model_fields)


def _validate_steps(experiment, file: Path, lines: dict) -> None:
    seen: dict[str, StepConfig] = {}
    for index, step in enumerate(experiment.steps):
        loc = ("steps", index)
        if step.step_name in seen:
            raise _error(
                file,
                lines,
                (*loc, "name"),
                f"step name {step.step_name!r} is used twice; give each step a unique `name`",
            )
        for field, value in step:
            target = reference(value)
            if target is not None:
                _check_reference(target, seen, file, lines, loc=(*loc, field))
            elif field in step.PATHS and value is not None:
                _check_files(value, file, lines, (*loc, field))
        seen[step.step_name] = step
    if experiment.checkpoint is not None:
        _check_files(experiment.checkpoint, file, lines, ("checkpoint",))


def _check_reference(target, seen, file, lines, *, loc) -> None:
    step, output = target
    if step not in seen:
        known = ", ".join(seen) or "none (this is the first step)"
        raise _error(
            file,
            lines,
            loc,
            f"reference ${{{step}.{output}}} names no earlier step; earlier steps: {known}",
        )
    outputs = seen[step].OUTPUTS
    if output not in outputs:
        raise _error(
            file,
            lines,
            loc,
            f"step {step!r} has no output {output!r}; it offers: {', '.join(outputs) or 'none'}",
        )


def _check_files(value, file: Path, lines: dict, loc: tuple) -> None:
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        if reference(item) is None and not resolve_path(file, item).exists():
            where = (*loc, index) if isinstance(value, list) else loc
            raise _error(
                file,
                lines,
                where,
                f"file {item!r} does not exist (relative paths are read from "
                f"{str(Path(file).resolve().parent)!r})",
            )


def resolve_path(file: Path, value: str) -> Path:
    """A path from the experiment file, relative to that file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(file).resolve().parent / path


def load_experiment(file: Path):
    """Load and validate an experiment file; every problem raises ConfigError naming file:line."""
    file = Path(file)
    if not file.is_file():
        raise ConfigError(f"experiment file {str(file)!r} does not exist")
    data, lines = load_yaml_with_lines(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: an experiment file is a mapping with name, data and steps")
    model = experiment_model()
    try:
        experiment = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _error(file, lines, tuple(first["loc"]), _describe(first, model)) from None
    _validate_steps(experiment, file, lines)
    return experiment
