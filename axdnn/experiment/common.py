"""Helpers every experiment command shares: loading checkpoints with their data, shape checks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from torch import nn

from axdnn.data import DatasetBundle, load_dataset
from axdnn.errors import CheckpointError, ConfigError, ShapeError
from axdnn.models.checkpoint import Checkpoint, load_checkpoint
from axdnn.nn import Plan, approximate
from axdnn.runtime import c_models_trusted, trusting

_SHAPE = re.compile(r"^\s*(\d+)(?:\s*x\s*(\d+))*\s*$")


def parse_input_shape(text: str) -> tuple[int, ...]:
    """`3x32x32` -> (3, 32, 32); any number of positive sizes."""
    if not _SHAPE.match(text or ""):
        raise ConfigError(f"bad input shape {text!r}: expected sizes joined by 'x', e.g. 3x32x32")
    shape = tuple(int(p) for p in text.lower().split("x"))
    if any(s < 1 for s in shape):
        raise ConfigError(f"bad input shape {text!r}: every size must be at least 1")
    return shape


def check_data_fits(checkpoint: Checkpoint, bundle: DatasetBundle) -> None:
    """The data must have the input shape and class count the checkpoint was trained on."""
    where = f"checkpoint {checkpoint.path!r}"
    if checkpoint.input_shape and tuple(checkpoint.input_shape) != tuple(bundle.input_shape):
        shape = "x".join(map(str, checkpoint.input_shape))
        raise ShapeError(
            f"{where} expects inputs of shape {shape} but "
            f"dataset {bundle.spec!r} gives {'x'.join(map(str, bundle.input_shape))}; pass a "
            f"dataset spec with the right shape (e.g. digits:{shape})"
        )
    classes = checkpoint.model_kwargs.get("num_classes")
    if classes is not None and classes != bundle.num_classes:
        raise ShapeError(
            f"{where} has {classes} output classes but dataset {bundle.spec!r} has "
            f"{bundle.num_classes}"
        )


def build_from_checkpoint(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's model; a fine-tuned approximate one comes back with its plan applied."""
    stored = checkpoint.extra.get("plan")
    if stored is None:
        return checkpoint.build()
    plan = Plan.from_dict(stored, source=f"checkpoint {checkpoint.path!r}")
    c_models = sorted({s.multiplier for s in plan.layers.values() if _is_c_model(s.multiplier)})
    if c_models and not c_models_trusted():
        raise CheckpointError(
            f"checkpoint {checkpoint.path!r} stores a plan with C models ({', '.join(c_models)}) "
            "that would be compiled and run; axdnn never runs code a checkpoint names. If you "
            "trust them, say so: `axdnn --trust-c-models ...`"
        )
    _check_tables(checkpoint)
    shape = tuple(checkpoint.input_shape) if checkpoint.input_shape else None
    return checkpoint.build(wrap=lambda model: approximate(model, plan, None, input_shape=shape))


def check_writable(path: Path, what: str) -> None:
    """Fail now, not after the work, when `path` cannot be written (a ConfigError naming it)."""
    path = Path(path)
    probe = path.with_name(f".{path.name}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the {what} {str(path)!r}: {exc.strerror or exc}; pick another --out"
        ) from None


def _check_tables(checkpoint: Checkpoint) -> None:
    """Every table a fine-tuned checkpoint names must still be the one it was tuned on."""
    from axdnn.arith import get_multiplier

    for spec, stored in (checkpoint.extra.get("table_hashes") or {}).items():
        if get_multiplier(spec).content_hash != stored:
            raise CheckpointError(
                f"checkpoint {checkpoint.path!r} was fine-tuned on multiplier {spec!r}, whose "
                "table has changed since (its content hash differs); restore that table file "
                "or fine-tune again"
            )


def _is_c_model(spec: str | None) -> bool:
    return isinstance(spec, str) and spec.strip().lower().startswith("c:")


def open_checkpoint(path: Path, *, model: str | None = None) -> Checkpoint:
    """Load a checkpoint; `model` (a zoo name or user factory the user named, e.g. with
    --model after moving the file) replaces the factory it stores."""
    checkpoint = load_checkpoint(path)
    return checkpoint if model is None else dataclasses.replace(checkpoint, model_name=model)


def build_checkpoint(path: Path, *, model: str | None = None) -> tuple[Checkpoint, nn.Module]:
    """The checkpoint and its built model (`model`: see `open_checkpoint`)."""
    checkpoint = open_checkpoint(path, model=model)
    with trusting(models=[model] if model else []):  # a factory the user named is theirs
        return checkpoint, build_from_checkpoint(checkpoint)


def load_checkpoint_and_data(
    path: Path, data: str | None, seed: int = 0, *, model: str | None = None
) -> tuple[Checkpoint, nn.Module, DatasetBundle]:
    """Load a checkpoint, build its model (`model`: see `open_checkpoint`) and load the data it
    is evaluated on."""
    checkpoint, built = build_checkpoint(path, model=model)
    spec = data or checkpoint.data_spec
    if not spec:
        raise ConfigError(f"checkpoint {str(path)!r} records no dataset; pass --data")
    bundle = load_dataset(spec, seed=seed)
    check_data_fits(checkpoint, bundle)
    return checkpoint, built, bundle


def split_of(bundle: DatasetBundle, split: str):
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    return getattr(bundle, split)


def try_forward(model: nn.Module, input_shape: tuple[int, ...], what: str) -> None:
    """Run one zero sample through the model; a shape mismatch becomes a ShapeError."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError, IndexError) as err:
        detail = " ".join(str(err).split())[:300]
        raise ShapeError(
            f"{what} cannot take inputs of shape {'x'.join(map(str, input_shape))}: {detail}"
        ) from None
