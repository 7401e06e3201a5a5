"""`harness cutover verify` for real: a source and its STG table compared after DI runs; the
differences injected into the target located to their keys (missing, extra, changed); changes
the source made after the last run left out; key indicators on both sides; every check kept in
etl.cutover_check."""

from __future__ import annotations

import json
from datetime import timedelta

from harness.di.cutover import verify_cutover
from harness.di.metadata import load_processes
from tests.cli.support import run
from tests.di.conftest import Hub, add_users
from tests.di.test_di_command import environment


def verify(hub: Hub):  # -> CutoverReport
    with hub.target() as conn:
        processes = load_processes(conn)
    return verify_cutover(hub.target_url, processes)


def loaded(hub: Hub, rows: int = 3000, **definition: object) -> None:
    with hub.source() as source:
        add_users(source, 1, rows)
    hub.define("users", cdc_column="updated_at", deleted_column="deleted_at", **definition)
    assert hub.run("users").status == "succeeded"


def test_identical_tables_pass_and_the_check_is_kept(hub: Hub) -> None:
    loaded(hub)
    report = verify(hub)
    (table,) = report.tables
    assert report.passed and table.matched
    assert (table.source_rows, table.target_rows, table.differing_segments) == (3000, 3000, 0)
    with hub.target() as conn:
        passed, by, document = conn.execute(
            "SELECT passed, checked_by, report FROM etl.cutover_check WHERE check_id = %s",
            [report.check_id],
        ).fetchone()
    assert passed and by == "postgres" and document["tables"][0]["source_rows"] == 3000


def test_injected_differences_are_located_to_their_keys(hub: Hub) -> None:
    loaded(hub)
    with hub.target() as conn:
        conn.execute("DELETE FROM stg.users WHERE id IN (17, 2500)")  # missing
        conn.execute(
            "INSERT INTO stg.users (id, name, inserted_at, updated_at) VALUES (9001, 'x', now(), now())"
        )  # extra
        conn.execute("UPDATE stg.users SET email = 'changed@example.com' WHERE id = 42")
        conn.execute("UPDATE stg.users SET score = score + 0.01 WHERE id = 1234")
        conn.execute("UPDATE stg.users SET deleted_at = now() WHERE id = 77")  # absent in STG
    report = verify(hub)
    (table,) = report.tables
    assert not report.passed
    assert sorted(k["id"] for k in table.missing) == [17, 77, 2500]
    assert [k["id"] for k in table.extra] == [9001]
    assert sorted(k["id"] for k in table.changed) == [42, 1234]
    assert table.counts == {"missing": 3, "extra": 1, "changed": 2} and table.complete
    assert (table.source_rows, table.target_rows) == (3000, 2998)


def test_changes_after_the_last_run_are_left_out_until_the_next_run(hub: Hub) -> None:
    loaded(hub, window_overlap=timedelta(0))
    with hub.source() as source:
        source.execute("UPDATE app.users SET name = 'later', updated_at = now() WHERE id = 5")
        add_users(source, 3001, 1, updated_at=None)
        source.execute("UPDATE app.users SET updated_at = now() WHERE id = 3001")
        source.execute("UPDATE app.users SET deleted_at = now(), updated_at = now() WHERE id = 6")
    report = verify(hub)
    assert report.passed and report.tables[0].left_out == 3
    assert hub.run("users").status == "succeeded"
    after = verify(hub)
    assert after.passed and after.tables[0].left_out == 0
    assert after.tables[0].source_rows == 3000  # 3001 added, 6 soft-deleted


def test_key_indicators_are_compared_on_both_sides(hub: Hub) -> None:
    loaded(hub, rows=500)
    per_domain = (
        "SELECT split_part(email, '@', 2) AS domain, count(*), sum(score) FROM {table}"
        " WHERE deleted_at IS NULL GROUP BY 1"
    )
    with hub.target() as conn:
        conn.execute(
            "SELECT etl.define_cutover_indicator('users per domain', 'qvp', %s, %s)",
            [per_domain.format(table="app.users"), per_domain.format(table="stg.users")],
        )
    first = verify(hub)
    assert first.passed and first.indicators[0].matched
    assert first.indicators[0].source_rows == [["example.com", "500", "187875"]]
    with hub.target() as conn:
        conn.execute("UPDATE stg.users SET score = 0 WHERE id = 1")
    second = verify(hub)
    assert not second.passed and not second.indicators[0].matched


def test_the_command_reports_exits_and_names_what_it_could_not_check(
    hub: Hub, s3_endpoint: str
) -> None:
    loaded(hub, rows=200)
    env = environment(hub, s3_endpoint)
    clean = run(env, "cutover", "verify")
    assert clean.returncode == 0, clean.stderr
    assert "users: qvp:app.users -> stg.users: match: 200 source rows" in clean.stdout
    assert "PASSED" in clean.stdout

    with hub.target() as conn:
        conn.execute("UPDATE stg.users SET name = 'wrong' WHERE id = 150")
    hub.define("orders", source="erp", source_table="app.orders")  # no such connection
    differs = run(env, "cutover", "verify", "--json")
    assert differs.returncode == 1
    document = json.loads(differs.stdout)
    tables = {t["process"]: t for t in document["tables"]}
    assert [k["id"] for k in tables["users"]["changed"]] == [150]
    assert "PGFERRY_SOURCE_ERP_URL is not set" in tables["orders"]["error"]
    text = run(env, "cutover", "verify", "users")
    assert text.returncode == 1 and 'changed (1): {"id": 150}' in text.stdout


def test_values_of_other_types_but_equal_compare_equal(hub: Hub) -> None:
    """The source's numeric without scale and naive timestamps against the STG's numeric(8,2)
    and timestamptz: equal values, no difference; an indicator's NULL is not an empty string."""
    with hub.source() as source:
        add_users(source, 1, 50)
        source.execute(
            "ALTER TABLE app.users ALTER COLUMN score TYPE numeric,"
            " ALTER COLUMN created_at TYPE timestamp USING created_at AT TIME ZONE 'UTC'"
        )
        source.execute("UPDATE app.users SET score = 1.5 WHERE id = 1")
    hub.define("users", cdc_column="updated_at")
    assert hub.run("users").status == "succeeded"
    with hub.target() as conn:
        conn.execute(
            "SELECT etl.define_cutover_indicator('nothing', 'qvp', 'SELECT NULL::text', "
            "'SELECT ''''::text')"
        )
    report = verify(hub)
    assert report.tables[0].matched, report.tables[0]
    assert not report.indicators[0].matched
