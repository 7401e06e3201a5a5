"""Least privilege: the loader and the worker go through the SQL API, and own nothing; the
SECURITY DEFINER routines belong to the NOLOGIN role pgferry_owner; the worker reads only the
columns it uses outside etl, never personal data; and both pipelines run with those rights."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.demo.detrack_fake import DetrackFake
from harness.ops.status import read_status
from harness.permits.store import PermitStore
from harness.s3 import make_client
from harness.shipments.store import ShipmentStore
from tests.support.permits import StagedPermit, load_run, numbered, object_keys
from tests.support.pg import connect
from tests.support.shipments import API_KEY, assert_detrack_matches_erp, insert_shipments, shipment

OUR_SCHEMAS = ["etl", "tps", "permit", "erp", "delivery", "files"]

# The loader's documented API, and nothing else.
LOADER_ROUTINES = {
    "etl.start_process(text)",
    "etl.get_time_range(bigint)",
    "etl.end_process(bigint,text,bigint,text)",
    "etl.log_error(text,text,text,text,text,text,text,jsonb,jsonb,bigint)",
}

# What the worker may execute: the loader's API, the SECURITY DEFINER routines the harness calls,
# and SECURITY INVOKER tools that run with the worker's own rights (merge, masks, extract).
WORKER_ROUTINES = LOADER_ROUTINES | {
    "delivery.waiting_work()",
    "etl.queue_alert(text,text,text,text,bigint)",
    "etl.next_lease_token()",
    "etl.extend_leases(text,bigint[],interval)",
    "etl.queue_lag_alerts(interval,interval)",
    "etl.auto_requeue_dead_letters(integer,interval)",
    "etl.verify_journal()",
    "etl.raise_logged_error(bigint)",
    "etl.worker_heartbeat(text,text,integer,text[])",
    "etl.worker_stopped(text)",
    "etl.take_lead(text,text,interval)",
    "etl.resign_lead(text,text)",
    "etl.compact_error_causes()",
    "etl.end_di_run(bigint,text,bigint,text)",
    "etl.record_cutover_check(boolean,jsonb)",
    "etl.extract_query(regclass,boolean,text)",
    "etl.mask_email(text,text)",
    "etl.mask_hash(text,text)",
    "etl.mask_phone(text)",
    "etl.merge_table(regclass,regclass,text[],boolean,bigint,text[],boolean)",
    "etl.merge_plan(regclass,regclass,text[],text[])",
    "etl.merge_catalog_key(regclass,regclass)",
    "etl.merge_find_bad_field(bigint,text[],text[])",
    "etl.find_overlong_field(regclass,jsonb)",
    "files.record_listing(text,jsonb)",
    "files.claim_files(text,integer,interval,bigint)",
    "files.record_step(bigint,bigint,text,jsonb)",
    "files.begin_load(bigint,bigint)",
    "files.record_failure(bigint,bigint,text,text,text,boolean)",
    "files.requeue_dead(bigint[],text)",
    "permit.claim_batch(text,integer,interval,bigint,integer)",
    "permit.move_batch(jsonb,interval)",
    "permit.record_failures(jsonb,integer,interval,interval,interval)",
    "permit.purge_stranded(interval)",
    "permit.finish_drained_processes()",
    "permit.requeue_dead(bigint[])",
    "permit.tombstone_orphans(text,jsonb)",
    "permit.clear_tombstones(text,text[])",
    "permit.pdf_problem(bytea)",
    "permit.tombstone_lifetime()",
    "delivery.sync_erp_changes(integer)",
    "delivery.claim_jobs(text,integer,interval,bigint)",
    "delivery.record_results(text,jsonb,integer,interval,interval)",
    "delivery.record_statuses(jsonb,text[])",
    "delivery.jobs_awaiting_status(integer)",
    "delivery.apply_assignment_rules()",
    "delivery.requeue_dead(bigint[])",
    "delivery.take_api_slot(integer,interval)",
    "delivery.hold_api_slots(integer,interval,double precision)",
    "delivery.vehicle_for(text,text)",
}

# The only columns outside etl the worker may read: what the harness selects (permit and shipment
# backlogs, dead letters, jobs to poll, refused jobs, waiting ERP changes, reconcile).
WORKER_COLUMNS = {
    "tps.staged_permit": {
        "staged_permit_id", "process_id", "permit_number", "permit_generation", "state",
        "attempts", "next_attempt_at", "lease_expires_at", "staged_at", "dead_at", "last_error",
    },
    "permit.document": {"bucket", "object_key", "size_bytes"},
    "delivery.job": {
        "job_id", "shipment_number", "remote", "remote_do_number", "desired", "sync_state",
        "delivery_status", "status_checked_at", "next_attempt_at", "last_status", "last_error",
    },
    "delivery.erp_change": {"shipment_count", "taken"},
}  # fmt: skip

# Personal data the worker must never read, one family at a time.
WORKER_REFUSED_PII = {
    "names": [
        "SELECT ship_name FROM erp.shipment",
        "SELECT ship_attention FROM erp.shipment",
        "SELECT ship_name FROM delivery.shipment",
    ],
    "addresses": [
        "SELECT ship_address_1 FROM erp.shipment",
        "SELECT ship_city, ship_postal_code FROM erp.shipment",
        "SELECT ship_address_2 FROM delivery.shipment",
        "SELECT postal_code FROM delivery.job",
    ],
    "phone numbers": [
        "SELECT ship_phone FROM erp.shipment",
        "SELECT ship_phone FROM delivery.shipment",
    ],
    "e-mail addresses": [
        "SELECT ship_email FROM erp.shipment",
        "SELECT ship_email FROM delivery.shipment",
    ],
    "delivery instructions": [
        "SELECT ship_instructions FROM erp.shipment",
        "SELECT ship_instructions FROM delivery.shipment",
    ],
    "the DeTrack job and its answers": [
        "SELECT payload FROM delivery.job",
        "SELECT last_response FROM delivery.job",
        "SELECT payload FROM delivery.dtrack_shipping",
    ],
    "vehicles and clients of permits": [
        "SELECT plate FROM tps.staged_permit",
        "SELECT vin FROM tps.staged_permit",
        "SELECT client_hash FROM tps.staged_permit",
        "SELECT plate, vin, client_hash FROM permit.permit",
    ],
    "permit documents": [
        "SELECT pdf FROM tps.staged_permit",
        "SELECT permit_document_name FROM tps.staged_permit",
        "SELECT file_name FROM permit.document",
    ],
    "whole rows": [
        "SELECT * FROM erp.shipment",
        "SELECT * FROM erp.package",
        "SELECT * FROM delivery.shipment",
        "SELECT * FROM delivery.job",
        "SELECT * FROM tps.staged_permit",
        "SELECT to_jsonb(s) FROM tps.staged_permit AS s",
    ],
}

LOADER_REFUSED_ROUTINES = [
    "SELECT etl.redact_secrets('{}', 100)",
    "SELECT etl.notify('etl_process_ended', 'x')",
    "SELECT etl.queue_alert('k', 's', 'b')",
    "SELECT etl.next_lease_token()",
    "SELECT permit.document_file_name('a', 'b', 'c')",
    "SELECT delivery.qualifies('10005', true, ARRAY['10005'], true)",
    "SELECT delivery.upsert_jobs(ARRAY[1::bigint])",
    "SELECT * FROM permit.claim_batch('w', 1, interval '1 minute', 1, 1)",
]

WORKER_REFUSED_ROUTINES = [
    "SELECT etl.redact_secrets('{}', 100)",
    "SELECT etl.notify('etl_process_ended', 'x')",
    "SELECT permit.document_file_name('a', 'b', 'c')",
    "SELECT permit.expire_tombstones(1)",
    "SELECT delivery.upsert_jobs(ARRAY[1::bigint])",
    "SELECT delivery.copy_shipments(ARRAY[1::bigint])",
    "SELECT delivery.record_erp_change('erp.shipment', ARRAY[1::bigint])",
]

LOADER_REFUSED = [
    "SELECT * FROM etl.process",
    "INSERT INTO etl.process (pipeline, window_from, window_to) VALUES ('permits', now(), now())",
    "UPDATE etl.process SET status = 'succeeded'",
    "DELETE FROM etl.process_error",
    "INSERT INTO etl.error_log (object_name, sqlstate, message) VALUES ('x', 'x', 'x')",
    "UPDATE etl.pipeline SET hung_after = '1 second'",
    "SELECT etl.queue_alert('k', 's', 'b')",
    "CREATE TABLE etl.mine (id int)",
]

WORKER_REFUSED = [
    "INSERT INTO etl.process (pipeline, window_from, window_to) VALUES ('permits', now(), now())",
    "UPDATE etl.process SET status = 'succeeded'",
    "DELETE FROM etl.error_log",
    "UPDATE etl.pipeline SET hung_after = '1 second'",
    "CREATE TABLE etl.mine (id int)",
]


def as_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(f"SET ROLE {role}")


@pytest.mark.parametrize("statement", LOADER_REFUSED)
def test_the_loader_cannot_touch_tables_directly(db_url: str, statement: str) -> None:
    with connect(db_url) as conn:
        as_role(conn, "pgferry_loader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_loader_runs_a_process_through_the_sql_api(db_url: str) -> None:
    with connect(db_url) as conn:
        as_role(conn, "pgferry_loader")
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        window = conn.execute("SELECT * FROM etl.get_time_range(%s)", [process_id]).fetchone()
        conn.execute("SELECT etl.end_process(%s, 'succeeded', 10)", [process_id])
        conn.execute("SELECT etl.log_error('loader', '22000', 'bad row')")
        conn.execute("RESET ROLE")
        assert conn.execute(
            "SELECT status, rows_loaded, window_from, window_to FROM etl.process"
        ).fetchone() == ("succeeded", 10, *window)
        assert conn.execute("SELECT logged_by FROM etl.error_log").fetchone()[0] != ""


@pytest.mark.parametrize("statement", WORKER_REFUSED)
def test_the_worker_cannot_rewrite_process_history(db_url: str, statement: str) -> None:
    with connect(db_url) as conn:
        as_role(conn, "pgferry_worker")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_worker_reads_state_and_marks_runs_consumed(db_url: str) -> None:
    with connect(db_url) as conn:
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        conn.execute("SELECT etl.end_process(%s, 'succeeded')", [process_id])
        as_role(conn, "pgferry_worker")
        conn.execute(
            "UPDATE etl.process SET consumed_at = now() WHERE process_id = %s", [process_id]
        )
        assert conn.execute(
            "SELECT count(*) FROM etl.process WHERE consumed_at IS NOT NULL"
        ).fetchone() == (1,)


def test_neither_role_owns_anything(db_url: str) -> None:
    with connect(db_url) as conn:
        owned = conn.execute(
            """
            SELECT 'schema ' || nspname FROM pg_namespace
             WHERE nspowner::regrole::text IN ('pgferry_loader', 'pgferry_worker')
            UNION ALL
            SELECT 'relation ' || oid::regclass::text FROM pg_class
             WHERE relowner::regrole::text IN ('pgferry_loader', 'pgferry_worker')
            UNION ALL
            SELECT 'routine ' || oid::regprocedure::text FROM pg_proc
             WHERE proowner::regrole::text IN ('pgferry_loader', 'pgferry_worker')
            """
        ).fetchall()
    assert owned == []


def executable_by(conn: psycopg.Connection, role: str) -> set[str]:
    rows = conn.execute(
        """
        SELECT p.oid::regprocedure::text FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%s) AND has_function_privilege(%s, p.oid, 'EXECUTE')
        """,
        [OUR_SCHEMAS, role],
    )
    return {row[0] for row in rows}


def test_public_cannot_execute_our_routines(conn: psycopg.Connection) -> None:
    assert executable_by(conn, "public") == set()


def test_the_loader_may_execute_its_documented_api_and_nothing_else(
    conn: psycopg.Connection,
) -> None:
    assert executable_by(conn, "pgferry_loader") == LOADER_ROUTINES


def test_the_worker_may_execute_the_routines_the_harness_calls(conn: psycopg.Connection) -> None:
    assert executable_by(conn, "pgferry_worker") == WORKER_ROUTINES


@pytest.mark.parametrize("statement", LOADER_REFUSED_ROUTINES)
def test_the_loader_cannot_call_internal_routines(conn: psycopg.Connection, statement: str) -> None:
    as_role(conn, "pgferry_loader")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
        conn.execute(statement)


@pytest.mark.parametrize("statement", WORKER_REFUSED_ROUTINES)
def test_the_worker_cannot_call_internal_routines(conn: psycopg.Connection, statement: str) -> None:
    as_role(conn, "pgferry_worker")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
        conn.execute(statement)


# == the owner role ==============================================================================


def test_security_definer_routines_belong_to_the_nologin_owner_role(
    conn: psycopg.Connection,
) -> None:
    owners = conn.execute(
        """
        SELECT p.prosecdef, pg_get_userbyid(p.proowner), count(*)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%s)
         GROUP BY 1, 2
        """,
        [OUR_SCHEMAS],
    ).fetchall()
    schema_owner = conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'etl'"
    ).fetchone()[0]
    by_kind = {(definer, owner) for definer, owner, _ in owners}
    # every SECURITY DEFINER routine runs as pgferry_owner; the others stay with the schema owner
    assert by_kind == {(True, "pgferry_owner"), (False, schema_owner)}
    role = conn.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication"
        " FROM pg_roles WHERE rolname = 'pgferry_owner'"
    ).fetchone()
    assert role == (False, False, False, False, False, False)


def test_nobody_can_log_in_as_the_owner_role(db_url: str) -> None:
    conninfo = psycopg.conninfo.conninfo_to_dict(db_url)
    with pytest.raises(
        psycopg.OperationalError, match='"pgferry_owner" is not permitted to log in'
    ):
        psycopg.connect(**{**conninfo, "user": "pgferry_owner", "password": None})


def test_the_owner_role_holds_what_the_definer_routines_need(conn: psycopg.Connection) -> None:
    missing = conn.execute(
        """
        SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
           AND NOT has_table_privilege('pgferry_owner', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
        UNION ALL
        SELECT 'sequence ' || c.oid::regclass::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
           -- an identity column's sequence needs no privilege of its own
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
           AND CASE WHEN c.relkind = 'S'  -- AND would not keep other relations from the check
                    THEN NOT has_sequence_privilege('pgferry_owner', c.oid, 'USAGE') END
        UNION ALL
        SELECT 'routine ' || p.oid::regprocedure::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%(schemas)s) AND p.prorettype <> 'trigger'::regtype
           AND NOT has_function_privilege('pgferry_owner', p.oid, 'EXECUTE')
        UNION ALL
        SELECT 'schema ' || s FROM unnest(%(schemas)s::text[]) AS s
         WHERE NOT has_schema_privilege('pgferry_owner', s, 'USAGE')
        UNION ALL
        SELECT 'temporary tables' WHERE NOT has_database_privilege(
            'pgferry_owner', current_database(), 'TEMPORARY')
        """,
        {"schemas": OUR_SCHEMAS},
    ).fetchall()
    assert missing == []


# == the worker reads only the columns it uses ===================================================


def test_the_worker_may_read_exactly_the_columns_the_harness_uses(
    conn: psycopg.Connection,
) -> None:
    rows = conn.execute(
        """
        SELECT c.oid::regclass::text, a.attname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname IN ('tps', 'permit', 'erp', 'delivery')
           AND has_column_privilege('pgferry_worker', c.oid, a.attnum, 'SELECT')
        """
    ).fetchall()
    readable: dict[str, set[str]] = {}
    for table, column in rows:
        readable.setdefault(table, set()).add(column)
    assert readable == WORKER_COLUMNS


@pytest.mark.parametrize(
    "statement",
    [pytest.param(s, id=f"{family}: {s}") for family, ss in WORKER_REFUSED_PII.items() for s in ss],
)
def test_the_worker_cannot_read_personal_data(conn: psycopg.Connection, statement: str) -> None:
    as_role(conn, "pgferry_worker")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
        conn.execute(statement)


def test_the_worker_reads_what_the_harness_shows(conn: psycopg.Connection) -> None:
    load_run(conn, numbered(2))
    insert_shipments(conn, [shipment()])
    as_role(conn, "pgferry_worker")
    permits, shipments = PermitStore(conn), ShipmentStore(conn)
    assert permits.backlog().claimable == 2
    assert permits.dead_letters() == []
    assert shipments.waiting_erp_changes() == 1
    assert shipments.sync_erp_changes(100) == 1  # SECURITY DEFINER: reads the ERP for the worker
    assert shipments.awaiting_status(10) == [] and shipments.failed_jobs() == []
    status = read_status(conn)
    assert {p.name: p.backlog for p in status.pipelines} == {
        "files": 0,
        "permits": 2,
        "shipments": 1,
    }


# == both pipelines with these rights ============================================================


def role_url(url: str, role: str) -> str:
    """``url`` for a session that runs as ``role`` from its start (as a login user granted it)."""
    return f"{url}{'&' if '?' in url else '?'}options=-c%20role%3D{role}"


def test_the_permit_pipeline_runs_as_loader_and_worker(
    db_url: str, s3_endpoint: str, s3_credentials: None
) -> None:
    bucket = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    good = numbered(6)
    with connect(role_url(db_url, "pgferry_loader")) as loader:
        assert loader.execute("SELECT current_user").fetchone() == ("pgferry_loader",)
        process_id = load_run(loader, [*good, StagedPermit("BADPDF", 1, b"GIF89a....")])
        again = load_run(loader, good[:2])  # re-delivered: duplicates

    env = {
        "DATABASE_URL": role_url(db_url, "pgferry_worker"),
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": bucket,
        "PERMITS_RETRY_BASE_SECONDS": "0",
    }
    result = CliRunner().invoke(app, ["run", "permits"], env=env)

    assert result.exit_code == 1, result.output  # the bad PDF is a dead letter
    assert "moved 6" in result.output and "permit BADPDF generation 1: pdf: not a PDF" in (
        result.output
    )
    with connect(db_url) as conn:
        moved = conn.execute(
            "SELECT p.tps_permit_number, d.file_name FROM permit.permit p"
            " JOIN permit.document d USING (document_id) ORDER BY 1"
        ).fetchall()
        assert moved == [(p.permit_number, f"ORBC-{p.permit_number}.pdf") for p in good]
        assert object_keys(s3_endpoint, bucket) == [
            f"permits/{p.permit_number}/r0.pdf" for p in good
        ]
        assert conn.execute(
            "SELECT staged_permit_id IS NOT NULL, state FROM tps.staged_permit"
        ).fetchall() == [(True, "dead")]
        consumed = conn.execute(
            "SELECT process_id FROM etl.process WHERE consumed_at IS NOT NULL"
        ).fetchall()
        assert consumed == [(again,)]  # the first run keeps its dead letter
        assert process_id != again
        assert conn.execute("SELECT count(*) FROM etl.error_log").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM etl.verify_journal()").fetchone() == (0,)


def test_the_shipment_pipeline_runs_as_loader_and_worker(db_url: str, fake: DetrackFake) -> None:
    rows = [shipment() for _ in range(3)]
    env = {
        "DATABASE_URL": role_url(db_url, "pgferry_worker"),
        "DETRACK_BASE_URL": fake.base_url,
        "DETRACK_API_KEY": API_KEY,
        "SHIPMENTS_STATUS_POLL_SECONDS": "0",
        "SHIPMENTS_RETRY_BASE_SECONDS": "0",
    }
    runner = CliRunner()
    # the ERP writes its tables as the loader role
    with connect(role_url(db_url, "pgferry_loader")) as erp, connect(db_url) as conn:
        insert_shipments(erp, rows)
        erp.execute(
            "INSERT INTO erp.package VALUES (1, %s, '10005', 'SKU-1', 'Pallet', 2)",
            [rows[0]["shipment_number"]],
        )
        created = runner.invoke(app, ["run", "shipments"], env=env)
        assert created.exit_code == 0, created.output
        assert_detrack_matches_erp(conn, fake)

        fake.set_status(rows[0]["job_number"], "2026-11-23", "completed")
        gone, edited = rows[1]["shipment_number"], rows[2]["shipment_number"]
        erp.execute("DELETE FROM erp.shipment WHERE shipment_number = %s", [gone])
        erp.execute(
            "UPDATE erp.shipment SET ship_phone = '250-555-0199' WHERE shipment_number = %s",
            [edited],
        )
        changed = runner.invoke(app, ["run", "shipments"], env=env)
        assert changed.exit_code == 0, changed.output
        assert conn.execute(
            "SELECT delivery_status, shipped FROM erp.shipment WHERE shipment_number = %s",
            [rows[0]["shipment_number"]],
        ).fetchone() == ("completed", True)
        assert fake.job(rows[1]["job_number"], "2026-11-23") is None
        assert fake.job(rows[2]["job_number"], "2026-11-23")["phone_number"] == "250-555-0199"
        assert conn.execute("SELECT count(*) FROM etl.error_log").fetchone() == (0,)
