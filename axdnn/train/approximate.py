"""One entry point for approximate training runs: reduced-precision storage (`TrainPrecision`),
and data-parallel workers with gradient compression (`CompressionConfig`), as `ApproxTraining`;
`train_approximately` trains a model under it and returns what it measured."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from axdnn.errors import ConfigError
from axdnn.train.compression import CompressionConfig
from axdnn.train.distributed import ParallelJob, train_data_parallel
from axdnn.train.loop import TrainConfig, fit
from axdnn.train.memory import price_traffic
from axdnn.train.precision import PrecisionSession, TrainPrecision

MEMORY_LEVELS = ("dram", "sram")


@dataclass(frozen=True)
class ApproxTraining:
    """How a training run is approximated; the default is exact single-process training."""

    precision: TrainPrecision | None = None
    workers: int = 1
    compression: CompressionConfig | None = None
    memory: str = "dram"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.compression is not None and self.workers < 2:
            raise ConfigError(
                f"gradient compressor {self.compression.compressor!r} needs data-parallel "
                "training: give workers >= 2 (--workers 2)"
            )
        if self.memory not in MEMORY_LEVELS:
            raise ConfigError(
                f"memory level {self.memory!r} unknown; expected one of {MEMORY_LEVELS}"
            )

    @property
    def active(self) -> bool:
        return self.workers > 1 or (self.precision is not None and self.precision.active)

    def to_dict(self) -> dict:
        return {
            "precision": self.precision.to_dict() if self.precision else None,
            "workers": self.workers,
            "compression": self.compression.to_dict() if self.compression else None,
            "memory": self.memory,
        }


def _single(model: nn.Module, bundle, config: TrainConfig, approx: ApproxTraining, **run):
    session = PrecisionSession(model, approx.precision) if approx.precision else None
    history = fit(
        model, bundle.train, bundle.val, bundle.num_classes, config, run["device"], run["progress"],
        session=session,
    )  # fmt: skip
    extra = {}
    if session is not None:
        session.detach()
        energy = price_traffic(session.traffic, session.reference, memory=approx.memory)
        extra["memory_energy"] = energy.to_dict()
    return history.to_dict(), extra


def _parallel(model: nn.Module, job: ParallelJob, workers: int):
    records, states = train_data_parallel(job, workers)
    model.load_state_dict(states[0])
    record = records[0]
    extra = {
        "parallel": {
            "workers": record["workers"],
            "ranks_identical": record["ranks_identical"],
            "communication": record["communication"],
            "losses": record["losses"],
        }
    }
    if "memory_energy" in record:
        extra["memory_energy"] = record["memory_energy"]
    return record["history"], extra


def train_approximately(
    model: nn.Module,
    bundle,
    config: TrainConfig,
    approx: ApproxTraining,
    *,
    model_name: str,
    data: str,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[dict, dict]:
    """Train `model` (built from `model_name` on `data`, loaded as `bundle`) under `approx`;
    returns (history record, extra record keys: memory_energy, parallel)."""
    if approx.workers > 1:
        if torch.device(device).type != "cpu":
            raise ConfigError(
                f"data-parallel training here runs on CPU (gloo); got device {str(device)!r}: "
                "give --device cpu"
            )
        job = ParallelJob(
            model_name, data, config, [approx.compression or CompressionConfig()],
            approx.precision, memory=approx.memory, progress=progress,
        )  # fmt: skip
        history, extra = _parallel(model, job, approx.workers)
    else:
        history, extra = _single(model, bundle, config, approx, device=device, progress=progress)
    return history, {"approx_training": approx.to_dict(), **extra}
