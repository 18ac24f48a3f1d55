"""Unpickling restricted to numpy arrays: data files are untrusted, and a plain pickle.load can run
arbitrary code, so only the globals numpy needs to rebuild an ndarray are allowed."""

from __future__ import annotations

import pickle
from pathlib import Path

from axdnn.errors import DataError

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),  # numpy scalars, e.g. labels saved as np.int64
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles of arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # numpy pickles with protocol <= 2 encode raw bytes as latin-1 text
    }
)


class ArrayUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` permits only numpy array reconstruction."""

    def __init__(self, file, path: Path, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.path = path

    def find_class(self, module: str, name: str):  # noqa: D102 - see class docstring
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(
            f"{self.path}: refusing to unpickle {module}.{name}; only numpy arrays, lists, dicts, "
            "numbers and strings are allowed in dataset pickles"
        )


def load_array_pickle(path: Path) -> object:
    """Unpickle `path` (with encoding='bytes', as Python-2 dataset pickles need) safely."""
    try:
        with open(path, "rb") as handle:
            return ArrayUnpickler(handle, path, encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:  # any malformed pickle: report the file, not the parser's internals
        reason = f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: not a readable pickle file ({reason})") from exc
