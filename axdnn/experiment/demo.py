"""`axdnn demo`: the quick-start job on the embedded digits data.

Trains digits_cnn, evaluates it, prints its per-layer cost, evaluates it on three approximate
multipliers and fine-tunes it for one epoch on the one that hurts most; writes checkpoints and JSON
records under the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from axdnn.errors import ConfigError
from axdnn.experiment.approx import render_finetune, run_approx_evaluate, run_finetune
from axdnn.experiment.commands import render_cost, run_cost, run_evaluate, run_train
from axdnn.train import TrainConfig
from axdnn.train.finetune import FinetuneOptions

DEMO_MODEL = "digits_cnn"
DEMO_DATA = "digits"
DEMO_CONFIG = TrainConfig(epochs=12, lr=1e-2, batch_size=64, optimizer="adam", seed=0)
DEMO_MULTIPLIERS = ("drum:4@u8", "mitchell@u8", "trunc:8@u8")
DEMO_FINETUNE = TrainConfig(epochs=1, lr=1e-3, batch_size=64, seed=0)


def _write(out: Path, name: str, record: dict) -> str:
    path = out / name
    path.write_text(json.dumps(record, indent=2))
    return str(path)


def run_demo(out: Path, device: str = "auto", progress: bool = True) -> dict:
    """Run the demo pipeline and return what it measured, with the paths it wrote."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"demo output folder {str(out)!r} exists and is not a folder; pick another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "digits_cnn.pt"
    trained = run_train(DEMO_MODEL, DEMO_DATA, checkpoint, DEMO_CONFIG, device, progress)
    evaluated = run_evaluate(checkpoint, device=device, progress=progress)
    cost = run_cost(checkpoint=checkpoint)
    approximate = [
        run_approx_evaluate(checkpoint, multiplier=spec, device=device, progress=False)
        for spec in DEMO_MULTIPLIERS
    ]
    worst = min(approximate, key=lambda r: r["top1"])
    tuned = run_finetune(
        checkpoint,
        out / "finetuned.pt",
        DEMO_FINETUNE,
        FinetuneOptions(),
        multiplier=worst["plan"]["layers"]["*"]["multiplier"],
        device=device,
        progress=progress,
    )
    files = {
        "checkpoint": str(checkpoint),
        "finetuned": tuned["checkpoint"],
        "train": _write(out, "train.json", trained),
        "evaluate": _write(out, "evaluate.json", evaluated),
        "cost": _write(out, "cost.json", cost),
        "approximate": _write(out, "approximate.json", {"runs": approximate}),
        "finetune": _write(out, "finetune.json", tuned),
    }
    return {
        "train": trained,
        "evaluate": evaluated,
        "cost": cost,
        "approximate": approximate,
        "finetune": tuned,
        "files": files,
    }


def render_demo(record: dict) -> str:
    ev = record["evaluate"]
    lines = [
        f"axdnn demo: {DEMO_MODEL} on {DEMO_DATA}",
        f"trained in {record['train']['train_seconds']:.1f} s; test top-1 {ev['top1']:.2%}, "
        f"top-5 {ev['top5']:.2%}, loss {ev['loss']:.4f} ({ev['samples']} test images)",
        "",
        render_cost(record["cost"]),
        "",
        "on approximate multipliers (every conv/linear layer, 8-bit unsigned operands):",
        *(
            f"  {r['plan']['layers']['*']['multiplier']:<14} top-1 {r['top1']:.2%}"
            f"  (drop {(r['float_top1'] - r['top1']) * 100:.2f} points)"
            for r in record["approximate"]
        ),
        render_finetune(record["finetune"]),
        "",
        "outputs: " + ", ".join(f"{k}={v}" for k, v in record["files"].items()),
    ]
    return "\n".join(lines)
