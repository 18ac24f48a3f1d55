import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axdnn.errors import InjectionError
from axdnn.inject import CampaignConfig, CampaignStore, campaign_result, run_campaign, state_hash

sys.path.insert(0, str(Path(__file__).parent))
from inject_campaign_worker import make_config, make_model  # noqa: E402

WORKER = Path(__file__).parent / "inject_campaign_worker.py"


def _faults(store, name):
    return [
        (r["trial"], r["site"], r["sample"], r["element"], r["original"], r["corrupted"])
        for r in CampaignStore(store).trials(name)
    ]


def test_campaign_stores_planned_trials_and_leaves_model_intact(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    before = state_hash(trained_cnn)
    config = CampaignConfig(
        name="c", error_model="bitflip:float32,bit=30", trials=300, block_size=64
    )
    result = run_campaign(trained_cnn, x, y, config, tmp_path / "c.db")
    assert state_hash(trained_cnn) == before
    assert result.trials == 300 and result.status == "done" and result.blocks["done"] == 5
    assert result.golden_accuracy > 0.9
    # bit 30 (exponent MSB) flips of conv outputs are often critical
    assert 0.05 < result.critical_rate["estimate"] < 1
    assert (
        result.critical_rate["low"]
        <= result.critical_rate["estimate"]
        <= result.critical_rate["high"]
    )
    assert sum(s["trials"] for s in result.per_site) == 300
    rows = CampaignStore(tmp_path / "c.db").trials("c")
    assert [r["trial"] for r in rows] == list(range(300))
    assert all(r["original"] is not None and r["corrupted"] != r["original"] for r in rows)
    # running it again resumes nothing and changes nothing
    again = run_campaign(trained_cnn, x, y, config, tmp_path / "c.db")
    assert again.trials_run_here == 0 and again.trials == 300


def test_faults_do_not_depend_on_batching(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    a = CampaignConfig(
        name="a", error_model="random,low=-5,high=5", trials=200, block_size=50, batch_size=16
    )
    b = CampaignConfig(
        name="b", error_model="random,low=-5,high=5", trials=200, block_size=200, batch_size=64
    )
    run_campaign(trained_cnn, x, y, a, tmp_path / "a.db")
    run_campaign(trained_cnn, x, y, b, tmp_path / "b.db")
    assert _faults(tmp_path / "a.db", "a") == _faults(tmp_path / "b.db", "b")


def test_changed_config_under_the_same_name_is_an_error(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    run_campaign(
        trained_cnn,
        x,
        y,
        CampaignConfig(name="n", error_model="value:1", trials=32),
        tmp_path / "n.db",
    )
    with pytest.raises(InjectionError, match="different configuration"):
        run_campaign(
            trained_cnn,
            x,
            y,
            CampaignConfig(name="n", error_model="value:2", trials=32),
            tmp_path / "n.db",
        )


def test_adaptive_stopping_ends_early(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    config = CampaignConfig(
        name="ad",
        error_model="value:1000",
        trials=4096,
        block_size=128,
        adaptive=True,
        margin=0.05,
        min_trials=128,
    )
    result = run_campaign(trained_cnn, x, y, config, tmp_path / "ad.db")
    assert result.status == "stopped" and result.blocks["skipped"] > 0
    assert (
        result.trials < 4096 and result.critical_rate["high"] - result.critical_rate["low"] <= 0.1
    )


def test_weight_campaign(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    before = state_hash(trained_cnn)
    config = CampaignConfig(
        name="w",
        error_model="bitflip:float32,bit=30",
        sites=["features.0:weight"],
        trials=40,
        samples_per_trial=64,
        block_size=16,
    )
    result = run_campaign(trained_cnn, x, y, config, tmp_path / "w.db")
    assert state_hash(trained_cnn) == before
    assert result.trials == 40 and 0 < result.critical_rate["estimate"] <= 1
    assert result.accuracy_drop["estimate"] > 0


def _run_worker(store, trials, block, pause):
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(store), str(trials), str(block), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_campaign_resumes_without_losing_or_duplicating(tmp_path, digits):
    store, trials, block = tmp_path / "kill.db", 1280, 64
    proc = _run_worker(store, trials, block, 0.15)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                done = CampaignStore(store).block_counts("kill")["done"]
            except Exception:  # noqa: BLE001 - tables may not exist yet
                done = 0
            if done >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(CampaignStore(store).trials("kill"))
    assert 0 < stored < trials
    x, y = digits.test.tensors
    result = run_campaign(make_model(), x, y, make_config(trials, block), store)
    rows = CampaignStore(store).trials("kill")
    assert result.trials == trials and result.trials_run_here == trials - stored
    assert [r["trial"] for r in rows] == list(range(trials))
    # the resumed trials are the same faults an uninterrupted run draws
    reference = tmp_path / "ref.db"
    run_campaign(make_model(), x, y, make_config(trials, block), reference)
    assert _faults(store, "kill") == _faults(reference, "kill")


def test_two_processes_fill_one_campaign(tmp_path):
    store, trials, block = tmp_path / "two.db", 1280, 64
    CampaignStore(store)
    procs = [_run_worker(store, trials, block, 0.05) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["ran"] for o in outs) == trials
    assert all(o["ran"] > 0 for o in outs)
    assert [r["trial"] for r in CampaignStore(store).trials("kill")] == list(range(trials))
    assert campaign_result(store, "kill").trials == trials


@pytest.mark.skipif(
    not os.environ.get("AXDNN_TEST_POSTGRES_URL"),
    reason="set AXDNN_TEST_POSTGRES_URL to a reachable PostgreSQL database",
)
def test_postgres_store(trained_cnn, digits):
    url = os.environ["AXDNN_TEST_POSTGRES_URL"]
    x, y = digits.test.tensors
    name = f"pg-{os.getpid()}-{time.time_ns()}"
    config = CampaignConfig(name=name, error_model="value:100", trials=128, block_size=32)
    result = run_campaign(trained_cnn, x, y, config, url)
    assert result.trials == 128
    assert [r["trial"] for r in CampaignStore(url).trials(name)] == list(range(128))
