"""`harness db check` beyond definitions: disabled triggers, owners, SECURITY DEFINER, settings
and EXECUTE grants that differ from what the migrations set. Each finding appears once its cause
is made by hand, and a database at head reports none.

The checks compare with the files history deploys (the latest frozen copy of each object), so a
definition file being edited, not frozen yet, does not show up here as drift."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.deploy import drift
from harness.deploy import versions as sqlversions
from harness.deploy.paths import DEFINITION_KINDS, SqlLayout, default_layout

LOG_ERROR = "etl.log_error(text,text,text,text,text,text,text,jsonb,jsonb,bigint)"
QUEUE_ALERT = "etl.queue_alert(text,text,text,text,bigint)"
END_PROCESS = "etl.end_process(bigint,text,bigint,text)"


@pytest.fixture
def deployed_files(tmp_path: Path) -> SqlLayout:
    """alembic.ini and db/ whose definition files are exactly what history deploys."""
    source = default_layout().root
    shutil.copy(source / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(source / "db", tmp_path / "db", ignore=shutil.ignore_patterns("__pycache__"))
    layout = SqlLayout(tmp_path)
    names = set()
    for kind in DEFINITION_KINDS:
        shutil.rmtree(tmp_path / "db" / kind)
        (tmp_path / "db" / kind).mkdir()
    for revision in sqlversions.revisions(layout.history):
        for path in sqlversions.frozen_objects(layout.history / revision):
            names.add(f"{path.parent.name}/{path.name}")
    for name in names:
        copy = sqlversions.latest_copy(layout.history, name)
        if copy is not None:
            shutil.copy(copy, tmp_path / "db" / name)
    return layout


def schema_owner(conn: psycopg.Connection) -> str:
    return conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'etl'"
    ).fetchone()[0]


def only(report: drift.DriftReport, **findings: object) -> None:
    """``report`` holds exactly ``findings`` (by field) and nothing else."""
    empty = {
        "changed": {},
        "missing": [],
        "unexpected": [],
        "broken": {},
        "security": {},
        "owners": {},
        "disabled": {},
    }
    assert {name: getattr(report, name) for name in empty} == {**empty, **findings}


def test_a_database_at_head_reports_nothing(db_url: str, deployed_files: SqlLayout) -> None:
    report = drift.check(db_url, deployed_files)
    assert report.clean and report.lines() == []


def test_a_routine_whose_file_grants_nothing_keeps_the_default_privileges(
    conn: psycopg.Connection, db_url: str, deployed_files: SqlLayout
) -> None:
    """CREATE lets PUBLIC execute a new routine; a file that says nothing leaves it so."""
    greet = "CREATE OR REPLACE FUNCTION etl.greet() RETURNS text LANGUAGE sql AS $$ SELECT 'hi' $$;"
    (deployed_files.root / "db" / "procedures" / "etl.greet.sql").write_text(greet)
    conn.execute(greet)
    assert drift.check(db_url, deployed_files).clean
    conn.execute("REVOKE EXECUTE ON FUNCTION etl.greet() FROM PUBLIC")
    report = drift.check(db_url, deployed_files)
    only(report, security={"etl.greet()": ["lacks what the files grant: PUBLIC EXECUTE"]})


@pytest.mark.parametrize(
    ("statement", "trigger", "state"),
    [
        (
            "ALTER TABLE etl.journal DISABLE TRIGGER journal_append_only",
            "trigger journal_append_only on etl.journal",
            "disabled",
        ),
        (
            "ALTER TABLE erp.shipment DISABLE TRIGGER shipment_to_delivery_insert",
            "trigger shipment_to_delivery_insert on erp.shipment",
            "disabled",
        ),
        (
            "ALTER TABLE tps.staged_permit ENABLE REPLICA TRIGGER require_open_permit_run",
            "trigger require_open_permit_run on tps.staged_permit",
            "fires only when session_replication_role is replica",
        ),
        (
            "ALTER TABLE erp.package DISABLE TRIGGER USER",
            "trigger package_to_job_truncate on erp.package",
            "disabled",
        ),
    ],
)
def test_a_trigger_that_does_not_fire_is_reported(
    conn: psycopg.Connection,
    db_url: str,
    deployed_files: SqlLayout,
    statement: str,
    trigger: str,
    state: str,
) -> None:
    conn.execute(statement)
    report = drift.check(db_url, deployed_files)
    assert report.disabled[trigger] == state
    if "USER" not in statement:
        only(report, disabled={trigger: state})
    assert f"disabled: {trigger} ({state})" in report.lines()


def test_a_routine_or_table_given_to_another_owner_is_reported(
    conn: psycopg.Connection, db_url: str, deployed_files: SqlLayout
) -> None:
    owner = schema_owner(conn)
    conn.execute("ALTER FUNCTION permit.claim_batch(text, integer, interval, bigint, integer)"
                 " OWNER TO pgferry_loader")  # fmt: skip
    conn.execute("ALTER FUNCTION etl.mask_phone(text) OWNER TO pgferry_owner")
    conn.execute("ALTER TABLE etl.process OWNER TO pgferry_owner")
    conn.execute("ALTER SEQUENCE etl.lease_token OWNER TO pgferry_worker")

    report = drift.check(db_url, deployed_files)

    only(
        report,
        owners={
            "permit.claim_batch(text,integer,interval,bigint,integer)": "is owned by"
            " pgferry_loader, expected pgferry_owner (SECURITY DEFINER routines run as their"
            " owner)",
            "etl.mask_phone(text)": f"is owned by pgferry_owner, expected {owner} (the owner of"
            " its schema)",
            "table etl.process": f"is owned by pgferry_owner, expected {owner} (the owner of its"
            " schema)",
            "sequence etl.lease_token": f"is owned by pgferry_worker, expected {owner} (the owner"
            " of its schema)",
        },
    )
    assert (
        "owner: etl.mask_phone(text) is owned by pgferry_owner, expected"
        f" {owner} (the owner of its schema)"
    ) in report.lines()


@pytest.mark.parametrize(
    ("statement", "routine", "finding"),
    [
        (
            "ALTER FUNCTION etl.start_process(text) SECURITY INVOKER",
            "etl.start_process(text)",
            "SECURITY INVOKER, the file says SECURITY DEFINER",
        ),
        (
            "ALTER FUNCTION permit.pdf_problem(bytea) SECURITY DEFINER",
            "permit.pdf_problem(bytea)",
            "SECURITY DEFINER, the file says SECURITY INVOKER",
        ),
        (
            f"ALTER FUNCTION {LOG_ERROR} SET search_path = public, pg_temp",
            LOG_ERROR,
            "runs with search_path=public, pg_temp, the file sets search_path=pg_catalog, pg_temp",
        ),
        (
            "ALTER FUNCTION etl.mask_hash(text, text) RESET search_path",
            "etl.mask_hash(text,text)",
            "runs with no settings, the file sets search_path=pg_catalog, pg_temp",
        ),
        (
            "ALTER FUNCTION etl.mask_hash(text, text) LEAKPROOF",
            "etl.mask_hash(text,text)",
            "LEAKPROOF, the file says not LEAKPROOF",
        ),
        (
            "GRANT EXECUTE ON FUNCTION etl.start_process(text) TO PUBLIC",
            "etl.start_process(text)",
            "granted beyond the files: PUBLIC EXECUTE",
        ),
        (
            f"GRANT EXECUTE ON FUNCTION {QUEUE_ALERT} TO pgferry_loader",
            QUEUE_ALERT,
            "granted beyond the files: pgferry_loader EXECUTE",
        ),
        (
            f"GRANT EXECUTE ON FUNCTION {QUEUE_ALERT} TO pgferry_worker WITH GRANT OPTION",
            QUEUE_ALERT,
            "granted beyond the files: pgferry_worker EXECUTE WITH GRANT OPTION",
        ),
        (
            f"REVOKE EXECUTE ON FUNCTION {END_PROCESS} FROM pgferry_loader",
            END_PROCESS,
            "lacks what the files grant: pgferry_loader EXECUTE",
        ),
    ],
)
def test_a_security_change_is_reported(
    conn: psycopg.Connection,
    db_url: str,
    deployed_files: SqlLayout,
    statement: str,
    routine: str,
    finding: str,
) -> None:
    conn.execute(statement)
    report = drift.check(db_url, deployed_files)
    only(report, security={routine: [finding]})
    assert f"security: {routine}: {finding}" in report.lines()


def test_a_security_change_and_a_body_change_are_both_reported(
    conn: psycopg.Connection, db_url: str, deployed_files: SqlLayout
) -> None:
    conn.execute(
        "CREATE OR REPLACE FUNCTION etl.next_lease_token() RETURNS bigint LANGUAGE sql"
        " AS $$ SELECT 42::bigint $$"
    )
    report = drift.check(db_url, deployed_files)
    assert list(report.changed) == ["etl.next_lease_token()"]
    assert report.security == {
        "etl.next_lease_token()": [
            "SECURITY INVOKER, the file says SECURITY DEFINER",
            "runs with no settings, the file sets search_path=pg_catalog, pg_temp",
        ]
    }


@pytest.fixture
def login_role(conn: psycopg.Connection) -> Iterator[str]:
    name = f"pgferry_test_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    conn.execute(f"DROP ROLE {name}")


def test_an_owner_role_that_can_log_in_is_reported(
    db_url: str, deployed_files: SqlLayout, login_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Played with a role of its own: pgferry_owner is shared by every database on the server."""
    monkeypatch.setattr(drift, "OWNER_ROLE", login_role)
    report = drift.check(db_url, deployed_files)
    assert report.security[f"role {login_role}"] == [
        f"has LOGIN: SECURITY DEFINER routines run as it (ALTER ROLE {login_role} NOLOGIN"
        " NOSUPERUSER NOBYPASSRLS)"
    ]
    assert report.owners["etl.start_process(text)"] == (
        f"is owned by pgferry_owner, expected {login_role} (SECURITY DEFINER routines run as"
        " their owner)"
    )


