"""The console's guards without a browser: the startup probe against a trust server, the bind
check, session expiry, a revoked membership, the shared snapshot, statement_timeout."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pytest

from harness.config import ConfigurationError
from tests.console.conftest import http_login, login_role
from tests.support.pg import connect


def test_the_probe_finds_a_server_that_accepts_wrong_passwords(server_url, db_url, monkeypatch):
    from harness.commands.serve import serve
    from harness.console.db import server_checks_passwords
    from harness.console.settings import ConsoleSettings

    # the test servers use trust authentication: any password gets in
    assert server_checks_passwords(ConsoleSettings(database_url=server_url)) is False
    monkeypatch.setenv("DATABASE_URL", db_url)
    with pytest.raises(ConfigurationError) as refused:
        serve(host="127.0.0.1", port=8080, allow_remote=False, trust_server_auth=False)
    assert re.fullmatch(
        r"the database server of \S+ accepted a wrong password \(trust or peer authentication\),"
        r" so anyone could log in to the console as anyone: refusing to start"
        r" \(--trust-server-auth allows it, for local use only\)",
        refused.value.problems[0],
    )


def test_the_probe_does_not_take_an_unreachable_server_for_a_checking_one():
    """Only a refused password means the server checks passwords; a server that cannot be
    reached is a fault of its own (harness.commands.faults: database unreachable)."""
    from harness.console.db import server_checks_passwords
    from harness.console.settings import ConsoleSettings

    unreachable = ConsoleSettings(
        database_url="postgresql://nobody@127.0.0.1:1/none", connect_timeout_seconds=2
    )
    with pytest.raises(Exception, match=r"(?i)connection refused|failed"):
        server_checks_passwords(unreachable)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.org"])
def test_a_remote_bind_needs_allow_remote(host, capsys):
    from harness.commands.serve import check_bind

    with pytest.raises(ConfigurationError, match=r"not a loopback address.*--allow-remote"):
        check_bind(host, allow_remote=False)
    check_bind(host, allow_remote=True)
    assert "TLS proxy" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_binds_are_allowed(host):
    from harness.commands.serve import check_bind

    check_bind(host, allow_remote=False)


class FakeConnections:
    closed = False

    def close(self):
        self.closed = True

    def close_idle(self):
        pass


def test_sessions_expire_idle_and_absolute():
    from harness.console.auth import Session, SessionStore
    from harness.console.settings import ConsoleSettings

    settings = ConsoleSettings(
        database_url="postgresql://x@127.0.0.1/x", idle_seconds=60, absolute_seconds=600
    )
    store = SessionStore(settings)

    def add() -> Session:
        session = Session("id-" + str(len(store)), "someone", "pgferry_viewer", FakeConnections())
        store._sessions[session.id] = session
        return session

    idle = add()
    assert store.get(idle.id) is idle
    idle.last_active -= 61
    assert store.get(idle.id) is None and idle.connections.closed

    old = add()
    old.created -= 601
    assert store.get(old.id) is None and old.connections.closed

    polled = add()
    polled.last_active -= 50
    store.get(polled.id, activity=False)  # a background poll does not count as activity
    polled.last_active -= 11
    store.sweep()
    assert store.get(polled.id) is None and polled.connections.closed


def test_a_revoked_membership_ends_the_session(server_url, db_url, console_settings, console_with):
    with (
        login_role(server_url, member_of="pgferry_viewer") as login,
        console_with(console_settings, role_recheck_seconds=0) as (url, app),
        http_login(url, login) as client,
    ):
        assert client.get("/runs").status_code == 200
        with connect(server_url) as admin:
            admin.execute(f"REVOKE pgferry_viewer FROM {login.role}")
        assert client.get("/runs").status_code == 303  # to /login: the session ended
        assert len(app.state.store) == 0


def queued_alerts(client: httpx.Client) -> str:
    live = client.get("/overview/live").text
    row = re.search(r'<tr data-pipeline="permits">.*?</tr>', live, re.DOTALL).group(0)
    return re.search(r'data-field="alerts_queued">(\d+)<', row).group(1)


def test_pages_read_the_shared_snapshot_not_the_database(
    db_url, viewer, console_settings, console_with
):
    """Every open page shows the one snapshot; only the refresh task reads the statistics."""
    with (
        console_with(console_settings, refresh_seconds=3600) as (url, app),
        http_login(url, viewer) as first,
        http_login(url, viewer) as second,
    ):
        assert queued_alerts(first) == queued_alerts(second) == "0"
        with connect(db_url) as conn:
            conn.execute(
                "INSERT INTO etl.alert (pipeline, kind, subject, body) VALUES ('permits', 'lag', 's', 'b')"
            )
        assert queued_alerts(first) == queued_alerts(second) == "0"  # no page read the database
        app.state.keeper.refresh()  # what the background task does every refresh_seconds
        assert queued_alerts(first) == queued_alerts(second) == "1"


def test_every_console_connection_has_the_statement_timeout(db_url):
    from harness.console.db import open_connection, service_conninfo
    from harness.console.settings import ConsoleSettings

    settings = ConsoleSettings(database_url=db_url, statement_timeout_seconds=1.5)
    with open_connection(service_conninfo(settings), settings) as connection:
        assert connection.execute("SHOW statement_timeout").fetchone()[0] == "1500ms"
        assert (
            connection.execute("SHOW application_name").fetchone()[0] == "pgferry-console-snapshot"
        )


def test_the_snapshot_needs_no_more_than_pgferry_viewer(server_url, db_url, console_settings):
    """The console's own account is meant to be a member of pgferry_viewer only."""
    from sqlalchemy.engine import make_url

    from harness.console.snapshot import SnapshotKeeper

    with login_role(server_url, member_of="pgferry_viewer") as account:
        # the same server and database as the test's (TCP or a Unix socket), another account
        url = (
            make_url(db_url)
            .set(username=account.role, password=account.password)
            .render_as_string(hide_password=False)
        )
        keeper = SnapshotKeeper(replace(console_settings, database_url=url))
        keeper.refresh()
        keeper.close()
        assert keeper.state.error is None
        assert [p.name for p in keeper.state.snapshot.status.pipelines] == [
            "files",
            "permits",
            "shipments",
        ]


