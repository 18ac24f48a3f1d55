"""`ApproxLayer`: the one base of every approximate layer (product-table and number-format layers,
and a user's own), and the seam `approximate` converts through.

A layer kind is a class that inherits `ApproxLayer` and a torch layer (e.g. `nn.Conv2d`), builds
itself from the float layer and one typed spec part (`from_float(module, spec, name=...)`), may
observe calibration data (`start_calibration` / `finish_calibration`), and describes its
hardware to the cost model (`hardware_profile() -> axdnn.cost.HardwareProfile`). The layer name
is set once, at conversion, and names the layer in errors and reports.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import nn

from axdnn.cost.profile import HardwareProfile


class ApproxLayer:
    """Mixin base of approximate layers; combine it with the torch layer it replaces."""

    layer_name: str = ""

    @classmethod
    @abstractmethod
    def from_float(cls, module: nn.Module, spec: Any, *, name: str = "") -> ApproxLayer:
        """The approximate layer computing like `module` under `spec` (same parameters)."""

    def start_calibration(self, seed: int = 0) -> None:
        """Begin observing calibration batches (default: nothing to observe)."""
        del seed

    def finish_calibration(self) -> None:
        """Fix what calibration measured (default: nothing)."""

    @abstractmethod
    def hardware_profile(self) -> HardwareProfile:
        """What the cost model needs to price this layer."""

    @abstractmethod
    def describe(self) -> str:
        """One line for reprs and reports, e.g. `multiplier=drum:4@u8, gradient=ste`."""

    def _named(self, name: str) -> ApproxLayer:
        self.layer_name = name or type(self).__name__
        return self


__all__ = ["ApproxLayer"]
