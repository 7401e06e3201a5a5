"""The console's operator actions in a real browser (Playwright driving Debian's chromium):
each previewed first (the database's count and a sample), confirmed with a reason, run as the
logged-in operator and journaled with who and why; real workers honour them (a requeued dead
letter moved by the permit consumer, a pause its claims obey, a cancel a running `harness run
--loop` obeys). A viewer sees no buttons and is refused on the server; a POST without the CSRF
token is refused; no session, no action."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from harness.s3 import make_client
from tests.console.conftest import Login, http_login, log_in, login_role
from tests.console.test_console_sql_workers import wait_for
from tests.support.permits import load_run, make_consumer, numbered, start_harness
from tests.support.pg import connect
from tests.support.shipments import API_KEY


@pytest.fixture
def operator(server_url: str, db_url: str) -> Iterator[Login]:
    with login_role(server_url, member_of="pgferry_operator") as login:
        yield login


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"actions-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def journal(db_url: str) -> list[tuple]:
    with connect(db_url) as conn:
        return conn.execute(
            "SELECT actor, action, pipeline, reason, affected FROM etl.operator_action"
            " ORDER BY action_id"
        ).fetchall()


def test_an_operator_requeues_a_dead_letter_and_the_consumer_moves_it(
    console, operator, page, screenshot, s3_endpoint, bucket
):
    with connect(console.db_url) as conn:
        load_run(conn, numbered(2))
        conn.execute(
            "UPDATE tps.staged_permit SET state = 'dead', dead_at = now(),"
            " last_error = 'S3 unreachable ' || permit_number"
        )
        dead = [r[0] for r in conn.execute("SELECT staged_permit_id FROM tps.staged_permit")]
        chosen = min(dead)
        (expected,) = conn.execute(
            "SELECT would_touch FROM etl.preview_requeue_dead_letters('permits', %s)",
            [[chosen]],
        ).fetchone()
    assert expected == 1

    log_in(page, console, operator, path="/failures/dead-letters")
    expect(page).to_have_url(re.compile(r"/failures/dead-letters$"))
    section = page.get_by_test_id("dead-permits")
    section.get_by_label(f"select {chosen}").check()
    section.locator('[data-action="requeue_selected"]').click()

    # step 1: the preview, with the database's count and a sample
    expect(page.get_by_test_id("would-touch")).to_have_text(str(expected))
    expect(page.get_by_test_id("preview-sample")).to_contain_text("P00000001")
    screenshot(page, "action-preview")
    # a blank reason: the database refuses (CHECK operator_action_needs_a_reason), shown plainly
    page.get_by_label(re.compile("Reason")).fill("   ")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("action-refused")).to_be_visible()
    assert journal(console.db_url) == []
    with connect(console.db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM tps.staged_permit WHERE state = 'dead'"
        ).fetchone() == (2,)

    # step 2: confirmed with a reason
    page.get_by_label(re.compile("Reason")).fill("S3 is back")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("touched")).to_have_text("1")
    assert journal(console.db_url) == [
        (operator.role, "requeue_dead_letters", "permits", "S3 is back", 1)
    ]

    # the worker moves the requeued permit (and only it)
    with connect(console.db_url) as conn:
        moved = make_consumer(conn, s3_endpoint, bucket).drain()
        assert moved.moved == 1
        assert conn.execute("SELECT tps_permit_number FROM permit.permit").fetchall() == [
            ("P00000001",)
        ]
        assert conn.execute(
            "SELECT count(*) FROM tps.staged_permit WHERE state = 'dead'"
        ).fetchone() == (1,)

    page.get_by_test_id("journal-link").click()
    row = page.locator("tr[data-action-id]")
    expect(row).to_have_count(1)
    expect(row.locator('[data-field="actor"]')).to_have_text(operator.role)
    expect(row.locator('[data-field="reason"]')).to_have_text("S3 is back")
    expect(row.locator('[data-field="affected"]')).to_have_text("1")
    screenshot(page, "journal")


def test_an_operator_requeues_all_matching_and_retries_one_item(
    console, operator, page, s3_endpoint, bucket
):
    with connect(console.db_url) as conn:
        load_run(conn, numbered(3))
        conn.execute(
            "UPDATE tps.staged_permit SET state = 'dead', dead_at = now(), last_error ="
            " CASE WHEN permit_number = 'P00000003' THEN 'HTTP 403' ELSE 'read timeout' END"
        )
        (expected,) = conn.execute(
            "SELECT would_touch FROM etl.preview_requeue_dead_letters('permits',"
            " p_error_contains => 'timeout')"
        ).fetchone()
        (last,) = conn.execute(
            "SELECT staged_permit_id FROM tps.staged_permit WHERE permit_number = 'P00000003'"
        ).fetchone()
    assert expected == 2

    log_in(page, console, operator, path="/failures/dead-letters")
    matching = page.get_by_test_id("requeue-matching-permits")
    matching.get_by_label("Last error contains").fill("timeout")
    matching.locator('[data-action="requeue_matching"]').click()
    expect(page.get_by_test_id("would-touch")).to_have_text(str(expected))
    expect(page.get_by_test_id("action-description")).to_contain_text("timeout")
    page.get_by_label(re.compile("Reason")).fill("the network is fixed")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("touched")).to_have_text("2")

    page.goto(console.url + "/failures/dead-letters")
    rows = page.get_by_test_id("dead-permits").locator("tr[data-item-id]")
    expect(rows).to_have_count(1)
    rows.locator('[data-action="retry_job"]').click()
    expect(page.get_by_test_id("would-touch")).to_have_text("1")
    expect(page.get_by_test_id("preview-sample")).to_contain_text("HTTP 403")
    page.get_by_label(re.compile("Reason")).fill("permission granted upstream")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("touched")).to_have_text("1")

    with connect(console.db_url) as conn:
        assert make_consumer(conn, s3_endpoint, bucket).drain().moved == 3
        assert conn.execute("SELECT count(*) FROM permit.permit").fetchone() == (3,)
        target = conn.execute(
            "SELECT target FROM etl.operator_action WHERE action = 'retry_job'"
        ).fetchone()[0]
    assert target == {"item_id": last}
    assert [(a, b, r, n) for a, b, _, r, n in journal(console.db_url)] == [
        (operator.role, "requeue_dead_letters", "the network is fixed", 2),
        (operator.role, "retry_job", "permission granted upstream", 1),
    ]


def test_an_operator_pauses_and_resumes_a_pipeline(console, operator, page, s3_endpoint, bucket):
    with connect(console.db_url) as conn:
        load_run(conn, numbered(3))
    log_in(page, console, operator)
    row = page.locator('tr[data-pipeline="permits"]')
    row.locator('[data-action="pause_pipeline"]').click()
    expect(page.get_by_test_id("would-touch")).to_have_text("1")
    page.get_by_label(re.compile("Reason")).fill("S3 maintenance")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("touched")).to_have_text("1")

    with connect(console.db_url) as conn:
        assert conn.execute(
            "SELECT paused_by, pause_reason FROM etl.pipeline WHERE name = 'permits'"
            " AND paused_at IS NOT NULL"
        ).fetchone() == (operator.role, "S3 maintenance")
        assert (
            conn.execute(
                "SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', 1, 3)"
            ).fetchall()
            == []
        )
        consumer = make_consumer(conn, s3_endpoint, bucket)
        assert consumer.drain().claimed == 0

        page.goto(console.url + "/")
        expect(row.locator('[data-field="paused"]')).to_be_visible()
        row.locator('[data-action="resume_pipeline"]').click()
        expect(page.get_by_test_id("would-touch")).to_have_text("1")
        page.get_by_label(re.compile("Reason")).fill("S3 is back")
        page.get_by_test_id("confirm").click()
        expect(page.get_by_test_id("touched")).to_have_text("1")
        assert conn.execute(
            "SELECT paused_at FROM etl.pipeline WHERE name = 'permits'"
        ).fetchone() == (None,)
        assert consumer.drain().moved == 3
    assert [(a, b, r) for a, b, _, r, _ in journal(console.db_url)] == [
        (operator.role, "pause_pipeline", "S3 maintenance"),
        (operator.role, "resume_pipeline", "S3 is back"),
    ]


def test_an_operator_cancels_a_running_worker(console, operator, page, fake):
    env = {
        "DATABASE_URL": console.db_url,
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "PGFERRY_PIPELINES": "shipments",
        "PGFERRY_WORKER_ID": "console-actions-worker",
    }
    worker = start_harness(env, "run", "--loop")
    try:
        with connect(console.db_url) as conn:
            wait_for(
                lambda: (
                    conn.execute(
                        "SELECT alive FROM etl.worker_status"
                        " WHERE worker_id = 'console-actions-worker'"
                    ).fetchone()
                    == (True,)
                ),
                60,
            )
        log_in(page, console, operator)
        row = page.locator('tr[data-worker="console-actions-worker"]')
        expect(row.locator('[data-field="alive"]')).to_have_text("yes")
        row.locator('[data-action="cancel_worker"]').click()
        expect(page.get_by_test_id("would-touch")).to_have_text("1")
        page.get_by_label(re.compile("Reason")).fill("deploying a new version")
        page.get_by_test_id("confirm").click()
        expect(page.get_by_test_id("touched")).to_have_text("1")
        assert worker.wait(timeout=60) == 0  # the NOTIFY, or at worst its next heartbeat
        with connect(console.db_url) as conn:
            assert conn.execute(
                "SELECT stop_requested_at IS NOT NULL, stopped_at IS NOT NULL, alive"
                " FROM etl.worker_status WHERE worker_id = 'console-actions-worker'"
            ).fetchone() == (True, True, False)
        assert journal(console.db_url)[0][:2] == (operator.role, "cancel_worker")
        # the overview's workers come with the shared snapshot, live: no reload needed
        page.goto(console.url + "/")
        expect(row.locator('[data-field="alive"]')).to_have_text("no")
        expect(row.locator('[data-action="cancel_worker"]')).to_have_count(0)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_an_operator_abandons_a_hung_run_and_refusals_are_messages(console, operator, page):
    with connect(console.db_url) as conn:
        process_id = load_run(conn, numbered(1), status="running")  # running, not hung yet
    with http_login(console.url, operator) as client:
        token = csrf_of(client.get(f"/runs/{process_id}").text)
        confirm = {"csrf_token": token, "process_id": str(process_id), "step": "confirm"}
        # a blank reason: the database's CHECK refuses it, shown as a message, not a trace
        for blank in ("", "   "):
            answer = client.post("/actions/abandon_run", data=confirm | {"reason": blank})
            assert answer.status_code == 400
            assert 'data-testid="action-refused"' in answer.text
            assert "Traceback" not in answer.text
        assert journal(console.db_url) == []
        # a run that is not hung: the database abandons nothing (0), journaled
        young = client.post("/actions/abandon_run", data=confirm | {"reason": "looks stuck"})
        assert young.status_code == 200 and 'data-testid="touched">0<' in young.text
        # not a number: refused before the database
        bad = client.post("/actions/abandon_run", data=confirm | {"process_id": "x"})
        assert bad.status_code == 400 and "Traceback" not in bad.text
    with connect(console.db_url) as conn:
        conn.execute(
            "UPDATE etl.process SET started_at = now() - interval '5 hours' WHERE process_id = %s",
            [process_id],
        )
    log_in(page, console, operator, path=f"/runs/{process_id}")
    page.locator('[data-action="abandon_run"]').click()
    expect(page.get_by_test_id("would-touch")).to_have_text("1")
    page.get_by_label(re.compile("Reason")).fill("loader crashed")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("touched")).to_have_text("1")
    page.goto(console.url + f"/runs/{process_id}")
    expect(page.get_by_test_id("run-status")).to_have_text("abandoned")
    expect(page.locator('[data-action="abandon_run"]')).to_have_count(0)
    assert [(a, b, r, n) for a, b, _, r, n in journal(console.db_url)] == [
        (operator.role, "abandon_run", "looks stuck", 0),
        (operator.role, "abandon_run", "loader crashed", 1),
    ]


def test_a_viewer_sees_no_buttons_and_is_refused(console, viewer, page):
    with connect(console.db_url) as conn:
        process_id = load_run(conn, numbered(1), status="running")
        conn.execute("UPDATE tps.staged_permit SET state = 'dead', dead_at = now()")
    log_in(page, console, viewer)
    expect(page.locator('tr[data-pipeline="permits"]')).to_be_visible()
    expect(page.get_by_test_id("workers")).to_be_visible()
    for path in ("/", "/failures/dead-letters", f"/runs/{process_id}", "/journal"):
        page.goto(console.url + path)
        expect(page.locator("[data-action]")).to_have_count(0)
        expect(page.locator('form[action^="/actions/"]')).to_have_count(0)
    with http_login(console.url, viewer) as client:
        token = csrf_of(client.get("/").text)
        for name, fields in (
            ("pause_pipeline", {"pipeline": "permits"}),
            ("requeue_dead_letters", {"pipeline": "permits", "scope": "matching"}),
            ("abandon_run", {"process_id": str(process_id)}),
        ):
            for step in ("preview", "confirm"):
                answer = client.post(
                    f"/actions/{name}",
                    data={"csrf_token": token, "step": step, "reason": "x", **fields},
                )
                assert answer.status_code == 403, (name, step)
    assert journal(console.db_url) == []
    with connect(console.db_url) as conn:
        assert conn.execute(
            "SELECT paused_at FROM etl.pipeline WHERE name = 'permits'"
        ).fetchone() == (None,)


def test_an_action_without_the_csrf_token_or_a_session_is_refused(console, operator):
    form = {"pipeline": "permits", "step": "confirm", "reason": "no token"}
    with http_login(console.url, operator) as client:
        assert client.post("/actions/pause_pipeline", data=form).status_code == 403
        wrong = form | {"csrf_token": "wrong"}
        assert client.post("/actions/pause_pipeline", data=wrong).status_code == 403
    with httpx.Client(base_url=console.url, headers={"Accept": "text/html"}) as client:
        answer = client.post("/actions/pause_pipeline", data=form)
        assert answer.status_code in (303, 401, 403)
        journal_page = client.get("/journal")
        assert journal_page.status_code == 303
        assert journal_page.headers["location"].startswith("/login")
        assert client.get("/overview/live", headers={"HX-Request": "true"}).status_code == 401
    assert journal(console.db_url) == []
