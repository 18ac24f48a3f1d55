"""Checkpoints: model name, constructor arguments, weights, dataset spec, metrics and axdnn version
in one file. Opening one never runs code: it is read with `torch.load(weights_only=True)`, a
stored user factory is built only when the user names it (`axdnn.runtime.trusting`, the CLI's
`--trust-model`), its arguments must be plain values, and a SHA-256 of the weights written with
them is checked on load, so damaged weights are an error rather than a lower accuracy."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import axdnn
from axdnn.errors import CheckpointError, ModelError
from axdnn.models.registry import build_model, list_models
from axdnn.runtime import trusted_models

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "model", "model_kwargs", "state_dict")


@dataclass
class Checkpoint:
    """Everything needed to rebuild and describe a trained model."""

    model_name: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    data_spec: str | None = None
    input_shape: tuple[int, ...] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    axdnn_version: str = axdnn.__version__
    path: str | None = None

    def build(self, wrap: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
        """Construct the model, pass it through `wrap` (e.g. re-applying a stored plan), and load
        the weights; a mismatch is a CheckpointError."""
        self._check_buildable()
        try:
            model = build_model(self.model_name, **self.model_kwargs)
        except ModelError as err:
            raise CheckpointError(f"checkpoint {self.path or ''}: {err}") from err
        if self.extra.get("layer_shapes"):  # a slimmed (structurally pruned) model
            resize_layers(model, self.extra["layer_shapes"], f"checkpoint {self.path or ''}")
        if self.extra.get("folded_batchnorm"):  # batch norm folded into the layer before it
            fold_layers(model, self.extra["folded_batchnorm"], f"checkpoint {self.path or ''}")
        if wrap is not None:
            model = wrap(model)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            detail = " ".join(str(err).split())
            raise CheckpointError(
                f"checkpoint {self.path or ''}: weights do not fit model {self.model_name!r} "
                f"with {self.model_kwargs}: {detail}"
            ) from err
        return model.eval()

    def _check_buildable(self) -> None:
        where = f"checkpoint {self.path or ''}"
        if self.model_name not in list_models() and self.model_name not in trusted_models():
            raise CheckpointError(
                f"{where} asks to import and call {self.model_name!r} to build its model; axdnn "
                "never runs code a checkpoint names. If you trust it, name it yourself: "
                f"`axdnn --trust-model '{self.model_name}' ...` (or `model:` in the experiment "
                "file)"
            )
        bad = {k: type(v).__name__ for k, v in self.model_kwargs.items() if not _plain(v)}
        if bad:
            raise CheckpointError(
                f"{where} stores constructor arguments that are not plain values "
                f"(numbers, strings, booleans, None, lists or dicts of them): {bad}"
            )


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


def layer_shapes(model: nn.Module) -> dict[str, dict[str, int]]:
    """Channel counts of every conv, linear and batch-norm layer, as plain data: what a slimmed
    model stores (`extra["layer_shapes"]`) so that its factory's model can be resized on load."""
    shapes: dict[str, dict[str, int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            shapes[name] = {"in": m.in_channels, "out": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.Linear):
            shapes[name] = {"in": m.in_features, "out": m.out_features}
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            shapes[name] = {"out": m.num_features}
    return shapes


def resize_layers(model: nn.Module, shapes: dict[str, Any], where: str = "") -> None:
    """Give the named layers the stored channel counts (fresh, uninitialised tensors that the
    state dict then fills); only plain integers are read, so no stored code ever runs."""
    modules = dict(model.named_modules())
    for name, shape in shapes.items():
        module = modules.get(name)
        if not isinstance(module, _LAYER_TYPES) or not _shape_fits(module, shape):
            raise CheckpointError(
                f"{where}: stored layer shape {name!r}: {shape!r} does not fit the model: "
                "expected a conv, linear or batch-norm layer and positive integer channel counts"
            )
        _resize(module, shape)


def fold_layers(model: nn.Module, folds: Any, where: str = "") -> None:
    """Replay stored batch-norm folds ({batch-norm name: conv or linear name}, plain strings):
    the batch norm becomes nn.Identity and the layer gets the bias the state dict then fills."""
    modules = dict(model.named_modules())
    pairs = folds.items() if isinstance(folds, dict) else [(repr(folds), None)]
    for bn_name, layer_name in pairs:
        bn = modules.get(bn_name) if isinstance(bn_name, str) else None
        layer = modules.get(layer_name) if isinstance(layer_name, str) else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not isinstance(
            layer, nn.modules.conv._ConvNd | nn.Linear
        ):
            raise CheckpointError(
                f"{where}: stored folded batch norm {bn_name!r} -> {layer_name!r} does not fit "
                "the model: expected a batch-norm name mapped to a conv or linear layer name"
            )
        model.set_submodule(bn_name, nn.Identity())
        if layer.bias is None:
            width = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
            layer.bias = nn.Parameter(torch.empty(width, dtype=layer.weight.dtype))


def _shape_fits(m: nn.Module, shape: Any) -> bool:
    """The keys the layer's type needs, positive integers, groups dividing both widths."""
    if isinstance(m, nn.modules.conv._ConvNd):
        keys = {"in", "out", "groups"}
    else:
        keys = {"out"} if isinstance(m, nn.modules.batchnorm._BatchNorm) else {"in", "out"}
    if not isinstance(shape, dict) or set(shape) != keys:
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape.values()):
        return False
    groups = shape.get("groups", 1)
    return shape["out"] % groups == 0 and shape.get("in", groups) % groups == 0


def _resize(m: nn.Module, shape: dict[str, int]) -> None:
    def fresh(t: torch.Tensor | None, size: tuple[int, ...]) -> torch.Tensor | None:
        return None if t is None else torch.empty(size, dtype=t.dtype)

    out = shape["out"]
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        m.num_features = out
        for key in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(m, key)
            if isinstance(t, nn.Parameter):
                setattr(m, key, nn.Parameter(fresh(t, (out,))))
            elif t is not None:
                setattr(m, key, fresh(t, (out,)))
        return
    cin, groups = shape["in"], shape.get("groups", 1)
    if isinstance(m, nn.Linear):
        m.in_features, m.out_features = cin, out
        size = (out, cin)
    else:
        m.in_channels, m.out_channels, m.groups = cin, out, groups
        w = m.weight
        lead = (cin, out // groups) if m.transposed else (out, cin // groups)
        size = lead + tuple(w.shape[2:])
    m.weight = nn.Parameter(fresh(m.weight, size))
    if m.bias is not None:
        m.bias = nn.Parameter(fresh(m.bias, (out,)))


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "model": checkpoint.model_name,
        "model_kwargs": dict(checkpoint.model_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()},
        "weights_sha256": weights_digest(checkpoint.state_dict),
        "data_spec": checkpoint.data_spec,
        "input_shape": list(checkpoint.input_shape) if checkpoint.input_shape else None,
        "metrics": checkpoint.metrics,
        "extra": checkpoint.extra,
        "axdnn_version": checkpoint.axdnn_version,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely; missing, corrupt or foreign files are a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is corrupt or not an axdnn checkpoint: it holds "
            "Python objects beyond tensors and plain data, and unpickling them could run code, "
            "so axdnn refuses it (write checkpoints with `axdnn train` or save_checkpoint)"
        ) from err
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is corrupt or not an axdnn checkpoint "
            f"(torch.load said: {first_line})"
        ) from err
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is not an axdnn checkpoint: expected a dict with keys "
            f"{', '.join(REQUIRED_KEYS)} (save it with `axdnn train` or save_checkpoint)"
        )
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} has format {payload['format']!r}; this axdnn reads "
            f"format {FORMAT_VERSION}"
        )
    stored = payload.get("weights_sha256")
    if stored is not None and stored != weights_digest(payload["state_dict"]):
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is damaged: its weights do not match the hash stored "
            "with them (the file changed after it was written)"
        )
    shape = payload.get("input_shape")
    return Checkpoint(
        model_name=payload["model"],
        model_kwargs=payload["model_kwargs"],
        state_dict=payload["state_dict"],
        data_spec=payload.get("data_spec"),
        input_shape=tuple(shape) if shape else None,
        metrics=payload.get("metrics") or {},
        extra=payload.get("extra") or {},
        axdnn_version=payload.get("axdnn_version", "unknown"),
        path=str(path),
    )
