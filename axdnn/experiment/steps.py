"""The step kinds of experiment files: each one typed settings model whose `run` calls the same
runner function as its CLI command, returning that command's JSON-ready record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from axdnn.errors import AxError, ConfigError
from axdnn.experiment.schema import (
    ExperimentHeader,
    StepConfig,
    reference,
    register_step,
    resolve_path,
)


def _checked(parse, what: str):
    """A validator running the library's own parser, so a bad spec fails before any step runs."""

    def check(value):
        if value is None or reference(value) is not None:
            return value
        try:
            parse(value)
        except AxError as exc:
            raise ValueError(f"bad {what}: {exc}") from None
        return value

    return AfterValidator(check)


def _multiplier(spec: str) -> None:
    from axdnn.arith import get_multiplier

    get_multiplier(spec)


def _error_model(spec: str) -> None:
    from axdnn.inject import parse_error_model

    parse_error_model(spec.replace("{m}", "1"))


def _data(spec: str) -> None:
    from axdnn.data import parse_spec

    parse_spec(spec)


MultiplierSpec = Annotated[str, _checked(_multiplier, "multiplier spec")]
ErrorModelSpec = Annotated[str, _checked(_error_model, "error model")]
DataSpecText = Annotated[str, _checked(_data, "dataset spec")]


@dataclass
class StepContext:
    """What a step needs from the run: experiment defaults, its own folder, and where its named
    outputs go (`axdnn run`: files in the step folder; a command: where --out says)."""

    header: ExperimentHeader
    file: Path
    step_dir: Path
    progress: bool
    outputs: dict[str, Path] = field(default_factory=dict)

    def path(self, value: str | None) -> Path | None:
        return None if value is None else resolve_path(self.file, value)

    def output(self, name: str, default: str) -> Path:
        """Where the step writes its output `name`: the given path, else `default` in its
        folder."""
        return self.outputs.get(name) or self.step_dir / default


class CheckpointStep(StepConfig):
    """A step that works on a trained checkpoint: by default the latest earlier train step's,
    else the experiment's `checkpoint`."""

    checkpoint: str | None = Field(None, description="Path or ${step.checkpoint} reference.")
    data: DataSpecText | None = Field(None, description="Dataset spec; default: the checkpoint's.")
    model: str | None = Field(
        None,
        description="Factory that builds the checkpoint's weights instead of the one it stores "
        "(zoo name, package.module:f or file.py:f, e.g. after moving the file); naming it "
        "trusts it.",
    )
    PATHS = ("checkpoint",)

    def wants_checkpoint(self) -> bool:
        """Whether the runner should default a missing checkpoint (an earlier train step's)."""
        return True


