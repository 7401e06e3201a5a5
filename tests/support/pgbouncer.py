"""A real PgBouncer (Debian's `pgbouncer`) in transaction pooling mode in front of the test
database, on a free loopback port: what many deployments put between workers and PostgreSQL.
Each transaction may run on another server connection, so session state (LISTEN, session
advisory locks, SET, server-side prepared statements) does not carry from one to the next."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.cli.support import closed_port

CONFIG = """\
[databases]
* = host={host} port={port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


@contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """PgBouncer in front of ``database_url``'s server; yields the same database's URL through
    it. The server must accept TCP connections from 127.0.0.1 for the URL's user."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    target = conninfo_to_dict(database_url)
    folder = Path(tempfile.mkdtemp(prefix="pgferry-pgbouncer-"))
    folder.chmod(0o777)  # PgBouncer refuses to run as root: it runs as nobody and writes here
    port = closed_port()  # free: PgBouncer takes it
    config = folder / "pgbouncer.ini"
    config.write_text(
        CONFIG.format(
            host=target.get("host") or "127.0.0.1",
            port=target.get("port") or 5432,
            user=target.get("user") or "postgres",
            listen_port=port,
            folder=folder,
        )
    )
    config.chmod(0o644)
    user = ["-u", _unprivileged_user(target.get("host") or "")] if os.geteuid() == 0 else []
    process = subprocess.Popen([binary, *user, str(config)], stderr=subprocess.PIPE, text=True)
    url = "postgresql://{user}@127.0.0.1:{port}/{dbname}".format(
        user=target.get("user") or "postgres", port=port, dbname=target["dbname"]
    )
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged_user(host: str) -> str:
    """Whom PgBouncer runs as under root: the owner of the server's Unix socket folder (the
    only user besides root that may connect to it), else nobody."""
    if host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    return "nobody"


def _wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"pgbouncer exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # a readiness probe: PgBouncer takes a moment to listen
