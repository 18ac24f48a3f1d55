"""The runner behind `axdnn explore` and the `explore` experiment step: a design-space exploration
of a checkpoint stored as an Optuna study, its Pareto front saved as plan files, a front plot and
a JSON-ready record (also `explore.json` in the output folder), plus `render_explore` for humans.

`workers > 1` starts that many processes on one study (worker 0 is this process); a process
started elsewhere with the same `--storage URL --study NAME` joins it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from axdnn.errors import ConfigError, SearchError
from axdnn.experiment.common import load_checkpoint_and_data
from axdnn.experiment.schema import register_step
from axdnn.experiment.steps import CheckpointStep, StepContext
from axdnn.inject.store import shown_url
from axdnn.nn import Plan, multiplying_layers
from axdnn.report.html import new_figure
from axdnn.report.sections.explore import draw_front
from axdnn.runtime import seed_everything
from axdnn.search import Evaluator, Explorer, SearchSettings, Space, pareto_front


def _space(space: Path | Space | dict, source: str = "space") -> Space:
    if isinstance(space, Space):
        return space
    if isinstance(space, dict):
        return Space.from_dict(space, source)
    return Space.load(space)


def build_explorer(
    checkpoint: Path, space: Path | Space | dict, settings: SearchSettings, options: dict
) -> tuple[Explorer, dict]:
    """The explorer of one worker; `options`: data, seed, worker, storage (already resolved)."""
    seed = int(options.get("seed", 0))
    ck, model, bundle = load_checkpoint_and_data(Path(checkpoint), options.get("data"), seed)
    if "plan" in ck.extra:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is already approximate (fine-tuned under a plan); "
            "explore the float checkpoint it came from"
        )
    seed_everything(seed)
    model.eval()
    bound = _space(space).bind(list(multiplying_layers(model)))
    evaluator = Evaluator(
        model, bundle.train, bundle.val.tensors, bundle.input_shape,
        subset=settings.subset, seed=seed, memory=settings.memory,
    )  # fmt: skip
    explorer = Explorer(
        bound, evaluator, settings, options["storage"], seed, options.get("worker", 0)
    )
    meta = {"checkpoint": str(checkpoint), "model": ck.model_name, "data": bundle.spec}
    return explorer, meta


def run_worker(payload: dict) -> int:
    """A worker process: run trials on the shared study, write nothing else."""
    settings = SearchSettings(**payload["settings"])
    explorer, _ = build_explorer(Path(payload["checkpoint"]), payload["space"], settings, payload)
    return explorer.run(progress=False)


def _spawn(checkpoint: Path, space: Space, settings: SearchSettings, options: dict) -> list:
    """Start workers 1..N-1 as child processes (worker 0 runs here)."""
    code = "import json,sys; from axdnn.experiment.explore import run_worker; "
    code += "run_worker(json.loads(sys.argv[1]))"
    procs = []
    for worker in range(1, settings.workers):
        payload = {**options, "worker": worker, "checkpoint": str(checkpoint)}
        payload |= {"space": space.model_dump(mode="json"), "settings": settings.model_dump()}
        procs.append(subprocess.Popen([sys.executable, "-c", code, json.dumps(payload)]))
    return procs


def _wait(procs: list) -> None:
    failed = [p.args[0] for p in procs if p.wait() != 0]
    if failed:
        raise SearchError(f"{len(failed)} explore worker process(es) failed; see their output")


def run_explore(
    checkpoint: Path,
    space: Path | Space | dict,
    out_dir: Path,
    settings: SearchSettings,
    *,
    data: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Explore, then write the front's plans, `front.png` and `explore.json` to out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = settings.storage or str(out_dir / "explore.db")
    options = {"data": data, "seed": seed, "storage": storage}
    space = _space(space)
    if settings.workers > 1 and settings.strategy == "greedy":
        raise SearchError("the greedy strategy is one sequential walk: run it with --workers 1")
    explorer, meta = build_explorer(checkpoint, space, settings, {**options, "worker": 0})
    procs = _spawn(checkpoint, space, settings, options) if settings.workers > 1 else []
    try:
        ran = explorer.run(progress)
    finally:
        _wait(procs)
    record = front_record(explorer, out_dir)
    record.update(meta, ran_here=ran, storage=shown_url(str(storage)))
    record["plots"] = {"front": str(plot_front(record, out_dir / "front.png"))}
    (out_dir / "explore.json").write_text(json.dumps(record, indent=2))
    return record


def front_record(explorer: Explorer, out_dir: Path) -> dict:
    """The study's trials and Pareto front (confirmed on the whole val split), plans saved."""
    s = explorer.settings
    records = explorer.records()
    front = pareto_front(records, s.objectives)
    if s.confirm:
        explorer.confirm(front)
    limit = explorer.bound.space.constraints.max_drop
    folder = out_dir / "front"
    folder.mkdir(parents=True, exist_ok=True)
    points = [_point(explorer, r, folder) for r in front]
    ok = [p for p in points if limit is None or p["val_drop"] <= limit]
    return {
        "command": "explore",
        "study": s.study_name,
        "strategy": s.strategy,
        "objectives": s.objectives,
        "trials": len(records),
        "subset": explorer.evaluator.subset,
        "float_accuracy": explorer.evaluator.float_accuracy,
        "float_accuracy_full": explorer.evaluator.float_accuracy_full,
        "reference": explorer.bound.space.reference,
        "reference_energy_pj": explorer.reference_energy,
        "max_drop": limit,
        "front": points,
        "chosen": min(ok, key=lambda p: p["energy_pj"]) if ok else None,
        "all_trials": [
            {
                "number": r.number,
                "accuracy": r.measure["accuracy"],
                "energy_pj": r.measure["energy_pj"],
                "feasible": r.feasible,
            }
            for r in records
        ],  # fmt: skip
    }


