"""The runner behind `axdnn dynamic` and the `dynamic` experiment step: a trained checkpoint's
dynamic-effort study (exit heads, per-mechanism and combined calibration against an accuracy
budget on held-out training data, test accuracy, operations and wall-clock speed-up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from axdnn.dynamic.study import CONFIGS, StudySettings, run_study
from axdnn.experiment.common import check_writable, load_checkpoint_and_data
from axdnn.experiment.schema import register_step
from axdnn.experiment.steps import CheckpointStep, StepContext
from axdnn.runtime import seed_everything


def run_dynamic(
    checkpoint: Path,
    data: str | None,
    out_dir: Path,
    settings: StudySettings,
    *,
    model_factory: str | None = None,
) -> dict:
    """Run the study on the checkpoint's model; writes `dynamic.json` to out_dir."""
    out_dir = Path(out_dir)
    check_writable(out_dir / "dynamic.json", "dynamic-effort record")
    seed_everything(settings.seed)
    _, model, bundle = load_checkpoint_and_data(
        Path(checkpoint), data, settings.seed, model=model_factory
    )
    record = {
        "command": "dynamic",
        "checkpoint": str(checkpoint),
        **run_study(model.cpu().eval(), bundle, settings),
    }
    (out_dir / "dynamic.json").write_text(json.dumps(record, indent=2))
    return record


def render_dynamic(record: dict) -> str:
    """A table: per configuration, accuracy, drop, ops reduction and measured speed-ups."""
    batches = [
        t["batch_size"] for t in (record["configs"][0]["timing"] if record["configs"] else [])
    ]
    lines = [
        f"dynamic effort of {record['checkpoint']} ({record['model']}) on {record['data']}: dense "
        f"test accuracy {record['dense_accuracy']:.2%}, budget {record['budget_points']} points",
        f"{'config':<12}{'accuracy':>10}{'drop':>8}{'ops x':>8}"
        + "".join(f"{f'speed b{b}':>11}" for b in batches)
        + f"{'changed':>9}",
    ]
    for c in record["configs"]:
        speeds = "".join(f"{t['speedup']:>10.2f}x" for t in c["timing"])
        lines.append(
            f"{c['name']:<12}{c['accuracy']:>10.2%}{c['drop_points']:>8.2f}"
            f"{c['effort']['ops_ratio']:>7.2f}x{speeds}{c['changed_predictions']:>9}"
        )
    best = record.get("best")
    if best:
        lines.append(
            f"best within budget: {best['name']}, {best['ops_ratio']:.2f}x fewer operations, "
            f"{best['speedup']:.2f}x faster at a drop of {best['drop_points']:.2f} points"
        )
    else:
        lines.append("no configuration stayed within the budget on the test split")
    return "\n".join(lines)


@register_step
class DynamicStep(CheckpointStep):
    """Dynamic-effort inference study of a checkpoint (`axdnn dynamic`)."""

    kind: Literal["dynamic"] = "dynamic"
    budget: float = Field(0.5, ge=0, description="Accuracy drop allowed, in points.")
    configs: list[Literal["spet-exact", "spet", "sdss", "sfma", "exit", "combined"]] = Field(
        default_factory=lambda: list(CONFIGS)
    )
    exits: list[str] | None = Field(None, description="Chain steps to put exits after.")
    train_limit: int | None = Field(20000, ge=1)
    calib_limit: int | None = Field(2000, ge=1)
    test_limit: int | None = Field(None, ge=1)
    exit_epochs: int = Field(20, ge=1)
    timing_batches: list[int] = Field(default_factory=lambda: [1, 256])
    timing_samples: int = Field(300, ge=1)
    repeats: int = Field(3, ge=1)

    def run(self, ctx: StepContext) -> dict:
        settings = StudySettings(
            budget=self.budget,
            configs=tuple(self.configs),
            exits=self.exits,
            train_limit=self.train_limit,
            calib_limit=self.calib_limit,
            test_limit=self.test_limit,
            exit_epochs=self.exit_epochs,
            timing_batches=tuple(self.timing_batches),
            timing_samples=self.timing_samples,
            repeats=self.repeats,
            seed=ctx.header.seed,
            progress=ctx.progress,
        )
        return run_dynamic(
            ctx.path(self.checkpoint), self.data, ctx.step_dir, settings, model_factory=self.model
        )
