"""Running the real `harness` command in a subprocess with an environment the test controls,
and a stand-in PostgreSQL that asks for a password and refuses it (the test server may trust
every local connection, so a real one cannot be made to refuse)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# variables a test sets itself: none leaks in from the shell that runs the suite
OWN_PREFIXES = (
    "DATABASE_URL",
    "PG",
    "S3_",
    "AWS_",
    "DETRACK_",
    "PERMITS_",
    "SHIPMENTS_",
    "SMTP_",
    "ALERT_",
    "DEAD_LETTER_",
    "DI_",
    "PGFERRY_SOURCE_",
    "FILES_",
    "PGFERRY_FILES_",
)


def harness_command() -> list[str]:
    """The installed entry point beside this interpreter (.venv/bin/harness)."""
    script = Path(sys.executable).parent / "harness"
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness"]


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    return subprocess.run(
        [*harness_command(), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


@contextmanager
def password_refusing_server() -> Iterator[int]:
    """A loopback server speaking the PostgreSQL wire protocol as a server whose pg_hba.conf
    demands a password does with a wrong one: it asks for the password, reads it, and answers
    FATAL 28P01 "password authentication failed". Yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                _refuse(client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def _refuse(client: socket.socket) -> None:
    try:
        while True:
            length, code = struct.unpack("!ii", _read(client, 8))
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")  # no encryption here: go on in the clear
                continue
            startup = _read(client, length - 8).split(b"\0")
            user = startup[startup.index(b"user") + 1].decode() if b"user" in startup else "?"
            client.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            _, size = struct.unpack("!ci", _read(client, 5))
            _read(client, size - 4)  # the password message
            fields = [
                b"SFATAL",
                b"VFATAL",
                b"C28P01",
                f'Mpassword authentication failed for user "{user}"'.encode(),
            ]
            body = b"".join(field + b"\0" for field in fields) + b"\0"
            client.sendall(b"E" + struct.pack("!i", len(body) + 4) + body)
            return
    except (OSError, ValueError, struct.error):
        return


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            raise OSError("client went away")
        data += chunk
    return data
