"""The console's failures and lineage pages in a real browser (Playwright driving Debian's
chromium), logged in as a member of pgferry_viewer: errors logged through etl.log_error grouped
by cause and listed with the database's counts and rows, filtered and keyset-paged, their
payload secrets redacted; the dead letters of both pipelines paged; and the lineage of a permit
the real permit pipeline moved to S3 and of a shipment the real dispatcher sent to DeTrack."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import expect
from psycopg.types.json import Jsonb

from harness.s3 import make_client
from tests.console.conftest import log_in
from tests.support.permits import StagedPermit, load_run, make_consumer, numbered
from tests.support.pg import connect
from tests.support.shipments import insert_shipments, make_dispatcher, shipment, sync

SECRET = "x1-do-not-show"


def seed_failures(db_url: str) -> int:
    """Seven errors through etl.log_error, as the pipelines' handlers log them: two overlong
    VINs in a merge, one duplicate, then four rejected PDFs of one run with a password in their
    payload (the newest). The run's id."""
    with connect(db_url) as conn:
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        for n in range(2):
            conn.execute(
                "SELECT etl.log_error('etl.merge_table', '22001', 'value too long',"
                " p_detail => 'field: vin', p_table_name => 'permit.permit',"
                " p_row_key => %s, p_row_payload => %s)",
                [Jsonb({"permit_id": n}), Jsonb({"vin": "X" * 30})],
            )
        conn.execute(
            "SELECT etl.log_error('delivery.upsert_jobs', '23505', 'duplicate key value',"
            " p_row_key => %s)",
            [Jsonb({"job_id": 7})],
        )
        for n in range(4):
            conn.execute(
                "SELECT etl.log_error('permit.claim_batch', '22023', 'rejected: pdf: not a PDF',"
                " p_table_name => 'tps.staged_permit', p_row_key => %s, p_row_payload => %s,"
                " p_process_id => %s)",
                [
                    Jsonb({"permit_number": f"F{n}"}),
                    Jsonb({"permit_number": f"F{n}", "password": SECRET, "note": "kept"}),
                    process_id,
                ],
            )
        conn.execute("SELECT etl.end_process(%s, 'failed', 0, 'bad PDFs')", [process_id])
    return process_id


def error_ids(db_url: str, where: str = "true", params: list | None = None) -> list[int]:
    with connect(db_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                f"SELECT error_id FROM etl.error_log WHERE {where} ORDER BY error_id DESC",
                params or [],
            )
        ]


def shown(page, attribute: str) -> list[int]:
    return [
        int(v)
        for v in page.locator(f"tr[data-{attribute}]").evaluate_all(
            f"rows => rows.map(r => r.getAttribute('data-{attribute}'))"
        )
    ]


def expect_errors(page, ids: list[int]) -> None:
    expect(page.locator("tr[data-error-id]")).to_have_count(len(ids))
    assert shown(page, "error-id") == ids


