"""Compiling C into shared libraries with the system compiler ($CC, default `cc`), shared by the
C multiplier importer and the native kernels."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path


class BuildFailure(Exception):
    """The compiler is missing or rejected the source; the message says which and why."""


def c_compiler() -> list[str]:
    """The C compiler command ($CC split like a shell would, else `cc`)."""
    cc = shlex.split(os.environ.get("CC", "").strip() or "cc")
    if shutil.which(cc[0]) is None:
        raise BuildFailure(
            f"no C compiler: {cc[0]!r} (from $CC or the default 'cc') was not found on PATH; "
            "install gcc or clang, or set CC to a compiler"
        )
    return cc


def compile_shared(sources: list[Path], output: Path, flags: list[str]) -> None:
    """Compile `sources` into the shared library `output` with `flags` (-shared -fPIC added)."""
    cmd = [*c_compiler(), *flags, "-shared", "-fPIC", "-o", str(output), *map(str, sources)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailure(f"running {' '.join(cmd)} failed: {exc}") from None
    if proc.returncode != 0:
        raise BuildFailure(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr.strip()[-4000:]}"
        )


def compiler_identity() -> str:
    """`cc --version`'s first line (part of cache keys: another compiler, another build)."""
    try:
        proc = subprocess.run(
            [*c_compiler(), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailure(f"cannot run the C compiler: {exc}") from None
    return (proc.stdout.splitlines() or [""])[0]
