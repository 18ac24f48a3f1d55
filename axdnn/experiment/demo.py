"""`axdnn demo`: the quick-start study, a shipped experiment file (`demo.yaml`, printed by
`axdnn demo --show`) run over the embedded digits data, ending with its HTML report."""

from __future__ import annotations

from pathlib import Path

from axdnn.experiment.runner import render_run, run_experiment, step_records

DEMO_FILE = Path(__file__).with_name("demo.yaml")


def demo_text() -> str:
    """The demo's experiment file, as shipped."""
    return DEMO_FILE.read_text()


def run_demo(out: Path, device: str | None = None, progress: bool = True, say=print) -> dict:
    """Run (or resume) the demo experiment into `out`; the runner's summary plus step records."""
    return run_experiment(DEMO_FILE, Path(out), progress=progress, say=say, device=device)


def render_demo(result: dict) -> str:
    """What the demo measured, read back from its records, then the run summary."""
    records = step_records(Path(result["out"]))
    train, evaluated = records["train"], records["evaluate"]["runs"]
    tuned = records["finetune"]
    lines = [
        f"axdnn demo: {train['model']} on {train['data']['spec']}",
        f"trained in {train['train_seconds']:.1f} s; test top-1 {train['test']['top1']:.2%}",
        "on approximate multipliers (every conv/linear layer):",
        *(
            f"  {r['label']:<14} top-1 {r['top1']:.2%}"
            + (
                f"  (drop {(r['float_top1'] - r['top1']) * 100:.2f} points)"
                if r.get("float_top1")
                else ""
            )
            for r in evaluated
        ),
        f"fine-tuned on {tuned['plan']['layers']['*']['multiplier']}: top-1 "
        f"{tuned['before_top1']:.2%} -> {tuned['after_top1']:.2%}",
        "",
        render_run(result),
    ]
    return "\n".join(lines)
