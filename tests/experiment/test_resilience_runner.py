import json

import pytest
import torch

from axdnn.experiment.resilience import (
    render_resilience,
    render_significance,
    run_resilience,
    run_significance,
)
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("digits_cnn", 1, 10, width=4)
    path = tmp_path_factory.mktemp("ckpt") / "d.pt"
    save_checkpoint(
        path,
        Checkpoint(
            "digits_cnn",
            {"in_channels": 1, "num_classes": 10, "width": 4},
            model.state_dict(),
            "digits",
            (1, 8, 8),
        ),
    )
    return path


def test_run_resilience_writes_json_and_png(tmp_path, checkpoint):
    record = run_resilience(
        checkpoint,
        None,
        tmp_path,
        sites=["features.0", "fc"],
        magnitudes=(0.5, 2.0),
        repeats=1,
        limit=60,
        campaign_model="value:100",
        trials=64,
        device="cpu",
    )
    saved = json.loads((tmp_path / "resilience.json").read_text())
    assert saved["sensitivity"]["ranking"] == record["sensitivity"]["ranking"]
    assert record["campaign"]["trials"] == 64
    assert (tmp_path / "sensitivity.png").stat().st_size > 1000
    text = render_resilience(record)
    assert "features.0" in text and "critical rate" in text


def test_run_significance_writes_json_and_png(tmp_path, checkpoint):
    record = run_significance(
        checkpoint, None, tmp_path, layers=["features.0"], fractions=(0.25,), limit=60, device="cpu"
    )
    assert len(record["filters"]) == 4 and record["pruning"][0]["pruned_filters"] == 1
    assert json.loads((tmp_path / "significance.json").read_text())["threshold"] == 0.01
    assert (tmp_path / "significance.png").stat().st_size > 1000
    assert "significant" in render_significance(record)