def _point(explorer: Explorer, record: Any, folder: Path) -> dict:
    measure, confirmed = record.measure, record.confirmed
    val_drop = confirmed["drop"] if confirmed else record.drop
    path = folder / f"trial-{record.number:04d}.yaml"
    text = (
        f"axdnn explore: study {explorer.settings.study_name}, trial {record.number}; "
        f"val top-1 {confirmed['accuracy'] if confirmed else measure['accuracy']:.4f}, "
        f"energy {measure['energy_pj']:.1f} pJ ({record.energy_ratio:.3f} x reference)"
    )
    plan = Plan.from_dict(record.plan)
    Plan(layers=plan.layers, description=text).save(path)
    return {
        "number": record.number,
        "plan_file": str(path),
        "search_accuracy": measure["accuracy"],
        "val_accuracy": confirmed["accuracy"] if confirmed else None,
        "val_drop": val_drop,
        "energy_pj": measure["energy_pj"],
        "energy_ratio": record.energy_ratio,
        "energy_saving": 1.0 - record.energy_ratio,
        "macs": measure["macs"],
        "weight_bits": measure["weight_bits"],
        "choices": {k.rsplit(":", 1)[0]: v for k, v in record.params.items()},
    }


def plot_front(record: dict, path: Path) -> Path:
    """PNG of accuracy against energy: every trial, the front highlighted."""
    fig = new_figure(6.4, 4.0)
    draw_front(fig.add_subplot(1, 1, 1), record)
    fig.savefig(path, format="png", dpi=100)
    return path


def render_explore(record: dict) -> str:
    lines = [
        f"{record['model']} on {record['data']}: study {record['study']} ({record['strategy']}), "
        f"{record['trials']} trials ({record['ran_here']} run here), storage {record['storage']}",
        f"float val top-1 {record['float_accuracy_full']:.2%}; reference {record['reference']} "
        f"{record['reference_energy_pj']:.1f} pJ/sample",
        f"{'trial':>5}  {'val top-1':>9}  {'drop':>6}  {'energy':>8}  saving  plan",
    ]
    for p in record["front"]:
        acc = p["val_accuracy"] if p["val_accuracy"] is not None else p["search_accuracy"]
        lines.append(
            f"{p['number']:>5}  {acc:>9.2%}  {p['val_drop'] * 100:>5.2f}  {p['energy_pj']:>8.1f}  "
            f"{p['energy_saving']:>6.1%}  {p['plan_file']}"
        )
    chosen = record.get("chosen")
    if chosen:
        lines.append(f"chosen (lowest energy within the drop limit): trial {chosen['number']}")
        lines += [f"  {layer:<24} {label}" for layer, label in chosen["choices"].items()]
    else:
        lines.append("no front point meets the drop limit on the whole validation split")
    lines.append(f"front plot: {record['plots']['front']}")
    return "\n".join(lines)


@register_step
class ExploreStep(CheckpointStep, SearchSettings):
    """Design-space exploration of per-layer approximation choices (`axdnn explore`)."""

    kind: Literal["explore"] = "explore"
    space: str | dict = Field(description="Space file (YAML) or an inline space mapping.")
    PATHS = ("checkpoint",)

    def run(self, ctx: StepContext) -> dict:
        settings = SearchSettings(**self.model_dump(include=set(SearchSettings.model_fields)))
        space = self.space if isinstance(self.space, dict) else ctx.path(self.space)
        if settings.storage is None:
            settings = settings.model_copy(update={"storage": str(ctx.step_dir / "explore.db")})
        return run_explore(
            ctx.path(self.checkpoint), space, ctx.step_dir, settings,
            data=self.data, seed=ctx.header.seed, progress=ctx.progress,
        )  # fmt: skip
