"""Several workers on one study (PostgreSQL), and SIGKILL during `axdnn explore` then a rerun:
every trial stored once, none lost, the study continues where it stopped."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from axdnn.cli import main
from axdnn.search import storage_url

from .conftest import SPACE

COMPLETE = optuna.trial.TrialState.COMPLETE


def explore_command(checkpoint, space, out, *extra):
    code = "import sys; from axdnn.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "explore", "--checkpoint", str(checkpoint),
            "--space", str(space), "--out", str(out), "--subset", "60", "--strategy", "random",
            "--no-confirm", "-q", *extra]  # fmt: skip


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage_url(storage))


def completed_so_far(db) -> int:
    """Completed trials in a SQLite study file, read-only: polling with Optuna itself would race
    the worker creating the schema (both issue CREATE TABLE)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'"
            ).fetchone()
    except sqlite3.OperationalError:  # no file or no table yet
        return 0
    return count


def test_two_workers_on_postgres_store_every_trial_once(
    postgres_url, explore_checkpoint, space_file, study_name, tmp_path
):
    shared = ["--storage", postgres_url, "--study", study_name, "--trials", "10", "--json"]
    procs = [
        subprocess.Popen(explore_command(explore_checkpoint, space_file, tmp_path / f"w{i}",
                                         *shared, "--seed", "0"),
                         stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    ran = [json.loads(out)["ran_here"] for out in outs]
    trials = load(postgres_url, study_name).get_trials()
    assert all(t.state == COMPLETE for t in trials)  # none failed, none left running
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert 10 <= len(trials) <= 11 and sum(ran) == len(trials)  # each trial run by one worker
    assert all(r >= 1 for r in ran), ran  # both took part


def test_sigkill_then_rerun_continues_the_study(explore_checkpoint, space_file, tmp_path):
    out, db = tmp_path / "out", tmp_path / "out" / "explore.db"
    proc = subprocess.Popen(explore_command(explore_checkpoint, space_file, out, "--trials", "50"))
    try:
        deadline = time.monotonic() + 240
        done = 0
        while time.monotonic() < deadline and done < 2:
            time.sleep(0.5)
            done = completed_so_far(db) if db.exists() else 0
        assert done >= 2, "the explore process completed no trials in time"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: t.params for t in load(db, "explore-random").get_trials(states=(COMPLETE,))}
    target = len(before) + 2
    code = main(explore_command(explore_checkpoint, space_file, out, "--trials", str(target),
                                "--json")[3:])  # fmt: skip
    assert code == 0
    after = load(db, "explore-random").get_trials(states=(COMPLETE,))
    assert len(after) == target
    kept = {t.number: t.params for t in after if t.number in before}
    assert kept == before  # the trials before the kill are the study's first ones, unchanged
