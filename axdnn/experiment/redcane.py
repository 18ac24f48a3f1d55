"""The runner behind `axdnn redcane` and the `redcane` experiment step: ReD-CaNe on a trained
checkpoint (noise sweeps per operation, resilience ranking, per-operation multipliers through
their noise models, confirmed with the real tables, and the energy saving)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from torch.utils.data import DataLoader, Subset

from axdnn.analysis.redcane import DEFAULT_MAGNITUDES, compare_groups, redcane
from axdnn.arith.catalogue import catalogue
from axdnn.experiment.common import check_writable, load_checkpoint_and_data
from axdnn.experiment.schema import register_step
from axdnn.experiment.steps import CheckpointStep, StepContext
from axdnn.runtime import seed_everything


def default_candidates(width: int = 8) -> list[str]:
    """Every built-in approximate multiplier of the catalogue at `width` unsigned bits."""
    return [r["spec"] for r in catalogue(width) if r["model"] != "exact"]


def run_redcane(step: RedcaneStep, out_dir: Path, *, seed: int = 0, progress: bool = True) -> dict:
    """Run the analysis on the step's checkpoint; writes `redcane.json` to out_dir."""
    out_dir = Path(out_dir)
    check_writable(out_dir / "redcane.json", "ReD-CaNe record")
    seed_everything(seed)
    checkpoint = Path(step.checkpoint)
    _, model, bundle = load_checkpoint_and_data(checkpoint, step.data, seed, model=step.model)
    model = model.cpu().eval()
    x, y = _tensors(getattr(bundle, step.split), step.limit)
    calib = _tensors(bundle.train, step.calib_limit)[0]
    result = redcane(
        model,
        calib,
        x,
        y,
        operations=step.operations,
        candidates=default_candidates() if step.candidates is None else step.candidates,
        costs=step.costs,
        exact=step.exact,
        confirm=step.confirm,
        magnitudes=step.magnitudes,
        means=step.means,
        relative_to=step.relative_to,
        budget=step.budget / 100,
        repeats=step.repeats,
        seed=seed,
        progress=progress,
    )
    record = {
        "command": "redcane",
        "checkpoint": str(checkpoint),
        "model": type(model).__name__,
        "data": bundle.summary()["spec"],
        "split": step.split,
        **result.to_dict(),
        "groups": _groups(model, result),
    }
    (out_dir / "redcane.json").write_text(json.dumps(record, indent=2))
    return record


def _tensors(dataset, limit: int | None):
    """The first `limit` samples of a dataset as (inputs, labels) tensors."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    part = Subset(dataset, range(n))
    return next(iter(DataLoader(part, batch_size=max(n, 1), shuffle=False)))


def _groups(model, result) -> dict | None:
    """Routing against convolutions, for models that name both groups (CapsNet)."""
    routing = getattr(model, "routing_operations", None)
    convs = getattr(model, "convolution_operations", None)
    swept = {s.operation for s in result.sweeps}
    if not routing or not convs or not set(routing) | set(convs) <= swept:
        return None
    verdict = compare_groups(result, routing, convs)
    return {"first": list(routing), "second": list(convs), **verdict}


def render_redcane(record: dict) -> str:
    """Ranking with intervals, the chosen multipliers and the confirmation."""
    lines = [
        f"ReD-CaNe on {record['checkpoint']} ({record['model']}, {record['data']} "
        f"{record['split']}, {record['samples']} samples): baseline "
        f"{record['baseline_accuracy']:.2%}, budget {100 * record['budget']:.2f} points, "
        f"noise relative to the output's {record['relative_to']}",
        f"{'rank':>4}  {'operation':<18}{'tolerated NM':>13}{'mean drop (95% CI)':>28}",
    ]
    for r in record["ranking"]:
        ci = f"{100 * r['score']:.2f} [{100 * r['score_low']:.2f}, {100 * r['score_high']:.2f}]"
        lines.append(f"{r['rank']:>4}  {r['operation']:<18}{r['tolerated_magnitude']:>13g}{ci:>28}")
    groups = record.get("groups")
    if groups:
        answer = "yes" if groups["first_more_resilient"] else "no"
        lines.append(f"routing more resilient than convolutions: {answer}")
    for c in record.get("choices") or []:
        lines.append(
            f"  {c['operation']:<18}{c['multiplier'] or 'exact':<14}NM {c['noise_magnitude']:.4f}"
            f"  cost x{c['relative_cost']:.3f}"
        )
    conf, energy = record.get("confirmation") or {}, record.get("energy") or {}
    if conf:
        lines.append(
            f"confirmed with the tables: {conf['accuracy']:.2%} (drop "
            f"{100 * conf['drop']:.2f} points, {len(conf['rounds'])} round(s)); compute energy "
            f"saving {100 * energy.get('saving', 0):.2f}% ({energy.get('rule')})"
        )
    return "\n".join(lines)


@register_step
class RedcaneStep(CheckpointStep):
    """ReD-CaNe operation-wise resilience and multiplier choice (`axdnn redcane`)."""

    kind: Literal["redcane"] = "redcane"
    magnitudes: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: list(DEFAULT_MAGNITUDES), min_length=1
    )
    means: list[float] = Field(
        default_factory=lambda: [0.05, 0.2],
        description="Noise averages NA swept (at NM 0); they bound the bias a multiplier may add.",
    )
    relative_to: Literal["std", "max_abs"] = "std"
    budget: float = Field(1.0, ge=0, lt=100, description="Accuracy drop allowed, in points.")
    repeats: int = Field(2, ge=1)
    split: Literal["train", "val", "test"] = "test"
    limit: int | None = Field(500, ge=1, description="Samples of the split used.")
    calib_limit: int = Field(256, ge=1, description="Training samples that calibrate tables.")
    operations: dict[str, list[str]] | None = Field(
        None, description="Operation -> site patterns; default: the model's own map or layers."
    )
    candidates: list[str] | None = Field(None, description="Default: the 8-bit catalogue.")
    costs: dict[str, float] | None = Field(None, description="Multiplier spec -> cost.")
    exact: str = "exact@u8"
    confirm: bool = True

    def run(self, ctx: StepContext) -> dict:
        step = self.model_copy(update={"checkpoint": str(ctx.path(self.checkpoint))})
        return run_redcane(step, ctx.step_dir, seed=ctx.header.seed, progress=ctx.progress)
