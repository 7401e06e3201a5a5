"""Connections: the console's own (DATABASE_URL, for the shared snapshot), and each logged-in
user's, opened AS that user with the password they typed, so every page query has exactly the
privileges the database grants that login.

Per user, a tiny pool (UserConnections): at most MAX_IDLE idle connections are kept for the
session's lifetime and reused; more are opened when requests overlap and closed afterwards.
Every connection gets statement_timeout at open, and runs in autocommit (nothing stays open
between requests). Nothing here logs or prints a password.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness import connections
from harness.console.settings import ConsoleSettings

MAX_IDLE = 2  # idle connections kept per session
IDLE_CLOSE_SECONDS = 300  # an idle connection unused this long is closed by the sweep
# parameters of DATABASE_URL that would authenticate a user as the console's account
_SERVICE_CREDENTIALS = ("password", "passfile", "sslcert", "sslkey", "sslpassword")


def user_conninfo(settings: ConsoleSettings, role: str, password: str) -> str:
    """DATABASE_URL's host, port, database and TLS options, as ``role`` with ``password``.
    The console account's own credentials are left out (password, passfile, client certificate),
    so a login can only succeed on the user's own password."""
    params = {
        k: v
        for k, v in conninfo_to_dict(settings.database_url).items()
        if k not in _SERVICE_CREDENTIALS
    }
    params |= {
        "user": role,
        "password": password,
        "passfile": "/dev/null",  # never ~/.pgpass (the console account's)
        "connect_timeout": str(settings.connect_timeout_seconds),
        "application_name": "pgferry-console",
    }
    return make_conninfo("", **params)


def service_conninfo(settings: ConsoleSettings) -> str:
    return make_conninfo(
        settings.database_url,
        connect_timeout=str(settings.connect_timeout_seconds),
        application_name="pgferry-console-snapshot",
    )


def open_connection(conninfo: str, settings: ConsoleSettings) -> psycopg.Connection:
    """An autocommit connection with the console's statement_timeout set."""
    connection = connections.connect(conninfo, autocommit=True)
    try:
        connection.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            [f"{settings.statement_timeout_ms}ms"],
        )
    except BaseException:
        connection.close()
        raise
    return connection


def server_checks_passwords(settings: ConsoleSettings) -> bool:
    """False when the server lets DATABASE_URL's user in with a random wrong password (trust or
    peer authentication): then anyone could log in to the console as anyone. A server that
    cannot be reached raises the connection error."""
    params = conninfo_to_dict(settings.database_url)
    role = params.get("user") or _default_user()
    wrong = "pgferry-probe-" + secrets.token_urlsafe(24)
    try:
        connection = connections.connect(user_conninfo(settings, role, wrong), autocommit=True)
    except psycopg.OperationalError as error:
        if _is_authentication_failure(error):
            return True
        raise
    connection.close()
    return False  # a wrong password was accepted


def _default_user() -> str:
    import getpass

    return getpass.getuser()


def _is_authentication_failure(error: psycopg.OperationalError) -> bool:
    message = str(error).lower()
    return "password authentication failed" in message or "authentication failed" in message


class UserConnections:
    """One session's connections, opened as its user. Thread-safe: requests run in a pool of
    threads."""

    def __init__(self, conninfo: str, settings: ConsoleSettings) -> None:
        self._conninfo = conninfo
        self._settings = settings
        self._idle: list[tuple[psycopg.Connection, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def adopt(self, connection: psycopg.Connection) -> None:
        """Keep an open connection (the one the login made) for reuse."""
        self._give_back(connection)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        connection = self._take() or open_connection(self._conninfo, self._settings)
        try:
            yield connection
        except BaseException:
            connection.close()  # its state is unknown: never reuse it
            raise
        self._give_back(connection)

    def close_idle(self, older_than: float = IDLE_CLOSE_SECONDS) -> None:
        cutoff = time.monotonic() - older_than
        with self._lock:
            stale = [c for c, at in self._idle if at < cutoff]
            self._idle = [(c, at) for c, at in self._idle if at >= cutoff]
        for connection in stale:
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _take(self) -> psycopg.Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection, _ = self._idle.pop()
            if not connection.closed and connection.pgconn.transaction_status == 0:  # IDLE
                return connection
            connection.close()

    def _give_back(self, connection: psycopg.Connection) -> None:
        healthy = not connection.closed and connection.pgconn.transaction_status == 0
        with self._lock:
            if healthy and not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()