def test_failures_by_cause_rows_filters_and_paging(console, viewer, page, screenshot):
    process_id = seed_failures(console.db_url)
    with connect(console.db_url) as conn:
        counted = conn.execute(
            "SELECT object_name, sqlstate, count(*) FROM etl.error_log GROUP BY 1, 2"
        ).fetchall()
        stored = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT error_id, object_name, sqlstate, message, row_key FROM etl.error_log"
            )
        }
    assert sorted(counted) == [
        ("delivery.upsert_jobs", "23505", 1),
        ("etl.merge_table", "22001", 2),
        ("permit.claim_batch", "22023", 4),
    ]
    complaints = []  # the browser's errors: a CSP violation, a script error
    page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: complaints.append(str(e)))
    log_in(page, console, viewer, path="/failures")
    expect(page).to_have_url(re.compile(r"/failures$"))

    # the causes, with the database's counts, most frequent first
    causes = page.locator("tr[data-cause]")
    expect(causes).to_have_count(3)
    assert causes.evaluate_all("rows => rows.map(r => r.dataset.cause)") == [
        "permit.claim_batch|22023|pdf",
        "etl.merge_table|22001|vin",
        "delivery.upsert_jobs|23505|",
    ]
    for (name, sqlstate, count), field in zip(
        sorted(counted, key=lambda c: -c[2]), ("pdf", "vin", ""), strict=True
    ):
        row = page.locator(f'tr[data-cause="{name}|{sqlstate}|{field}"]')
        expect(row.locator('[data-field="errors"]')).to_have_text(str(count))

    # the rows, newest first, as stored; paging returns every row once
    everything = error_ids(console.db_url)
    assert len(everything) == 7
    expect_errors(page, everything[:3])  # page size 3 in the tests
    for error_id in everything[:3]:
        row = page.locator(f'tr[data-error-id="{error_id}"]')
        name, sqlstate, message, row_key = stored[error_id]
        expect(row.locator('[data-field="object"]')).to_contain_text(name)
        expect(row.locator('[data-field="sqlstate"]')).to_have_text(sqlstate)
        expect(row.locator('[data-field="message"]')).to_contain_text(message)
        expect(row.locator('[data-field="row_key"]')).to_contain_text(row_key["permit_number"])
    # the payload's secret is redacted, the rest of it shown
    newest = page.locator(f'tr[data-error-id="{everything[0]}"]')
    payload = newest.locator('[data-field="payload"] pre')
    expect(payload).to_be_hidden()
    newest.locator("summary").click()
    expect(payload).to_be_visible()
    expect(payload).to_contain_text('"password": "[redacted]"')
    expect(payload).to_contain_text('"note": "kept"')
    assert SECRET not in page.content()
    screenshot(page, "failures")

    seen = shown(page, "error-id")
    while page.get_by_role("link", name="Older").count():
        page.get_by_role("link", name="Older").click()
        expect(page).to_have_url(re.compile(r"before=\d+"))
        expect(page.locator("tr[data-error-id]").first).to_be_visible()
        seen += shown(page, "error-id")
    assert seen == everything and len(set(seen)) == 7
    assert SECRET not in page.content()
    page.get_by_role("link", name="Newest").click()
    expect_errors(page, everything[:3])

    # a cause's link lists its rows only
    page.locator('tr[data-cause="etl.merge_table|22001|vin"] a').click()
    expect(page).to_have_url(re.compile(r"object=etl.merge_table&sqlstate=22001&field=vin"))
    expect_errors(page, error_ids(console.db_url, "sqlstate = '22001'"))
    expect(page.locator('tr[data-error-id] [data-field="field"]')).to_have_text(["vin", "vin"])

    # filters from the form: SQLSTATE, then the run, kept while paging
    page.goto(console.url + "/failures")
    page.get_by_label("SQLSTATE").fill("23505")
    page.get_by_role("button", name="Filter").click()
    expect_errors(page, error_ids(console.db_url, "sqlstate = '23505'"))
    page.get_by_label("SQLSTATE").fill("")
    page.get_by_label("Run").fill(str(process_id))
    page.get_by_role("button", name="Filter").click()
    of_run = error_ids(console.db_url, "process_id = %s", [process_id])
    assert len(of_run) == 4
    expect_errors(page, of_run[:3])
    page.get_by_role("link", name="Older").click()
    expect(page).to_have_url(re.compile(rf"process={process_id}.*before="))
    expect_errors(page, of_run[3:])

    # a time range: from tomorrow (UTC) nothing, up to today everything
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    page.goto(f"{console.url}/failures?from={tomorrow}")
    expect(page.get_by_test_id("no-failures")).to_be_visible()
    expect(page.get_by_test_id("no-causes")).to_be_visible()
    today = datetime.now(UTC).date().isoformat()
    page.goto(f"{console.url}/failures?to={today}&field=pdf")
    expect_errors(page, of_run[:3])
    assert complaints == []

    for bad in ("sqlstate=2201", "process=abc", "from=yesterday", "field=a%20b", "before=x"):
        assert page.goto(f"{console.url}/failures?{bad}").status == 400


