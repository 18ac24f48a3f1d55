"""Code regions: a numpy function over batched numeric arrays, the sampler of its inputs and the
quality metric of an approximation, and the one registry that names them (`get_region`).

A region maps inputs of shape (N, in_dim) to outputs of shape (N, out_dim). Its metric compares
the exact outputs with approximate ones on the same inputs and returns an error (lower is better),
in the units of AxBench's quality metric for that kernel. Samples may come in groups read together
by the metric (kmeans pairs each pixel with every centroid); `group` says how many.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axdnn.errors import RegionError

Function = Callable[[np.ndarray], np.ndarray]
Sampler = Callable[[int, np.random.Generator], np.ndarray]
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Region:
    """A code region to approximate: exact function, input sampler, quality metric and the
    default quality bound; `baseline` holds the hidden widths of the published fixed topology."""

    name: str
    function: Function
    sampler: Sampler
    metric: Metric
    in_dim: int
    out_dim: int
    metric_name: str = "mean relative error"
    bound: float = 0.1
    group: int = 1
    baseline: tuple[int, ...] | None = None
    description: str = ""
    cite: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for key in ("in_dim", "out_dim", "group"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RegionError(f"region {self.name!r}: {key}={value!r} must be an int >= 1")
        if not self.bound > 0:
            raise RegionError(f"region {self.name!r}: bound={self.bound!r} must be > 0")

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """The exact outputs (N, out_dim) float64 of checked inputs (N, in_dim)."""
        x = self.check_inputs(inputs)
        y = np.asarray(self.function(x), dtype=np.float64)
        if y.ndim == 1 and self.out_dim == 1:
            y = y[:, None]
        if y.shape != (len(x), self.out_dim):
            raise RegionError(
                f"region {self.name!r} returned shape {y.shape} for {len(x)} inputs; expected "
                f"({len(x)}, {self.out_dim})"
            )
        return y

    def check_inputs(self, inputs: Any) -> np.ndarray:
        """Inputs as a finite float64 array (N, in_dim), N a multiple of `group`."""
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.in_dim or len(x) == 0:
            raise RegionError(
                f"region {self.name!r} takes inputs of shape (N, {self.in_dim}) with N >= 1, "
                f"got {x.shape}"
            )
        if len(x) % self.group:
            raise RegionError(
                f"region {self.name!r} reads inputs in groups of {self.group}; got {len(x)} rows"
            )
        if not np.isfinite(x).all():
            raise RegionError(f"region {self.name!r}: inputs contain NaN or infinity")
        return x

    def sample(self, n: int, seed: int | np.random.Generator) -> np.ndarray:
        """`n` inputs (rounded up to whole groups) drawn from the region's sampler."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise RegionError(f"region {self.name!r}: sample count {n!r} must be an int >= 1")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = -(-n // self.group) * self.group
        return self.check_inputs(self.sampler(n, rng))

    def error(self, inputs: np.ndarray, approx: np.ndarray, exact: np.ndarray | None = None):
        """The quality metric of `approx` against the exact outputs on `inputs`."""
        x = self.check_inputs(inputs)
        exact = self(x) if exact is None else exact
        a = np.asarray(approx, dtype=np.float64).reshape(len(x), -1)
        if a.shape != exact.shape:
            raise RegionError(
                f"region {self.name!r}: approximate outputs have shape {a.shape}; expected "
                f"{exact.shape}"
            )
        return float(self.metric(x, exact, a))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready description (no code)."""
        return {
            "name": self.name,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "metric": self.metric_name,
            "bound": self.bound,
            "group": self.group,
            "baseline": None if self.baseline is None else topology_text(self),
            "description": self.description,
            "cite": self.cite,
        }


def topology_text(region: Region, hidden: tuple[int, ...] | None = None) -> str:
    """`6->8->8->1` for the region's baseline (or given) hidden widths."""
    widths = region.baseline if hidden is None else hidden
    return "->".join(str(w) for w in (region.in_dim, *(widths or ()), region.out_dim))


