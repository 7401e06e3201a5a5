"""The web console in a real browser (Playwright driving Debian's chromium): logging in as a
member of pgferry_viewer, the overview's numbers against the database, the runs list with its
filters and keyset paging, and the refusals (no session, no CSRF token, not a member)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from harness.console.throttle import FAILURES_ALLOWED, LoginThrottle
from harness.ops.status import read_status
from tests.console.conftest import log_in
from tests.support.pg import connect


def seed_overview(db_url: str) -> None:
    """Runs, a backlog, a dead letter, alerts queued and sent, items moved in the journal."""
    with connect(db_url) as conn:
        done = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        conn.execute(
            "INSERT INTO tps.staged_permit (process_id, permit_number)"
            " SELECT %s, 'P-' || g FROM generate_series(1, 4) AS g",
            [done],
        )
        conn.execute("SELECT etl.end_process(%s, 'succeeded', 4, NULL)", [done])
        conn.execute(
            "UPDATE tps.staged_permit SET state = 'dead', dead_at = now()"
            " WHERE staged_permit_id = (SELECT min(staged_permit_id) FROM tps.staged_permit)"
        )
        failed = conn.execute("SELECT etl.start_process('shipments')").fetchone()[0]
        conn.execute("SELECT etl.end_process(%s, 'failed', 0, 'ERP unreachable')", [failed])
        conn.execute(
            "INSERT INTO etl.alert (pipeline, kind, subject, body, sent_at) VALUES"
            " ('permits', 'lag', 'queued 1', 'b', NULL), ('permits', 'lag', 'queued 2', 'b', NULL),"
            " ('permits', 'dead', 'sent', 'b', now()), ('shipments', 'failed', 'queued', 'b', NULL)"
        )
        conn.execute(
            "INSERT INTO etl.journal (pipeline, item_id, step)"
            " SELECT 'permits', g, 'moved' FROM generate_series(1, 5) AS g"
        )


def test_overview_shows_the_snapshot_of_the_database(console, viewer, page, screenshot):
    seed_overview(console.db_url)
    with connect(console.db_url) as conn:
        expected = {p.name: p for p in read_status(conn).pipelines}
    complaints = []  # the browser's errors: a CSP violation, a script error
    page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: complaints.append(str(e)))
    log_in(page, console, viewer)
    expect(page.get_by_test_id("who")).to_have_text(f"{viewer.role} (viewer)")
    permits = page.locator('tr[data-pipeline="permits"]')
    shipments = page.locator('tr[data-pipeline="shipments"]')
    for row, name in ((permits, "permits"), (shipments, "shipments")):
        p = expected[name]
        expect(row.locator('[data-field="backlog"]')).to_have_text(str(p.backlog))
        expect(row.locator('[data-field="dead_letters"]')).to_have_text(str(p.dead_letters))
        expect(row.locator('[data-field="failed_runs_24h"]')).to_have_text(str(p.failed_runs_24h))
        expect(row.locator('[data-field="runs_waiting"]')).to_have_text(str(p.runs_waiting))
        expect(row.locator('[data-field="last_runs"]')).to_contain_text(
            f"{p.last_process} {p.last_status}"
        )
        expect(row.locator('[data-field="alerts_queued"]')).to_have_text(str(p.alerts_queued))
        expect(row.locator('[data-field="alerts_sent"]')).to_have_text(str(p.alerts_sent))
    # the seed shows in them (the failed run queued an alert of its own)
    assert expected["permits"].dead_letters == 1 and expected["shipments"].failed_runs_24h == 1
    assert (expected["permits"].alerts_queued, expected["permits"].alerts_sent) == (2, 1)
    assert expected["shipments"].alerts_queued >= 1
    # the throughput chart is drawn from etl.journal inside the snapshot
    expect(page.locator('figure[data-chart="permits"] svg')).to_have_attribute("data-total", "5")
    expect(page.locator('figure[data-chart="shipments"] svg')).to_have_attribute("data-total", "0")
    screenshot(page, "overview")

    # the live part follows the database: the snapshot task refreshes, htmx polls it
    with connect(console.db_url) as conn:
        conn.execute(
            "INSERT INTO etl.alert (pipeline, kind, subject, body) VALUES ('permits', 'lag', 's', 'b')"
        )
    expect(permits.locator('[data-field="alerts_queued"]')).to_have_text("3")
    assert complaints == []
    expect(shipments.locator('[data-field="alerts_queued"]')).to_have_text(
        str(expected["shipments"].alerts_queued)
    )


def seed_runs(db_url: str) -> list[int]:
    """Seven finished runs over three days, oldest first; their ids."""
    base = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    rows = [
        ("permits", "succeeded", 0, 10, None),
        ("shipments", "succeeded", 0, 20, None),
        ("permits", "failed", 1, 0, "source down"),
        ("permits", "succeeded", 1, 30, None),
        ("shipments", "failed", 2, 0, "ERP unreachable"),
        ("permits", "succeeded", 2, 40, None),
        ("permits", "abandoned", 2, None, "hung"),
    ]
    ids = []
    with connect(db_url) as conn:
        for i, (pipeline, status, day, loaded, message) in enumerate(rows):
            started = base + timedelta(days=day, minutes=i)
            ids.append(
                conn.execute(
                    "INSERT INTO etl.process (pipeline, status, started_at, ended_at, window_from,"
                    " window_to, rows_loaded, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " RETURNING process_id",
                    [
                        pipeline,
                        status,
                        started,
                        started + timedelta(minutes=5),
                        started - timedelta(hours=1),
                        started,
                        loaded,
                        message,
                    ],
                ).fetchone()[0]
            )
    return ids


def shown_ids(page) -> list[int]:
    return [
        int(v)
        for v in page.locator("tr[data-process-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.processId)"
        )
    ]


def expect_ids(page, ids: list[int]) -> None:
    expect(page.locator("tr[data-process-id]")).to_have_count(len(ids))
    assert shown_ids(page) == ids


def test_runs_filters_and_keyset_paging(console, viewer, page, screenshot):
    ids = seed_runs(console.db_url)
    newest_first = ids[::-1]
    log_in(page, console, viewer, path="/runs")
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect_ids(page, newest_first[:3])  # page size 3 in the tests
    screenshot(page, "runs")
    page.get_by_role("link", name="Older").click()
    expect(page).to_have_url(re.compile(rf"before={newest_first[2]}"))
    expect_ids(page, newest_first[3:6])
    page.get_by_role("link", name="Older").click()
    expect_ids(page, newest_first[6:])
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.go_back()
    expect_ids(page, newest_first[3:6])
    page.get_by_role("link", name="Newest").click()
    expect_ids(page, newest_first[:3])
    expect(page.get_by_role("link", name="Newest")).to_have_count(0)

    # filters: pipeline and status, then a date range, kept while paging
    page.get_by_label("Pipeline").select_option("permits")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect_ids(page, [ids[5], ids[3], ids[0]])
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.get_by_label("Status").select_option("")
    page.get_by_label("Started from").fill("2026-11-02")
    page.get_by_label("to", exact=True).fill("2026-11-03")
    page.get_by_role("button", name="Filter").click()
    expect_ids(page, [ids[6], ids[5], ids[3]])
    page.get_by_role("link", name="Older").click()
    expect(page).to_have_url(re.compile(r"pipeline=permits.*from=2026-11-02.*to=2026-11-03"))
    expect_ids(page, [ids[2]])

    # one run: its window, rows loaded, status and error
    page.goto(f"{console.url}/runs/{ids[4]}")
    expect(page.get_by_test_id("run-status")).to_have_text("failed")
    expect(page.locator('[data-field="pipeline"]')).to_have_text("shipments")
    expect(page.locator('[data-field="message"]')).to_have_text("ERP unreachable")
    expect(page.locator('[data-field="rows_loaded"]')).to_have_text("0")
    expect(page.locator('[data-field="window"]')).to_contain_text(
        "2026-11-03 07:04:00 UTC to 2026-11-03 08:04:00 UTC"
    )
    response = page.goto(f"{console.url}/runs/999999")
    assert response.status == 404
    response = page.goto(f"{console.url}/runs?status=bogus")
    assert response.status == 400


def test_no_session_no_page(console, page):
    response = page.goto(console.url + "/runs?pipeline=permits")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fruns%3Fpipeline%3Dpermits$"))
    assert response.request.redirected_from is not None
    with httpx.Client(base_url=console.url, headers={"Accept": "text/html"}) as client:
        for path in ("/", "/overview/live", "/runs", "/runs/1"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
            # what a browser fetches on its own (an icon, an image) is refused, not redirected
            assert client.get(path, headers={"Accept": "image/*"}).status_code == 401
        polled = client.get("/overview/live", headers={"HX-Request": "true"})
        assert polled.status_code == 401 and polled.headers["HX-Redirect"] == "/login"
        assert client.post("/logout").status_code == 401
    with httpx.Client(
        base_url=console.url,
        cookies={"pgferry_session": "made-up"},
        headers={"Accept": "text/html"},
    ) as client:
        assert client.get("/").status_code == 303


def test_post_without_csrf_token_is_refused(console, viewer, page):
    log_in(page, console, viewer)
    expect(page.get_by_test_id("who")).to_be_visible()
    cookie = {c["name"]: c for c in page.context.cookies()}["pgferry_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert viewer.password not in cookie["value"]
    with httpx.Client(base_url=console.url, cookies={"pgferry_session": cookie["value"]}) as client:
        assert client.post("/logout").status_code == 403
        assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
        assert client.post("/logout", headers={"X-CSRF-Token": "wrong"}).status_code == 403
        assert client.get("/").status_code == 200  # still logged in
    # the page's own form carries the token: logging out works and ends the session
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    with httpx.Client(
        base_url=console.url,
        cookies={"pgferry_session": cookie["value"]},
        headers={"Accept": "text/html"},
    ) as client:
        assert client.get("/").status_code == 303


def test_login_form_needs_its_token(console, viewer):
    with httpx.Client(base_url=console.url) as client:
        refused = client.post("/login", data={"role": viewer.role, "password": viewer.password})
        assert refused.status_code == 403
        assert "pgferry_session" not in refused.cookies


def test_a_role_outside_the_console_roles_is_refused(console, outsider, page):
    log_in(page, console, outsider)
    expect(page.get_by_test_id("login-message")).to_have_text(
        f"login refused: {outsider.role} is not a member of pgferry_viewer or pgferry_operator;"
        f" ask the DBA to GRANT pgferry_viewer TO {outsider.role}"
    )
    assert "pgferry_session" not in {c["name"] for c in page.context.cookies()}


def test_an_unknown_role_is_refused(console, page):
    page.goto(console.url + "/login")
    page.get_by_label("Role").fill("pgferry_no_such_role")
    page.get_by_label("Password").fill("whatever")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-message")).to_have_text(
        "login failed: wrong role name or password"
    )


def test_a_login_the_server_did_not_check_is_refused(console_settings, console_with, viewer, page):
    """Without --trust-server-auth, a connection made without a password check (trust, peer)
    is no login."""
    with console_with(console_settings, trust_server_auth=False) as (url, _):
        page.goto(url + "/login")
        page.get_by_label("Role").fill(viewer.role)
        page.get_by_label("Password").fill(viewer.password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("login-message")).to_contain_text(
            "the database let this role in without checking its password"
        )


@pytest.mark.parametrize("path", ["/login", "/", "/runs", "/static/console.css"])
def test_security_headers(console, viewer, page, path):
    log_in(page, console, viewer)
    expect(page.get_by_test_id("who")).to_be_visible()
    response = page.goto(console.url + path)
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'self'")
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    if not path.startswith("/static/"):
        assert headers["cache-control"] == "no-store"


def test_an_idle_session_ends_while_the_overview_polls(
    console_settings, console_with, viewer, page
):
    """Polls are not the user's activity: the idle timeout ends the session, and the next poll
    sends the browser to the login page."""
    with console_with(console_settings, idle_seconds=2) as (url, _):
        page.goto(url + "/")
        page.get_by_label("Role").fill(viewer.role)
        page.get_by_label("Password").fill(viewer.password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("who")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/login$"), timeout=15_000)


def test_failed_logins_from_one_address_are_throttled(console, viewer):
    """Ten wrong logins from one address (unknown roles: the test server trusts its roles'
    passwords): the eleventh try is refused without a check, even a right one, and says how
    long to wait."""
    with httpx.Client(base_url=console.url, headers={"Accept": "text/html"}) as client:

        def try_login(role: str, password: str) -> httpx.Response:
            form = client.get("/login")
            token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
            return client.post(
                "/login", data={"login_token": token, "role": role, "password": password}
            )

        for attempt in range(FAILURES_ALLOWED):
            assert try_login(f"pgferry_no_such_role_{attempt}", "guess").status_code == 403
        refused = try_login(viewer.role, viewer.password)
        assert refused.status_code == 429
        assert re.search(
            r"too many failed logins from this address: try again in \d+ s", refused.text
        )
        assert "pgferry_session" not in client.cookies


def test_the_throttle_forgets_failures_as_they_age_and_on_success() -> None:
    now = [1000.0]
    throttle = LoginThrottle(allowed=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait_seconds("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        now[0] += 10
    assert throttle.wait_seconds("10.0.0.1") == 30  # the first failure leaves the window at 1060
    assert throttle.wait_seconds("10.0.0.2") == 0  # another address is not held up
    now[0] = 1060.0
    assert throttle.wait_seconds("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 10
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1") == 0
