"""A small but real run folder for the report tests: an experiment with every step kind, run on
the embedded digits data by `axdnn run`'s runner, built once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axdnn.experiment.runner import run_experiment

EVAL_MULTIPLIERS = ("trunc:6", "drum:3")
SEED = 0


def write_step_record(run_dir: Path, name: str, kind: str, config: dict, record: dict, seconds=0.0):
    """Write steps/<name>.json as the runner does (plain JSON)."""
    stored = {
        "name": name,
        "kind": kind,
        "config": config,
        "inputs_hash": f"hash-{name}",
        "seconds": seconds,
        "record": record,
    }
    path = run_dir / "steps" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2, default=str))


EXPERIMENT = f"""\
name: "digits <study> & co"
model: digits_cnn
data: digits
seed: {SEED}
device: cpu
steps:
  - kind: train
    epochs: 2
    lr: 0.01
  - kind: evaluate
    multipliers: [{", ".join(EVAL_MULTIPLIERS)}]
  - kind: cost
  - kind: multipliers
    specs: [drum:3]
  - kind: finetune
    multiplier: drum:3
    epochs: 1
  - kind: resilience
    magnitudes: [0.5, 2.0]
    repeats: 1
    limit: 64
    campaign: value:100
    trials: 32
  - kind: significance
    fractions: [0.25, 0.5]
    limit: 64
  - kind: formats
    formats: ["fxp:s2.2", "fpec:s2.2,c=1"]
  - kind: selection
    candidates: [drum:4@u8, trunc:6@u8]
    repeats: 1
    limit: 64
    calibration: 128
  - kind: prune
    ratio: 0.5
  - kind: share
    budget: 0.02
    k_max: 16
    trials: 6
    population: 4
  - kind: explore
    strategy: random
    trials: 2
    subset: 40
    space:
      groups:
        - layers: ["*"]
          multiplier: [exact@u8, exact@u4]
      constraints:
        max_drop: 0.5
  - kind: dynamic
    configs: [exit]
    train_limit: 300
    calib_limit: 100
    test_limit: 100
    exit_epochs: 2
    timing_batches: [1, 32]
    timing_samples: 8
    repeats: 1
  - kind: regions
    regions: [sobel]
    trials: 3
    samples: 256
    held_out: 128
    test: 256
    epochs: 3
    depths: [0, 1]
    widths: [4, 8]
  - kind: redcane
    magnitudes: [0.5]
    means: []
    repeats: 1
    limit: 40
    calib_limit: 32
    candidates: [drum:4@u8]
"""


def build_run_folder(run_dir: Path) -> Path:
    """Run the small experiment above (every step kind once, on digits) with `axdnn run`'s
    runner, without its report; returns run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    file = run_dir / "exp.yaml"
    file.write_text(EXPERIMENT)
    run_experiment(file, run_dir, progress=False, say=lambda _line: None, report=False)
    return run_dir


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """The real run folder (built once per session; tests copy it before changing it)."""
    return build_run_folder(tmp_path_factory.mktemp("report_run") / "run")


@pytest.fixture
def write_step():
    """`write_step(run_dir, name, kind, config, record)`: add a step record to a run folder."""
    return write_step_record
