"""A campaign worker run as a subprocess by test_inject_campaign.py (kill/resume, concurrency).

Usage: inject_campaign_worker.py STORE TRIALS BLOCK PAUSE_S [NAME]; STORE is a path or a URL."""

import json
import sys
import time

import torch

from axdnn.data import load_dataset
from axdnn.inject import CampaignConfig, CampaignStore, run_campaign
from axdnn.models import build_model


class SlowStore(CampaignStore):
    """A store that holds each claimed block `pause` seconds before completing it, so a kill
    mostly lands while a block is claimed and two workers interleave."""

    def __init__(self, url: str, pause: float) -> None:
        super().__init__(url)
        self.pause = pause

    def complete(self, name, block, owner, rows):
        time.sleep(self.pause)
        return super().complete(name, block, owner, rows)


def make_model():
    torch.manual_seed(0)
    return build_model("digits_cnn", 1, 10).eval()


def make_config(trials: int, block: int, name: str = "kill") -> CampaignConfig:
    return CampaignConfig(
        name=name, error_model="bitflip:float32", trials=trials, block_size=block, seed=3
    )


def main() -> None:
    store, trials, block, pause = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    name = sys.argv[5] if len(sys.argv) > 5 else "kill"
    torch.set_num_threads(1)
    x, y = load_dataset("digits").test.tensors
    result = run_campaign(
        make_model(),
        x,
        y,
        make_config(trials, block, name),
        SlowStore(store, pause),
    )
    print(json.dumps({"ran": result.trials_run_here, "trials": result.trials}))


if __name__ == "__main__":
    main()
