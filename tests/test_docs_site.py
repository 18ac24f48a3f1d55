"""The API reference site builds with no warning (`mkdocs build --strict`): every page in the
nav exists, every cross-reference resolves, every documented module imports statically."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("mkdocs") is None, reason="the docs extra is not installed")  # fmt: skip
def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={"PATH": str(Path(sys.executable).parent), "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "nn" / "index.html").read_text()
    assert "approximate" in api and "MultiplierSpec" in api  # docstrings made it in