# ---- quality metrics (AxBench's, on numpy arrays) -------------------------------------------


def mean_relative_error(exact: np.ndarray, approx: np.ndarray, floor: float = 0.1) -> float:
    """Mean of |approx - exact| / max(|exact|, floor * mean|exact| of that output): AxBench's
    average relative error, with a floor so that outputs near zero do not dominate."""
    scale = np.maximum(np.abs(exact), floor * np.abs(exact).mean(axis=0, keepdims=True))
    scale = np.where(scale > 0, scale, 1.0)
    return float(np.mean(np.abs(approx - exact) / scale))


def miss_rate(exact: np.ndarray, approx: np.ndarray) -> float:
    """Fraction of decisions (argmax over the outputs) that differ: AxBench's jmeint metric."""
    return float(np.mean(np.argmax(exact, axis=1) != np.argmax(approx, axis=1)))


def image_diff(exact: np.ndarray, approx: np.ndarray, peak: float = 255.0) -> float:
    """Root-mean-square pixel difference over the peak value: AxBench's image difference."""
    e = np.clip(exact, 0.0, peak)
    a = np.clip(approx, 0.0, peak)
    return float(np.sqrt(np.mean((a - e) ** 2)) / peak)


# ---- registry -------------------------------------------------------------------------------

REGIONS: dict[str, Region] = {}


def register_region(name: str | None = None, **settings: Any) -> Callable[[Function], Region]:
    """Decorator turning a numpy function into a registered `Region`; `settings` are Region's
    fields (sampler, metric, in_dim, out_dim, bound, ...)."""

    def decorate(function: Function) -> Region:
        region = Region(name=name or function.__name__, function=function, **settings)
        old = REGIONS.get(region.name)
        if old is not None and old.function is not function:
            same = getattr(old.function, "__qualname__", None) == function.__qualname__
            if not same or old.function.__module__ != function.__module__:
                raise RegionError(f"region {region.name!r} is already registered")
        REGIONS[region.name] = region
        return region

    return decorate


def list_regions() -> list[str]:
    """Names of the registered regions (the built-in AxBench kernels first)."""
    import axdnn.regions.axbench  # noqa: F401  (registers the built-ins)

    return list(REGIONS)


def get_region(spec: str | Region) -> Region:
    """A registered region by name, or a user one as `package.module:name` or `file.py:name`
    (a Region, or a function returning one)."""
    if isinstance(spec, Region):
        return spec
    names = list_regions()
    if not isinstance(spec, str) or not spec:
        raise RegionError(f"region {spec!r}: expected a name or module:attribute string")
    if spec in REGIONS:
        return REGIONS[spec]
    if ":" not in spec:
        raise RegionError(
            f"unknown region {spec!r}; known: {', '.join(names)}, or package.module:name / "
            "file.py:name for your own"
        )
    return _load_user_region(spec)


def _load_user_region(spec: str) -> Region:
    target, _, attr = spec.rpartition(":")
    module = _import(target, spec)
    if not hasattr(module, attr):
        raise RegionError(f"region {spec!r}: {target!r} has no attribute {attr!r}")
    found = getattr(module, attr)
    if not isinstance(found, Region) and callable(found):
        try:
            found = found()
        except Exception as err:
            raise RegionError(
                f"region {spec!r}: calling {attr}() to build it failed: {err}"
            ) from None
    if not isinstance(found, Region):
        raise RegionError(
            f"region {spec!r} is a {type(found).__name__}; expected a Region (use "
            "@register_region) or a function returning one"
        )
    return found


def _import(target: str, spec: str) -> Any:
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise RegionError(f"region {spec!r}: file {str(path)!r} does not exist")
        name = f"axdnn_user_region_{abs(hash(str(path)))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as err:
            sys.modules.pop(name, None)
            raise RegionError(f"region {spec!r}: importing {str(path)!r} failed: {err}") from err
        return module
    try:
        return importlib.import_module(target)
    except ImportError as err:
        raise RegionError(f"region {spec!r}: cannot import module {target!r} ({err})") from err