@register_step
class TrainStep(StepConfig):
    """Train a model from scratch (`axdnn train`)."""

    kind: Literal["train"] = "train"
    model: str | None = Field(None, description="Default: the experiment's model.")
    data: DataSpecText | None = Field(None, description="Default: the experiment's data.")
    epochs: int = Field(10, ge=1)
    lr: float | None = Field(None, gt=0, description="Default: the model's learning rate.")
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    truncate: int | None = Field(
        None, ge=0, le=10, description="Hold weights, saved activations and gradients in fp16 "
        "with this many mantissa LSBs truncated (PCM)."
    )  # fmt: skip
    train_format: str | None = Field(
        None, description="One format for all three kinds, e.g. fxp:s1.7,round=stochastic."
    )
    weight_format: str | None = Field(None, description="Format of the weights (overrides).")
    act_format: str | None = Field(None, description="Format of saved activations (overrides).")
    grad_format: str | None = Field(None, description="Format of the gradients (overrides).")
    precision: dict | str | None = Field(
        None, description="Training precision (a mapping, or a YAML file holding one): "
        "weights/activations/gradients specs, layers {glob: {kind: spec}}, scaling, "
        "master_weights."
    )  # fmt: skip
    scaling: Literal["none", "tensor"] | None = Field(
        None, description="tensor: scale each tensor by a power of two into the format's range."
    )
    master_weights: bool | None = Field(None, description="Keep an fp32 master copy (default).")
    memory: Literal["dram", "sram"] = "dram"
    workers: int = Field(1, ge=1, description="Data-parallel processes (gloo on CPU).")
    compressor: Literal["none", "fp16", "powersgd", "topk", "sign", "adacomp"] | None = None
    compress_ratio: float = Field(0.01, gt=0, le=1, description="Top-k fraction sent.")
    bin_size: int = Field(50, ge=1, description="AdaComp bin length.")
    powersgd_rank: int = Field(1, ge=1)
    OUTPUTS = ("checkpoint",)

    def approx_training(self, seed: int = 0, ctx: StepContext | None = None):
        """The step's `ApproxTraining` (None for exact single-process training); a precision
        file is read only with a context (at run time)."""
        from axdnn.train.approximate import ApproxTraining
        from axdnn.train.compression import CompressionConfig
        from axdnn.train.precision import precision_from_options, read_precision_file

        base = self.precision
        if isinstance(base, str):
            base = read_precision_file(ctx.path(base)) if ctx is not None else None

        kinds = dict(
            weights=self.weight_format, activations=self.act_format, gradients=self.grad_format
        )
        precision = precision_from_options(
            base=base, truncate=self.truncate, train_format=self.train_format,
            kinds=kinds, scaling=self.scaling, master_weights=self.master_weights, seed=seed,
        )  # fmt: skip
        compression = None
        if self.compressor is not None:
            compression = CompressionConfig(
                self.compressor, self.compress_ratio, self.bin_size, self.powersgd_rank
            )
        approx = ApproxTraining(precision, self.workers, compression, self.memory)
        return approx if approx.active or isinstance(self.precision, str) else None

    @model_validator(mode="after")
    def _approx_is_valid(self) -> TrainStep:
        self.approx_training()
        return self

    def run(self, ctx: StepContext) -> dict:
        from axdnn.experiment.commands import run_train
        from axdnn.models import default_lr
        from axdnn.train import TrainConfig

        model = self.model or ctx.header.model
        if model is None:
            raise ConfigError(f"train step {self.step_name!r} names no model (and the file none)")
        lr = default_lr(model) if self.lr is None else self.lr
        config = TrainConfig(self.epochs, lr, self.batch_size, self.optimizer, seed=ctx.header.seed)
        out = ctx.output("checkpoint", "model.pt")
        data = self.data or ctx.header.data
        approx = self.approx_training(ctx.header.seed, ctx)
        return run_train(
            model, data, out, config, device=ctx.header.device, progress=ctx.progress,
            approx=approx,
        )  # fmt: skip


@register_step
class EvaluateStep(CheckpointStep):
    """Evaluate in float and on each multiplier or plan (`axdnn evaluate`), with the energy of
    each configuration from the cost model."""

    kind: Literal["evaluate"] = "evaluate"
    multipliers: list[MultiplierSpec] = Field(default_factory=list, description="One run each.")
    plans: list[str] = Field(default_factory=list, description="One run per plan file.")
    include_float: bool = True
    split: Literal["test", "val", "train"] = "test"
    batch_size: int = Field(256, ge=1)
    backend: str | None = None
    PATHS = ("checkpoint", "plans")

    @model_validator(mode="after")
    def _backend_needs_hardware(self) -> EvaluateStep:
        if self.backend is not None and not (self.multipliers or self.plans):
            raise ConfigError(
                "backend (--backend) chooses the kernels of a plan: give multipliers or plans "
                "(--multiplier/--plan)"
            )
        return self

    def run(self, ctx: StepContext) -> dict:
        configs = [("float", None, None)] if self.include_float else []
        configs += [(spec, None, spec) for spec in self.multipliers]
        configs += [(Path(p).name, ctx.path(p), None) for p in self.plans]
        return evaluate_configurations(self, ctx, configs)


def evaluate_configurations(step: CheckpointStep, ctx: StepContext, configs) -> dict:
    """{checkpoint, runs}: one evaluation record (with `label` and `energy`) per (label, plan,
    multiplier) configuration, float when both are None."""
    from axdnn.experiment.approx import configuration_energy, run_approx_evaluate

    checkpoint = ctx.path(step.checkpoint)
    runs = []
    for label, plan, multiplier in configs:
        approximate = plan is not None or multiplier is not None
        record = run_approx_evaluate(
            checkpoint, data=step.data, plan=plan, multiplier=multiplier, split=step.split,
            batch_size=step.batch_size, device=ctx.header.device, seed=ctx.header.seed,
            progress=False, backend=step.backend if approximate else None,
            model_factory=step.model,
        )  # fmt: skip
        stored = not approximate and record["plan"] is not None  # a fine-tuned checkpoint
        record["label"] = "as saved (its stored plan)" if stored else label
        record["energy"] = configuration_energy(checkpoint, plan, multiplier, step.model)
        runs.append(record)
    return {"checkpoint": str(checkpoint), "runs": runs}


