"""Model registry: zoo models by name, or user factories as `package.module:factory` or
`path/to/file.py:factory`, so configs and the CLI can name any model with one string."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from axdnn.errors import ModelError

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}
_LEARNING_RATES: dict[str, float] = {}
DEFAULT_LR = 1e-2
"""Adam learning rate of a model that names none: what the zoo's batch-norm models train with."""


def register_model(name: str, lr: float | None = None) -> Callable[[F], F]:
    """Decorator registering a factory `f(in_channels, num_classes, **kwargs) -> nn.Module`;
    `lr` is the Adam learning rate it trains best with when the user gives none."""
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ModelError(
            f"register_model: invalid model name {name!r}; expected a non-empty string without "
            "':' or surrounding spaces"
        )

    def decorator(factory: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and _qualname(existing) != _qualname(factory):
            raise ModelError(
                f"register_model: model name {name!r} is already registered to "
                f"{_qualname(existing)}; cannot register {_qualname(factory)} under it"
            )
        _REGISTRY[name] = factory
        if lr is not None:
            _LEARNING_RATES[name] = lr
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of the registered zoo models, sorted."""
    return sorted(_REGISTRY)


def default_lr(name: str) -> float:
    """The learning rate a model trains with when none is given (DEFAULT_LR unless registered
    with its own, e.g. LeNet-5, which has no batch norm and diverges at DEFAULT_LR)."""
    return _LEARNING_RATES.get(name.strip() if isinstance(name, str) else name, DEFAULT_LR)


def build_model(name: str, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name, or call a user factory named `module:attr` or `file.py:attr`."""
    _check_positive_int("in_channels", in_channels, name)
    _check_positive_int("num_classes", num_classes, name)
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model name {name!r} is not a non-empty string; {_accepted()}")
    name = name.strip()
    if name in _REGISTRY:
        factory, where = _REGISTRY[name], f"zoo model {name!r}"
    elif ":" in name:
        factory, where = _load_user_factory(name), f"user factory {name!r}"
    else:
        close = difflib.get_close_matches(name, list_models(), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} {_accepted()}")
    try:
        model = factory(in_channels=in_channels, num_classes=num_classes, **kwargs)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{where} failed with in_channels={in_channels}, num_classes={num_classes}, "
            f"kwargs={kwargs!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{where} returned {type(model).__name__}, not a torch.nn.Module; a factory must "
            "return an nn.Module"
        )
    return model


def _accepted() -> str:
    return (
        f"Registered models: {', '.join(list_models())}; or a user factory as "
        "'package.module:factory' or 'path/to/file.py:factory'."
    )


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _check_positive_int(what: str, value: object, name: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(
            f"build_model({name!r}): {what}={value!r} is invalid; expected a positive integer"
        )


def _load_user_factory(spec: str) -> Factory:
    """Resolve `module:attr` or `file.py:attr` (split at the last ':', so drive letters work)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(
            f"user factory {spec!r} must look like 'package.module:factory' or "
            f"'path/to/file.py:factory'. {_accepted()}"
        )
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    module = _import_file(spec, target) if is_file else _import_module(spec, target)
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise ModelError(
                f"user factory {spec!r}: {target!r} has no attribute {attr!r} (it defines: "
                f"{', '.join(public) or 'nothing public'}). {_accepted()}"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelError(
            f"user factory {spec!r}: {attr!r} is of type {type(factory).__name__}, not callable; "
            "expected a function or class taking in_channels=..., num_classes=..."
        )
    return factory


def _import_module(spec: str, target: str) -> Any:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"user factory {spec!r}: cannot import module {target!r} ({exc}). {_accepted()}"
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"user factory {spec!r}: importing module {target!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _import_file(spec: str, target: str) -> Any:
    path = Path(target).expanduser()
    if not path.is_file():
        raise ModelError(f"user factory {spec!r}: file {str(path)!r} does not exist. {_accepted()}")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    mod_name = f"axdnn_user_model_{resolved.stem}_{digest}"
    mod_spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if mod_spec is None or mod_spec.loader is None:
        raise ModelError(f"user factory {spec!r}: cannot load {str(resolved)!r} as Python")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_name] = module  # lets dataclasses/pickling inside the file resolve it
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise ModelError(
            f"user factory {spec!r}: executing {str(resolved)!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return module
