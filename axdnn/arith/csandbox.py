"""Tabulating C multiplier models out of process: the model is compiled into a small standalone
program that writes the product table, run in a child process with a time limit, so that an
endless loop or a crash in the model is an error message and not a hung or dead axdnn.

The compiler sees only the model's own folder and a few tiny standard headers axdnn provides
(`-nostdinc`); `#include`s are checked before compiling, and compiler output that points at files
outside the folder is withheld, so a model cannot make axdnn show another file's content.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from axdnn.cbuild import BuildFailure, c_compiler
from axdnn.errors import MultiplierError

TIME_LIMIT_S = 10.0
"""Seconds the child process may take to tabulate a C model before it is stopped."""
COMPILE_TIME_LIMIT_S = 120.0
"""Seconds the compiler may take on a C model."""

_GUARD = "#ifndef AXDNN_{0}_H\n#define AXDNN_{0}_H\n{1}#endif\n"
_SIZE_T = (
    "#ifndef AXDNN_SIZE_T\n#define AXDNN_SIZE_T\ntypedef __SIZE_TYPE__ size_t;\n#endif\n"
    "#ifndef NULL\n#define NULL ((void *)0)\n#endif\n"
)
_INTS = "".join(
    f"typedef __INT{n}_TYPE__ int{n}_t;\ntypedef __UINT{n}_TYPE__ uint{n}_t;\n"
    f"typedef __INT_LEAST{n}_TYPE__ int_least{n}_t;\n"
    f"typedef __UINT_LEAST{n}_TYPE__ uint_least{n}_t;\n"
    f"typedef __INT_FAST{n}_TYPE__ int_fast{n}_t;\ntypedef __UINT_FAST{n}_TYPE__ uint_fast{n}_t;\n"
    f"#define INT{n}_MAX __INT{n}_MAX__\n#define INT{n}_MIN (-INT{n}_MAX - 1)\n"
    f"#define UINT{n}_MAX __UINT{n}_MAX__\n"
    f"#define INT{n}_C(c) __INT{n}_C(c)\n#define UINT{n}_C(c) __UINT{n}_C(c)\n"
    for n in (8, 16, 32, 64)
) + (
    "typedef __INTPTR_TYPE__ intptr_t;\ntypedef __UINTPTR_TYPE__ uintptr_t;\n"
    "typedef __INTMAX_TYPE__ intmax_t;\ntypedef __UINTMAX_TYPE__ uintmax_t;\n"
    "#define INTPTR_MAX __INTPTR_MAX__\n#define INTPTR_MIN (-INTPTR_MAX - 1)\n"
    "#define UINTPTR_MAX __UINTPTR_MAX__\n#define INTMAX_MAX __INTMAX_MAX__\n"
    "#define INTMAX_MIN (-INTMAX_MAX - 1)\n#define UINTMAX_MAX __UINTMAX_MAX__\n"
    "#define SIZE_MAX __SIZE_MAX__\n#define PTRDIFF_MAX __PTRDIFF_MAX__\n"
    "#define PTRDIFF_MIN (-PTRDIFF_MAX - 1)\n"
    "#define INTMAX_C(c) __INTMAX_C(c)\n#define UINTMAX_C(c) __UINTMAX_C(c)\n"
)
HEADERS: dict[str, str] = {
    "stdint.h": _GUARD.format("STDINT", _INTS),
    "inttypes.h": _GUARD.format("INTTYPES", '#include "stdint.h"\n'),
    "stddef.h": _GUARD.format(
        "STDDEF",
        _SIZE_T + "typedef __PTRDIFF_TYPE__ ptrdiff_t;\n#ifndef __cplusplus\n"
        "typedef __WCHAR_TYPE__ wchar_t;\n#endif\n"
        "#define offsetof(t, m) __builtin_offsetof(t, m)\n",
    ),
    "stdbool.h": _GUARD.format(
        "STDBOOL",
        "#define bool _Bool\n#define true 1\n#define false 0\n"
        "#define __bool_true_false_are_defined 1\n",
    ),
    "limits.h": _GUARD.format(
        "LIMITS",
        "#define CHAR_BIT __CHAR_BIT__\n#define SCHAR_MAX __SCHAR_MAX__\n"
        "#define SCHAR_MIN (-SCHAR_MAX - 1)\n#define UCHAR_MAX (SCHAR_MAX * 2 + 1)\n"
        "#ifdef __CHAR_UNSIGNED__\n#define CHAR_MIN 0\n#define CHAR_MAX UCHAR_MAX\n#else\n"
        "#define CHAR_MIN SCHAR_MIN\n#define CHAR_MAX SCHAR_MAX\n#endif\n"
        "#define SHRT_MAX __SHRT_MAX__\n#define SHRT_MIN (-SHRT_MAX - 1)\n"
        "#define USHRT_MAX (SHRT_MAX * 2 + 1)\n#define INT_MAX __INT_MAX__\n"
        "#define INT_MIN (-INT_MAX - 1)\n#define UINT_MAX (INT_MAX * 2U + 1U)\n"
        "#define LONG_MAX __LONG_MAX__\n#define LONG_MIN (-LONG_MAX - 1L)\n"
        "#define ULONG_MAX (LONG_MAX * 2UL + 1UL)\n#define LLONG_MAX __LONG_LONG_MAX__\n"
        "#define LLONG_MIN (-LLONG_MAX - 1LL)\n#define ULLONG_MAX (LLONG_MAX * 2ULL + 1ULL)\n",
    ),
    "stdlib.h": _GUARD.format(
        "STDLIB",
        _SIZE_T + "#define EXIT_SUCCESS 0\n#define EXIT_FAILURE 1\n#define RAND_MAX 2147483647\n"
        "int abs(int);\nlong labs(long);\nlong long llabs(long long);\n"
        "void *malloc(size_t);\nvoid *calloc(size_t, size_t);\nvoid *realloc(void *, size_t);\n"
        "void free(void *);\nvoid exit(int) __attribute__((noreturn));\n"
        "void abort(void) __attribute__((noreturn));\nint atoi(const char *);\n"
        "long atol(const char *);\nlong strtol(const char *, char **, int);\n"
        "int rand(void);\nvoid srand(unsigned);\n"
        "void qsort(void *, size_t, size_t, int (*)(const void *, const void *));\n",
    ),
    "string.h": _GUARD.format(
        "STRING",
        _SIZE_T + "void *memcpy(void *, const void *, size_t);\n"
        "void *memmove(void *, const void *, size_t);\nvoid *memset(void *, int, size_t);\n"
        "int memcmp(const void *, const void *, size_t);\nsize_t strlen(const char *);\n",
    ),
}
"""The standard headers a C model may include (EvoApprox models use stdint.h and stdlib.h)."""

# ---- include checks -------------------------------------------------------------------------

_SPLICE_RE = re.compile(r"\\[ \t\v\f]*\r?\n")
_TOKEN_RE = re.compile(
    r"//[^\n]*|/\*.*?(?:\*/|\Z)|\"(?:\\.|[^\"\\\n])*(?:\"|$)|'(?:\\.|[^'\\\n])*(?:'|$)",
    re.S | re.M,
)
_DIRECTIVE_RE = re.compile(r"(?<!#)(?:#|%:)(?!#)[ \t\v\f]*([A-Za-z_]\w*|\d+)")
_HEADER_RE = re.compile(r"[ \t\v\f]*(?:\"([^\"\n]*)\"|<([^>\n]*)>)")
_RISKY = re.compile(r"\?\?[=/'()!<>-]|(?<![\w])(?:u8|u|U|L)?R\"")
_REFUSED_DIRECTIVES = {
    "include_next": "#include_next searches directories outside the model's folder",
    "import": "#import is refused; use #include",
    "embed": "#embed is refused; a C model has no use for embedded files",
    "line": "#line is refused: it renames the source file in compiler messages, which could "
    "make them show lines of another file",
}


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _scan_source(text: str) -> list[tuple[int, str, str]]:
    """Dangerous preprocessing directives in `text`: (line, directive, rest of its line).

    Conservative: lines are spliced and comments blanked as the preprocessor does, then every
    `#include`-like token anywhere (not only at a line start) is reported."""
    parts = _SPLICE_RE.split(text)
    spliced = "".join(parts)
    bounds = list(itertools.accumulate(len(p) for p in parts[:-1]))  # where splices were
    cleaned = _TOKEN_RE.sub(
        lambda m: m.group(0) if m.group(0)[0] in "\"'" else " " * len(m.group(0)), spliced
    )
    found = []
    for m in _DIRECTIVE_RE.finditer(cleaned):
        name = m.group(1)
        if name in ("include", "include_next", "import", "embed", "line") or name.isdigit():
            line = _line_of(spliced, m.start()) + bisect.bisect_right(bounds, m.start())
            found.append((line, name, cleaned[m.end() :].split("\n", 1)[0]))
    return found


def _refuse(where: str, what: str, folder: Path) -> MultiplierError:
    return MultiplierError(
        f"{where}: {what}; a C model may include only files in its own folder {folder} (by a "
        "relative path without '..') and the standard headers axdnn provides "
        f"({', '.join(HEADERS)})"
    )


def check_includes(path: Path) -> None:
    """Refuse includes that could reach outside `path`'s folder (absolute or `..` paths,
    computed includes, symlinks that leave the folder, #include_next, #line), in `path` and in
    every header of the folder it includes."""
    folder = path.parent.resolve()
    pending, seen = [path.resolve()], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        label = str(path) if current == path.resolve() else f"{path} (via {current.name})"
        try:
            text = current.read_text(errors="replace")
        except OSError as exc:
            raise MultiplierError(f"C model {label}: cannot read: {exc.strerror}") from None
        risky = _RISKY.search(text)
        if risky:
            what = "trigraphs" if risky.group(0).startswith("??") else "raw string literals"
            raise MultiplierError(
                f"C model {label}, line {_line_of(text, risky.start())}: {what} are refused "
                "(they would hide what the file includes from axdnn's include check)"
            )
        for line, name, rest in _scan_source(text):
            where = f"C model {label}, line {line}"
            if name.isdigit():
                raise MultiplierError(
                    f"{where}: line markers ('# {name} \"file\"') are refused: they rename the "
                    "source file in compiler messages, which could make them show another file"
                )
            if name in _REFUSED_DIRECTIVES:
                raise MultiplierError(f"{where}: {_REFUSED_DIRECTIVES[name]}")
            m = _HEADER_RE.match(rest)
            if not m:
                raise _refuse(
                    where,
                    f'#include {rest.strip()[:60]!r} does not name a file as "name.h" or '
                    "<name.h>; computed includes are refused",
                    folder,
                )
            quoted = m.group(1) is not None
            target = m.group(1) if quoted else m.group(2)
            shown = f'"{target}"' if quoted else f"<{target}>"
            parts = re.split(r"[\\/]+", target)
            if not target.strip():
                raise _refuse(where, f"#include {shown} names no file", folder)
            if target.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", target):
                raise _refuse(where, f"#include {shown} is refused: an absolute path", folder)
            if ".." in parts:
                raise _refuse(
                    where,
                    f"#include {shown} is refused: '..' leaves the model's own folder",
                    folder,
                )
            dirs = ([current.parent] if quoted else []) + [folder]
            for d in dirs:
                candidate = d / target
                if candidate.exists():
                    resolved = candidate.resolve()
                    if not resolved.is_relative_to(folder):
                        raise _refuse(
                            where,
                            f"#include {shown} is refused: it resolves to a file outside the "
                            "model's folder (a symbolic link?)",
                            folder,
                        )
                    if not resolved.is_file():
                        raise _refuse(where, f"#include {shown} is not a file", folder)
                    pending.append(resolved)
                    break
            else:
                if target not in HEADERS:
                    raise _refuse(
                        where,
                        f"#include {shown} was not found in the model's folder nor among the "
                        "standard headers axdnn provides",
                        folder,
                    )


# ---- compiler output ------------------------------------------------------------------------

_LOCATION_RE = re.compile(
    r"^(?:In file included from |\s+from )?(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::\d+)?[:,]"
)
_EXCERPT_RE = re.compile(r"^\s*(?:\d+\s*)?\|")


def filter_compiler_output(
    stderr: str, allowed: list[Path], renames: dict[str, str], hidden: list[str]
) -> str:
    """Compiler messages with every diagnostic about a file outside `allowed` folders withheld
    (with its source excerpt), paths in `renames` replaced and lines naming `hidden` paths
    dropped."""
    keep, withheld, skipping = [], 0, False
    roots = [str(a) for a in allowed]
    for line in stderr.splitlines():
        if not line.strip():
            continue
        if any(h in line for h in hidden):
            skipping = False
            continue
        m = _LOCATION_RE.match(line)
        if m:
            file = m.group("file")
            ok = file.startswith("<") or any(
                os.path.normpath(os.path.join(roots[0], file)).startswith(r + os.sep) for r in roots
            )
            skipping = not ok
            if skipping:
                withheld += 1
                continue
        elif skipping and (_EXCERPT_RE.match(line) or line.startswith(" ")):
            continue
        else:
            skipping = False
        for old, new in renames.items():
            line = line.replace(old, new)
        keep.append(line)
    if withheld:
        keep.append(f"({withheld} messages about files outside the model's folder withheld)")
    text = "\n".join(keep)
    return text if len(text) <= 4000 else text[:4000] + "\n(further messages cut)"


# ---- building and running -------------------------------------------------------------------

_WRAP = """#include "src/{source}"
void axdnn_fill_table(long long *out) {{
    long long na = {na}, nb = {nb};
    for (long long ia = 0; ia < na; ++ia) {{
        long long va = ({asig} && ia >= na / 2) ? ia - na : ia;
        for (long long ib = 0; ib < nb; ++ib) {{
            long long vb = ({bsig} && ib >= nb / 2) ? ib - nb : ib;
            out[ia * nb + ib] = (long long) {func}(({atype}) va, ({btype}) vb);
        }}
    }}
}}
"""
_MAIN = """extern long write(int, const void *, __SIZE_TYPE__);
void axdnn_fill_table(long long *out);
static long long axdnn_table[{n}];
int main(int argc, char **argv) {{
    int fd = 0;
    if (argc < 2) return 101;
    for (const char *c = argv[1]; *c; ++c) fd = fd * 10 + (*c - '0');
    axdnn_fill_table(axdnn_table);
    const char *p = (const char *) axdnn_table;
    __SIZE_TYPE__ left = sizeof axdnn_table;
    while (left) {{
        long w = write(fd, p, left);
        if (w <= 0) return 102;
        p += w;
        left -= (__SIZE_TYPE__) w;
    }}
    return 0;
}}
"""
_SIGNAL_HINTS = {
    "SIGSEGV": "an invalid memory access, such as a NULL pointer dereference",
    "SIGBUS": "an invalid memory access",
    "SIGFPE": "an arithmetic fault, such as a division by zero",
    "SIGILL": "an illegal instruction (compilers emit one for code that always crashes, such "
    "as a NULL dereference)",
    "SIGABRT": "abort() or a failed assertion",
    "SIGKILL": "the process was killed, perhaps for running out of memory",
}
_COMPILER_ENV_DROP = ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH")


def _compile(path: Path, tmp: Path, sources: list[Path], exe: Path) -> None:
    folder = path.parent.resolve()
    try:
        cc = c_compiler()
    except BuildFailure as exc:
        raise MultiplierError(f"C model {path}: {exc}") from None
    cmd = [
        *cc, "-O1", "-fdiagnostics-color=never", "-nostdinc", "-I", str(folder),
        "-I", str(tmp / "include"), "-o", str(exe), *map(str, sources),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _COMPILER_ENV_DROP}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, errors="replace", timeout=COMPILE_TIME_LIMIT_S,
            env=env, cwd=tmp, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise MultiplierError(
            f"C model {path}: the compiler did not finish within {COMPILE_TIME_LIMIT_S:g} s "
            "(raise axdnn.arith.csandbox.COMPILE_TIME_LIMIT_S for a model that is just large)"
        ) from None
    except OSError as exc:
        raise MultiplierError(f"C model {path}: cannot run the compiler {cc[0]!r}: {exc}") from None
    if proc.returncode != 0:
        renames = {
            str(tmp / "src" / path.name): str(path),
            str(tmp / "include") + os.sep: "<axdnn>/",
            str(tmp / "axdnn_main.c"): "<axdnn driver>",
            str(tmp / "axdnn_wrap.c"): "<axdnn driver>",
            "axdnn_wrap.c:": f"{path.name}:",
        }
        hidden = [f"In file included from {tmp / 'axdnn_wrap.c'}"]
        shown = filter_compiler_output(proc.stderr, [folder, tmp], renames, hidden)
        raise MultiplierError(
            f"C model {path}: compilation failed ({Path(cc[0]).name} exited with "
            f"{proc.returncode}):\n{shown}"
        )


def _run(path: Path, tmp: Path, exe: Path, func: str, tag: str, count: int) -> np.ndarray:
    expected = count * 8
    out_path = tmp / "table.bin"
    with open(out_path, "w+b") as fh:
        fd = fh.fileno()
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                [str(exe), str(fd)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=(fd,), cwd=tmp, start_new_session=posix,
            )  # fmt: skip
        except OSError as exc:
            raise MultiplierError(
                f"C model {path}: cannot start the tabulating program: {exc}"
            ) from None
        try:
            rc = proc.wait(timeout=TIME_LIMIT_S)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if posix:  # also whatever the model forked
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        what = f"C model {path}: {func}"
        if rc is None:
            raise MultiplierError(
                f"{what} did not finish within {TIME_LIMIT_S:g} s while axdnn tabulated its "
                f"{count} products ({tag} operands) in a child process, which was stopped (an "
                "endless loop?); raise axdnn.arith.csandbox.TIME_LIMIT_S for a model that is "
                "just slow"
            )
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            hint = _SIGNAL_HINTS.get(name, signal.strsignal(-rc) or "a fatal signal")
            raise MultiplierError(
                f"{what} crashed with {name} while axdnn tabulated it ({tag} operands) in a "
                f"child process: {hint}; axdnn itself is unaffected, fix the model"
            )
        fh.seek(0)
        data = fh.read()
    if rc != 0 or len(data) != expected:
        raise MultiplierError(
            f"{what}: the tabulating child process exited with status {rc} before writing the "
            f"whole table ({len(data)} of {expected} bytes); does {func} call exit() or write to "
            "files?"
            if len(data) < expected or rc != 0
            else f"{what}: the tabulating child process wrote {len(data)} bytes, expected "
            f"{expected}"
        )
    return np.frombuffer(data, dtype=np.int64).copy()


def tabulate_in_child(
    path: Path,
    func: str,
    param_types: tuple[str, str],
    a_bits: int,
    b_bits: int,
    a_signed: bool,
    b_signed: bool,
    tag: str,
) -> np.ndarray:
    """The products of C function `func` in `path` for every operand pair, shape
    (2**a_bits, 2**b_bits) int64, computed by a standalone program run with a time limit."""
    check_includes(path)
    with tempfile.TemporaryDirectory(prefix="axdnn_c_") as tmpname:
        tmp = Path(tmpname).resolve()
        (tmp / "src").mkdir()
        (tmp / "include").mkdir()
        for name, text in HEADERS.items():
            (tmp / "include" / name).write_text(text)
        safe = path.name if re.fullmatch(r"[\w.+-]+", path.name) else "model.c"
        (tmp / "src" / safe).write_bytes(path.read_bytes())
        na, nb = 1 << a_bits, 1 << b_bits
        wrap, main = tmp / "axdnn_wrap.c", tmp / "axdnn_main.c"
        wrap.write_text(
            _WRAP.format(
                source=safe, na=na, nb=nb, asig=int(a_signed), bsig=int(b_signed), func=func,
                atype=param_types[0], btype=param_types[1],
            )
        )  # fmt: skip
        main.write_text(_MAIN.format(n=na * nb))
        exe = tmp / "axdnn_table"
        _compile(path, tmp, [wrap, main], exe)
        values = _run(path, tmp, exe, func, tag, na * nb)
    return values.reshape(na, nb)
