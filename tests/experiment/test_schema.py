"""Experiment files: schema validation with file:line:key errors, references, JSON Schema."""

import textwrap

import pytest

from axdnn.errors import ConfigError
from axdnn.experiment.schema import STEP_KINDS, experiment_schema, load_experiment

GOOD = """\
name: study
model: digits_cnn
data: digits
steps:
  - kind: train
    epochs: 1
  - kind: evaluate
    checkpoint: ${train.checkpoint}
    multipliers: [drum:4@u8]
  - kind: finetune
    name: tune
    multiplier: trunc:8@u8
    epochs: 1
  - kind: evaluate
    name: tuned
    checkpoint: ${tune.checkpoint}
"""


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, text))
    return str(err.value)


def test_a_good_file_loads(tmp_path):
    experiment = load_experiment(write(tmp_path, GOOD))
    assert [s.step_name for s in experiment.steps] == ["train", "evaluate", "tune", "tuned"]
    assert experiment.steps[0].epochs == 1 and experiment.steps[1].multipliers == ["drum:4@u8"]


def test_unknown_key_names_line_key_and_accepted_keys(tmp_path):
    message = error_of(tmp_path, GOOD.replace("    epochs: 1\n", "    epoch: 1\n", 1))
    assert "exp.yaml:6:" in message and "steps.0.train.epoch" in message
    assert "accepted keys here:" in message and "epochs" in message


def test_wrong_type_names_line_key_and_value(tmp_path):
    message = error_of(tmp_path, GOOD.replace("    epochs: 1\n", "    epochs: many\n", 1))
    assert "exp.yaml:6:" in message and "epochs" in message and "'many'" in message
    assert "integer" in message


def test_unknown_kind_lists_the_kinds(tmp_path):
    message = error_of(tmp_path, GOOD.replace("kind: train", "kind: trian"))
    assert "exp.yaml:5:" in message and "'trian'" in message
    assert all(kind in message for kind in STEP_KINDS)


def test_missing_file_names_line_key_and_folder(tmp_path):
    text = GOOD.replace("    checkpoint: ${train.checkpoint}\n", "    checkpoint: gone.pt\n")
    message = error_of(tmp_path, text)
    assert "exp.yaml:8:" in message and "steps.1.checkpoint" in message
    assert "'gone.pt' does not exist" in message and str(tmp_path) in message


def test_dangling_reference_names_line_key_and_earlier_steps(tmp_path):
    message = error_of(tmp_path, GOOD.replace("${tune.checkpoint}", "${tuning.checkpoint}"))
    assert "exp.yaml:16:" in message and "steps.3.checkpoint" in message
    assert "names no earlier step" in message and "train, evaluate, tune" in message


def test_reference_to_a_later_step_or_missing_output(tmp_path):
    later = GOOD.replace("${train.checkpoint}", "${tune.checkpoint}")
    assert "names no earlier step" in error_of(tmp_path, later)
    output = GOOD.replace("${train.checkpoint}", "${train.weights}")
    assert "has no output 'weights'; it offers: checkpoint" in error_of(tmp_path, output)


def test_bad_specs_fail_before_anything_runs(tmp_path):
    message = error_of(tmp_path, GOOD.replace("drum:4@u8", "drum:99@u8"))
    assert "exp.yaml:9:" in message and "multiplier spec" in message
    message = error_of(tmp_path, GOOD + "  - kind: resilience\n    campaign: 'bitflip:1'\n")
    assert "exp.yaml:18:" in message and "bit format" in message


def test_duplicate_step_names_and_bad_yaml(tmp_path):
    assert "used twice" in error_of(tmp_path, GOOD.replace("name: tuned", "name: tune"))
    assert "not valid YAML" in error_of(tmp_path, "name: [unclosed\n")
    assert "is a mapping" in error_of(tmp_path, "- just a list\n")


def test_json_schema_lists_every_step_kind():
    schema = experiment_schema()
    assert set(schema["properties"]) >= {"name", "model", "data", "steps"}
    text = str(schema)
    assert all(f"'{kind}'" in text for kind in STEP_KINDS)
