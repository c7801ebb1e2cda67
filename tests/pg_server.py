"""A throwaway PostgreSQL server on loopback, for tests that need a real one.

``postgres_url`` (session fixture) finds ``initdb`` and ``pg_ctl`` (on ``$PATH``, else in
``/usr/local/bin`` or ``/usr/lib/postgresql/*/bin``), makes a temporary cluster with trust
authentication, starts it on a free port of 127.0.0.1 (its socket in the cluster's own
directory, so it touches nothing system-wide), creates the database ``paragents`` and
yields ``postgresql://postgres@127.0.0.1:PORT/paragents``.  At the end of the session the
server is stopped (``pg_ctl stop -m fast``) and the directory removed.

PostgreSQL refuses to run as root.  When the tests run as root, the cluster directory is
given to the ``postgres`` user and both commands run through ``su postgres``; as any
other user they run directly.  A missing binary or a missing ``postgres`` user fails the
tests that need the server, with a message naming what is missing.  Register the fixture
in a ``conftest.py`` with ``from pg_server import postgres_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

__all__ = ["postgres_url"]

#: Where PostgreSQL binaries are looked for after ``$PATH``.
SEARCH_DIRS = ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
#: Seconds ``pg_ctl`` waits for the server to start or stop.
WAIT_S = 60
#: The database the fixture creates.
DATABASE = "paragents"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in SEARCH_DIRS if os.access(Path(d) / name, os.X_OK)), None
    )
    if found is None:
        pytest.fail(f"PostgreSQL tests need the {name!r} binary: not on $PATH nor in {', '.join(SEARCH_DIRS)}")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner(directory: Path) -> list[str]:
    """The prefix that runs a shell command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return ["sh", "-c"]
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("PostgreSQL tests run as root need a 'postgres' user to run the server as: there is none")
    os.chown(directory, user.pw_uid, user.pw_gid)
    return ["su", "postgres", "-s", "/bin/sh", "-c"]


def _run(prefix: list[str], command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run([*prefix, shlex.join(command)], check=False, capture_output=True, text=True, timeout=WAIT_S + 30)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
        pytest.fail(f"{what} failed (status {done.returncode}):\n{done.stdout}{done.stderr}{tail}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of database ``paragents`` on a fresh PostgreSQL server, for the session."""
    with running_postgres() as url:
        yield url


@contextmanager
def running_postgres() -> Iterator[str]:
    """A fresh PostgreSQL server on a free loopback port while the block runs (benchmarks
    use it too); the URL of its database ``paragents``."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    directory = Path(tempfile.mkdtemp(prefix="paragents-pg-"))  # not under pytest's 0700 tmp tree
    try:
        prefix = _runner(directory)
        data, log, port = directory / "data", directory / "server.log", _free_port()
        _run(prefix, [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], "initdb")
        options = f"-p {port} -k {directory} -h 127.0.0.1"
        _run(prefix, [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", str(WAIT_S), "-o", options, "start"],
             "pg_ctl start", log)
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
            yield f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run(prefix, [pg_ctl, "-D", str(data), "-w", "-t", str(WAIT_S), "-m", "fast", "stop"], "pg_ctl stop", log)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
