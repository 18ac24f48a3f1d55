"""C behavioural models: compiled with the system compiler, tabulated in one call."""

from __future__ import annotations

import shutil

import pytest

from axdnn.arith import get_multiplier, load_c_model
from axdnn.arith.importers import find_c_functions
from axdnn.errors import MultiplierError

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)

OTRUNC_C = """
#include <stdint.h>
#include <stdlib.h>
/* operand truncation: the K least-significant bits of both operands are zeroed */
#define K 3
static uint8_t drop_lsbs(uint8_t x) { return (uint8_t)(x & (0xFF << K)); }

uint16_t mul8u_OT3(const uint8_t A, uint8_t B)
{
    // exact multiply of the truncated operands
    return (uint16_t)((uint16_t)drop_lsbs(A) * drop_lsbs(B));
}
"""

SIGNED_C = """
#include <stdint.h>
int16_t mul8s_MIT(int8_t a, int8_t b) {
    int sa = a < 0, sb = b < 0;
    int x = sa ? -a : a, y = sb ? -b : b;
    if (x == 0 || y == 0) return 0;
    int ka = 31 - __builtin_clz(x), kb = 31 - __builtin_clz(y);
    int s = (x - (1 << ka)) * (1 << kb) + (y - (1 << kb)) * (1 << ka);
    int base = 1 << (ka + kb);
    int p = s < base ? base + s : 2 * s;
    return (int16_t)((sa != sb) ? -p : p);
}
"""


def test_c_operand_truncation_equals_builtin(tmp_path):
    path = tmp_path / "mul8u_ot3.c"
    path.write_text(OTRUNC_C)
    m = get_multiplier(f"c:{path}")
    assert m == get_multiplier("otrunc:3@u8")
    assert m.name == "mul8u_OT3"
    assert m.provenance["function"] == "mul8u_OT3"
    assert len(m.provenance["source_sha256"]) == 64
    assert get_multiplier(f"c:{path}:mul8u_OT3@u6") == get_multiplier("otrunc:3@u6")


def test_c_signed_model_detects_signedness(tmp_path):
    path = tmp_path / "mit.c"
    path.write_text(SIGNED_C)
    m = load_c_model(path)
    assert (m.a_signed, m.b_signed, m.a_bits) == (True, True, 8)
    assert m == get_multiplier("mitchell@s8")
    assert get_multiplier(f"c:{path}@s5") == get_multiplier("mitchell@s5")
    with pytest.raises(MultiplierError, match="int8_t"):
        get_multiplier(f"c:{path}@u8")


def test_c_compile_error_reports_compiler_output(tmp_path):
    path = tmp_path / "broken.c"
    path.write_text(
        "#include <stdint.h>\nuint16_t mul8u_BAD(uint8_t a, uint8_t b) { return a * ; }\n"
    )
    with pytest.raises(MultiplierError) as info:
        get_multiplier(f"c:{path}")
    msg = str(info.value)
    assert "compilation failed" in msg and "error" in msg and "broken.c" in msg


def test_c_no_function_and_wrong_signature(tmp_path):
    none = tmp_path / "none.c"
    none.write_text("int helper(int x) { return x; }\nstatic const int k = 3;\n")
    with pytest.raises(MultiplierError, match="no function of two integer operands"):
        get_multiplier(f"c:{none}")
    with pytest.raises(MultiplierError, match="no function named 'mul'"):
        get_multiplier(f"c:{none}:mul")
    with pytest.raises(MultiplierError, match="wrong signature"):
        get_multiplier(f"c:{none}:helper")
    ptr = tmp_path / "ptr.c"
    ptr.write_text("void mul(const float *a, float b) { }\n")
    with pytest.raises(MultiplierError, match="wrong signature"):
        get_multiplier(f"c:{ptr}:mul")


def test_c_ambiguous_functions(tmp_path):
    path = tmp_path / "two.c"
    path.write_text(
        "#include <stdint.h>\n"
        "uint16_t mul8u_A(uint8_t a, uint8_t b) { return a * b; }\n"
        "uint16_t mul8u_B(uint8_t a, uint8_t b) { return (a * b) & ~1; }\n"
        "int add(int a, int b) { return a + b; }\n"
    )
    with pytest.raises(MultiplierError, match="several candidate functions \\(mul8u_A, mul8u_B"):
        get_multiplier(f"c:{path}")
    assert get_multiplier(f"c:{path}:mul8u_A").is_exact
    assert get_multiplier(f"c:{path}?func=mul8u_B@u4").metrics().wce == 1


def test_missing_compiler(tmp_path, monkeypatch):
    path = tmp_path / "m.c"
    path.write_text(OTRUNC_C)
    monkeypatch.setenv("CC", "/nonexistent/axdnn-cc")
    with pytest.raises(MultiplierError, match="no C compiler"):
        load_c_model(path)


def test_missing_file():
    with pytest.raises(MultiplierError, match="does not exist"):
        get_multiplier("c:/nonexistent/m.c")


def test_find_c_functions_skips_control_flow():
    src = """
    #include <stdint.h>
    /* uint16_t commented(uint8_t a, uint8_t b) { } */
    unsigned int f(unsigned a, int8_t b) {
        if (a) { return 1; } else if (b) { return 2; }
        while (a) { a--; }
        return 0;
    }
    """
    fns = find_c_functions(src)
    assert [(f.name, f.ret, f.params) for f in fns] == [
        ("f", "unsigned int", ("unsigned", "int8_t"))
    ]
