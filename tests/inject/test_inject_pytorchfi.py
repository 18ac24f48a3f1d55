"""Agreement with PyTorchFI (test-only dependency: pip install pytorchfi==0.6.0, which needs no
torchvision): same sites (conv outputs, layer chosen uniformly, element uniformly within it), same
value-replacement fault, one fault per sample; the critical-fault (top-1 change) rates agree
within their confidence intervals."""

import logging
import math
import random

import pytest
import torch

from axdnn.inject import CampaignConfig, golden_predictions, run_campaign, wilson_interval

pytorchfi = pytest.importorskip("pytorchfi")
from pytorchfi import core  # noqa: E402
from pytorchfi.neuron_error_models import random_neuron_inj_batched  # noqa: E402

VALUE = 40.0
BATCH = 32


def _pytorchfi_rate(model, x, batches):
    logging.disable(logging.CRITICAL)
    random.seed(0)
    fi = core.fault_injection(
        model, BATCH, input_shape=list(x.shape[1:]), layer_types=[torch.nn.Conv2d]
    )
    golden = golden_predictions(model, x)
    critical = trials = 0
    with torch.no_grad():
        for b in range(batches):
            idx = torch.arange(b * BATCH, (b + 1) * BATCH) % len(x)
            corrupted = random_neuron_inj_batched(fi, min_val=VALUE, max_val=VALUE)
            pred = corrupted(x[idx]).argmax(1)
            critical += int((pred != golden[idx]).sum())
            trials += BATCH
    logging.disable(logging.NOTSET)
    return critical, trials


def test_value_replacement_agrees_with_pytorchfi(tmp_path, trained_cnn, digits):
    x, y = digits.test.tensors
    sites = ["features.0", "features.3", "features.7"]
    k_fi, n_fi = _pytorchfi_rate(trained_cnn, x, 40)
    config = CampaignConfig(
        name="pfi",
        error_model=f"value:{VALUE}",
        sites=sites,
        trials=n_fi,
        site_weighting="uniform",
        block_size=640,
    )
    result = run_campaign(trained_cnn, x, y, config, tmp_path / "pfi.db")
    k_ax, n_ax = sum(s["critical"] for s in result.per_site), result.trials
    fi_ci, ax_ci = wilson_interval(k_fi, n_fi), wilson_interval(k_ax, n_ax)
    assert 0.02 < fi_ci.estimate < 0.98, "pick a value that gives a rate away from 0 and 1"
    # each estimate lies in the other's interval, and the difference is within 2 combined s.e.
    assert fi_ci.low <= ax_ci.estimate <= fi_ci.high
    assert ax_ci.low <= fi_ci.estimate <= ax_ci.high
    p1, p2 = fi_ci.estimate, ax_ci.estimate
    se = math.sqrt(p1 * (1 - p1) / n_fi + p2 * (1 - p2) / n_ax)
    assert abs(p1 - p2) <= 2 * se
