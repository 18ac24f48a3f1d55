"""Run-time plumbing shared by every room: device choice, seeding, and what the user trusts."""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from axdnn.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn `auto|cpu|cuda|cuda:N` into a torch.device; asking for CUDA without one is an error."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {spec!r} was asked for but no CUDA device is available; "
                "use --device cpu or auto"
            )
        return torch.device(spec)
    raise ConfigError(f"unknown device {spec!r}; expected one of {', '.join(DEVICE_CHOICES)}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode for the block and restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


_TRUSTED_MODELS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "axdnn_trusted_models", default=frozenset()
)
_TRUST_C_MODELS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "axdnn_trust_c_models", default=False
)


@contextlib.contextmanager
def trusting(models: Iterable[str] = (), c_models: bool = False) -> Iterator[None]:
    """Within the block, checkpoints may build the user factories in `models` and compile the C
    models their stored plans name (`c_models`): what the user named on the command line or in
    an experiment file. Outside it, a checkpoint never makes axdnn import, call or compile code."""
    names = _TRUSTED_MODELS.set(_TRUSTED_MODELS.get() | {m.strip() for m in models if m})
    c = _TRUST_C_MODELS.set(_TRUST_C_MODELS.get() or c_models)
    try:
        yield
    finally:
        _TRUST_C_MODELS.reset(c)
        _TRUSTED_MODELS.reset(names)


def trust(models: Iterable[str] = (), c_models: bool = False) -> None:
    """`trusting` without an end, for a command's whole run: the CLI calls it inside a context
    of its own (`contextvars.copy_context().run`), so nothing outlives the command."""
    _TRUSTED_MODELS.set(_TRUSTED_MODELS.get() | {m.strip() for m in models if m})
    _TRUST_C_MODELS.set(_TRUST_C_MODELS.get() or c_models)


def trusted_models() -> frozenset[str]:
    """The user factories a checkpoint may build here (see `trusting`)."""
    return _TRUSTED_MODELS.get()


def c_models_trusted() -> bool:
    """Whether a checkpoint's stored plan may compile its C models here (see `trusting`)."""
    return _TRUST_C_MODELS.get()


class TemporaryHooks:
    """Forward hooks that live only inside a `with` block: removed on exit, even when the block
    (or a later registration) raises. `hooks.pre(module, fn)` / `hooks.post(module, fn)` take the
    keyword arguments of torch's register_forward_pre_hook / register_forward_hook."""

    def __init__(self) -> None:
        self._handles: list = []

    def pre(self, module: nn.Module, hook, **kwargs) -> TemporaryHooks:
        self._handles.append(module.register_forward_pre_hook(hook, **kwargs))
        return self

    def post(self, module: nn.Module, hook, **kwargs) -> TemporaryHooks:
        self._handles.append(module.register_forward_hook(hook, **kwargs))
        return self

    def keep(self, handle) -> TemporaryHooks:
        """Hold any other removable handle (anything with `.remove()`) until exit."""
        self._handles.append(handle)
        return self

    def __bool__(self) -> bool:
        return bool(self._handles)

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> TemporaryHooks:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def tracing() -> bool:
    """torch.compile or torch.export is tracing (tensor values are not known)."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()
