"""The console under test: the real app served by uvicorn in a thread on a free loopback port,
against a fresh database at head, and Debian's chromium driven by Playwright.

The test servers use trust authentication, so the console runs with trust_server_auth (what
`harness serve --trust-server-auth` does); logins still go through PostgreSQL as the role typed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.pg import connect

CHROMIUM_MISSING = (
    "chromium is not installed: the console's browser tests drive Debian's chromium"
    " (apt-get install chromium); Playwright's own browser download is not used"
)


@dataclass(frozen=True)
class Login:
    role: str
    password: str


@dataclass(frozen=True)
class Console:
    url: str
    app: object
    db_url: str


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(CHROMIUM_MISSING, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest):
    """screenshot(page, name): saved to $PGFERRY_SCREENSHOTS when set, else nothing written."""
    folder = os.environ.get("PGFERRY_SCREENSHOTS")

    def take(page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take


def _ensure_group(admin: psycopg.Connection, role: str) -> None:
    """The console's group roles are cluster-wide and created by revision 0010 when it is
    deployed; created here NOLOGIN when missing, and never dropped (as the migrations do)."""
    admin.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$"""
    )


@contextmanager
def login_role(server_url: str, *, member_of: str | None) -> Iterator[Login]:
    name = f"pgferry_test_console_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    with connect(server_url) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        if member_of:
            _ensure_group(admin, member_of)
            admin.execute(f"GRANT {member_of} TO {name}")
    try:
        yield Login(name, password)
    finally:
        with connect(server_url) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def viewer(server_url: str, db_url: str) -> Iterator[Login]:
    """A login role that is a member of pgferry_viewer, with exactly what revision 0010 grants
    that role (no table: views and SECURITY DEFINER functions)."""
    with login_role(server_url, member_of="pgferry_viewer") as login:
        yield login


@pytest.fixture
def outsider(server_url: str) -> Iterator[Login]:
    """A login role that is a member of neither console role."""
    with login_role(server_url, member_of=None) as login:
        yield login


@contextmanager
def serve(settings) -> Iterator[tuple[str, object]]:
    """The app served by uvicorn in a thread. The socket is bound and listening before the
    thread starts, so a request made at once waits in the backlog: no polling for readiness."""
    import uvicorn

    from harness.console.app import create_app

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def console_settings(db_url: str):
    from harness.console.settings import ConsoleSettings

    return ConsoleSettings(
        database_url=db_url, refresh_seconds=0.5, page_size=3, trust_server_auth=True
    )


@pytest.fixture
def console(console_settings) -> Iterator[Console]:
    with serve(console_settings) as (url, app):
        yield Console(url, app, console_settings.database_url)


@pytest.fixture
def console_with():
    """serve(settings) for a test that needs other settings than the default fixture."""
    return lambda settings, **changes: serve(replace(settings, **changes))


def log_in(page, console: Console, login: Login, *, path: str = "/") -> None:
    page.goto(console.url + path)
    page.get_by_label("Role").fill(login.role)
    page.get_by_label("Password").fill(login.password)
    page.get_by_role("button", name="Log in").click()


@contextmanager
def http_login(url: str, login: Login) -> Iterator[httpx.Client]:
    """An httpx client logged in to the console at ``url`` (through the login form)."""
    with httpx.Client(base_url=url, headers={"Accept": "text/html"}) as client:
        form = client.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
        answer = client.post(
            "/login", data={"login_token": token, "role": login.role, "password": login.password}
        )
        assert answer.status_code == 303, answer.text
        yield client
