"""A campaign worker run as a subprocess by test_inject_campaign.py (kill/resume, concurrency)."""

import json
import sys
import time

import torch

from axdnn.data import load_dataset
from axdnn.inject import CampaignConfig, run_campaign
from axdnn.models import build_model


def make_model():
    torch.manual_seed(0)
    return build_model("digits_cnn", 1, 10).eval()


def make_config(trials: int, block: int) -> CampaignConfig:
    return CampaignConfig(
        name="kill", error_model="bitflip:float32", trials=trials, block_size=block, seed=3
    )


def main() -> None:
    store, trials, block, pause = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    torch.set_num_threads(1)
    x, y = load_dataset("digits").test.tensors
    result = run_campaign(
        make_model(),
        x,
        y,
        make_config(trials, block),
        store,
        on_block=lambda b, n: time.sleep(pause),
    )
    print(json.dumps({"ran": result.trials_run_here, "trials": result.trials}))


if __name__ == "__main__":
    main()
