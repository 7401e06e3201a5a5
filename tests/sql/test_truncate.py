"""TRUNCATE of the ERP's tables reaches DeTrack: erp.shipment cancels every job (and creates
none of those still waiting), erp.package takes the items off the jobs. Against the DeTrack
fake over real HTTP."""

from __future__ import annotations

import psycopg

from harness.demo.detrack_fake import DetrackFake
from tests.support.shipments import insert_shipments, make_dispatcher, shipment, sync

DATE = "2026-11-23"


def jobs_state(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return set(conn.execute("SELECT desired, remote, sync_state FROM delivery.job").fetchall())


def test_truncating_the_erp_shipments_cancels_every_job_in_detrack(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    insert_shipments(conn, [shipment() for _ in range(3)])
    dispatcher = make_dispatcher(conn, fake)
    assert dispatcher.drain().synced == 3 and len(fake.jobs()) == 3

    conn.execute("TRUNCATE erp.shipment")
    dispatcher.drain()

    assert fake.jobs() == []
    assert jobs_state(conn) == {("absent", "deleted", "synced")}
    assert conn.execute(
        "SELECT count(*) FROM delivery.shipment WHERE deleted_at IS NULL"
    ).fetchone() == (0,)


def test_a_truncate_before_the_jobs_were_sent_creates_nothing_in_detrack(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    synced, unsynced = shipment(), shipment()
    insert_shipments(conn, [synced])
    sync(conn)  # copied and mapped: its create is pending, not sent
    insert_shipments(conn, [unsynced])  # only recorded in delivery.erp_change

    conn.execute("TRUNCATE erp.shipment")
    make_dispatcher(conn, fake).drain()

    assert fake.jobs() == []
    assert [fake.create_count(r["job_number"], DATE) for r in (synced, unsynced)] == [0, 0]
    assert jobs_state(conn) == {("absent", "none", "synced")}  # the synced one; never sent
    assert conn.execute("SELECT count(*) FROM delivery.erp_change").fetchone() == (0,)


def test_truncating_the_erp_packages_takes_the_items_off_the_jobs(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(3)]
    insert_shipments(conn, rows)
    conn.execute(
        "INSERT INTO erp.package VALUES (1, %s, '10005', 'SKU-1', 'Pallet', 2),"
        " (2, %s, '10005', 'SKU-2', 'Crate', 1)",
        [rows[0]["shipment_number"], rows[1]["shipment_number"]],
    )
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()
    assert fake.job(rows[0]["job_number"], DATE)["items"] == [
        {"sku": "SKU-1", "description": "Pallet", "quantity": 2}
    ]

    conn.execute("TRUNCATE erp.package")
    totals = dispatcher.drain()

    assert totals.sent == 2  # the two jobs that carried items; the third is left alone
    assert [bool(job.get("items")) for job in fake.jobs()] == [False, False, False]
    assert conn.execute(
        "SELECT count(*) FROM delivery.job WHERE payload -> 'items' -> 0 IS NOT NULL"
    ).fetchone() == (0,)


def test_a_truncate_never_fails_because_of_pgferry(conn: psycopg.Connection) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    conn.execute(
        "INSERT INTO erp.package VALUES (1, %s, '10005', 'SKU-1', 'Pallet', 2)",
        [row["shipment_number"]],
    )
    sync(conn)
    # recording a change now fails inside the triggers
    conn.execute("ALTER TABLE delivery.erp_change ADD CONSTRAINT refuse CHECK (shipment_count < 0)")

    conn.execute("TRUNCATE erp.shipment, erp.package")

    assert conn.execute("SELECT count(*) FROM erp.shipment").fetchone() == (0,)
    logged = conn.execute(
        "SELECT object_name FROM etl.error_log WHERE message LIKE 'ERP change not recorded:%'"
        " ORDER BY 1"
    ).fetchall()
    assert logged == [("erp.package_to_job",), ("erp.shipment_to_delivery",)]