def test_the_check_command_fails_on_each_kind_of_finding(
    conn: psycopg.Connection,
    db_url: str,
    deployed_files: SqlLayout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    command = ["db", "check", "--root", str(deployed_files.root)]
    clean = runner.invoke(app, command)
    assert clean.exit_code == 0, clean.output

    conn.execute("ALTER TABLE etl.journal DISABLE TRIGGER journal_append_only")
    conn.execute("ALTER FUNCTION etl.verify_journal() OWNER TO pgferry_worker")
    conn.execute("GRANT EXECUTE ON FUNCTION etl.get_time_range(bigint) TO PUBLIC")
    drifted = runner.invoke(app, command)

    assert drifted.exit_code == 1
    lines = drifted.output.splitlines()
    assert "disabled: trigger journal_append_only on etl.journal (disabled)" in lines
    assert (
        "owner: etl.verify_journal() is owned by pgferry_worker, expected pgferry_owner"
        " (SECURITY DEFINER routines run as their owner)"
    ) in lines
    assert "security: etl.get_time_range(bigint): granted beyond the files: PUBLIC EXECUTE" in lines


def test_the_check_leaves_no_trace(
    conn: psycopg.Connection, db_url: str, deployed_files: SqlLayout
) -> None:
    """The grants are cleared and the files run inside a transaction that is rolled back."""
    conn.execute("GRANT EXECUTE ON FUNCTION etl.start_process(text) TO PUBLIC")
    acl = "SELECT proacl::text FROM pg_proc WHERE oid = 'etl.start_process(text)'::regprocedure"
    before = conn.execute(acl).fetchone()
    drift.check(db_url, deployed_files)
    assert conn.execute(acl).fetchone() == before
    assert drift.check(db_url, deployed_files).security  # still there, still reported