def test_an_operator_logs_in_as_operator(server_url, db_url, console):
    with (
        login_role(server_url, member_of="pgferry_operator") as login,
        http_login(console.url, login) as client,
    ):
        assert f"{login.role} (operator)" in client.get("/").text


def test_csrf_token_in_the_htmx_header_is_accepted_and_next_stays_on_site(viewer, console):
    with http_login(console.url, viewer) as client:
        page = client.get("/").text
        token = re.search(r'hx-headers=\'\{"X-CSRF-Token": "([^"]+)"\}\'', page).group(1)
        assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303
        assert client.get("/").status_code == 303  # logged out
    with httpx.Client(base_url=console.url) as client:
        form = client.get("/login?next=//evil.example/")
        assert 'name="next" value="/"' in form.text
        token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
        answer = client.post(
            "/login",
            data={
                "login_token": token,
                "role": viewer.role,
                "password": viewer.password,
                "next": "//evil.example/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_what_the_database_refuses_the_console_refuses(viewer, console):
    """Pages run as the logged-in role: without the grant, the page says the database refused."""
    with connect(console.db_url) as conn:
        conn.execute(
            "REVOKE EXECUTE ON FUNCTION etl.runs(text, text, timestamptz, timestamptz, bigint,"
            " integer) FROM pgferry_viewer"
        )
    with http_login(console.url, viewer) as client:
        refused = client.get("/runs")
        assert refused.status_code == 403
        assert "the database refused this to your role: permission denied for function runs" in (
            refused.text
        )
        assert client.get("/").status_code == 200  # the overview reads the shared snapshot


def test_cookies_are_secure_behind_a_tls_proxy(viewer, console):
    """A TLS proxy on the same host says X-Forwarded-Proto: https (uvicorn trusts 127.0.0.1)."""
    with httpx.Client(base_url=console.url, headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/login")
        assert "; secure" in form.headers["set-cookie"].lower()
        token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
        client.cookies.set("pgferry_login_csrf", token)
        answer = client.post(
            "/login", data={"login_token": token, "role": viewer.role, "password": viewer.password}
        )
        session_cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("pgferry_session=")
        )
        assert "; secure" in session_cookie.lower() and "httponly" in session_cookie.lower()
        assert "samesite=strict" in session_cookie.lower()


def test_console_settings_come_from_the_environment(monkeypatch):
    from harness.console.settings import load_settings

    monkeypatch.setenv("PGFERRY_CONSOLE_IDLE_MINUTES", "10")
    monkeypatch.setenv("PGFERRY_CONSOLE_REFRESH_SECONDS", "2")
    settings = load_settings("postgresql://x@127.0.0.1/x")
    assert (settings.idle_seconds, settings.refresh_seconds, settings.absolute_seconds) == (
        600,
        2,
        12 * 3600,
    )
    monkeypatch.setenv("PGFERRY_CONSOLE_STATEMENT_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigurationError) as bad:
        load_settings("postgresql://x@127.0.0.1/x")
    assert bad.value.problems == [
        "PGFERRY_CONSOLE_STATEMENT_TIMEOUT_SECONDS must be a number greater than 0 and of at most"
        ' 600 (got "soon")'
    ]
