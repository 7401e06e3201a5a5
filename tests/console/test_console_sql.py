"""The console's SQL layer (revision 0010): what pgferry_viewer and pgferry_operator may do, the
operator actions journaled with who and why, their previews, keyset paging, and lineage."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake, Fault
from harness.ops.status import read_status
from tests.support.permits import StagedPermit, load_run, numbered
from tests.support.shipments import (
    FAST_DISPATCH,
    insert_shipments,
    make_dispatcher,
    shipment,
    sync,
)

OUR_SCHEMAS = ["etl", "tps", "permit", "erp", "delivery"]

# what a viewer may call: reads and previews
VIEWER_ROUTINES = {
    "etl.dead_letters(text,bigint[],text,timestamp with time zone,bigint,integer)",
    "etl.failure_causes(timestamp with time zone,timestamp with time zone)",
    "etl.failures(text,text,text,bigint,timestamp with time zone,timestamp with time zone,"
    "bigint,integer)",
    "etl.operator_actions(bigint,integer)",
    "etl.permit_lineage(text)",
    "etl.shipment_lineage(text)",
    "etl.preview_abandon_run(bigint)",
    "etl.preview_cancel_worker(text)",
    "etl.preview_pause_pipeline(text)",
    "etl.preview_requeue_dead_letters(text,bigint[],text,timestamp with time zone)",
    "etl.preview_resume_pipeline(text)",
    "etl.preview_retry_job(text,bigint)",
    "etl.run_detail(bigint)",
    "etl.run_journal(bigint,bigint,integer)",
    "etl.runs(text,text,timestamp with time zone,timestamp with time zone,bigint,integer)",
    "etl.throughput(interval,interval)",
}
# what an operator may call beyond that: the actions
ACTION_ROUTINES = {
    "etl.abandon_run(bigint,text)",
    "etl.cancel_worker(text,text)",
    "etl.pause_pipeline(text,text)",
    "etl.resume_pipeline(text,text)",
    "etl.requeue_dead_letters(text,bigint[],text,text,timestamp with time zone)",
    "etl.retry_job(text,bigint,text)",
}

ACTIONS = [
    "SELECT etl.pause_pipeline('permits', 'maintenance')",
    "SELECT etl.resume_pipeline('permits', 'maintenance over')",
    "SELECT etl.cancel_worker('w', 'stuck')",
    "SELECT etl.abandon_run(1, 'hung')",
    "SELECT etl.requeue_dead_letters('permits', NULL, 'fixed')",
    "SELECT etl.retry_job('shipments', 1, 'fixed')",
]

# reads a person must not make directly: tables, personal data, internal routines
REFUSED_READS = [
    "SELECT * FROM erp.shipment",
    "SELECT ship_phone FROM delivery.shipment",
    "SELECT payload FROM delivery.job",
    "SELECT job_id FROM delivery.job",
    "SELECT plate FROM tps.staged_permit",
    "SELECT staged_permit_id FROM tps.staged_permit",
    "SELECT vin FROM permit.permit",
    "SELECT * FROM etl.error_log",
    "SELECT * FROM etl.process",
    "SELECT * FROM etl.worker",
    "SELECT * FROM etl.operator_action",
    "SELECT * FROM etl.backlog",
    "SELECT etl.worker_heartbeat('w', 'h', 1, ARRAY['permits'])",
    "SELECT * FROM etl.item_to_retry('permits', 1)",
    "SELECT etl.begin_operator_action('x', NULL, '{}', 'why')",
    "SELECT * FROM permit.requeue_dead(NULL)",
    "SELECT * FROM delivery.requeue_dead(NULL)",
    "SELECT * FROM permit.claim_batch('w', 1, interval '1 minute', 1, 1)",
]

READS = [
    "SELECT * FROM etl.pipeline_status",
    "SELECT * FROM etl.worker_status",
    "SELECT * FROM etl.alert_totals",
    "SELECT * FROM etl.runs()",
    "SELECT * FROM etl.run_detail(1)",
    "SELECT * FROM etl.run_journal(1)",
    "SELECT * FROM etl.failures()",
    "SELECT * FROM etl.failure_causes()",
    "SELECT * FROM etl.dead_letters('permits')",
    "SELECT * FROM etl.dead_letters('shipments')",
    "SELECT * FROM etl.throughput()",
    "SELECT * FROM etl.operator_actions()",
    "SELECT etl.permit_lineage('P1')",
    "SELECT etl.shipment_lineage('DO-1')",
    "SELECT * FROM etl.preview_pause_pipeline('permits')",
    "SELECT * FROM etl.preview_resume_pipeline('permits')",
    "SELECT * FROM etl.preview_cancel_worker('w')",
    "SELECT * FROM etl.preview_abandon_run(1)",
    "SELECT * FROM etl.preview_requeue_dead_letters('shipments')",
    "SELECT * FROM etl.preview_retry_job('permits', 1)",
]


@pytest.fixture
def person(conn: psycopg.Connection) -> Iterator[callable]:
    """``as_person(role)``: this session becomes a new person (session_user, as a console login
    is) who is a member of ``role``. The people are dropped afterwards (roles are cluster-wide)."""
    made: list[str] = []

    def as_person(role: str) -> str:
        name = f"person_{uuid.uuid4().hex[:10]}"
        conn.execute(f"RESET SESSION AUTHORIZATION; CREATE ROLE {name} NOLOGIN IN ROLE {role}")
        made.append(name)
        conn.execute(f"SET SESSION AUTHORIZATION {name}")
        return name

    yield as_person
    conn.execute("RESET SESSION AUTHORIZATION")
    for name in made:
        conn.execute(f"DROP ROLE {name}")


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


# == roles =======================================================================================


def test_the_people_roles_cannot_log_in_and_the_operator_is_a_viewer(
    conn: psycopg.Connection,
) -> None:
    roles = conn.execute(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
        " FROM pg_roles WHERE rolname IN ('pgferry_viewer', 'pgferry_operator') ORDER BY 1"
    ).fetchall()
    assert roles == [
        ("pgferry_operator", False, False, False, False, False),
        ("pgferry_viewer", False, False, False, False, False),
    ]
    assert conn.execute("SELECT pg_has_role('pgferry_operator', 'pgferry_viewer', 'MEMBER')")


def test_a_viewer_may_execute_the_reads_and_previews_only(conn: psycopg.Connection) -> None:
    assert executable_by(conn, "pgferry_viewer") == VIEWER_ROUTINES


def test_an_operator_may_also_execute_the_actions(conn: psycopg.Connection) -> None:
    assert executable_by(conn, "pgferry_operator") == VIEWER_ROUTINES | ACTION_ROUTINES


def test_the_actions_run_as_the_nologin_owner_role(conn: psycopg.Connection) -> None:
    owners = conn.execute(
        "SELECT DISTINCT p.prosecdef, pg_get_userbyid(p.proowner) FROM pg_proc p"
        " WHERE p.oid::regprocedure::text = ANY(%s)",
        [sorted(VIEWER_ROUTINES | ACTION_ROUTINES)],
    ).fetchall()
    assert owners == [(True, "pgferry_owner")]


def test_people_own_nothing_and_may_read_no_table(conn: psycopg.Connection) -> None:
    readable = conn.execute(
        """
        SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'v', 'p', 'm')
           AND (has_table_privilege('pgferry_operator', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
                OR has_any_column_privilege('pgferry_operator', c.oid, 'SELECT, INSERT, UPDATE'))
        """,
        [OUR_SCHEMAS],
    ).fetchall()
    assert sorted(r[0] for r in readable) == [
        "etl.alert_totals",
        "etl.pipeline_status",
        "etl.worker_status",
    ]
    assert not conn.execute(
        "SELECT has_table_privilege('pgferry_operator', 'etl.pipeline_status',"
        " 'INSERT, UPDATE, DELETE, TRUNCATE')"
    ).fetchone()[0]


@pytest.mark.parametrize("statement", ACTIONS)
def test_a_viewer_cannot_act(conn: psycopg.Connection, person, statement: str) -> None:
    person("pgferry_viewer")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
        conn.execute(statement)


@pytest.mark.parametrize("role", ["pgferry_viewer", "pgferry_operator"])
@pytest.mark.parametrize("statement", REFUSED_READS)
def test_people_cannot_read_tables_or_call_internal_routines(
    conn: psycopg.Connection, person, role: str, statement: str
) -> None:
    person(role)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
        conn.execute(statement)


@pytest.mark.parametrize("statement", READS)
def test_a_viewer_reads_every_console_page(
    conn: psycopg.Connection, person, statement: str
) -> None:
    load_run(conn, numbered(1))
    person("pgferry_viewer")
    conn.execute(statement).fetchall()


def test_an_operator_acts_and_is_journaled_as_the_login(conn: psycopg.Connection, person) -> None:
    login = person("pgferry_operator")
    assert conn.execute("SELECT etl.pause_pipeline('shipments', 'DeTrack maintenance')").fetchone()
    assert conn.execute("SELECT etl.pause_pipeline('shipments', 'again')").fetchone() == (0,)
    actions = conn.execute(
        "SELECT actor, action, pipeline, reason, affected FROM etl.operator_actions()"
        " ORDER BY action_id"
    ).fetchall()
    conn.execute("RESET SESSION AUTHORIZATION")
    assert actions == [
        (login, "pause_pipeline", "shipments", "DeTrack maintenance", 1),
        (login, "pause_pipeline", "shipments", "again", 0),
    ]
    assert conn.execute(
        "SELECT paused_by, pause_reason FROM etl.pipeline WHERE name = 'shipments'"
    ).fetchone() == (login, "DeTrack maintenance")


@pytest.mark.parametrize("reason", ["", "   ", None])
@pytest.mark.parametrize("statement", ACTIONS)
def test_an_action_without_a_reason_is_refused_and_changes_nothing(
    conn: psycopg.Connection, statement: str, reason: str | None
) -> None:
    process_id = load_run(conn, numbered(1), status="running")
    conn.execute(
        "UPDATE etl.process SET started_at = now() - interval '5 hours' WHERE process_id = %s",
        [process_id],
    )
    conn.execute("SELECT etl.worker_heartbeat('w', 'h', 1, ARRAY['permits'])")
    before = conn.execute(
        "SELECT (SELECT array_agg(paused_at) FROM etl.pipeline),"
        " (SELECT array_agg(status) FROM etl.process),"
        " (SELECT array_agg(stop_requested_at) FROM etl.worker)"
    ).fetchone()
    call = statement.replace("'maintenance'", "%s").replace("'maintenance over'", "%s")
    for word in ("'stuck'", "'hung'", "'fixed'"):
        call = call.replace(word, "%s")
    with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation)):
        conn.execute(call, [reason])
    after = conn.execute(
        "SELECT (SELECT array_agg(paused_at) FROM etl.pipeline),"
        " (SELECT array_agg(status) FROM etl.process),"
        " (SELECT array_agg(stop_requested_at) FROM etl.worker)"
    ).fetchone()
    assert after == before
    assert conn.execute("SELECT count(*) FROM etl.operator_action").fetchone() == (0,)


def test_an_unknown_pipeline_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match='unknown pipeline "nope"'):
        conn.execute("SELECT etl.pause_pipeline('nope', 'why')")


# == abandon a hung run ==========================================================================


def test_abandon_run_ends_only_a_hung_run_as_start_process_would(conn: psycopg.Connection) -> None:
    process_id = load_run(conn, numbered(2), status="running")
    preview = "SELECT would_touch FROM etl.preview_abandon_run(%s)"
    # younger than hung_after (4 hours): the loader may still be working on it
    assert conn.execute(preview, [process_id]).fetchone() == (0,)
    assert conn.execute(
        "SELECT etl.abandon_run(%s, 'loader crashed')", [process_id]
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT status FROM etl.process WHERE process_id = %s", [process_id]
    ).fetchone() == ("running",)

    conn.execute(
        "UPDATE etl.process SET started_at = now() - interval '5 hours' WHERE process_id = %s",
        [process_id],
    )
    assert conn.execute(preview, [process_id]).fetchone() == (1,)
    assert conn.execute(
        "SELECT etl.abandon_run(%s, 'loader crashed')", [process_id]
    ).fetchone() == (1,)
    status, message, ended = conn.execute(
        "SELECT status, message, ended_at IS NOT NULL FROM etl.process WHERE process_id = %s",
        [process_id],
    ).fetchone()
    assert (status, ended) == ("abandoned", True) and "loader crashed" in message
    assert conn.execute("SELECT kind, process_id FROM etl.process_error").fetchall() == [
        ("abandoned", process_id)
    ]
    assert conn.execute(preview, [process_id]).fetchone() == (0,)
    # the pipeline starts again, its window covered again
    assert conn.execute("SELECT etl.start_process('permits')").fetchone()[0] is not None
    assert conn.execute(
        "SELECT action, pipeline, target, affected FROM etl.operator_action ORDER BY action_id"
    ).fetchall() == [
        ("abandon_run", "permits", {"process_id": process_id}, 0),
        ("abandon_run", "permits", {"process_id": process_id}, 1),
    ]


# == dead letters: preview, requeue, retry =======================================================


def dead_permits(conn: psycopg.Connection) -> list[int]:
    """Three dead letters: two with an invalid PDF, one with a missing permit number."""
    load_run(
        conn,
        [
            StagedPermit("BAD1", 1, b"GIF89a"),
            StagedPermit("BAD2", 1, b"GIF89a"),
            StagedPermit(None, 1),
            *numbered(1),
        ],
    )
    conn.execute("SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', 1, 3)")
    conn.execute(
        "UPDATE tps.staged_permit SET state = 'pending', lease_owner = NULL,"
        " lease_expires_at = NULL, lease_token = NULL WHERE state = 'claimed'"
    )
    return [r[0] for r in conn.execute("SELECT item_id FROM etl.dead_letters('permits')")]


def dead_jobs(conn: psycopg.Connection, count: int) -> list[int]:
    insert_shipments(conn, [shipment() for _ in range(count)])
    sync(conn)
    conn.execute(
        "UPDATE delivery.job SET sync_state = CASE WHEN job_id % 2 = 0 THEN 'dead' ELSE 'failed'"
        " END, last_error = CASE WHEN job_id % 3 = 0 THEN 'HTTP 503 unavailable'"
        " ELSE 'HTTP 422 address invalid' END"
    )
    return [r[0] for r in conn.execute("SELECT job_id FROM delivery.job ORDER BY 1")]


def test_the_requeue_preview_matches_what_the_requeue_then_does(conn: psycopg.Connection) -> None:
    ids = dead_permits(conn)
    assert len(ids) == 3
    would, sample = conn.execute(
        "SELECT * FROM etl.preview_requeue_dead_letters('permits', NULL, 'pdf')"
    ).fetchone()
    assert would == 2 and [s["item_key"] for s in sample] == [
        "permit BAD1 generation 1",
        "permit BAD2 generation 1",
    ]
    assert all("pdf" in s["last_error"] for s in sample)
    done = conn.execute(
        "SELECT etl.requeue_dead_letters('permits', NULL, 'PDFs fixed upstream', 'PDF')"
    ).fetchone()[0]
    assert done == would
    assert conn.execute("SELECT count(*) FROM etl.dead_letters('permits')").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM etl.journal WHERE step = 'requeued'").fetchone() == (
        2,
    )
    assert conn.execute("SELECT action, target, affected FROM etl.operator_action").fetchone() == (
        "requeue_dead_letters",
        {"error_contains": "PDF"},
        2,
    )
    # nothing left that matches: the preview and the action agree on zero
    assert conn.execute(
        "SELECT would_touch FROM etl.preview_requeue_dead_letters('permits', NULL, 'pdf')"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT etl.requeue_dead_letters('permits', NULL, 'again', 'pdf')"
    ).fetchone() == (0,)


def test_requeue_by_ids_and_since_for_shipments(conn: psycopg.Connection) -> None:
    jobs = dead_jobs(conn, 12)
    chosen = jobs[:5]
    would, sample = conn.execute(
        "SELECT * FROM etl.preview_requeue_dead_letters('shipments', %s)", [chosen]
    ).fetchone()
    assert would == 5 and [s["item_id"] for s in sample] == chosen
    assert conn.execute(
        "SELECT etl.requeue_dead_letters('shipments', %s, 'addresses fixed')", [chosen]
    ).fetchone() == (5,)
    assert conn.execute(
        "SELECT count(*) FROM delivery.job WHERE sync_state = 'pending'"
    ).fetchone() == (5,)
    # a filter that matches none of the rest requeues none: an empty selection is not "all"
    assert conn.execute(
        "SELECT etl.requeue_dead_letters('shipments', NULL, 'later', NULL, now() + interval '1 day')"
    ).fetchone() == (0,)
    # the sample is capped at 10, the count is not
    would, sample = conn.execute(
        "SELECT * FROM etl.preview_requeue_dead_letters('shipments')"
    ).fetchone()
    assert (would, len(sample)) == (7, 7)
    more = dead_jobs(conn, 6)
    would, sample = conn.execute(
        "SELECT * FROM etl.preview_requeue_dead_letters('shipments')"
    ).fetchone()
    assert (would, len(sample)) == (18, 10) and len(more) == 18
    assert conn.execute(
        "SELECT etl.requeue_dead_letters('shipments', NULL, 'all of them')"
    ).fetchone() == (18,)


def test_retry_job_requeues_a_dead_letter_or_ends_a_retry_delay(conn: psycopg.Connection) -> None:
    dead, waiting, synced = dead_jobs(conn, 3)
    conn.execute(
        "UPDATE delivery.job SET sync_state = CASE job_id WHEN %s THEN 'pending' ELSE 'synced' END,"
        " next_attempt_at = now() + interval '1 hour' WHERE job_id IN (%s, %s)",
        [waiting, waiting, synced],
    )
    preview = "SELECT would_touch FROM etl.preview_retry_job('shipments', %s)"
    retry = "SELECT etl.retry_job('shipments', %s, 'DeTrack is back')"
    for job, expected in ((dead, 1), (waiting, 1), (synced, 0)):
        assert conn.execute(preview, [job]).fetchone() == (expected,)
        assert conn.execute(retry, [job]).fetchone() == (expected,)
        assert conn.execute(preview, [job]).fetchone() == (0,)
    assert conn.execute(
        "SELECT job_id, sync_state, next_attempt_at <= now() FROM delivery.job ORDER BY 1"
    ).fetchall() == [(dead, "pending", True), (waiting, "pending", True), (synced, "synced", False)]
    assert conn.execute(
        "SELECT array_agg(affected ORDER BY action_id) FROM etl.operator_action"
    ).fetchone() == ([1, 1, 0],)


# == keyset paging ===============================================================================


def pages(conn: psycopg.Connection, query: str, key: str, limit: int) -> list[list[int]]:
    """Every page of ``query`` (which takes the keyset value and the limit), in order."""
    found, after = [], None
    while True:
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            rows = cursor.execute(query, [after, limit]).fetchall()
        if not rows:
            return found
        found.append([row[key] for row in rows])
        after = rows[-1][key]


def test_keyset_paging_returns_every_row_once(conn: psycopg.Connection) -> None:
    for _ in range(23):
        process_id = conn.execute("SELECT etl.start_process('shipments')").fetchone()[0]
        conn.execute("SELECT etl.end_process(%s, 'succeeded', 0)", [process_id])
        conn.execute(
            "SELECT etl.log_error('test', '22023', 'rejected: plate: too long', p_process_id => %s)",
            [process_id],
        )
    runs = pages(
        conn, "SELECT * FROM etl.runs('shipments', NULL, NULL, NULL, %s, %s)", "process_id", 5
    )
    every = [i for page in runs for i in page]
    assert [len(p) for p in runs] == [5, 5, 5, 5, 3]
    assert every == sorted(every, reverse=True) and len(set(every)) == 23

    errors = pages(
        conn,
        "SELECT * FROM etl.failures(p_field => 'plate', p_after => %s, p_limit => %s)",
        "error_id",
        7,
    )
    every_error = [i for page in errors for i in page]
    assert len(every_error) == len(set(every_error)) == 23

    jobs = dead_jobs(conn, 11)
    letters = pages(
        conn,
        "SELECT * FROM etl.dead_letters('shipments', p_after => %s, p_limit => %s)",
        "item_id",
        4,
    )
    assert [i for page in letters for i in page] == jobs

    run_id = load_run(conn, numbered(9))
    journal = pages(conn, f"SELECT * FROM etl.run_journal({run_id}, %s, %s)", "journal_id", 4)
    assert len([i for page in journal for i in page]) == 9


def test_failures_filter_and_group_by_cause(conn: psycopg.Connection) -> None:
    dead_permits(conn)
    conn.execute(
        "SELECT etl.log_error('merge', '22001', 'value too long', p_detail => 'field: vin')"
    )
    causes = conn.execute(
        "SELECT object_name, sqlstate, field, errors FROM etl.failure_causes()"
    ).fetchall()
    assert causes == [
        ("permit.claim_batch", "22023", "pdf", 2),
        ("merge", "22001", "vin", 1),
        ("permit.claim_batch", "22023", "permit_number", 1),
    ]
    rows = conn.execute(
        "SELECT field, row_key FROM etl.failures(p_object => 'permit.claim_batch',"
        " p_sqlstate => '22023', p_field => 'pdf')"
    ).fetchall()
    assert sorted((f, k["permit_number"]) for f, k in rows) == [("pdf", "BAD1"), ("pdf", "BAD2")]


# == runs and lineage ============================================================================


def test_run_detail_reconciles_a_permit_run(conn: psycopg.Connection) -> None:
    ids = dead_permits(conn)
    process_id = conn.execute("SELECT process_id FROM tps.staged_permit LIMIT 1").fetchone()[0]
    detail = conn.execute(
        "SELECT staged, moved, duplicates, rejected, dead, still_staged, still_dead, errors_logged"
        " FROM etl.run_detail(%s)",
        [process_id],
    ).fetchone()
    assert detail == (4, 0, 0, 3, 0, 1, 3, 3) and len(ids) == 3


def test_permit_lineage_shows_no_personal_data(conn: psycopg.Connection) -> None:
    load_run(conn, [StagedPermit("LIN1", 1), StagedPermit("LIN1", 2, b"GIF89a")])
    conn.execute("SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', 1, 3)")
    lineage = conn.execute("SELECT etl.permit_lineage('LIN1')").fetchone()[0]
    assert [s["state"] for s in lineage["staged"]] == ["claimed", "dead"]
    assert [j["step"] for j in lineage["journal"]] == ["staged", "staged", "dead"]
    text = json.dumps(lineage)
    assert "ABC123" not in text and "1HGBH41JXMN109186" not in text  # plate, VIN


def test_shipment_lineage_by_shipment_or_do_number_shows_no_personal_data(
    conn: psycopg.Connection,
) -> None:
    row = shipment()
    insert_shipments(conn, [row])
    sync(conn)
    conn.execute(
        "UPDATE delivery.job SET last_status = 200, last_response = %s",
        [
            json.dumps(
                {
                    "data": {
                        "do_number": row["job_number"],
                        "phone_number": row["ship_phone"],
                        "address": "x",
                        "status": "info_recv",
                    }
                }
            )
        ],
    )
    by_do = conn.execute("SELECT etl.shipment_lineage(%s)", [row["job_number"]]).fetchone()[0]
    by_number = conn.execute(
        "SELECT etl.shipment_lineage(%s)", [str(row["shipment_number"])]
    ).fetchone()[0]
    assert by_do == by_number and len(by_do) == 1
    (found,) = by_do
    assert found["erp"]["job_number"] == found["job"]["do_number"] == row["job_number"]
    assert found["job"]["request"]["do_number"] == row["job_number"]
    assert found["job"]["last_response"]["data"] == {
        "do_number": row["job_number"],
        "status": "info_recv",
    }
    text = json.dumps(by_do)
    for personal in ("ship_phone", "ship_email", "ship_name", "ship_address_1"):
        assert row[personal] not in text
    assert conn.execute("SELECT etl.shipment_lineage('no such')").fetchone() == ([],)


def test_shipment_lineage_holds_every_detrack_call_with_its_request_and_answer(
    conn: psycopg.Connection, fake: DetrackFake
) -> None:
    """A create that met a 503, then succeeded, then an update after an ERP change: three
    calls in the lineage, each with the version sent, what was sent and what came back, and no
    personal field of the shipment anywhere."""
    row = shipment()
    insert_shipments(conn, [row])
    dispatcher = make_dispatcher(
        conn, fake, settings=replace(FAST_DISPATCH, retry_base_seconds=0), max_retries=0
    )
    try:
        fake.inject(Fault(status=503, body='{"message": "busy"}'))
        assert dispatcher.drain().synced == 1  # the 503 is retried at once (no backoff here)
        conn.execute(
            "UPDATE erp.shipment SET ship_zone = 'EAST' WHERE shipment_number = %s",
            [row["shipment_number"]],
        )
        assert dispatcher.drain().synced == 1
    finally:
        dispatcher.close()

    (found,) = conn.execute("SELECT etl.shipment_lineage(%s)", [row["job_number"]]).fetchone()[0]
    calls = [j for j in found["job"]["journal"] if "request" in (j["detail"] or {})]
    assert [(c["step"], c["detail"]["http_status"], c["detail"]["version"]) for c in calls] == [
        ("send_failed", 503, 1),
        ("created", 200, 1),
        ("updated", 200, 2),
    ]
    assert calls[0]["detail"]["response"] == {"message": "busy"}
    assert calls[1]["detail"]["request"]["do_number"] == row["job_number"]
    assert calls[1]["detail"]["response"]["do_number"] == row["job_number"]
    assert calls[2]["detail"]["request"]["data"]["zone"] == "EAST"
    text = json.dumps(found)
    for personal in ("ship_phone", "ship_email", "ship_name", "ship_address_1", "ship_city"):
        assert row[personal] not in text, personal


def test_a_viewer_reads_what_harness_status_shows(conn: psycopg.Connection, person) -> None:
    """`harness status` and the console read the same SQL, and a viewer may read all of it."""
    load_run(conn, [*numbered(2), StagedPermit("BAD", 1, b"GIF89a")])
    conn.execute("SELECT * FROM permit.claim_batch('w', 10, interval '1 minute', 1, 3)")
    conn.execute("SELECT etl.pause_pipeline('permits', 'look first')")
    as_superuser = read_status(conn)
    person("pgferry_viewer")
    as_viewer = read_status(conn)
    for status in (as_superuser, as_viewer):  # the lag grows between the two reads
        for pipeline in status.pipelines:
            pipeline.lag_seconds = None
    assert as_viewer == as_superuser
    permits = next(p for p in as_viewer.pipelines if p.name == "permits")
    assert (permits.name, permits.dead_letters, permits.pause_reason) == (
        "permits",
        1,
        "look first",
    )
    assert (as_viewer.alerts_unsent, as_viewer.alerts_total) == (1, 1)  # the dead letter's alert
