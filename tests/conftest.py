"""Shared fixtures: the digits data and a small trained digits CNN (trained once per session; the
inject and analysis tests share it; cached in the session temp directory), and a fixed small
subset of the real Fashion-MNIST files.

PostgreSQL (`postgres_url`, used by the campaign store's and the exploration studies' tests) is
AXDNN_TEST_POSTGRES_URL when set; otherwise a throwaway server started here for the session:
`initdb` into a temporary directory, run as the `postgres` (else `nobody`) user when we are root
(the server refuses to run as root), listening only on 127.0.0.1 at a free port and on a socket
in that directory, trust authentication, fsync off; stopped and deleted at the end."""

import glob
import gzip
import importlib.util
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from axdnn.data import load_dataset
from axdnn.data.fashion import DEBIAN_DIR, INSTALL_HINT
from axdnn.data.idx import IMAGE_MAGIC, LABEL_MAGIC, MNIST_FILES, read_idx
from axdnn.inject.store import POSTGRES_DRIVERS
from axdnn.models import build_model
from axdnn.train import TrainConfig, fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "axdnn_digits_cnn_e8_seed0.pt"
    torch.manual_seed(0)
    model = build_model("digits_cnn", 1, 10)
    if cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
    else:
        fit(model, digits.train, digits.val, 10, TrainConfig(epochs=8, seed=0))
        torch.save(model.state_dict(), cache)
    return model.eval()


FASHION_SUBSET = {"train": 2000, "test": 1000}
"""The first 2,000 training and 1,000 test images: real data, small enough for a fast suite."""


def _write_idx(path, array, magic):
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))


@pytest.fixture(scope="session")
def fashion_dir():
    """The Debian Fashion-MNIST folder; tests that need the real files skip without it (CI
    installs it: .ci/run)."""
    if not (DEBIAN_DIR / (MNIST_FILES["train"][0] + ".gz")).is_file():
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_DIR} ({INSTALL_HINT})")
    return DEBIAN_DIR


@pytest.fixture(scope="session")
def fashion_subset(fashion_dir, tmp_path_factory):
    """A folder holding the first FASHION_SUBSET images of each split of the real files, in the
    same gzipped IDX layout, for `fashion-mnist:DIR` specs."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    for split, (image_name, label_name) in MNIST_FILES.items():
        count = FASHION_SUBSET[split]
        images = read_idx(fashion_dir / (image_name + ".gz"), IMAGE_MAGIC)[:count]
        labels = read_idx(fashion_dir / (label_name + ".gz"), LABEL_MAGIC)[:count]
        _write_idx(folder / (image_name + ".gz"), images, IMAGE_MAGIC)
        _write_idx(folder / (label_name + ".gz"), labels, LABEL_MAGIC)
    return folder


# --- PostgreSQL ----------------------------------------------------------------------------

SUPERUSER, DATABASE = "axdnn", "axdnn_test"


def _bindir() -> Path | None:
    """The newest PostgreSQL server's bin directory (Debian layout first, then PATH)."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", Path(path).parent.parent.name))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A PostgreSQL cluster in `root`, run by `user` (None: ourselves)."""

    def __init__(self, bindir: Path, root: Path, user: pwd.struct_passwd | None) -> None:
        self.bindir, self.root, self.user = bindir, root, user
        self.data, self.log, self.port = root / "data", root / "server.log", 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
        env["HOME"] = str(self.root)
        ids = {}
        if self.user is not None:
            ids = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            **ids,
        )

    def start(self) -> None:
        done = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        for _attempt in range(5):  # a free port can be taken between the probe and the start
            self.port = _free_port()
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(
                    f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
            if done.returncode == 0:
                return
        raise RuntimeError(f"pg_ctl start failed: {done.stdout}{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database URL for the session (see the module docstring); skips if none."""
    given = os.environ.get("AXDNN_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if not any(importlib.util.find_spec(d) for d in POSTGRES_DRIVERS):
        pytest.skip(f"no PostgreSQL driver ({', '.join(POSTGRES_DRIVERS)}); pip install -e .[dev]")
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); apt-get install postgresql")
    user = _run_as()
    # under /tmp when dropping to another user: $TMPDIR may sit below a directory it cannot enter
    base = "/tmp" if user is not None and os.path.isdir("/tmp") else None
    root = Path(tempfile.mkdtemp(prefix="axdnn-pg-", dir=base))
    server = _Server(bindir, root, user)
    try:
        root.chmod(0o755)  # the server user must reach its data and socket directory
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        server.start()
        from sqlalchemy import create_engine, text

        from axdnn.inject.store import database_url

        admin = create_engine(database_url(server.url("postgres")), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {DATABASE}"))
        admin.dispose()
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
