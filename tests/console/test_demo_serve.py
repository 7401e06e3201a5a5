"""`harness demo --serve`: the demo's data stays up behind the console until Ctrl-C, with the
URL and an operator login printed; Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.console.conftest import Login, http_login

HARNESS = str(Path(sys.executable).parent / "harness")  # the one installed with these tests
LOGIN_LINE = re.compile(r"log in as (\S+) with password (\S+)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[str], str, Login]]:
    port = _free_port()
    process = subprocess.Popen(
        [HARNESS, "demo", "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        login = _read_login(process)
        yield process, f"http://127.0.0.1:{port}", login
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _read_login(process: subprocess.Popen[str]) -> Login:
    """The login the demo prints once, read from its output as a person would."""
    assert process.stdout is not None
    for line in process.stdout:
        if match := LOGIN_LINE.search(line):
            return Login(match.group(1), match.group(2))
    raise AssertionError(f"the demo ended (exit {process.wait()}) without printing a login")


def _wait_until_listening(url: str, process: subprocess.Popen[str]) -> None:
    """The login line comes just before uvicorn binds: wait for the port, not a fixed time."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"{url}/login", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)  # poll interval of the readiness check, not a synchronisation
    raise AssertionError("the console never answered")


def test_the_demo_serves_its_data_to_the_printed_login_until_ctrl_c(demo) -> None:
    process, url, login = demo
    _wait_until_listening(url, process)

    with http_login(url, login) as client:
        overview = client.get("/")
        assert overview.status_code == 200
        assert f"{login.role} (operator)" in overview.text
        runs = client.get("/runs")
        assert runs.status_code == 200 and "permits" in runs.text

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/login", timeout=2)