def test_dead_letters_of_both_pipelines_paged(console, viewer, page, screenshot):
    with connect(console.db_url) as conn:
        # permits: the claim rejects a file that is not a PDF, at once (the pipeline's own SQL)
        load_run(conn, [StagedPermit(f"BAD{n}", 1, b"GIF89a") for n in range(4)] + numbered(1))
        token = conn.execute("SELECT etl.next_lease_token()").fetchone()[0]
        conn.execute(
            "SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', %s, 3)", [token]
        )
        permits = conn.execute(
            "SELECT staged_permit_id, last_error FROM tps.staged_permit WHERE state = 'dead'"
            " ORDER BY 1"
        ).fetchall()
        # shipments: jobs DeTrack refused or out of attempts
        insert_shipments(conn, [shipment() for _ in range(5)])
        sync(conn)
        conn.execute(
            "UPDATE delivery.job SET sync_state = CASE WHEN job_id % 2 = 0 THEN 'dead'"
            " ELSE 'failed' END, last_error = 'HTTP 422 address invalid ' || job_id"
        )
        jobs = conn.execute("SELECT job_id, last_error FROM delivery.job ORDER BY 1").fetchall()
    assert len(permits) == 4 and len(jobs) == 5

    log_in(page, console, viewer, path="/failures")
    page.get_by_role("link", name="Dead letters").click()
    expect(page).to_have_url(re.compile(r"/failures/dead-letters$"))
    dead_permits = page.get_by_test_id("dead-permits")
    dead_jobs = page.get_by_test_id("dead-shipments")

    def expect_letters(section, letters) -> None:
        expect(section.locator("tr[data-item-id]")).to_have_count(len(letters))
        assert shown(section, "item-id") == [i for i, _ in letters]
        expect(section.locator('[data-field="last_error"]')).to_have_text([e for _, e in letters])

    expect_letters(dead_permits, permits[:3])
    expect_letters(dead_jobs, jobs[:3])
    screenshot(page, "dead-letters")
    page.get_by_role("link", name="More permits").click()
    expect_letters(dead_permits, permits[3:])
    expect_letters(dead_jobs, jobs[:3])
    page.get_by_role("link", name="More shipments").click()
    expect_letters(dead_permits, permits[3:])  # each pipeline keeps its own page
    expect_letters(dead_jobs, jobs[3:])
    expect(page.get_by_role("link", name=re.compile("^More"))).to_have_count(0)
    page.get_by_role("link", name="First permits").click()
    expect_letters(dead_permits, permits[:3])
    expect_letters(dead_jobs, jobs[3:])


def test_lineage_of_a_permit_the_pipeline_moved(
    console, viewer, page, screenshot, s3_endpoint, s3_credentials
):
    bucket = f"lineage-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    with connect(console.db_url) as conn:
        process_id = load_run(conn, numbered(2))
        moved = make_consumer(conn, s3_endpoint, bucket).drain()
        assert moved.moved == 2
        key, sha256, size = conn.execute(
            "SELECT d.object_key, d.sha256, d.size_bytes FROM permit.permit AS p"
            " JOIN permit.document AS d USING (document_id)"
            " WHERE p.tps_permit_number = 'P00000001'"
        ).fetchone()
        steps = [
            r[0]
            for r in conn.execute(
                "SELECT j.step FROM etl.journal AS j JOIN permit.permit AS p"
                " ON p.source_staged_permit_id = j.item_id"
                " WHERE j.pipeline = 'permits' AND p.tps_permit_number = 'P00000001'"
                " ORDER BY j.journal_id"
            )
        ]
    assert "moved" in steps

    log_in(page, console, viewer, path="/lineage")
    page.get_by_label("Permit number").fill("P00000001")
    page.get_by_role("button", name="Trace permit").click()
    expect(page).to_have_url(re.compile(r"/lineage\?permit=P00000001$"))
    chain = page.get_by_test_id("permit-lineage")
    expect(chain.locator(":scope > li")).to_have_count(4)
    assert chain.locator(":scope > li").evaluate_all("items => items.map(i => i.dataset.step)") == [
        "staged",
        "document",
        "target",
        "journal",
    ]
    expect(chain.locator('[data-field="object_key"]')).to_have_text(key)
    expect(chain.locator('[data-field="sha256"]')).to_have_text(sha256)
    expect(chain.locator('[data-field="bucket"]')).to_have_text(bucket)
    expect(chain.locator('[data-step="document"]')).to_contain_text(f"{size} bytes")
    expect(chain.locator('[data-step="journal"] [data-field="step"]')).to_have_text(steps)
    expect(chain.locator(f'a[href="/runs/{process_id}"]').first).to_be_visible()
    text = page.content()
    assert "ABC123" not in text and "1HGBH41JXMN109186" not in text  # plate, VIN
    screenshot(page, "lineage")

    page.get_by_label("Permit number").fill("NO-SUCH-PERMIT")
    page.get_by_role("button", name="Trace permit").click()
    expect(page.get_by_test_id("lineage-none")).to_contain_text("NO-SUCH-PERMIT")
    assert page.goto(f"{console.url}/lineage?permit=a&shipment=b").status == 400


