"""Every shipped experiment file (examples/ and the demo) validates against the schema."""

from pathlib import Path

import pytest

from axdnn.experiment.demo import DEMO_FILE
from axdnn.experiment.schema import load_experiment

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
EXPERIMENTS = [p for p in EXAMPLES if "steps:" in p.read_text()] + [DEMO_FILE]


def test_there_are_examples():
    assert len(EXPERIMENTS) >= 4


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_example_validates(path):
    experiment = load_experiment(path)
    assert experiment.steps and experiment.name
