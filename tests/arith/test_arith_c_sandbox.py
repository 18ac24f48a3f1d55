"""Hostile C models: the table is built in a child process with a time limit, a crash or a
timeout is a clear MultiplierError, and includes are confined to the model's own folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from axdnn.arith import csandbox, get_multiplier, load_c_model
from axdnn.cli import main
from axdnn.errors import MultiplierError

pytestmark = [
    pytest.mark.skipif(
        shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
    ),
    pytest.mark.timeout(60, method="thread"),
]

HEAD = "#include <stdint.h>\n#include <stdlib.h>\n"

HOSTILE = {
    "loop.c": HEAD + "uint16_t mul8u_LOOP(uint8_t a, uint8_t b) {\n"
    "    volatile int spin = 1;\n    while (spin) { }\n    return (uint16_t)(a * b);\n}\n",
    "null.c": HEAD + "uint16_t mul8u_NULL(uint8_t a, uint8_t b) {\n"
    "    volatile uint16_t *p = NULL;\n    if (a == 3) return *p;\n"
    "    return (uint16_t)(a * b);\n}\n",
    "passwd.c": '#include "/etc/passwd"\n'
    + HEAD
    + "uint16_t mul8u_PW(uint8_t a, uint8_t b) { return a * b; }\n",
    "passwd_spliced.c": '#inc\\\nlude /* hidden */ \\\n"/etc/passwd"\n'
    + HEAD
    + "uint16_t mul8u_PW(uint8_t a, uint8_t b) { return a * b; }\n",
    "linemarker.c": HEAD + '#line 1 "/etc/passwd"\n'
    "uint16_t mul8u_LM(uint8_t a, uint8_t b) { return a * ; }\n",
    "parent.c": '#include "../x.h"\n'
    + HEAD
    + "uint16_t mul8u_UP(uint8_t a, uint8_t b) { return a * b; }\n",
    "exits.c": HEAD + "uint16_t mul8u_EXIT(uint8_t a, uint8_t b) {\n"
    "    if (a == 7) exit(0);\n    return (uint16_t)(a * b);\n}\n",
}


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of hostile C models (and a header above it for the `..` include)."""
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "x.h").write_text("#define SECRET_ABOVE 1\n")
    for name, text in HOSTILE.items():
        (folder / name).write_text(text)
    monkeypatch.setattr(csandbox, "TIME_LIMIT_S", 1.5)
    return folder


def _passwd_first_line() -> str:
    try:
        return Path("/etc/passwd").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return "root:x:0:0"


def _error(spec: str) -> str:
    with pytest.raises(MultiplierError) as info:
        get_multiplier(spec)
    return str(info.value)


def test_infinite_loop_times_out(hostile):
    path = hostile / "loop.c"
    msg = _error(f"c:{path}")
    assert str(path) in msg
    assert "did not finish within 1.5 s" in msg and "TIME_LIMIT_S" in msg
    assert "\n\n" not in msg


def test_null_dereference_is_a_crash_error(hostile):
    path = hostile / "null.c"
    with pytest.raises(MultiplierError) as info:
        load_c_model(path)
    msg = str(info.value)
    assert str(path) in msg and "mul8u_NULL" in msg
    assert "crashed" in msg and "SIG" in msg
    assert "\n\n" not in msg


def test_exit_inside_the_model_is_reported(hostile):
    msg = _error(f"c:{hostile / 'exits.c'}")
    assert "exited" in msg and "before writing the whole table" in msg


@pytest.mark.parametrize("name", ["passwd.c", "passwd_spliced.c"])
def test_absolute_include_is_refused_without_leaking(hostile, name):
    path = hostile / name
    msg = _error(f"c:{path}")
    assert str(path) in msg
    assert "/etc/passwd" in msg and "absolute" in msg
    assert _passwd_first_line() not in msg
    assert "root:" not in msg


def test_parent_include_is_refused(hostile):
    msg = _error(f"c:{hostile / 'parent.c'}")
    assert "../x.h" in msg and "'..'" in msg and "own folder" in msg
    assert "SECRET_ABOVE" not in msg


def test_line_directive_cannot_show_other_files(hostile):
    msg = _error(f"c:{hostile / 'linemarker.c'}")
    assert "#line" in msg
    assert _passwd_first_line() not in msg and "root:" not in msg


def test_symlinked_header_outside_the_folder_is_refused(hostile):
    link = hostile / "sneaky.h"
    try:
        link.symlink_to("/etc/passwd")
    except OSError:
        pytest.skip("cannot create symlinks here")
    path = hostile / "sneaky.c"
    path.write_text(
        HEAD + '#include "sneaky.h"\nuint16_t mul8u_S(uint8_t a, uint8_t b) { return 0; }\n'
    )
    msg = _error(f"c:{path}")
    assert "sneaky.h" in msg and "outside" in msg
    assert _passwd_first_line() not in msg and "root:" not in msg


def test_headers_in_the_own_folder_and_standard_headers_work(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "ops.h").write_text(
        "#include <stdint.h>\n#include <stddef.h>\n#include <limits.h>\n#include <stdbool.h>\n"
        "static inline uint16_t prod(uint8_t a, uint8_t b) { return (uint16_t)(a * b); }\n"
    )
    path = tmp_path / "good.c"
    path.write_text(
        HEAD + '#include "sub/ops.h"\n'
        "uint64_t mul8u_GOOD(const uint64_t B, const uint64_t A) {\n"
        "    int avg = abs(-1); (void)avg; size_t n = sizeof(int64_t); (void)n;\n"
        "    return prod((uint8_t)A, (uint8_t)B);\n}\n"
    )
    assert get_multiplier(f"c:{path}@u8") == get_multiplier("exact@u8")


def test_compile_error_shows_only_the_models_own_lines(hostile):
    path = hostile / "broken.c"
    path.write_text(HEAD + "uint16_t mul8u_B(uint8_t a, uint8_t b) { return a * ; }\n")
    msg = _error(f"c:{path}")
    assert "compilation failed" in msg and str(path) in msg and "return a * ;" in msg
    assert "axdnn_c_" not in msg and "In file included from" not in msg  # no temporary paths


def test_compiler_output_about_other_files_is_withheld(tmp_path):
    folder = tmp_path / "models"
    stderr = (
        "In file included from /etc/passwd:1,\n"
        f"                 from {folder}/m.c:2:\n"
        "/etc/passwd:1:5: error: expected '=' before ':' token\n"
        "    1 | root:x:0:0:root:/root:/bin/bash\n"
        "      |     ^\n"
        f"{folder}/m.c:4:9: error: 'y' undeclared\n"
        "    4 |   return y;\n"
        "      |          ^\n"
        "/usr/bin/ld: cannot find -lfoo\n"
    )
    shown = csandbox.filter_compiler_output(stderr, [folder], {}, [])
    assert "root:" not in shown and "/etc/passwd" not in shown
    assert "'y' undeclared" in shown and "return y;" in shown and "cannot find -lfoo" in shown
    assert "2 messages about files outside the model's folder withheld" in shown


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("loop.c", "did not finish within"),
        ("null.c", "crashed"),
        ("passwd.c", "absolute"),
        ("parent.c", "'..'"),
    ],
)
def test_cli_show_reports_hostile_models(hostile, capsys, name, needle):
    code, out, err = _cli(capsys, "multipliers", "show", f"c:{hostile / name}")
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert needle in err and str(hostile / name) in err
    assert "\n\n" not in err.strip()
    assert _passwd_first_line() not in err + out and "root:" not in err + out
