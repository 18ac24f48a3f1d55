import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from axdnn.errors import InjectionError
from axdnn.inject import CampaignConfig, CampaignStore, campaign_result, run_campaign, state_hash
from axdnn.inject.store import BLOCK_STATES, database_url, shown_url

sys.path.insert(0, str(Path(__file__).parent))
from inject_campaign_worker import make_config, make_model  # noqa: E402

WORKER = Path(__file__).parent / "inject_campaign_worker.py"


def _faults(store, name):
    return [
        (r["trial"], r["site"], r["sample"], r["element"], r["original"], r["corrupted"])
        for r in CampaignStore(store).trials(name)
    ]


def test_campaign_stores_planned_trials_and_leaves_model_intact(
    store_url, campaign_name, trained_cnn, digits
):
    x, y = digits.test.tensors
    before = state_hash(trained_cnn)
    config = CampaignConfig(
        name=campaign_name, error_model="bitflip:float32,bit=30", trials=300, block_size=64
    )
    result = run_campaign(trained_cnn, x, y, config, store_url)
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
    rows = CampaignStore(store_url).trials(campaign_name)
    assert [r["trial"] for r in rows] == list(range(300))
    assert all(r["original"] is not None and r["corrupted"] != r["original"] for r in rows)
    # running it again resumes nothing and changes nothing
    again = run_campaign(trained_cnn, x, y, config, store_url)
    assert again.trials_run_here == 0 and again.trials == 300
    assert json.loads(json.dumps(again.to_dict())) == again.to_dict()


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


def test_changed_config_under_the_same_name_is_an_error(
    store_url, campaign_name, trained_cnn, digits
):
    x, y = digits.test.tensors
    run_campaign(
        trained_cnn,
        x,
        y,
        CampaignConfig(name=campaign_name, error_model="value:1", trials=32),
        store_url,
    )
    with pytest.raises(InjectionError, match="different configuration"):
        run_campaign(
            trained_cnn,
            x,
            y,
            CampaignConfig(name=campaign_name, error_model="value:2", trials=32),
            store_url,
        )


def test_adaptive_stopping_ends_early(store_url, campaign_name, trained_cnn, digits):
    x, y = digits.test.tensors
    config = CampaignConfig(
        name=campaign_name,
        error_model="value:1000",
        trials=4096,
        block_size=128,
        adaptive=True,
        margin=0.05,
        min_trials=128,
    )
    result = run_campaign(trained_cnn, x, y, config, store_url)
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


def _run_worker(store, trials, block, pause, name="kill"):
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(store), str(trials), str(block), str(pause), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_campaign_resumes_without_losing_or_duplicating(
    tmp_path, store_url, campaign_name, digits
):
    trials, block = 1280, 64
    store = CampaignStore(store_url)
    proc = _run_worker(store_url, trials, block, 0.15, campaign_name)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        counts = store.block_counts(campaign_name)
        if counts["done"] >= 3 and counts["claimed"] == 1:
            break  # killed while it holds a block, which the resumed run must take over
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(store.trials(campaign_name))
    counts = store.block_counts(campaign_name)
    assert 0 < stored < trials and stored == counts["done"] * block
    assert counts["claimed"] <= 1 and sum(counts.values()) == trials // block
    x, y = digits.test.tensors
    config = make_config(trials, block, campaign_name)
    result = run_campaign(make_model(), x, y, config, store_url)
    rows = store.trials(campaign_name)
    assert result.trials == trials and result.trials_run_here == trials - stored
    assert [r["trial"] for r in rows] == list(range(trials))
    assert result.status == "done" and result.blocks["done"] == trials // block
    # the resumed trials are the same faults an uninterrupted run draws
    reference = tmp_path / "ref.db"
    run_campaign(make_model(), x, y, config, reference)
    assert _faults(store_url, campaign_name) == _faults(reference, campaign_name)


def test_two_processes_fill_one_campaign(store_url, campaign_name):
    trials, block = 1280, 64
    CampaignStore(store_url)
    procs = [_run_worker(store_url, trials, block, 0.05, campaign_name) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=180)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["ran"] for o in outs) == trials
    assert all(o["ran"] > 0 for o in outs)
    stored = CampaignStore(store_url).trials(campaign_name)
    assert [r["trial"] for r in stored] == list(range(trials))
    assert campaign_result(store_url, campaign_name).trials == trials


def test_stores_opened_at_once_on_an_empty_postgres_database(postgres_url):
    """Workers starting together on a fresh database all get the tables (no catalog clash)."""
    from sqlalchemy import create_engine, text

    from axdnn.inject.store import database_url

    fresh = f"axdnn_fresh_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url(postgres_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {fresh}"))
    except Exception as err:  # noqa: BLE001 - a given server may forbid it
        admin.dispose()
        pytest.skip(f"cannot create a database on {shown_url(postgres_url)}: {err}")
    url = make_url(database_url(postgres_url)).set(database=fresh)
    url = url.render_as_string(hide_password=False)
    barrier, errors, stores = threading.Barrier(6), [], []

    def open_store():
        barrier.wait()
        try:
            stores.append(CampaignStore(url))
        except Exception as err:  # noqa: BLE001 - collected and asserted on below
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(stores) == 6
        assert stores[0].block_counts("none") == dict.fromkeys(BLOCK_STATES, 0)
    finally:
        for store in stores:
            store.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {fresh} WITH (FORCE)"))
        admin.dispose()


def test_postgres_urls_get_an_installed_driver():
    assert database_url("postgres://u@h:5/db").startswith(
        ("postgresql+psycopg://", "postgresql+psycopg2://")
    )
    assert database_url("postgresql://u@h/db").split("://")[1] == "u@h/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_postgres_is_a_clear_error_without_the_password():
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InjectionError, match="cannot use campaign store") as info:
        CampaignStore(f"postgresql://u:hunter2@127.0.0.1:{port}/db?connect_timeout=5")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
