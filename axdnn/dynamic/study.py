"""A full dynamic-effort study of one trained model: exit heads trained on the training split,
each mechanism alone and all combined calibrated on the validation split (held out from the
training data) against an accuracy budget, then measured on the test split (accuracy,
operations, per-layer skip rates, wall-clock speed-up against the same model run densely)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from axdnn.dynamic.calibrate import calibrate
from axdnn.dynamic.model import DynamicModel
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.dynamic.timing import compare_speed
from axdnn.errors import DynamicError

CONFIGS = {
    "spet-exact": (),
    "spet": ("spet",),
    "sdss": ("sdss",),
    "sfma": ("sfma",),
    "exit": ("exit",),
    "combined": ("spet", "sdss", "sfma", "exit"),
}
"""Configuration name -> the mechanisms its calibration may use; `spet-exact` is not calibrated:
SPET's exact mode on every ReLU layer, which must change no prediction."""


@dataclass
class StudySettings:
    """How much data each phase uses and what is timed."""

    budget: float = 0.5
    configs: tuple[str, ...] = tuple(CONFIGS)
    exits: list[str] | None = None
    train_limit: int | None = 20000
    calib_limit: int | None = 2000
    test_limit: int | None = None
    exit_epochs: int = 20
    timing_batches: tuple[int, ...] = (1, 256)
    timing_samples: int = 300
    timing_limit: int = 1024
    combined: tuple[str, ...] = CONFIGS["combined"]
    repeats: int = 3
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        unknown = [c for c in self.configs if c not in CONFIGS]
        if unknown:
            raise DynamicError(f"unknown configuration(s) {unknown}; accepted: {list(CONFIGS)}")
        if self.budget < 0:
            raise DynamicError(f"budget {self.budget!r} must be >= 0 accuracy points")
        extra = set(self.combined) - set(CONFIGS["combined"])
        if extra:
            raise DynamicError(
                f"combined mechanism(s) {sorted(extra)} unknown; accepted: {CONFIGS['combined']}"
            )
        bad = [b for b in self.timing_batches if int(b) != b or b < 1]
        if bad:
            raise DynamicError(f"timing batch sizes {bad} must be positive integers")
        self.timing_batches = tuple(int(b) for b in self.timing_batches)


@dataclass
class ConfigResult:
    """One configuration on the test split."""

    name: str
    plan: dict[str, Any]
    calibration: dict[str, Any] | None
    accuracy: float
    drop_points: float
    changed_predictions: int
    effort: dict[str, Any]
    timing: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _limit(tensors, limit: int | None):
    x, y = tensors
    return (x, y) if not limit else (x[:limit], y[:limit])


def run_study(model: nn.Module, bundle, settings: StudySettings) -> dict[str, Any]:
    """The study's JSON-ready record (see the module docstring)."""
    torch.manual_seed(settings.seed)
    dyn = DynamicModel(model, bundle.input_shape)
    dense_ref = DynamicModel(model, bundle.input_shape)
    xt, yt = _limit(bundle.train.tensors, settings.train_limit)
    xv, yv = _limit(bundle.val.tensors, settings.calib_limit)
    xs, ys = _limit(bundle.test.tensors, settings.test_limit)
    points = settings.exits if settings.exits is not None else dyn.exit_candidates()
    head_acc = (
        dyn.train_exits(
            points,
            xt,
            yt,
            epochs=settings.exit_epochs,
            seed=settings.seed,
            progress=settings.progress,
        )
        if points
        else {}
    )
    dense_acc, dense_report, dense_pred = dyn.evaluate(xs, ys)
    results = []
    for name in settings.configs:
        mechanisms = settings.combined if name == "combined" else CONFIGS[name]
        if name == "spet-exact":
            results.append(
                _exact_spet(dyn, xs, ys, dense_acc, dense_pred, settings, model, dense_ref)
            )
            continue
        if mechanisms == ("exit",) and not dyn.heads:
            continue
        cal = calibrate(
            dyn, xv, yv, settings.budget, mechanisms=mechanisms, progress=settings.progress
        )
        results.append(
            _measure(
                name,
                dyn,
                cal.plan,
                cal.to_dict(),
                (xs, ys),
                dense_acc,
                dense_pred,
                settings,
                model,
                dense_ref,
            )
        )
    return {
        "model": type(model).__name__,
        "data": bundle.spec,
        "input_shape": list(bundle.input_shape),
        "budget_points": settings.budget,
        "samples": {"train": len(yt), "calibration": len(yv), "test": len(ys)},
        "dense_accuracy": dense_acc,
        "dense_macs_per_input": dense_report.dense_macs // max(len(ys), 1),
        "exit_heads": {"points": points, "train_accuracy": head_acc},
        "configs": [r.to_dict() for r in results],
        "best": best_config([r.to_dict() for r in results], settings.budget),
    }


def _exact_spet(dyn, xs, ys, dense_acc, dense_pred, settings, model, dense_ref) -> ConfigResult:
    plan = DynamicPlan(
        {
            n: LayerSetting("spet", fraction=0.5, alpha=1.0, block=1)
            for n in dyn.affine_layers(relu_only=True)
        }
    )
    return _measure(
        "spet-exact", dyn, plan, None, (xs, ys), dense_acc, dense_pred, settings, model, dense_ref
    )


def _measure(
    name, dyn, plan, calibration, data, dense_acc, dense_pred, settings, model, dense_ref
) -> ConfigResult:
    xs, ys = data
    dyn.set_plan(plan)
    acc, report, pred = dyn.evaluate(xs, ys, progress=settings.progress)
    timing = []
    for batch in settings.timing_batches:
        n = settings.timing_samples if batch == 1 else min(len(xs), settings.timing_limit)
        vs_model = compare_speed(model, dyn, xs[:n], batch, repeats=settings.repeats)
        vs_chain = compare_speed(dense_ref, dyn, xs[:n], batch, repeats=settings.repeats)
        timing.append(
            {
                "batch_size": batch,
                "vs_model": vs_model.to_dict(),
                "vs_dense_chain": vs_chain.to_dict(),
                "speedup": min(vs_model.speedup, vs_chain.speedup),
            }
        )
    return ConfigResult(
        name=name,
        plan=plan.to_dict(),
        calibration=calibration,
        accuracy=acc,
        drop_points=100 * (dense_acc - acc),
        changed_predictions=int((pred != dense_pred).sum()),
        effort=report.to_dict(),
        timing=timing,
    )


def best_config(configs: list[dict[str, Any]], budget: float) -> dict[str, Any] | None:
    """The configuration with the largest ops reduction whose test drop is within `budget`."""
    ok = [c for c in configs if c["drop_points"] <= budget + 1e-9]
    if not ok:
        return None
    best = max(ok, key=lambda c: c["effort"]["ops_ratio"])
    speed = max((t["speedup"] for t in best["timing"]), default=None)
    return {
        "name": best["name"],
        "ops_ratio": best["effort"]["ops_ratio"],
        "speedup": speed,
        "drop_points": best["drop_points"],
    }
