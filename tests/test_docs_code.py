"""Every code block of README.md and docs/*.md runs: ```python blocks of a file in order in one
namespace, and every line of a ```bash block as a shell command, in a fresh folder holding a
copy of examples/; `make` lines run in the repository (`make -C`). Other blocks (yaml, text,
output) are not code. The one line not run is `make test`: it is this test suite."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
NOT_RUN = ("make test",)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> list[tuple[str, str]]:
    return [
        (lang, body) for lang, body in FENCE.findall(page.read_text()) if lang in ("python", "bash")
    ]


def commands(body: str) -> list[str]:
    """The shell commands of a bash block: continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in body.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        current += line.rstrip("\\").strip() + " " if line else ""
        if line and not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [c for c in lines if c and not c.startswith(NOT_RUN)]


def test_every_page_with_code_is_checked():
    assert any(blocks(p) for p in PAGES)
    assert commands("a --x 1   # note\n# only a comment\nb \\\n  --y\nmake test  # us\n") == [
        "a --x 1", "b --y",
    ]  # fmt: skip


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for lang, body in blocks(page):
            if lang == "python":
                exec(compile(body, f"{page.name} python block", "exec"), namespace)
                continue
            for command in commands(body):
                if command.startswith("make "):
                    command = f"make -C {ROOT} {command[5:]}"
                done = subprocess.run(
                    command, shell=True, env=env, capture_output=True, text=True, timeout=900
                )
                assert done.returncode == 0, (
                    f"{page.name}: `{command}` failed:\n{done.stderr[-2000:]}"
                )
    finally:
        os.chdir(cwd)
