"""What is installed: `auto`, the errors of a forced backend and the benchmark agree on it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch
from kernels_tables import exact, random_table

from axdnn.errors import ConfigError
from axdnn.kernels import (
    ConvGeometry,
    available_backends,
    choose_backend,
    gather_cpu,
    list_backends,
    lut_conv2d,
    native,
    reference,
    triton_kernels,
)
from axdnn.kernels.dispatch import conv_problem

CPU = torch.device("cpu")
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _listed(message: str) -> list[str]:
    """The backend names a ConfigError message offers after its last colon."""
    return [name.strip() for name in message.rsplit(":", 1)[1].split(",")]


@pytest.fixture
def no_numba(monkeypatch):
    """Simulate numba not being installed (the probe the dispatcher asks)."""
    monkeypatch.setattr(gather_cpu, "available", lambda: False)


def test_available_backends_are_what_auto_chooses_from(no_numba):
    table = random_table(8, 8, 3)
    names = available_backends(table, CPU)
    assert names[0] == "auto" and "numba" not in names and "lowrank" not in names
    assert {"reference", "torch"} <= set(names)
    geom = ConvGeometry.of(3, padding=1)
    p = conv_problem((4, 16, 8, 8), (16, 16, 3, 3), geom, CPU)
    assert choose_backend(table, CPU, problem=p).name in names


def test_forcing_a_missing_numba_says_it_is_not_installed_and_lists_only_installed(no_numba):
    x = torch.randint(0, 256, (1, 2, 4, 4))
    w = torch.randint(0, 256, (2, 2, 3, 3))
    with pytest.raises(ConfigError) as info:
        lut_conv2d(x, w, exact(8, 8), ConvGeometry.of(3), backend="numba")
    message = str(info.value)
    assert "'numba' is not installed" in message and "pip install" in message
    offered = _listed(message)
    assert "numba" not in offered
    assert offered == available_backends(exact(8, 8), CPU)


def test_installed_listing_without_a_table_drops_missing_backends(no_numba):
    assert "numba" not in available_backends()
    assert "numba" in list_backends()  # still a known name (plans naming it stay valid)


def test_lowrank_refusing_a_high_rank_table_does_not_offer_itself():
    table = random_table(8, 8, 11)
    with pytest.raises(ConfigError) as info:
        choose_backend(table, CPU, "lowrank")
    message = str(info.value)
    assert re.search(r"'lowrank' cannot run a \(256, 256\) table", message)
    offered = _listed(message)
    assert "lowrank" not in offered and "auto" in offered
    assert offered == available_backends(table, CPU)
    # and every backend offered really runs it
    x = torch.randint(0, 256, (1, 2, 4, 4))
    w = torch.randint(0, 256, (2, 2, 3, 3))
    want = reference.conv2d(x, w, table, ConvGeometry.of(3))
    for name in offered:
        assert torch.equal(lut_conv2d(x, w, table, ConvGeometry.of(3), backend=name), want), name


def test_native_missing_is_reported_as_not_installed(monkeypatch):
    monkeypatch.setattr(native, "available", lambda: False)
    with pytest.raises(ConfigError, match="'native' is not installed.*compiler"):
        choose_backend(exact(8, 8), CPU, "native")
    assert "native" not in available_backends(exact(8, 8), CPU)


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_auto_remembers_its_choice_only_while_the_backend_stays_installed(monkeypatch):
    table = random_table(8, 8, 4)
    p = conv_problem((1, 16, 32, 32), (16, 16, 3, 3), ConvGeometry.of(3, padding=1), CPU)
    assert choose_backend(table, CPU, problem=p).name == "native"
    assert choose_backend(table, CPU, problem=p).name == "native"  # remembered
    monkeypatch.setattr(native, "available", lambda: False)
    assert choose_backend(table, CPU, problem=p).name != "native"


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_a_single_image_of_a_rank_one_table_runs_natively():
    """At batch 1 the low-rank path's fixed cost per call (several passes and float
    convolutions) outweighs its cheaper arithmetic; the per-call costs make auto see it."""
    drum = exact(8, 8)
    for shape in ((1, 16, 32, 32), (1, 64, 8, 8)):
        c = shape[1]
        p = conv_problem(shape, (c, c, 3, 3), ConvGeometry.of(3, padding=1), CPU, fused=True)
        assert choose_backend(drum, CPU, problem=p).name == "native", shape


def _benchmark_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            "lut_inference", BENCHMARKS / "lut_inference.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_inference_benchmark_skips_backends_that_are_not_installed(no_numba):
    bench = _benchmark_module()
    full_rank = bench.backends_for(random_table(8, 8, 2))
    assert "numba" not in full_rank and "lowrank" not in full_rank and "auto" in full_rank
    low_rank = bench.backends_for(exact(8, 8))
    assert "lowrank" in low_rank and "numba" not in low_rank


def test_forcing_triton_where_it_is_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setattr(triton_kernels, "available", lambda: False)
    x = torch.randint(0, 16, (1, 2, 4, 4))
    w = torch.randint(0, 16, (2, 2, 3, 3))
    with pytest.raises(ConfigError) as info:
        lut_conv2d(x, w, exact(4, 4), ConvGeometry.of(3), backend="triton")
    message = str(info.value)
    assert "'triton' is not installed" in message and "pip install 'axdnn[gpu]'" in message
    assert "triton" not in _listed(message) and "triton" not in available_backends()
    assert not triton_kernels.supports(exact(4, 4), torch.device("cuda"))


def test_triton_on_cpu_tensors_outside_the_interpreter_is_refused(monkeypatch):
    monkeypatch.setattr(triton_kernels, "available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ConfigError, match="'triton' cannot run a \\(16, 16\\) table on device cpu"):
        choose_backend(exact(4, 4), CPU, "triton")
    assert "triton" not in available_backends(exact(4, 4), CPU)


def test_gpu_benchmark_lists_the_backends_that_run_on_cuda(monkeypatch):
    monkeypatch.setattr(triton_kernels, "available", lambda: True)
    bench = _benchmark_module()
    assert bench.backends_for(random_table(8, 8, 2), "cuda") == ["triton", "torch", "auto"]
    assert bench.backends_for(exact(8, 8), "cuda") == ["triton", "lowrank", "torch", "auto"]
    monkeypatch.setattr(triton_kernels, "available", lambda: False)
    assert bench.backends_for(random_table(8, 8, 2), "cuda") == ["torch", "auto"]
