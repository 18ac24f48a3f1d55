"""The runners behind `axdnn resilience` and `axdnn significance`: plain arguments in, a JSON-ready
record out (also written to `out_dir`, with PNG plots), plus `render_*` for humans."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from axdnn.analysis import filter_significance, prune_comparison, sensitivity_sweep
from axdnn.experiment.common import load_checkpoint_and_data, split_of
from axdnn.inject import CampaignConfig, run_campaign
from axdnn.report.resilience_plots import plot_filter_significance, plot_sensitivity
from axdnn.runtime import resolve_device, seed_everything


def _subset(dataset, limit: int | None):
    x, y = dataset.tensors
    return (x, y) if not limit else (x[:limit], y[:limit])


def run_resilience(
    checkpoint: Path,
    data: str | None,
    out_dir: Path,
    *,
    sites: list[str] | None = None,
    template: str = "gaussian:{m},rel=std",
    magnitudes: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
    repeats: int = 2,
    split: str = "test",
    limit: int | None = None,
    campaign_model: str | None = None,
    trials: int | None = None,
    store: str | None = None,
    seed: int = 0,
    device: str = "auto",
    campaign_name: str | None = None,
    model_factory: str | None = None,
) -> dict:
    """Per-site sensitivity sweep and ranking; optionally a stored fault campaign too.

    Writes `resilience.json` and `sensitivity.png` to out_dir. `campaign_model` (an error-model
    spec) adds a campaign over the same sites stored in `store` (default out_dir/campaign.db).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    ckpt, model, bundle = load_checkpoint_and_data(
        Path(checkpoint), data, seed, model=model_factory
    )
    model = model.to(resolve_device(device)).eval()
    x, y = _subset(split_of(bundle, split), limit)
    x = x.to(next(model.parameters()).device)
    sweep = sensitivity_sweep(model, x, y, sites, template, magnitudes, repeats, seed)
    record = {
        "command": "resilience",
        "checkpoint": str(checkpoint),
        "data": bundle.spec,
        "split": split,
        "samples": len(y),
        "sensitivity": sweep.to_dict(),
    }
    if campaign_model:
        config = CampaignConfig(
            name=campaign_name or f"resilience-{Path(checkpoint).stem}-{campaign_model}",
            error_model=campaign_model,
            sites=list(sites or []),
            trials=trials,
            seed=seed,
        )
        result = run_campaign(model, x, y, config, store or out_dir / "campaign.db", progress=True)
        record["campaign"] = result.to_dict()
    record["plots"] = {
        "sensitivity": str(plot_sensitivity(record["sensitivity"], out_dir / "sensitivity.png"))
    }
    (out_dir / "resilience.json").write_text(json.dumps(record, indent=2))
    return record


def render_resilience(record: dict) -> str:
    s = record["sensitivity"]
    lines = [
        f"sensitivity of {record['checkpoint']} on {record['data']} ({record['samples']} samples), "
        f"fault-free accuracy {s['baseline_accuracy']:.2%}",
        f"{'rank':>4}  {'site':<28}{'mean drop':>10}  {'95% CI':>17}  rank CI",
    ]
    for r in s["ranking"]:
        lines.append(
            f"{r['rank']:>4}  {r['site']:<28}{r['score']:>10.2%}  "
            f"[{r['score_low']:>6.2%}, {r['score_high']:>6.2%}]  {r['rank_low']}-{r['rank_high']}"
        )
    st = s["rank_stability"]
    lines.append(
        f"rank stability: Kendall tau mean {st['kendall_tau_mean']:.2f}, "
        f"5th pct {st['kendall_tau_p05']:.2f} ({'stable' if st['stable'] else 'NOT stable'})"
    )
    if "campaign" in record:
        c = record["campaign"]
        cr = c["critical_rate"]
        if not c.get("complete", True):
            blocks = c.get("blocks", {})
            lines.append(
                f"campaign {c['name']} INCOMPLETE: {c['trials']} of {c['planned']} trials stored, "
                f"{blocks.get('claimed', 0)} block(s) still claimed by other workers and "
                f"{blocks.get('pending', 0)} pending; the figures below cover only the stored "
                "trials. Rerun the same command to join them or to read the final figures."
            )
        lines.append(
            f"campaign {c['name']}: {c['trials']}/{c['planned']} trials, critical rate "
            f"{cr['estimate']:.2%} [{cr['low']:.2%}, {cr['high']:.2%}], store {c['store']}"
        )
    lines.append(f"plot: {record['plots']['sensitivity']}")
    return "\n".join(lines)


def run_significance(
    checkpoint: Path,
    data: str | None,
    out_dir: Path,
    *,
    layers: list[str] | None = None,
    error_model: str = "gaussian:1.0,rel=std",
    threshold: float = 0.01,
    repeats: int = 1,
    fractions: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5),
    limit: int | None = None,
    seed: int = 0,
    device: str = "auto",
    model_factory: str | None = None,
) -> dict:
    """Per-filter significance on the validation split and significance- vs L1-driven filter
    pruning evaluated on the test split. Writes `significance.json` and `significance.png`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    ckpt, model, bundle = load_checkpoint_and_data(
        Path(checkpoint), data, seed, model=model_factory
    )
    model = model.to(resolve_device(device)).eval()
    dev = next(model.parameters()).device
    vx, vy = _subset(bundle.val, limit)
    tx, ty = _subset(bundle.test, limit)
    with torch.no_grad():
        result = filter_significance(
            model, vx.to(dev), vy, layers, error_model, threshold, repeats, seed
        )
    result.pruning = prune_comparison(model, result, tx.to(dev), ty, fractions)
    record = {
        "command": "significance",
        "checkpoint": str(checkpoint),
        "data": bundle.spec,
        "significance_split": "val",
        "pruning_split": "test",
        **result.to_dict(),
    }
    record["plots"] = {
        "significance": str(plot_filter_significance(record, out_dir / "significance.png"))
    }
    (out_dir / "significance.json").write_text(json.dumps(record, indent=2))
    return record


def render_significance(record: dict) -> str:
    lines = [
        f"filter significance of {record['checkpoint']} ({record['error_model']}, threshold "
        f"{record['threshold']:.2%}, fault-free val accuracy {record['baseline_accuracy']:.2%})"
    ]
    for layer in dict.fromkeys(f["layer"] for f in record["filters"]):
        scores = [f for f in record["filters"] if f["layer"] == layer]
        lines.append(
            f"  {layer:<20}{sum(f['significant'] for f in scores):>4}/{len(scores)} significant"
        )
    lines.append(f"{'pruned':>8}{'significance':>14}{'L1 norm':>10}{'advantage':>11}")
    for p in record["pruning"]:
        lines.append(
            f"{p['pruned_filters']:>8}{p['significance_accuracy']:>14.2%}{p['l1_accuracy']:>10.2%}"
            f"{p['advantage']:>+11.2%}"
        )
    lines.append(f"plot: {record['plots']['significance']}")
    return "\n".join(lines)