def test_lineage_of_a_shipment_the_dispatcher_sent(console, viewer, page, fake, screenshot):
    row = shipment()
    with connect(console.db_url) as conn:
        insert_shipments(conn, [row])
        sync(conn)
        dispatcher = make_dispatcher(conn, fake)
        try:
            assert dispatcher.drain().synced == 1
        finally:
            dispatcher.close()
        state, detrack_id, last_status = conn.execute(
            "SELECT sync_state, detrack_id, last_status FROM delivery.job"
            " WHERE shipment_number = %s",
            [row["shipment_number"]],
        ).fetchone()

    log_in(page, console, viewer, path=f"/lineage?shipment={row['job_number']}")
    found = page.locator(f'section[data-shipment="{row["shipment_number"]}"]')
    chain = found.get_by_test_id("shipment-lineage")
    expect(chain.locator(":scope > li")).to_have_count(5)
    assert chain.locator(":scope > li").evaluate_all("items => items.map(i => i.dataset.step)") == [
        "erp",
        "copy",
        "job",
        "detrack",
        "status",
    ]
    expect(chain.locator('[data-field="job_number"]')).to_have_text(row["job_number"])
    expect(chain.locator('[data-field="copy"]')).to_contain_text(row["job_number"])
    expect(chain.locator('[data-field="sync_state"]')).to_contain_text(state)
    expect(chain.locator('[data-field="last_status"]')).to_have_text(
        f"HTTP {'-' if last_status is None else last_status}"
    )
    if detrack_id is not None:
        expect(chain.locator('[data-field="detrack_id"]')).to_contain_text(str(detrack_id))
    chain.locator('[data-step="detrack"] summary').first.click()
    expect(chain.locator('[data-field="request"]')).to_contain_text(row["job_number"])
    # the create call, as the journal keeps it: what was sent, what DeTrack answered
    call = chain.locator('[data-step="detrack"] li', has_text="created")
    call.locator("summary", has_text="response").click()
    expect(call.locator('[data-field="call-response"]')).to_contain_text(str(detrack_id))
    expect(call.locator('[data-field="call-request"]')).to_contain_text(row["job_number"])
    screenshot(page, "lineage-shipment")
    text = page.content()
    for personal in ("ship_phone", "ship_email", "ship_address_1", "ship_name"):
        assert row[personal] not in text
    # by shipment number too
    page.goto(f"{console.url}/lineage?shipment={row['shipment_number']}")
    expect(page.locator(f'section[data-shipment="{row["shipment_number"]}"]')).to_have_count(1)


def test_no_session_no_failures_or_lineage(console):
    with httpx.Client(base_url=console.url, headers={"Accept": "text/html"}) as client:
        for path in ("/failures", "/failures/dead-letters", "/lineage?permit=P1"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
