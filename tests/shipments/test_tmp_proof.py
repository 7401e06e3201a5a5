"""TEMPORARY: force the interleavings deterministically (to be deleted)."""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg

from harness.demo.detrack_fake import DetrackFake, Fault
from tests.support.shipments import (
    FAST_DISPATCH,
    assert_detrack_matches_erp,
    insert_shipments,
    job_row,
    make_dispatcher,
    shipment,
    sync,
)

HELD = Fault(status=200, handle_first=True, hold=0.5)  # applied 0.5 s late, client gave up at 0.2
PATIENT = replace(FAST_DISPATCH, retry_base_seconds=3600, retry_cap_seconds=3600)


def drain(conn, fake, **kw):
    d = make_dispatcher(conn, fake, **kw)
    try:
        return d.drain()
    finally:
        d.close()


def test_h2_in_call_retry_then_renumber(conn: psycopg.Connection, fake: DetrackFake) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    drain(conn, fake)
    conn.execute("UPDATE erp.shipment SET shipment_number = 99999 WHERE shipment_number = %s",
                 [row["shipment_number"]])
    fake.inject(HELD, path_prefix="/dn/jobs")  # the old number's DELETE
    drain(conn, fake, timeout=0.2, max_retries=1)
    print([(r.method, r.path, r.status, round(r.at, 3)) for r in fake.requests()])
    time.sleep(0.8)
    print(job_row(conn, 99999))
    assert_detrack_matches_erp(conn, fake)


def test_h1_time_passes_then_cancel(conn: psycopg.Connection, fake: DetrackFake) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    fake.inject(HELD, path_prefix="/dn/jobs/bulk")
    drain(conn, fake, timeout=0.2, max_retries=0, settings=PATIENT)
    assert job_row(conn, row["shipment_number"])["remote"] == "unknown"
    conn.execute("UPDATE erp.shipment SET ship_via = 'COURIER' WHERE shipment_number = %s",
                 [row["shipment_number"]])
    conn.execute("UPDATE delivery.job SET next_attempt_at = now()")  # "time passes"
    drain(conn, fake)
    time.sleep(0.8)
    assert_detrack_matches_erp(conn, fake)


def test_h3_in_call_retry_create_then_cancel(conn: psycopg.Connection, fake: DetrackFake) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    fake.inject(HELD, path_prefix="/dn/jobs/bulk")
    drain(conn, fake, timeout=0.2, max_retries=1)  # attempt 2 creates, attempt 1 still held
    assert job_row(conn, row["shipment_number"])["remote"] == "created"
    conn.execute("UPDATE erp.shipment SET ship_via = 'COURIER' WHERE shipment_number = %s",
                 [row["shipment_number"]])
    drain(conn, fake)  # delete
    time.sleep(0.8)
    assert_detrack_matches_erp(conn, fake)


def test_h5_in_call_retry_update_then_edit(conn: psycopg.Connection, fake: DetrackFake) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    drain(conn, fake)
    conn.execute("UPDATE erp.shipment SET ship_city = 'A' WHERE shipment_number = %s",
                 [row["shipment_number"]])
    fake.inject(HELD, path_prefix="/dn/jobs")
    drain(conn, fake, timeout=0.2, max_retries=1)
    conn.execute("UPDATE erp.shipment SET ship_city = 'B' WHERE shipment_number = %s",
                 [row["shipment_number"]])
    drain(conn, fake)
    time.sleep(0.8)
    assert_detrack_matches_erp(conn, fake)
