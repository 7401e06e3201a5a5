"""STG -> BL: the project's SELECT (a versioned file) merged into a BL table in its own run,
after the STG process it depends on; what BL holds compared with what the source says it
should, through changes and deletes; a second statement in a transform file runs nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.di.conftest import Hub, add_users

BL_TABLE = """
CREATE SCHEMA IF NOT EXISTS bl;
CREATE TABLE bl.person (
    id            integer PRIMARY KEY,
    display_name  text NOT NULL,
    domain        text,
    inserted_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz
);
"""
PERSON_SELECT = """
-- bl.person: one row per live user, named for display
SELECT u.id, u.name || ' <' || coalesce(u.email, '-') || '>' AS display_name,
       split_part(u.email, '@', 2) AS domain
  FROM stg.users AS u
 WHERE u.deleted_at IS NULL;
"""
EXPECTED = """
SELECT id, name || ' <' || coalesce(email, '-') || '>', nullif(split_part(email, '@', 2), '')
  FROM app.users WHERE deleted_at IS NULL ORDER BY id
"""


@pytest.fixture
def transforms(tmp_path: Path, hub: Hub) -> Path:
    (tmp_path / "bl.person.sql").write_text(PERSON_SELECT)
    hub.layer = replace(hub.layer, transforms=tmp_path)
    with hub.target() as conn:
        conn.execute(BL_TABLE)
    return tmp_path


def bl_rows(hub: Hub) -> list[tuple]:
    with hub.target() as conn:
        return conn.execute(
            "SELECT id, display_name, nullif(domain, '') FROM bl.person"
            " WHERE deleted_at IS NULL ORDER BY id"
        ).fetchall()


def expected(hub: Hub) -> list[tuple]:
    with hub.source() as source:
        return source.execute(EXPECTED).fetchall()


def define_bl(hub: Hub, name: str = "person") -> None:
    hub.define(
        name,
        kind="stg_to_bl",
        source=None,
        source_table=None,
        target_table="bl.person",
        depends_on=["users"],
    )


def test_bl_follows_the_source_through_stg(hub: Hub, transforms: Path) -> None:
    with hub.source() as source:
        add_users(source, 1, 40)
        source.execute("UPDATE app.users SET email = NULL WHERE id = 7")
    hub.define("users")  # full reload into STG
    define_bl(hub)

    assert hub.run("users").status == "succeeded"
    first = hub.run("person")
    assert (first.status, first.merged.inserted) == ("succeeded", 40)
    assert bl_rows(hub) == expected(hub)

    with hub.source() as source:
        source.execute("DELETE FROM app.users WHERE id IN (3, 4)")
        source.execute("UPDATE app.users SET name = 'renamed' WHERE id = 5")
    hub.run("users")
    second = hub.run("person")
    assert (second.merged.updated, second.merged.deleted) == (1, 2)
    assert bl_rows(hub) == expected(hub)
    with hub.target() as conn:
        before = conn.execute("SELECT id, xmin::text FROM bl.person ORDER BY id").fetchall()
    assert hub.run("person").merged.unchanged == 38
    with hub.target() as conn:
        assert conn.execute("SELECT id, xmin::text FROM bl.person ORDER BY id").fetchall() == before


def test_a_transform_file_runs_one_select_and_nothing_else(hub: Hub, transforms: Path) -> None:
    with hub.target() as conn:
        conn.execute("CREATE TABLE public.canary (x int); INSERT INTO public.canary VALUES (1)")
    hub.define("users")
    define_bl(hub)
    hub.run("users")
    (transforms / "bl.person.sql").write_text(
        "SELECT id, name AS display_name, email AS domain FROM stg.users; DROP TABLE public.canary"
    )
    refused = hub.run("person")
    assert refused.status == "failed" and "syntax error" in refused.message
    with hub.target() as conn:
        assert conn.execute("SELECT x FROM public.canary").fetchall() == [(1,)]
    (transforms / "bl.person.sql").unlink()
    missing = hub.run("person")
    assert missing.status == "failed"
    assert f"write its SELECT in {transforms / 'bl.person.sql'}" in missing.message
