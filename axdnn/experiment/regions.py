"""The runners behind `axdnn regions list|search|evaluate` and the `regions` experiment step:
plain arguments in, JSON-ready records out, plus `render_*` for humans."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from axdnn.experiment.schema import StepConfig, register_step
from axdnn.regions import get_region, list_regions
from axdnn.regions.mlp import Pairs, TrainSettings, load_network, measure_speedup, network_cost
from axdnn.regions.search import (
    SearchSettings,
    SearchSpace,
    search_region,
    settings_study_name,
)


def run_regions_list() -> dict:
    """Every registered region: dimensions, metric, default bound, baseline topology."""
    return {"regions": [get_region(name).to_dict() for name in list_regions()]}


def render_regions_list(record: dict) -> str:
    lines = [f"{'region':<14}{'in->out':<9}{'metric':<22}{'bound':>7}  baseline (MICRO 2012)"]
    for r in record["regions"]:
        dims = f"{r['in_dim']}->{r['out_dim']}"
        lines.append(
            f"{r['name']:<14}{dims:<9}{r['metric']:<22}{r['bound']:>7g}  {r['baseline'] or '-'}"
        )
    return "\n".join(lines)


def run_regions_search(
    region: str,
    out_dir: Path,
    settings: SearchSettings,
    storage: str | None = None,
    *,
    study: str | None = None,
    baseline: bool = True,
    progress: bool = True,
) -> dict:
    """Search one region (see `axdnn.regions.search`); the chosen network goes to
    out_dir/<region>.pt and trials to `storage` (default out_dir/regions.db)."""
    out_dir = Path(out_dir)
    result = search_region(
        region,
        settings,
        storage=storage,
        study_name=study,
        out_dir=out_dir,
        baseline=baseline,
        progress=progress,
    )
    return {"command": "regions search", **result.to_dict()}


def _cand_line(label: str, c: dict, bound: float) -> str:
    ok = "meets" if c.get("test_meets_bound") else "MISSES"
    return (
        f"{label:<9}{c['text']:<44} error {c['error']:.4f} (test {c['test_error']:.4f}, "
        f"{ok} {bound:g})  MACs {c['macs']}  energy {c['energy_pj']:.1f} pJ  "
        f"speed-up vs numpy {c['speedup_vs_region']:.2f}x"
    )


def render_regions_step(record: dict) -> str:
    """Every searched region of a `regions` step or `axdnn regions search`, then the summary."""
    blocks = [render_regions_search(r) for r in record["regions"]]
    s = record["summary"]
    if s.get("wins") is not None:
        blocks.append(f"wins over the baseline: {s['wins']}/{s['regions']}")
    return "\n\n".join(blocks)


def render_regions_search(record: dict) -> str:
    r = record["region"]
    lines = [
        f"region {r['name']} ({r['metric']}, bound {record['bound']:g}): "
        f"{len(record['trials'])} trials in {record['storage']} (study {record['study']})"
    ]
    lines.append(_cand_line("chosen", record["chosen"], record["bound"]))
    if record.get("baseline"):
        lines.append(_cand_line("baseline", record["baseline"], record["bound"]))
        cmp = record["comparison"]
        speed = f"{cmp['speedup']:.2f}x" if cmp["speedup"] else "-"
        lines.append(
            f"vs baseline: energy reduction {cmp['energy_reduction']:.2f}x, "
            f"speed-up {speed}, win: {'yes' if cmp['win'] else 'no'}"
        )
    by_trial = {t["trial"]: t for t in record["trials"]}
    front = ", ".join(
        f"#{n} {by_trial[n]['error']:.3f}/{by_trial[n]['energy_pj']:.0f}pJ"
        for n in record["pareto"]
    )
    lines.append(f"Pareto front (error/energy): {front}")
    if record.get("checkpoint"):
        lines.append(f"checkpoint: {record['checkpoint']}")
    return "\n".join(lines)


def run_regions_evaluate(
    checkpoint: Path, region: str | None = None, samples: int = 4096, seed: int = 0
) -> dict:
    """A saved region network on fresh samples: error against the region's bound, MACs, energy
    and measured speed-up against the numpy region on the same batch."""
    network = load_network(Path(checkpoint), region)
    bound = float(network.info.get("bound", network.region.bound))
    pairs = Pairs.sample(network.region, samples, seed, 7)
    error = network.error(pairs)
    return {
        "command": "regions evaluate",
        "checkpoint": str(checkpoint),
        "region": network.region.name,
        "metric": network.region.metric_name,
        "topology": network.topology.text(network.region),
        "samples": len(pairs.x),
        "error": error,
        "bound": bound,
        "meets_bound": error <= bound,
        **network_cost(network),
        "timing": measure_speedup(network, pairs.x),
    }


def render_regions_evaluate(record: dict) -> str:
    t = record["timing"]
    ok = "meets" if record["meets_bound"] else "MISSES"
    return (
        f"{record['region']}: {record['topology']}\n"
        f"{record['metric']} {record['error']:.4f} on {record['samples']} fresh samples "
        f"({ok} bound {record['bound']:g})\n"
        f"MACs {record['macs']}, energy {record['energy_pj']:.1f} pJ per inference\n"
        f"batch of {t['batch']}: numpy {1e3 * t['region_s']:.2f} ms, network "
        f"{1e3 * t['network_s']:.2f} ms, speed-up {t['speedup']:.2f}x"
    )


@register_step
class RegionsStep(StepConfig):
    """Neural approximation of code regions: per region an architecture search under its quality
    bound against the fixed MICRO 2012 topology (`axdnn regions search`). Trials are stored in
    the step's regions.db under a study named by the settings: more trials resume it."""

    kind: Literal["regions"] = "regions"
    regions: list[str] = Field(default_factory=lambda: ["sobel"], min_length=1)
    trials: int = Field(20, ge=1)
    samples: int = Field(4096, ge=16, description="Training pairs per candidate.")
    held_out: int = Field(2048, ge=16, description="Pairs that score candidates.")
    test: int = Field(4096, ge=16, description="Pairs for the chosen network's final figures.")
    epochs: int = Field(40, ge=1)
    bound: float | None = Field(None, gt=0, description="Default: each region's own.")
    cost: Literal["energy", "macs"] = "energy"
    latency: bool = Field(False, description="Measured latency as a third objective.")
    widths: list[int] = Field(default_factory=lambda: [2, 4, 8, 16, 32], min_length=1)
    depths: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=1)
    weight_formats: list[str] = Field(
        default_factory=lambda: ["fp32", "fp16", "fxp:s4.8", "fxp:s4.4"]
    )
    act_formats: list[str] = Field(default_factory=lambda: ["fp32", "fp16", "fxp:s4.8"])
    baseline: bool = True
    storage: str | None = Field(None, description="Optuna storage; default: the step's regions.db.")
    study: str | None = Field(
        None, description="Study name (NAME-<region> when several); default: from the settings."
    )

    @field_validator("regions")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from axdnn.errors import AxError

        for name in names:
            try:
                get_region(name)
            except AxError as exc:
                raise ValueError(str(exc)) from None
        return names

    def settings(self, seed: int) -> SearchSettings:
        space = SearchSpace(
            depths=tuple(self.depths),
            widths=tuple(self.widths),
            weight_formats=tuple(self.weight_formats),
            act_formats=tuple(self.act_formats),
        )
        return SearchSettings(
            trials=self.trials,
            samples=self.samples,
            held_out=self.held_out,
            test=self.test,
            bound=self.bound,
            cost=self.cost,
            latency=self.latency,
            seed=seed,
            train=TrainSettings(epochs=self.epochs),
            space=space,
        )

    def run(self, ctx) -> dict:
        settings = self.settings(ctx.header.seed)
        records = [
            run_regions_search(
                name,
                ctx.step_dir,
                settings,
                self.storage or str(ctx.step_dir / "regions.db"),
                study=self._study(name, settings),
                baseline=self.baseline,
                progress=ctx.progress,
            )
            for name in self.regions
        ]
        return {"regions": records, "summary": summarise(records)}

    def _study(self, name: str, settings: SearchSettings) -> str:
        if self.study is None:
            return settings_study_name(get_region(name), settings)
        return self.study if len(self.regions) == 1 else f"{self.study}-{name}"


def summarise(records: list[dict]) -> dict:
    """Wins over the baseline, geometric-mean energy reduction and speed-up."""
    cmps = [r["comparison"] for r in records if r.get("comparison")]
    if not cmps:
        return {"regions": len(records), "wins": None}

    def gmean(values):
        values = [v for v in values if v]
        return float(np.exp(np.mean(np.log(values)))) if values else None

    return {
        "regions": len(records),
        "wins": sum(bool(c["win"]) for c in cmps),
        "mean_energy_reduction": gmean([c["energy_reduction"] for c in cmps]),
        "mean_speedup": gmean([c["speedup"] for c in cmps]),
    }
