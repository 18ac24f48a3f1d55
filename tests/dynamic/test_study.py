"""The study behind `axdnn dynamic`, its experiment step and its report section."""

import json

import pytest

from axdnn.dynamic.study import StudySettings, best_config, run_study
from axdnn.errors import DynamicError

SMALL = dict(
    train_limit=300,
    calib_limit=80,
    test_limit=80,
    exit_epochs=3,
    timing_batches=(1, 32),
    timing_samples=8,
    repeats=1,
)


@pytest.fixture(scope="module")
def record(trained_cnn, digits):
    return run_study(
        trained_cnn,
        digits,
        StudySettings(budget=1.0, configs=("spet-exact", "exit", "sdss"), **SMALL),
    )


def test_study_record_is_plain_data_with_every_config(record):
    rec = json.loads(json.dumps(record))
    names = [c["name"] for c in rec["configs"]]
    assert names == ["spet-exact", "exit", "sdss"]
    exact = rec["configs"][0]
    assert exact["changed_predictions"] == 0 and exact["drop_points"] == 0
    for c in rec["configs"]:
        assert [t["batch_size"] for t in c["timing"]] == [1, 32]
        assert all(t["speedup"] > 0 for t in c["timing"])
        assert c["effort"]["dense_macs"] == rec["dense_macs_per_input"] * rec["samples"]["test"]
    assert rec["samples"] == {"train": 300, "calibration": 80, "test": 80}


def test_best_config_respects_the_budget():
    configs = [
        {"name": "a", "drop_points": 2.0, "effort": {"ops_ratio": 9.0}, "timing": []},
        {
            "name": "b",
            "drop_points": 0.1,
            "effort": {"ops_ratio": 3.0},
            "timing": [{"speedup": 1.2}, {"speedup": 1.7}],
        },
    ]
    assert best_config(configs, 0.5) == {
        "name": "b",
        "ops_ratio": 3.0,
        "speedup": 1.7,
        "drop_points": 0.1,
    }
    assert best_config(configs[:1], 0.5) is None


def test_settings_are_checked():
    with pytest.raises(DynamicError, match="turbo"):
        StudySettings(configs=("turbo",))
    with pytest.raises(DynamicError, match="budget"):
        StudySettings(budget=-1)


def test_report_section_renders_the_record(record):
    from axdnn.report.html import ReportContext, renderer_for

    section = renderer_for("dynamic")(
        {"name": "dyn", "record": record}, ReportContext(run_dir=".", experiment={})
    )
    assert "per-layer skip rate" in section.html and "spet-exact" in section.html
    assert "features.3" in section.html