def _format(spec: str) -> None:
    from axdnn.formats import parse_format

    parse_format(spec)


FormatSpec = Annotated[str, _checked(_format, "number format")]


@register_step
class FormatsStep(CheckpointStep):
    """Number-format sweep: every conv/linear layer's weights (and inputs) in each format in
    turn, e.g. fixed point against FPEC at equal bits; float first, with each one's energy."""

    kind: Literal["formats"] = "formats"
    formats: list[FormatSpec] = Field(min_length=1, description="e.g. fxp:s2.6, fpec:s2.4,c=1")
    inputs: bool = Field(True, description="Inputs in the format too (else weights only).")
    include_float: bool = True
    split: Literal["test", "val", "train"] = "test"
    batch_size: int = Field(256, ge=1)
    backend: str | None = None

    def run(self, ctx: StepContext) -> dict:
        from axdnn.nn import LayerSpec, Plan

        configs = [("float", None, None)] if self.include_float else []
        for spec in self.formats:
            layer = LayerSpec(weight_format=spec, act_format=spec if self.inputs else None)
            configs.append((spec, Plan(layers={"*": layer}), None))
        return evaluate_configurations(self, ctx, configs)


@register_step
class SelectionStep(CheckpointStep):
    """Component selection: per layer, the cheapest candidate multiplier whose noise model keeps
    predicted accuracy within the budget, verified by table simulation (ReD-CaNe)."""

    kind: Literal["selection"] = "selection"
    candidates: list[MultiplierSpec] = Field(min_length=1)
    budget: float = Field(0.01, ge=0, lt=1, description="Allowed top-1 drop (0.01: 1 point).")
    repeats: int = Field(3, ge=1)
    calibration: int = Field(512, ge=1, description="Training images for the noise model.")
    limit: int | None = Field(None, ge=1, description="Val/test images used (default: all).")

    def run(self, ctx: StepContext) -> dict:
        from axdnn.analysis import select_components
        from axdnn.experiment.common import load_checkpoint_and_data

        checkpoint = ctx.path(self.checkpoint)
        _, model, bundle = load_checkpoint_and_data(
            checkpoint, self.data, ctx.header.seed, model=self.model
        )
        model.eval()
        (vx, vy), (tx, ty) = (split.tensors for split in (bundle.val, bundle.test))
        n = self.limit
        result = select_components(
            model, self.candidates, bundle.train.tensors[0][: self.calibration], vx[:n], vy[:n],
            self.budget, repeats=self.repeats, seed=ctx.header.seed,
            verify_inputs=tx[:n], verify_labels=ty[:n],
        )  # fmt: skip
        return {"checkpoint": str(checkpoint), "data": bundle.spec, **result.to_dict()}


@register_step
class CostStep(CheckpointStep):
    """Per-layer MACs, parameters and energy of the checkpoint (`axdnn cost`)."""

    kind: Literal["cost"] = "cost"
    input: str | None = Field(
        None, description="Input shape CxHxW; with `model` and no checkpoint: cost that model."
    )
    num_classes: int = Field(10, ge=1, description="Classes of `model` costed without checkpoint.")
    energy_table: str | None = None
    memory: Literal["sram", "dram"] = "sram"
    PATHS = ("checkpoint", "energy_table")

    def wants_checkpoint(self) -> bool:
        return not (self.model is not None and self.input is not None)

    def run(self, ctx: StepContext) -> dict:
        from axdnn.experiment.commands import run_cost

        return run_cost(
            checkpoint=ctx.path(self.checkpoint),
            model=self.model,
            input_shape=self.input,
            num_classes=self.num_classes,
            energy_table=ctx.path(self.energy_table),
            memory=self.memory,
        )


@register_step
class MultipliersStep(StepConfig):
    """Characterise multipliers: error metrics, error heatmap and histogram (`axdnn multipliers
    show`)."""

    kind: Literal["multipliers"] = "multipliers"
    specs: list[MultiplierSpec] = Field(min_length=1)

    def run(self, ctx: StepContext) -> dict:
        from axdnn.arith import get_multiplier
        from axdnn.experiment.approx import run_multipliers_show
        from axdnn.report.sections.multipliers import multiplier_error_summary

        shown = []
        for spec in self.specs:
            record = run_multipliers_show(spec, ctx.step_dir)
            record["error_summary"] = multiplier_error_summary(get_multiplier(spec))
            shown.append(record)
        return {"multipliers": shown}


