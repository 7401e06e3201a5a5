"""Deployment through Alembic: round trips, offline scripts, frozen history, drift."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.deploy import drift, history, migrate
from harness.deploy import versions as sqlversions
from harness.deploy.paths import SqlLayout, default_layout
from tests.support.pg import connect, psql_file, schema_dump, scratch_database

OUR_OBJECTS_SQL = """
SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'etl'
UNION ALL
SELECT 'routine ' || p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'relation ' || c.oid::regclass::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
"""


@pytest.fixture
def project_copy(tmp_path: Path) -> SqlLayout:
    """A copy of alembic.ini and db/ that a test may edit freely."""
    source = default_layout().root
    shutil.copy(source / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(source / "db", tmp_path / "db", ignore=shutil.ignore_patterns("__pycache__"))
    return SqlLayout(tmp_path)


def test_history_has_a_single_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_sealed_history_is_unedited() -> None:
    assert history.verify_seal(default_layout()) == []


def test_up_down_up_round_trip_leaves_identical_schema(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    first = schema_dump(empty_db_url)
    assert "CREATE FUNCTION etl.start_process" in first

    migrate.downgrade(empty_db_url, "base")
    with connect(empty_db_url) as conn:
        leftovers = [row[0] for row in conn.execute(OUR_OBJECTS_SQL)]
    assert leftovers == []
    assert migrate.current_revision(empty_db_url) is None

    migrate.upgrade(empty_db_url)
    assert schema_dump(empty_db_url) == first


def test_downgrading_each_revision_gives_the_schema_of_the_one_before(
    server_url: str, empty_db_url: str
) -> None:
    """Head, then one revision down at a time: each step leaves exactly what upgrading to that
    revision gives (a trigger or object a revision adds is gone again)."""
    revisions = sqlversions.revisions(default_layout().history)
    migrate.upgrade(empty_db_url)
    for target in reversed(revisions[:-1]):
        migrate.downgrade(empty_db_url, target)
        with scratch_database(server_url) as fresh:
            migrate.upgrade(fresh, target)
            assert schema_dump(empty_db_url) == schema_dump(fresh), f"down to {target}"


def test_offline_script_gives_the_same_schema_as_online(server_url: str, db_url: str) -> None:
    script = migrate.offline_script()
    with scratch_database(server_url) as offline_url:
        result = psql_file(offline_url, script)
        assert result.returncode == 0, result.stderr
        assert schema_dump(offline_url) == schema_dump(db_url)
        assert migrate.current_revision(offline_url) == migrate.head_revision()


def test_replaying_history_gives_exactly_the_definition_files(db_url: str) -> None:
    report = drift.check(db_url, default_layout())
    assert report.clean, report.lines()


def test_check_reports_edited_deleted_and_new_files(db_url: str, project_copy: SqlLayout) -> None:
    procedures = project_copy.root / "db" / "procedures"
    start = procedures / "etl.start_process.sql"
    start.write_text(start.read_text().replace("start refused:", "start REFUSED:"))
    (procedures / "etl.queue_alert.sql").unlink()
    (procedures / "etl.hello.sql").write_text(
        "CREATE OR REPLACE FUNCTION etl.hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hi' $$;"
    )

    report = drift.check(db_url, project_copy)

    assert list(report.changed) == ["etl.start_process(text)"]
    assert "+            format('start REFUSED:" in report.changed["etl.start_process(text)"]
    assert report.missing == ["etl.hello()"]
    assert report.unexpected == ["etl.queue_alert(text,text,text,text,bigint)"]
    assert report.broken == {}


def test_check_reports_a_file_that_does_not_run(db_url: str, project_copy: SqlLayout) -> None:
    (project_copy.root / "db" / "procedures" / "etl.bad.sql").write_text("CREATE OR REPLACE oops;")
    report = drift.check(db_url, project_copy)
    assert list(report.broken) == ["etl.bad.sql"]
    assert 'syntax error at or near "oops"' in report.broken["etl.bad.sql"]


def test_check_command_exit_codes(
    db_url: str, project_copy: SqlLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    clean = runner.invoke(app, ["db", "check", "--root", str(project_copy.root)])
    assert clean.exit_code == 0, clean.output
    assert "no drift" in clean.output

    log_error = project_copy.root / "db" / "procedures" / "etl.log_error.sql"
    log_error.write_text(log_error.read_text().replace("(no message)", "(none)"))
    drifted = runner.invoke(app, ["db", "check", "--root", str(project_copy.root)])
    assert drifted.exit_code == 1
    assert "changed: etl.log_error(" in drifted.output

    monkeypatch.delenv("DATABASE_URL")
    unconfigured = runner.invoke(app, ["db", "check", "--root", str(project_copy.root)])
    assert unconfigured.exit_code == 2
    assert "DATABASE_URL is not set" in unconfigured.output


def test_check_reports_a_database_behind_head(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    result = CliRunner().invoke(app, ["db", "check"])
    assert result.exit_code == 1
    assert f"revision: database at base, head is {migrate.head_revision()}" in result.output


def test_freeze_deploys_a_new_version_and_downgrade_restores_the_old(
    empty_db_url: str, project_copy: SqlLayout
) -> None:
    original = SqlLayout(project_copy.root / "original")
    shutil.copytree(project_copy.root / "db", original.root / "db")
    shutil.copy(project_copy.alembic_ini, original.alembic_ini)
    procedures = project_copy.root / "db" / "procedures"
    end = procedures / "etl.end_process.sql"
    end.write_text(end.read_text().replace("A process can be ended once.", "End it only once."))
    (procedures / "etl.verify_journal.sql").unlink()  # nothing else calls it
    (procedures / "etl.greet.sql").write_text(
        "CREATE OR REPLACE FUNCTION etl.greet() RETURNS text LANGUAGE sql AS $$ SELECT 'hi' $$;\n"
    )

    head = migrate.head_revision(project_copy)
    revision = history.freeze(project_copy, "next version")

    assert revision == f"{int(head) + 1:04d}"
    folder = project_copy.history / revision
    assert sorted(p.name for p in (folder / "procedures").iterdir()) == [
        "etl.end_process.sql",
        "etl.greet.sql",
    ]
    assert (folder / "dropped.txt").read_text() == "procedures/etl.verify_journal.sql\n"
    assert history.verify_seal(project_copy) == []
    assert history.freeze(project_copy, "nothing new") is None

    migrate.upgrade(empty_db_url, "head", project_copy)
    assert drift.check(empty_db_url, project_copy).clean
    migrate.downgrade(empty_db_url, "-1", project_copy)
    report = drift.check(empty_db_url, original)
    assert report.clean, report.lines()


def test_seal_refuses_edited_history(project_copy: SqlLayout) -> None:
    frozen = project_copy.history / "0001" / "procedures" / "etl.start_process.sql"
    frozen.write_text(frozen.read_text() + "\n-- a quiet edit\n")
    assert history.verify_seal(project_copy) == [
        "edited: sql/0001/procedures/etl.start_process.sql"
    ]
    with pytest.raises(history.HistoryError, match="history was edited"):
        history.seal(project_copy)


def test_downgrading_below_0007_refuses_while_erp_changes_wait(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    with connect(empty_db_url) as conn:
        conn.execute(
            "INSERT INTO erp.shipment (shipment_number, ship_via, is_partial, ship_address_1)"
            " VALUES (1, '10005', true, '1 Government St')"
        )
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="1 ERP shipment"):
        migrate.downgrade(empty_db_url, "0006")
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()

    with connect(empty_db_url) as conn:
        conn.execute("SELECT delivery.sync_erp_changes()")
    migrate.downgrade(empty_db_url, "0006")  # nothing waits: the 0006 triggers take over
    assert migrate.current_revision(empty_db_url) == "0006"
