"""The native backend's builds: its AVX-512, AVX2 and portable code paths are each exact, and a
machine without a compiler falls back to the other backends with a clear message."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kernels_native_checks import check_native

from axdnn.errors import ConfigError
from axdnn.kernels import ConvGeometry, list_backends, lut_conv2d, native

HERE = Path(__file__).parent


@pytest.mark.skipif(not native.available(), reason="no C compiler")
@pytest.mark.parametrize("kernel", [native.SLAB, native.DIRECT, native.COLUMN])
def test_each_native_kernel_is_exact(monkeypatch, kernel):
    """The slab, direct and column kernels (normally chosen by cost) each match the reference."""
    monkeypatch.setattr(native, "FORCE_KERNEL", kernel)
    check_native(seed=kernel)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 instruction-set variants")
@pytest.mark.skipif(not native.available(), reason="no C compiler")
def _has_avx512bw() -> bool:
    try:
        return "avx512bw" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# x86-64-v4 has AVX-512BW without VBMI: the word-permute column kernel instead of byte planes
VARIANTS = [("x86-64", 4), ("x86-64-v3", 8)] + [("x86-64-v4", 16)] * _has_avx512bw()


@pytest.mark.parametrize("arch,lanes", VARIANTS)
def test_every_instruction_set_variant_is_exact(tmp_path, arch, lanes):
    env = {**os.environ, "AXDNN_NATIVE_ARCH": arch, "AXDNN_CACHE_DIR": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(HERE / "kernels_native_checks.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(lanes), "ok"]


def test_without_a_compiler_the_backend_is_unavailable_and_auto_still_works(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("AXDNN_CACHE_DIR", str(tmp_path))
    native._library.cache_clear()
    try:
        assert not native.available()
        assert "native" in list_backends()  # registered, but never chosen
        x = torch.randint(0, 256, (1, 2, 4, 4))
        w = torch.randint(0, 256, (3, 2, 3, 3))
        table = torch.arange(256 * 256, dtype=torch.int32).reshape(256, 256)
        got = lut_conv2d(x, w, table, ConvGeometry.of(3))
        assert got.shape == (1, 3, 2, 2)
        with pytest.raises(ConfigError, match="native"):
            lut_conv2d(x, w, table, ConvGeometry.of(3), backend="native")
    finally:
        native._library.cache_clear()
