"""A real PostgreSQL server for one test: initdb into a fresh folder, listening on a free
port of 127.0.0.1, stopped and removed afterwards. It needs the server's programs (Debian's
`postgresql` package: /usr/lib/postgresql/<version>/bin, which .ci/run installs) and the
psycopg (3) driver, which the dev extra installs; without either the test is skipped, saying
which is missing.

PostgreSQL refuses to run as root: under root the server runs as the `postgres` user the
Debian package creates, in a folder that user owns (pytest's tmp_path is private to root)."""

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _programs() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty PostgreSQL database, through psycopg."""
    programs = _programs()
    if programs is None:
        pytest.skip("no PostgreSQL server programs (apt-get install postgresql)")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("no psycopg driver (pip install -e '.[dev]')")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="vbench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(programs / "initdb"), "-D", str(data), "-A", "trust", "-U", "vbench",
            "--no-sync")
        port = _free_port()
        options = f"-k {folder} -h 127.0.0.1 -p {port} -c fsync=off"
        run(str(programs / "pg_ctl"), "-D", str(data), "-o", options, "-l",
            str(folder / "server.log"), "-w", "start")
        try:
            yield f"postgresql+psycopg://vbench@127.0.0.1:{port}/postgres"
        finally:
            run(str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
