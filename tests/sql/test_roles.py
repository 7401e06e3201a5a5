"""Least privilege: the loader and the worker go through the SQL API, and own nothing."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.pg import connect

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


def test_public_cannot_execute_our_routines(db_url: str) -> None:
    with connect(db_url) as conn:
        public_routines = conn.execute(
            """
            SELECT p.oid::regprocedure::text FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'etl' AND has_function_privilege('public', p.oid, 'EXECUTE')
            """
        ).fetchall()
    assert public_routines == []
