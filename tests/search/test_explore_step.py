"""The `explore` experiment step: one typed config with the CLI, its record, report section, and
schema checks before any step runs."""

import json
import textwrap

import pytest

from axdnn.errors import ConfigError
from axdnn.experiment.runner import run_experiment
from axdnn.experiment.schema import load_experiment
from axdnn.report import build_report

STEP = """\
name: explore-step
model: digits_cnn
data: digits
checkpoint: {checkpoint}
steps:
  - kind: explore
    strategy: random
    trials: 3
    subset: 60
    space:
      groups:
        - layers: ["*"]
          multiplier: [exact@u8, exact@u4]
      constraints: {{max_drop: 0.05}}
"""


def test_explore_step_runs_records_and_reports(explore_checkpoint, tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text(STEP.format(checkpoint=explore_checkpoint))
    out = tmp_path / "run"
    run_experiment(file, out, progress=False, say=lambda _: None, report=False)
    record = json.loads((out / "steps" / "explore.json").read_text())["record"]
    assert record["command"] == "explore" and record["trials"] == 3
    assert (out / "steps" / "explore" / "explore.db").is_file()  # the study, for reruns
    assert all((out / "steps" / "explore" / "front").glob("trial-*.yaml"))
    page = build_report(out, out / "report.html").read_text()
    assert "exploration" in page and "accuracy against energy" in page


def test_explore_step_settings_are_checked_before_running(tmp_path):
    file = tmp_path / "exp.yaml"
    text = STEP.format(checkpoint="ck.pt").replace("strategy: random", "strategy: anneal")
    (tmp_path / "ck.pt").write_bytes(b"")
    file.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError, match="anneal"):
        load_experiment(file)