@register_step
class FinetuneStep(CheckpointStep):
    """Fine-tune with the approximate multipliers in the forward pass (`axdnn finetune`)."""

    kind: Literal["finetune"] = "finetune"
    multiplier: MultiplierSpec | None = None
    plan: str | None = None
    gradient: Literal["ste", "table"] | None = None
    epochs: int = Field(3, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    distill: float = Field(0.0, ge=0, lt=1)
    temperature: float = Field(4.0, gt=0)
    hw_reg: float = Field(0.0, ge=0)
    backend: str | None = None
    OUTPUTS = ("checkpoint",)
    PATHS = ("checkpoint", "plan")

    def run(self, ctx: StepContext) -> dict:
        from axdnn.experiment.approx import run_finetune
        from axdnn.train import TrainConfig
        from axdnn.train.finetune import FinetuneOptions

        config = TrainConfig(
            epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=ctx.header.seed
        )
        options = FinetuneOptions(self.distill, self.temperature, self.hw_reg)
        return run_finetune(
            ctx.path(self.checkpoint),
            ctx.output("checkpoint", "finetuned.pt"),
            config,
            options,
            data=self.data,
            plan=ctx.path(self.plan),
            multiplier=self.multiplier,
            gradient=self.gradient,
            device=ctx.header.device,
            progress=ctx.progress,
            backend=self.backend,
            model_factory=self.model,
        )


@register_step
class ResilienceStep(CheckpointStep):
    """Per-layer sensitivity sweep and ranking, optionally a stored fault campaign that resumes
    where an interrupted run stopped (`axdnn resilience`)."""

    kind: Literal["resilience"] = "resilience"
    sites: list[str] | None = None
    error_model: ErrorModelSpec = "gaussian:{m},rel=std"
    magnitudes: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0], min_length=1)
    repeats: int = Field(2, ge=1)
    split: Literal["test", "val", "train"] = "test"
    limit: int | None = Field(None, ge=1)
    campaign: ErrorModelSpec | None = Field(None, description="Error model of a fault campaign.")
    trials: int | None = Field(None, ge=1)
    store: str | None = Field(
        None, description="SQLAlchemy URL or SQLite file for the trials; default: the step's."
    )
    campaign_name: str | None = Field(None, description="Campaign to resume or join in `store`.")

    def run(self, ctx: StepContext) -> dict:
        from axdnn.experiment.resilience import run_resilience

        return run_resilience(
            ctx.path(self.checkpoint),
            self.data,
            ctx.step_dir,
            sites=self.sites,
            template=self.error_model,
            magnitudes=tuple(self.magnitudes),
            repeats=self.repeats,
            split=self.split,
            limit=self.limit,
            campaign_model=self.campaign,
            trials=self.trials,
            store=self.store or str(ctx.step_dir / "campaign.db"),
            seed=ctx.header.seed,
            device=ctx.header.device,
            campaign_name=self.campaign_name,
            model_factory=self.model,
        )


@register_step
class SignificanceStep(CheckpointStep):
    """Per-filter significance and significance-driven vs L1-norm pruning
    (`axdnn significance`)."""

    kind: Literal["significance"] = "significance"
    layers: list[str] | None = None
    error_model: ErrorModelSpec = "gaussian:1.0,rel=std"
    threshold: float = Field(0.01, ge=0)
    fractions: list[float] = Field(default_factory=lambda: [0.125, 0.25, 0.375, 0.5])
    repeats: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)

    def run(self, ctx: StepContext) -> dict:
        from axdnn.experiment.resilience import run_significance

        return run_significance(
            ctx.path(self.checkpoint),
            self.data,
            ctx.step_dir,
            layers=self.layers,
            error_model=self.error_model,
            threshold=self.threshold,
            repeats=self.repeats,
            fractions=tuple(self.fractions),
            limit=self.limit,
            seed=ctx.header.seed,
            device=ctx.header.device,
            model_factory=self.model,
        )


# The capability rooms keep their step kinds beside their runners, one module each
# (axdnn/experiment/<room>.py); importing it here registers its kinds. One line per room:
from axdnn.experiment import compress as _compress  # noqa: E402,F401
from axdnn.experiment import dynamic as _dynamic  # noqa: E402,F401
from axdnn.experiment import explore as _explore  # noqa: E402,F401
from axdnn.experiment import redcane as _redcane  # noqa: E402,F401
from axdnn.experiment import regions as _regions  # noqa: E402,F401
