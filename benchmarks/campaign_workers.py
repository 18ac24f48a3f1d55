"""Two campaign workers on one store against one worker: wall time of the whole campaign.

Each worker is a separate process running `run_campaign` on the same SQLite store (what two
`axdnn resilience --campaign ... --store S --campaign-name N` commands do), digits_cnn trained 4
epochs, bit flips at every conv/linear output, 359 test images. "threads" is each worker's torch
thread count (0: torch's default, the machine's cores). Both workers' final reports are checked
against the store. Last line: `campaign_workers: two/one X` (wall time of two workers over one;
below 1 is a speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = """
import json, sys, torch
from axdnn.data import load_dataset
from axdnn.inject import CampaignConfig, run_campaign
from axdnn.models import build_model
store, trials, threads, ck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if threads > 0:
    torch.set_num_threads(threads)
data = load_dataset("digits")
torch.manual_seed(0)
model = build_model("digits_cnn", 1, 10)
model.load_state_dict(torch.load(ck, weights_only=True))
x, y = data.test.tensors
config = CampaignConfig(name="bench", error_model="bitflip:float32", trials=trials,
                        block_size=64, seed=0)
result = run_campaign(model.eval(), x, y, config, store)
print(json.dumps({"ran": result.trials_run_here, "trials": result.trials,
                  "complete": result.complete, "critical": result.critical_rate["estimate"]}))
"""


def trained(folder: Path) -> Path:
    import torch

    from axdnn.data import load_dataset
    from axdnn.models import build_model
    from axdnn.train import TrainConfig, fit

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("digits_cnn", 1, 10)
    fit(model, data.train, data.val, 10, TrainConfig(epochs=4, seed=0))
    path = folder / "ck.pt"
    torch.save(model.state_dict(), path)
    return path


def campaign(workers: int, trials: int, threads: int, ck: Path, folder: Path) -> tuple[float, list]:
    store = folder / f"w{workers}-t{threads}-{time.monotonic_ns()}.db"
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store), str(trials), str(threads), str(ck)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    outputs = [p.communicate()[0] for p in procs]
    failed = [p.returncode for p in procs if p.returncode]
    if failed:
        raise SystemExit(f"a worker failed (exit {failed}); its stderr is above")
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return time.perf_counter() - start, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.2f} trials={args.trials}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ck = trained(folder)
        print(f"{'threads':>8}{'one s':>8}{'two s':>8}{'two/one':>9}  reports")
        ratios = {}
        for threads in args.threads:
            one, _ = campaign(1, args.trials, threads, ck, folder)
            two, reports = campaign(2, args.trials, threads, ck, folder)
            assert sum(r["ran"] for r in reports) == args.trials, reports
            ratios[threads] = two / one
            print(f"{threads:>8}{one:>8.1f}{two:>8.1f}{two / one:>9.2f}  {reports}")
    print(f"campaign_workers: two/one {ratios[args.threads[0]]:.2f}")


if __name__ == "__main__":
    main()
