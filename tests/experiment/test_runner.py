"""`run_experiment`: records per step, caching by inputs, reruns after edits, and a campaign step
that resumes after the run is killed (SIGKILL) with the same final records."""

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from axdnn.experiment.commands import run_train
from axdnn.experiment.runner import run_experiment, step_records
from axdnn.train import TrainConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("runner") / "digits.pt"
    run_train(
        "digits_cnn", "digits", path, TrainConfig(epochs=2, seed=0), device="cpu", progress=False
    )
    return path


def experiment(tmp_path, checkpoint, steps: str, name="exp.yaml"):
    path = tmp_path / name
    head = f"name: runner-test\ncheckpoint: {checkpoint}\ndevice: cpu\nsteps:\n"
    path.write_text(head + textwrap.dedent(steps))
    return path


STEPS = """\
- kind: evaluate
  multipliers: [drum:4@u8]
- kind: cost
- kind: significance
  limit: 32
  fractions: [0.25]
"""


def ran(result):
    return {s["name"]: s["ran"] for s in result["steps"]}


def run(file, out):
    return run_experiment(file, out, progress=False, say=lambda _: None, report=False)


def test_records_cache_and_rerun_only_what_changed(tmp_path, checkpoint):
    file = experiment(tmp_path, checkpoint, STEPS)
    out = tmp_path / "run"
    first = run(file, out)
    assert ran(first) == {"evaluate": True, "cost": True, "significance": True}
    records = step_records(out)
    assert [r["label"] for r in records["evaluate"]["runs"]] == ["float", "drum:4@u8"]
    float_run, drum = records["evaluate"]["runs"]
    assert drum["float_top1"] == float_run["top1"]
    assert drum["energy"]["priced_as_exact"] == ["drum:4@u8"]  # no published power
    assert drum["energy"]["total_pj"] < float_run["energy"]["total_pj"]  # 8-bit vs fp32
    meta = json.loads((out / "experiment.json").read_text())
    assert meta["finished"] and [s["kind"] for s in meta["steps"]] == [
        "evaluate",
        "cost",
        "significance",
    ]
    assert ran(run(file, out)) == {"evaluate": False, "cost": False, "significance": False}
    file.write_text(file.read_text().replace("drum:4@u8", "mitchell@u8"))
    assert ran(run(file, out)) == {"evaluate": True, "cost": False, "significance": False}
    assert not list(out.rglob(".*.tmp"))


def test_a_changed_upstream_reruns_its_dependants(tmp_path, checkpoint):
    file = experiment(
        tmp_path,
        checkpoint,
        """\
    - kind: train
      model: digits_cnn
      data: digits
      epochs: 1
    - kind: evaluate
      checkpoint: ${train.checkpoint}
    - kind: cost
    """,
    )
    out = tmp_path / "run"
    run(file, out)
    file.write_text(file.read_text().replace("epochs: 1", "epochs: 2"))
    assert ran(run(file, out)) == {"train": True, "evaluate": True, "cost": True}
    (out / "steps" / "train" / "model.pt").unlink()  # an output gone: the step runs again
    assert ran(run(file, out))["train"] is True


CAMPAIGN = """\
- kind: evaluate
- kind: resilience
  magnitudes: [1]
  repeats: 1
  limit: 64
  campaign: bitflip:float32
  trials: 6000
"""


def _trials_stored(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
            return con.execute("select count(*) from axdnn_trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _cli(file, out):
    code = "import sys; from axdnn.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "run", str(file), "--out", str(out), "-q", "--json"]


def _comparable(record):
    campaign = dict(record["campaign"])
    for key in ("store", "seconds", "trials_run_here", "status"):
        campaign.pop(key)
    return record["sensitivity"], campaign


def test_sigkill_during_a_campaign_then_rerun_resumes(tmp_path, checkpoint):
    file = experiment(tmp_path, checkpoint, CAMPAIGN)
    out = tmp_path / "killed"
    db = out / "steps" / "resilience" / "campaign.db"
    proc = subprocess.Popen(_cli(file, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _trials_stored(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _trials_stored(db)
    assert 0 < stored < 6000, "the kill should land inside the campaign"
    assert (out / "steps" / "evaluate.json").is_file()
    assert not (out / "steps" / "resilience.json").exists()  # never half-written

    rerun = subprocess.run(_cli(file, out), capture_output=True, text=True, check=True)
    assert ran(json.loads(rerun.stdout)) == {"evaluate": False, "resilience": True}
    resumed = step_records(out)["resilience"]
    assert resumed["campaign"]["trials"] == 6000
    assert resumed["campaign"]["trials_run_here"] <= 6000 - stored

    clean = tmp_path / "clean"
    run(file, clean)
    assert _comparable(resumed) == _comparable(step_records(clean)["resilience"])
