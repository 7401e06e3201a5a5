"""The shipment pipeline: ERP triggers -> jobs -> DeTrack fake over real HTTP -> status back."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.demo.detrack_fake import DetrackFake
from harness.shipments.dispatcher import DispatchTotals
from harness.shipments.store import ShipmentStore
from tests.support.pg import connect
from tests.support.shipments import (
    API_KEY,
    FAST_DISPATCH,
    insert_shipments,
    job_row,
    make_dispatcher,
    shipment,
    sync,
)


def test_qualifying_shipments_become_jobs_and_bad_rows_never_fail_the_erp(
    conn: psycopg.Connection,
) -> None:
    good = [shipment(), shipment(ship_via="1005")]
    other = [shipment(ship_via="UPS"), shipment(is_partial=False)]
    bad = [shipment(ship_address_1=None), shipment(ship_phone="9" * 40)]

    insert_shipments(conn, [*good, *bad, *other])  # one ERP statement; it must succeed
    sync(conn)

    jobs = conn.execute("SELECT shipment_number FROM delivery.job ORDER BY 1").fetchall()
    assert jobs == [(good[0]["shipment_number"],), (good[1]["shipment_number"],)]
    errors = conn.execute(
        "SELECT row_key->>'shipment_number', sqlstate, detail FROM etl.error_log"
        " WHERE object_name = 'delivery.copy_shipments' ORDER BY 1"
    ).fetchall()
    assert [(int(n), s) for n, s, _ in errors] == [
        (bad[0]["shipment_number"], "23502"),
        (bad[1]["shipment_number"], "22001"),
    ]
    assert errors[0][2].endswith("field: ship_address_1")
    assert errors[1][2] == "field: ship_phone"
    assert conn.execute("SELECT count(*) FROM erp.shipment").fetchone() == (6,)


def test_only_real_changes_make_a_job_pending(conn: psycopg.Connection) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    number = row["shipment_number"]
    before = job_row(conn, number)["version"]

    conn.execute("UPDATE erp.shipment SET last_modified = now(), shipped = false")
    assert sync(conn) == 0  # columns the copy does not use: nothing recorded
    conn.execute("UPDATE erp.shipment SET ship_name = ship_name")
    assert sync(conn) == 0  # touched, not changed
    assert job_row(conn, number)["version"] == before

    conn.execute("UPDATE erp.shipment SET ship_phone = '250-555-0199'")
    assert sync(conn) == 1
    job = job_row(conn, number)
    assert job["version"] == before + 1 and job["payload"]["phone_number"] == "250-555-0199"


def test_jobs_are_created_updated_and_cancelled_in_detrack(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(3)]
    insert_shipments(conn, rows)
    conn.execute(
        "INSERT INTO erp.package VALUES (1, %s, '10005', 'SKU-1', 'Pallet', 2)",
        [rows[0]["shipment_number"]],
    )
    dispatcher = make_dispatcher(conn, fake)

    created = dispatcher.drain()
    assert (created.sent, created.synced, created.calls) == (3, 3, 1)  # one bulk call
    remote = fake.job(rows[0]["job_number"], "2026-11-23")
    assert remote["items"] == [{"sku": "SKU-1", "description": "Pallet", "quantity": 2}]
    assert remote["address"] == f"{rows[0]['ship_address_1']}, Victoria, Canada"
    assert job_row(conn, rows[0]["shipment_number"])["detrack_id"] == remote["id"]

    conn.execute(
        "UPDATE erp.shipment SET ship_instructions = 'Leave at back door'"
        " WHERE shipment_number = %s",
        [rows[1]["shipment_number"]],
    )
    conn.execute(
        "UPDATE erp.shipment SET ship_via = 'UPS' WHERE shipment_number = %s",
        [rows[2]["shipment_number"]],
    )
    changed = dispatcher.drain()
    assert (changed.sent, changed.synced) == (2, 2)
    assert fake.job(rows[1]["job_number"], "2026-11-23")["instructions"] == "Leave at back door"
    assert fake.job(rows[2]["job_number"], "2026-11-23") is None  # cancelled

    conn.execute(
        "DELETE FROM erp.shipment WHERE shipment_number = %s", [rows[1]["shipment_number"]]
    )
    dispatcher.drain()
    assert fake.job(rows[1]["job_number"], "2026-11-23") is None
    assert [job["do_number"] for job in fake.jobs()] == [rows[0]["job_number"]]
    assert all(fake.create_count(r["job_number"], "2026-11-23") == 1 for r in rows)


def test_statuses_flow_back_and_a_completed_delivery_is_never_deleted(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()

    fake.set_status(row["job_number"], "2026-11-23", "completed")
    totals = dispatcher.drain()
    assert totals.statuses == 1
    erp = conn.execute(
        "SELECT delivery_status, shipped, delivered_at IS NOT NULL FROM erp.shipment"
    ).fetchone()
    assert erp == ("completed", True, True)

    conn.execute("UPDATE erp.shipment SET ship_via = 'UPS'")  # stops qualifying: a cancel
    requests_before = len(fake.requests())
    dispatcher.drain()
    assert fake.job(row["job_number"], "2026-11-23")["status"] == "completed"
    assert not [r for r in fake.requests()[requests_before:] if r.method == "DELETE"]
    assert job_row(conn, row["shipment_number"])["last_error"] == (
        "not cancelled: the delivery is already completed"
    )
    steps = [
        r[0]
        for r in conn.execute(
            "SELECT step FROM etl.journal WHERE pipeline = 'shipments' ORDER BY journal_id"
        )
    ]
    assert steps == ["created", "status", "delivered"]  # info_recv, then completed


def test_a_refused_job_is_failed_with_the_full_body_and_the_rest_are_created(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(3)]
    # someone created another job under the second DO number in the DeTrack dashboard
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.client.create_jobs(
        [
            {
                "do_number": rows[1]["job_number"],
                "date": "2026-11-23",
                "address": "elsewhere",
                "tracking_number": "not ours",
            }
        ]
    )
    insert_shipments(conn, rows)

    totals = dispatcher.drain()

    assert (totals.synced, totals.failed) == (2, 1)
    refused = job_row(conn, rows[1]["shipment_number"])
    assert refused["sync_state"] == "failed" and refused["last_status"] == 422
    assert refused["last_response"]["refused"]["code"] == "validation_failed"
    assert refused["last_response"]["existing"]["tracking_number"] == "not ours"
    assert "is taken by another job" in refused["last_error"]
    assert fake.job(rows[0]["job_number"], "2026-11-23") is not None
    # refused jobs are not retried: the next run sends nothing
    assert make_dispatcher(conn, fake).drain().sent == 0


def test_the_run_command_exits_1_and_names_refused_jobs(db_url: str, fake: DetrackFake) -> None:
    rows = [shipment(), shipment()]
    with connect(db_url) as conn:
        make_dispatcher(conn, fake).client.create_jobs(
            [
                {
                    "do_number": rows[0]["job_number"],
                    "date": "2026-11-23",
                    "address": "x",
                    "tracking_number": "someone else",
                }
            ]
        )
        insert_shipments(conn, rows)
        sync(conn)
        job_id = job_row(conn, rows[0]["shipment_number"])["job_id"]
    env = {"DATABASE_URL": db_url, "DETRACK_BASE_URL": fake.base_url, "DETRACK_API_KEY": API_KEY}
    result = CliRunner().invoke(app, ["run", "shipments"], env=env)
    assert result.exit_code == 1, result.output
    assert (
        f"job {job_id} (shipment {rows[0]['shipment_number']}): failed, HTTP 422" in result.output
    )

    missing_key = CliRunner().invoke(app, ["run", "shipments"], env={**env, "DETRACK_API_KEY": ""})
    assert missing_key.exit_code == 2
    assert "DETRACK_API_KEY" in missing_key.output


def test_assignment_rules_at_creation_and_later(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    conn.execute(
        "INSERT INTO delivery.assignment_rule (postcode_prefix, vehicle)"
        " VALUES ('V8W', 'Truck V8W')"
    )
    covered, uncovered = shipment(), shipment(ship_postal_code="V9A 3B3", ship_zone="north")
    insert_shipments(conn, [covered, uncovered])
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()
    assert fake.job(covered["job_number"], "2026-11-23")["assign_to"] == "Truck V8W"
    assert "assign_to" not in fake.job(uncovered["job_number"], "2026-11-23")

    conn.execute(
        "INSERT INTO delivery.assignment_rule (zone, vehicle, priority)"
        " VALUES ('north', 'Truck North', 10)"
    )
    totals = dispatcher.drain()
    assert totals.assigned == 1
    assert fake.job(uncovered["job_number"], "2026-11-23")["assign_to"] == "Truck North"
    assert fake.job(covered["job_number"], "2026-11-23")["assign_to"] == "Truck V8W"


def test_statuses_are_read_at_most_once_per_interval(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    insert_shipments(conn, [shipment()])
    dispatcher = make_dispatcher(
        conn, fake, settings=replace(FAST_DISPATCH, status_poll_seconds=3600)
    )
    dispatcher.drain()
    insert_shipments(conn, [shipment()])
    dispatcher.drain()
    searches = [r for r in fake.requests() if r.path.endswith("/dn/jobs/search")]
    assert len(searches) == 1  # the second drain sent its create but did not search again
    assert len(fake.jobs()) == 2


def test_every_polled_job_is_stamped_so_the_next_poll_moves_on(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    rows = [shipment() for _ in range(3)]
    insert_shipments(conn, rows)
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()  # created, statuses read once (all info_recv)
    fake.set_status(rows[2]["job_number"], "2026-11-23", "completed")
    totals = DispatchTotals()
    dispatcher.poll_statuses(totals, limit=2)
    dispatcher.poll_statuses(totals, limit=2)  # the next two, not the same two again
    assert conn.execute(
        "SELECT shipped FROM erp.shipment WHERE shipment_number = %s", [rows[2]["shipment_number"]]
    ).fetchone() == (True,)


def test_a_new_delivery_date_replaces_the_detrack_job(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()
    conn.execute("UPDATE erp.shipment SET scheduled_ship_date = '2026-11-30'")
    dispatcher.drain()  # delete under the old key, then create under the new one
    assert [(j["do_number"], j["date"]) for j in fake.jobs()] == [(row["job_number"], "2026-11-30")]
    job = job_row(conn, row["shipment_number"])
    assert (job["remote"], str(job["remote_date"]), job["sync_state"]) == (
        "created",
        "2026-11-30",
        "synced",
    )


def test_a_change_made_while_the_call_ran_is_sent_even_if_the_call_was_refused(
    conn: psycopg.Connection,
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    store = ShipmentStore(conn)
    (claimed,) = store.claim("w", 10, timedelta(minutes=1))
    conn.execute("UPDATE erp.shipment SET ship_phone = '250-555-0111'")  # the ERP fixes it
    sync(conn)
    store.record(
        "w",
        [
            {
                "job_id": claimed.job_id,
                "version": claimed.version,
                "do_number": claimed.do_number,
                "date": claimed.date,
                "outcome": "failed",
                "http_status": 422,
                "error": "refused",
            }
        ],
        5,
        timedelta(0),
        timedelta(0),
    )
    assert job_row(conn, row["shipment_number"])["sync_state"] == "pending"


def test_clearing_the_ship_via_code_cancels_the_job(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    make_dispatcher(conn, fake).drain()
    conn.execute("UPDATE erp.shipment SET ship_via = NULL")
    make_dispatcher(conn, fake).drain()
    assert fake.jobs() == []


def test_the_erp_statement_records_shipment_numbers_and_the_worker_copies_them(
    conn: psycopg.Connection,
) -> None:
    qualifying = [shipment(), shipment()]
    insert_shipments(conn, [*qualifying, shipment(ship_via="UPS")])

    # the ERP's statement wrote one change row, nothing else of ours
    changes = conn.execute(
        "SELECT source_table, shipment_numbers, shipment_count FROM delivery.erp_change"
    ).fetchall()
    numbers = [row["shipment_number"] for row in qualifying]
    assert changes == [("erp.shipment", numbers, 2)]
    assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (0,)

    assert sync(conn) == 2
    jobs = conn.execute("SELECT shipment_number FROM delivery.job ORDER BY 1").fetchall()
    assert jobs == [(n,) for n in numbers]
    assert conn.execute("SELECT count(*) FROM delivery.erp_change").fetchone() == (0,)


def test_a_large_erp_statement_is_copied_in_slices(conn: psycopg.Connection) -> None:
    rows = [shipment() for _ in range(7)]
    insert_shipments(conn, rows)
    insert_shipments(conn, [shipment()])  # a second statement, queued behind the first
    store = ShipmentStore(conn)

    assert store.sync_erp_changes(3) == 3
    # the change row's array is not rewritten: only how much of it was taken moves on
    assert conn.execute(
        "SELECT taken, shipment_count FROM delivery.erp_change ORDER BY change_id LIMIT 1"
    ).fetchone() == (3, 7)
    taken = [store.sync_erp_changes(3) for _ in range(3)]

    # the second slice of the first statement; its last one fits with the whole second
    assert taken == [3, 2, 0]
    assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (8,)
    assert conn.execute("SELECT count(*) FROM delivery.erp_change").fetchone() == (0,)


def test_a_sync_that_dies_leaves_its_changes_queued(db_url: str) -> None:
    rows = [shipment() for _ in range(3)]
    with connect(db_url) as conn, connect(db_url) as doomed:
        insert_shipments(conn, rows)
        doomed.autocommit = False
        assert ShipmentStore(doomed).sync_erp_changes(100) == 3  # copied, not committed
        pid = doomed.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])  # the worker dies here
        with pytest.raises(psycopg.errors.AdminShutdown):
            doomed.execute("SELECT 1")

        assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (0,)
        assert conn.execute("SELECT shipment_count FROM delivery.erp_change").fetchall() == [(3,)]
        assert sync(conn) == 3
        jobs = conn.execute("SELECT shipment_number, version FROM delivery.job ORDER BY 1")
        assert jobs.fetchall() == [(row["shipment_number"], 1) for row in rows]


def test_concurrent_syncs_never_wait_on_each_other_or_copy_twice(db_url: str) -> None:
    with connect(db_url) as conn, connect(db_url) as first:
        insert_shipments(conn, [shipment() for _ in range(2)])
        first.autocommit = False
        assert ShipmentStore(first).sync_erp_changes(100) == 2  # holds the sync, uncommitted
        insert_shipments(conn, [shipment()])

        assert ShipmentStore(conn).sync_erp_changes(100) == 0  # returns at once, takes nothing
        first.commit()
        assert sync(conn) == 1
        assert conn.execute(
            "SELECT count(*), count(DISTINCT shipment_number), max(version) FROM delivery.job"
        ).fetchone() == (3, 3, 1)


def test_changing_the_qualifying_codes_re_evaluates_shipments(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    ups, ours = shipment(ship_via="UPS"), shipment(ship_via="1005")
    insert_shipments(conn, [ups, ours])
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()
    assert [job["do_number"] for job in fake.jobs()] == [ours["job_number"]]

    conn.execute("UPDATE delivery.settings SET ship_via_codes = ARRAY['UPS', '10005']")
    totals = dispatcher.drain()

    assert totals.erp_synced == 2 and (totals.sent, totals.synced) == (2, 2)  # a create, a cancel
    assert [job["do_number"] for job in fake.jobs()] == [ups["job_number"]]
    conn.execute("UPDATE delivery.settings SET require_partial = require_partial")
    assert sync(conn) == 0  # nothing that decides qualification changed


def test_the_status_write_back_does_not_come_back_round(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    dispatcher = make_dispatcher(conn, fake)
    dispatcher.drain()
    fake.set_status(row["job_number"], "2026-11-23", "completed")

    assert dispatcher.drain().statuses == 1
    assert conn.execute("SELECT delivery_status FROM erp.shipment").fetchone() == ("completed",)
    assert conn.execute("SELECT count(*) FROM delivery.erp_change").fetchone() == (0,)


def test_bad_rows_among_many_are_isolated_and_logged(conn: psycopg.Connection) -> None:
    rows = [shipment() for _ in range(1000)]
    bad = {17: {"ship_address_1": None}, 500: {"ship_phone": "9" * 40}, 999: {"job_number": None}}
    for index, fields in bad.items():
        rows[index].update(fields)
    insert_shipments(conn, rows)

    sync(conn)

    assert conn.execute("SELECT count(*) FROM delivery.job").fetchone() == (997,)
    errors = conn.execute(
        "SELECT (row_key->>'shipment_number')::bigint, detail FROM etl.error_log"
        " WHERE object_name = 'delivery.copy_shipments' ORDER BY 1"
    ).fetchall()
    assert [number for number, _ in errors] == [rows[i]["shipment_number"] for i in bad]
    assert [detail.rsplit("field: ", 1)[1] for _, detail in errors] == [
        "ship_address_1",
        "ship_phone",
        "job_number",
    ]


def test_package_changes_record_each_shipment_once_and_only_for_mapped_values(
    conn: psycopg.Connection,
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    number = row["shipment_number"]
    conn.execute(
        "INSERT INTO erp.package SELECT g, %s, 'truck', 'SKU-' || g, 'Box', 1"
        " FROM generate_series(1, 3) AS g",
        [number],
    )
    assert ShipmentStore(conn).waiting_erp_changes() == 1  # three packages, one shipment
    sync(conn)
    assert len(job_row(conn, number)["payload"]["items"]) == 3

    conn.execute("UPDATE erp.package SET ship_method = 'van'")  # not part of the job
    assert ShipmentStore(conn).waiting_erp_changes() == 0
    conn.execute("UPDATE erp.package SET quantity = 2 WHERE package_id = 1")
    assert ShipmentStore(conn).waiting_erp_changes() == 1


def test_a_settings_change_waits_for_erp_statements_in_flight(db_url: str) -> None:
    row = shipment(ship_via="4000")  # qualifies only once 4000 is added
    with connect(db_url) as conn, connect(db_url) as erp, connect(db_url) as dba:
        erp.autocommit = False
        insert_shipments(erp, [row])  # chosen by the old settings: not recorded
        dba_pid = dba.info.backend_pid
        change = threading.Thread(
            target=dba.execute,
            args=["UPDATE delivery.settings SET ship_via_codes = ship_via_codes || '4000'::text"],
        )
        change.start()
        while (
            change.is_alive()
            and not conn.execute(
                "SELECT cardinality(pg_blocking_pids(%s)) > 0", [dba_pid]
            ).fetchone()[0]
        ):
            pass  # until the settings change waits for the ERP's transaction
        assert change.is_alive(), "the settings change did not wait for the ERP statement"
        erp.commit()
        change.join()
        assert conn.execute(
            "SELECT '4000' = ANY (ship_via_codes) FROM delivery.settings"
        ).fetchone()

        sync(conn)
        assert job_row(conn, row["shipment_number"]) is not None
