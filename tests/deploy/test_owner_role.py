"""SECURITY DEFINER routines a later revision creates (or a downgrade re-creates) belong to the
NOLOGIN role pgferry_owner too: the deploy step gives them to it after every revision from 0009
on (harness/deploy/versions.py), since CREATE OR REPLACE hands a new routine to whoever runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from harness.deploy import drift, history, migrate
from harness.deploy import versions as sqlversions
from harness.deploy.paths import SqlLayout, default_layout
from tests.support.pg import connect

HELLO = """CREATE OR REPLACE FUNCTION etl.hello() RETURNS text LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$ SELECT 'hi' $$;
REVOKE ALL ON FUNCTION etl.hello() FROM PUBLIC;
"""


def copy_of(root: Path, target: Path) -> SqlLayout:
    shutil.copy(root / "alembic.ini", target / "alembic.ini")
    shutil.copytree(root / "db", target / "db", ignore=shutil.ignore_patterns("__pycache__"))
    return SqlLayout(target)


def owners(conn: psycopg.Connection, *routines: str) -> dict[str, str | None]:
    found = dict(conn.execute(
        "SELECT r, (SELECT pg_get_userbyid(p.proowner) FROM pg_proc p"
        " WHERE p.oid = to_regprocedure(r)) FROM unnest(%s::text[]) AS r",
        [list(routines)],
    ).fetchall())  # fmt: skip
    return found


def test_a_later_revision_gives_its_security_definer_routines_to_the_owner_role(
    empty_db_url: str, tmp_path: Path
) -> None:
    released = copy_of(default_layout().root, tmp_path)
    history.freeze(released, "what the files say now")  # a definition being edited, if any
    history.seal(released)  # the open head, if any, counts as released
    (tmp_path / "later").mkdir()
    later = copy_of(tmp_path, tmp_path / "later")
    procedures = later.root / "db" / "procedures"
    (procedures / "etl.hello.sql").write_text(HELLO)  # a new SECURITY DEFINER routine
    (procedures / "etl.verify_journal.sql").unlink()  # dropped: the downgrade re-creates it
    lease = procedures / "etl.next_lease_token.sql"  # no longer SECURITY DEFINER
    lease.write_text(lease.read_text().replace("SECURITY DEFINER\n", ""))
    revision = history.freeze(later, "later")
    assert revision is not None and revision > sqlversions.OWNER_ROLE_FROM

    migrate.upgrade(empty_db_url, "head", later)
    with connect(empty_db_url) as conn:
        schema_owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'etl'"
        ).fetchone()[0]
        assert owners(conn, "etl.hello()", "etl.verify_journal()", "etl.next_lease_token()") == {
            "etl.hello()": "pgferry_owner",
            "etl.verify_journal()": None,
            "etl.next_lease_token()": schema_owner,  # others run it with their own rights now
        }
    assert drift.check(empty_db_url, later).clean

    migrate.downgrade(empty_db_url, "-1", later)
    with connect(empty_db_url) as conn:
        assert owners(conn, "etl.hello()", "etl.verify_journal()", "etl.next_lease_token()") == {
            "etl.hello()": None,
            "etl.verify_journal()": "pgferry_owner",  # re-created by the downgrade
            "etl.next_lease_token()": "pgferry_owner",
        }
    report = drift.check(empty_db_url, released)
    assert report.clean, report.lines()


def test_revisions_before_0009_deploy_as_they_always_did(empty_db_url: str) -> None:
    """History is not rewritten: replaying 0008 leaves the routines with whoever ran it."""
    migrate.upgrade(empty_db_url, "0008")
    with connect(empty_db_url) as conn:
        held = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proowner = 'pgferry_owner'::regrole"
        ).fetchone()
    assert held == (0,)
    assert not any("$owner$" in s for s in sqlversions.upgrade_script(
        default_layout().history, "0008"))  # fmt: skip
