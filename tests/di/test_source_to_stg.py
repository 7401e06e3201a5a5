"""Source -> layer -> STG for real: what each run leaves in STG, compared field by field with the
source, and what it leaves in the layer and in etl.process, through CDC overlaps, changes,
soft and hard deletes, revivals, a bad source row, a source that goes away mid-run, and hostile
names in the metadata."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from datetime import timedelta

import psycopg
import pytest

from harness.di.run import run_process
from tests.di.conftest import STG_TABLE, Hub, add_users


def xmins(hub: Hub, name: str) -> list[tuple[int, str]]:
    """Row versions of the STG table: a write of any row changes them."""
    with hub.target() as conn:
        return conn.execute(f"SELECT id, xmin::text FROM stg.{name} ORDER BY id").fetchall()


def test_a_window_lands_in_stg_through_the_layer(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 200)
    hub.define("users", cdc_column="updated_at", window_overlap=timedelta(days=7))

    result = hub.run("users")

    assert (result.status, result.rows) == ("succeeded", 200)
    assert (result.merged.inserted, result.merged.failed) == (200, 0)
    assert hub.stg_rows("users") == hub.source_rows()
    # the layer holds the window as gzipped CSV under its key, with the SHA-256 of its bytes
    stored = hub.layer.client.get_object(Bucket=hub.layer.bucket, Key=result.key)
    body = stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256 == stored["Metadata"]["sha256"]
    lines = gzip.decompress(body).decode().splitlines()
    assert lines[0] == "id,name,email,score,created_at" and len(lines) == 201
    assert result.key.startswith("di/users/19700101T000000.000000Z--")
    with hub.target() as conn:
        status, rows, consumed = conn.execute(
            "SELECT status, rows_loaded, consumed_at IS NOT NULL FROM etl.process"
            " WHERE process_id = %s",
            [result.process_id],
        ).fetchone()
    assert (status, rows, consumed) == ("succeeded", 200, True)


def test_an_overlapping_window_reads_rows_again_and_writes_nothing(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 50)
    hub.define("users", cdc_column="updated_at", window_overlap=timedelta(days=7))
    hub.run("users")
    before = xmins(hub, "users")

    again = hub.run("users")

    assert again.rows == 50  # the overlap re-read every row
    assert (again.merged.inserted, again.merged.updated, again.merged.unchanged) == (0, 0, 50)
    assert xmins(hub, "users") == before  # and no row was written
    assert hub.stg_rows("users") == hub.source_rows()


def test_changes_in_the_window_are_merged_and_nothing_else(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 20)
    hub.define("users", cdc_column="updated_at")  # no overlap
    first = hub.run("users")
    with hub.source() as source:
        source.execute(
            "UPDATE app.users SET name = name || ' (renamed)', email = NULL, updated_at = now()"
            " WHERE id <= 3"
        )
        add_users(source, 21, 2, updated_at=None)
        source.execute("UPDATE app.users SET updated_at = now() WHERE id > 20")

    second = hub.run("users")

    assert second.rows == 5  # only the window since the first run ended
    assert (second.merged.inserted, second.merged.updated) == (2, 3)
    assert hub.stg_rows("users") == hub.source_rows()
    with hub.target() as conn:
        windows = conn.execute(
            "SELECT window_from, window_to FROM etl.process WHERE process_id IN (%s, %s)"
            " ORDER BY process_id",
            [first.process_id, second.process_id],
        ).fetchall()
    assert windows[1][0] == windows[0][1]  # the second window starts where the first ended


def test_soft_deletes_and_revivals_follow_the_source(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 10)
    hub.define(
        "users",
        cdc_column="updated_at",
        window_overlap=timedelta(days=1),
        deleted_column="deleted_at",
    )
    hub.run("users")
    with hub.source() as source:
        source.execute(
            "UPDATE app.users SET deleted_at = now() - interval '5 minutes', updated_at = now()"
            " WHERE id IN (2, 4, 6)"
        )

    deleted = hub.run("users")

    assert deleted.status == "succeeded"
    assert hub.stg_rows("users") == hub.source_rows()
    with hub.target() as conn, hub.source() as source:
        stg = conn.execute(
            "SELECT id, deleted_at FROM stg.users WHERE deleted_at IS NOT NULL ORDER BY id"
        ).fetchall()
        src = source.execute(
            "SELECT id, deleted_at FROM app.users WHERE deleted_at IS NOT NULL ORDER BY id"
        ).fetchall()
    assert stg == src  # deleted from the source's own moment
    before = xmins(hub, "users")
    assert hub.run("users").status == "succeeded"
    assert xmins(hub, "users") == before  # a re-read deleted row is not written again

    with hub.source() as source:
        source.execute("UPDATE app.users SET deleted_at = NULL, updated_at = now() WHERE id = 4")
    revived = hub.run("users")
    assert revived.merged.updated == 1
    assert hub.stg_rows("users") == hub.source_rows()


def test_a_full_reload_marks_rows_gone_from_the_source_and_revives_returning_ones(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 10)
    hub.define("users")  # no CDC column: every run reads the whole table
    hub.run("users")
    with hub.source() as source:
        source.execute("DELETE FROM app.users WHERE id IN (1, 2)")

    reloaded = hub.run("users")

    assert (reloaded.rows, reloaded.merged.deleted) == (8, 2)
    assert hub.stg_rows("users") == hub.source_rows()
    with hub.source() as source:
        add_users(source, 1, 1)
    assert hub.run("users").merged.updated == 1  # revived
    assert hub.stg_rows("users") == hub.source_rows()


def test_a_bad_source_row_is_logged_with_its_key_and_field_and_the_rest_lands(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 30)
        source.execute(
            "UPDATE app.users SET name = repeat('x', 60) WHERE id = 17"
        )  # STG: varchar(40)
    hub.define("users", cdc_column="updated_at")

    result = hub.run("users")

    assert result.status == "succeeded"
    assert (result.merged.inserted, result.merged.failed) == (29, 1)
    assert hub.stg_rows("users") == [row for row in hub.source_rows() if row[0] != 17]
    with hub.target() as conn:
        key, detail, process_id = conn.execute(
            "SELECT row_key, detail, process_id FROM etl.error_log"
            " WHERE object_name = 'etl.merge_table'"
        ).fetchone()
    assert key == {"id": "17"} and "field: name" in detail and process_id == result.process_id


def test_a_source_that_goes_away_mid_run_fails_the_run_and_the_next_covers_its_window(
    hub: Hub,
) -> None:
    with hub.source() as source:
        add_users(source, 1, 5000)
    # the source's backend ends itself after streaming part of the rows: the connection is lost
    # in the middle of the COPY
    hub.define(
        "users",
        source_table=None,
        source_query="SELECT * FROM app.users WHERE CASE WHEN id = 4000"
        " THEN pg_terminate_backend(pg_backend_pid()) ELSE true END",
        cdc_column="updated_at",
    )

    failed = hub.run("users")

    assert failed.status == "failed" and "terminat" in failed.message.lower()
    assert hub.stg_rows("users") == []  # nothing of the window was merged
    hub.define("users", source_table="app.users", source_query=None, cdc_column="updated_at")
    healed = hub.run("users")
    assert (healed.status, healed.rows) == ("succeeded", 5000)
    assert hub.stg_rows("users") == hub.source_rows()
    with hub.target() as conn:
        (failed_window, healed_window) = conn.execute(
            "SELECT window_from FROM etl.process WHERE process_id IN (%s, %s) ORDER BY process_id",
            [failed.process_id, healed.process_id],
        ).fetchall()
        status, message = conn.execute(
            "SELECT status, message FROM etl.process WHERE process_id = %s", [failed.process_id]
        ).fetchone()
    assert healed_window == failed_window and status == "failed" and message


def test_hostile_names_in_the_metadata_execute_nothing(hub: Hub) -> None:
    canary = "CREATE TABLE public.canary (x int); INSERT INTO public.canary VALUES (1)"
    with hub.source() as source:
        source.execute(canary)
        add_users(source, 1, 3)
    with hub.target() as target:
        target.execute(canary)
    # names the metadata accepts: each is a quoted identifier that names nothing, the run fails
    hostile = [
        {"source_table": "users; DROP TABLE public.canary; --"},
        {"source_table": 'app.users"; DROP TABLE canary; --'},
        {"cdc_column": "updated_at >= now(); DROP TABLE public.canary; --"},
        {"deleted_column": 'deleted_at"; DROP TABLE public.canary; --'},
    ]
    for n, arguments in enumerate(hostile):
        name = f"hostile_{n}"
        hub.define(name, **arguments)
        result = hub.run(name)
        assert result.status == "failed", arguments
        assert "does not exist" in result.message, result.message
        assert hub.stg_rows(name) == []
    # a table name of more than two parts is refused when declared
    with pytest.raises(psycopg.errors.CheckViolation):
        hub.define("hostile_x", source_table="app.users; DROP TABLE public.canary; --")
    with hub.source() as source, hub.target() as target:
        assert source.execute("SELECT x FROM public.canary").fetchall() == [(1,)]
        assert target.execute("SELECT x FROM public.canary").fetchall() == [(1,)]


def test_an_unknown_source_connection_fails_that_run_naming_the_variable(hub: Hub) -> None:
    hub.define("users", source="erp", source_table="app.users")
    result = hub.run("users")
    assert result.status == "failed"
    assert "PGFERRY_SOURCE_ERP_URL is not set" in result.message


def test_a_source_password_never_reaches_the_run_record(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable source whose URL holds a password: the failed run's message and the
    alert name the problem, not the password."""
    secret = "s3cret-Source-pw"
    monkeypatch.setenv("PGFERRY_SOURCE_QVP_URL", f"postgresql://reader:{secret}@127.0.0.1:1/qvp")
    hub.define("users", cdc_column="updated_at")
    result = hub.run("users")
    assert result.status == "failed" and secret not in result.message
    with hub.target() as conn:
        stored = conn.execute(
            "SELECT p.message, coalesce(string_agg(a.body, ' '), '') FROM etl.process AS p"
            " LEFT JOIN etl.alert AS a ON a.process_id = p.process_id"
            " WHERE p.process_id = %s GROUP BY p.message",
            [result.process_id],
        ).fetchone()
    assert stored[0] and all(secret not in text for text in stored)


def test_a_change_committed_after_its_window_was_read_is_still_loaded(hub: Hub) -> None:
    """A source transaction stamps a row (updated_at = its start) before a run reads the
    window, and commits after: the window has moved on, but the next run reads back over the
    commit margin (an hour by default) and loads it."""
    with hub.source() as source:
        add_users(source, 1, 5)
    hub.define("users", cdc_column="updated_at")
    hub.run("users")
    with hub.source() as late:
        late.execute("BEGIN")
        late.execute("UPDATE app.users SET name = 'late', updated_at = now() WHERE id = 1")
        assert hub.run("users").rows == 0  # not committed yet: not visible
        late.execute("COMMIT")
    assert hub.run("users").rows >= 1
    assert hub.stg_rows("users") == hub.source_rows()


def test_a_row_without_a_change_time_is_read_every_run(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 3)
        source.execute("ALTER TABLE app.users ALTER COLUMN updated_at DROP NOT NULL")
        source.execute("UPDATE app.users SET updated_at = NULL WHERE id = 2")
    hub.define("users", cdc_column="updated_at")
    assert hub.run("users").rows == 3
    assert hub.stg_rows("users") == hub.source_rows()


def test_naive_source_times_are_utc_whatever_the_target_zone(hub: Hub) -> None:
    with hub.target() as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")
    with hub.source() as source:
        add_users(source, 1, 2)
        source.execute(
            "ALTER TABLE app.users ALTER COLUMN created_at TYPE timestamp"
            " USING created_at AT TIME ZONE 'UTC',"
            " ALTER COLUMN deleted_at TYPE timestamp USING deleted_at AT TIME ZONE 'UTC'"
        )
    hub.define("users", deleted_column="deleted_at")  # a full reload
    assert hub.run("users").status == "succeeded"
    with hub.source() as source:
        source.execute("UPDATE app.users SET deleted_at = '2024-01-01 12:00:00' WHERE id = 2")
    assert hub.run("users").status == "succeeded"
    with hub.target() as conn, hub.source() as source:
        stg = conn.execute(
            "SELECT id, created_at AT TIME ZONE 'UTC', deleted_at AT TIME ZONE 'UTC'"
            " FROM stg.users ORDER BY id"
        ).fetchall()
        src = source.execute(
            "SELECT id, created_at, deleted_at FROM app.users ORDER BY id"
        ).fetchall()
    # the source's own time of deletion is kept, even by a full reload
    assert stg == src


class Steps(list[str]):
    """What a run reports step by step (run_process's progress)."""

    def __call__(self, process: str, step: str) -> None:
        self.append(step)

    def loaded_straight(self) -> bool:
        return any("loaded straight into the empty STG table" in step for step in self)


def stamp_defaults(hub: Hub, name: str) -> dict[str, str | None]:
    with hub.target() as conn:
        return dict(
            conn.execute(
                "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a"
                " LEFT JOIN pg_attrdef AS d ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [f"stg.{name}"],
            ).fetchall()
        )


def test_a_first_load_goes_straight_into_the_empty_stg_table_and_keeps_its_defaults(
    hub: Hub,
) -> None:
    with hub.source() as source:
        add_users(source, 1, 300)
    hub.define("users", cdc_column="updated_at", window_overlap=timedelta(days=7))
    with hub.target() as conn:
        conn.execute("ALTER TABLE stg.users ALTER inserted_at SET DEFAULT now()")
    defaults = stamp_defaults(hub, "users")
    steps = Steps()

    first = hub.run("users", steps)

    assert steps.loaded_straight()
    assert (first.merged.inserted, first.merged.updated, first.merged.failed) == (300, 0, 0)
    assert hub.stg_rows("users") == hub.source_rows()
    with hub.target() as conn:
        stamps = conn.execute(
            "SELECT count(DISTINCT inserted_at), count(DISTINCT updated_at),"
            " bool_and(inserted_at = updated_at), count(deleted_at) FROM stg.users"
        ).fetchone()
    assert stamps == (1, 1, True, 0)  # one stamp, as a merge gives its rows
    assert stamp_defaults(hub, "users") == defaults  # the table's own defaults are back
    before = xmins(hub, "users")
    steps = Steps()
    again = hub.run("users", steps)  # no longer empty: merged, and nothing changed
    assert not steps.loaded_straight()
    assert (again.merged.inserted, again.merged.unchanged) == (0, 300)
    assert xmins(hub, "users") == before


def loaded_then_replaced(hub: Hub) -> None:
    """Users 1-10 loaded into STG by a full-reload process, then replaced in the source by
    users 11-20: the next run's rows are all new keys."""
    with hub.source() as source:
        add_users(source, 1, 10)
    hub.define("users")
    hub.run("users")
    with hub.source() as source:
        source.execute("DELETE FROM app.users")
        add_users(source, 11, 10)


def test_a_full_reload_of_only_new_keys_still_marks_the_earlier_rows_deleted(hub: Hub) -> None:
    loaded_then_replaced(hub)
    steps = Steps()

    reloaded = hub.run("users", steps)  # every key is new: a COPY would not be refused

    assert not steps.loaded_straight()
    assert (reloaded.merged.inserted, reloaded.merged.deleted) == (10, 10)
    assert hub.stg_rows("users") == hub.source_rows()


@pytest.mark.parametrize("unique", [True, False], ids=["primary-key", "keys-by-metadata"])
def test_a_duplicate_key_in_a_first_load_is_logged_and_the_other_rows_land(
    hub: Hub, unique: bool
) -> None:
    with hub.source() as source:
        add_users(source, 1, 20)
    if not unique:  # the key only in the metadata: nothing in STG refuses a second row of it
        with hub.target() as conn:
            conn.execute(STG_TABLE.format(name="users").replace(" PRIMARY KEY", ""))
    hub.define(
        "users",
        source_table=None,
        source_query="SELECT * FROM app.users UNION ALL SELECT * FROM app.users WHERE id = 7",
        keys=["id"],
    )
    steps = Steps()

    result = hub.run("users", steps)

    assert result.status == "succeeded" and not steps.loaded_straight()
    assert (result.merged.inserted, result.merged.failed) == (19, 2)
    assert hub.stg_rows("users") == [row for row in hub.source_rows() if row[0] != 7]
    with hub.target() as conn:
        keys = conn.execute(
            "SELECT row_key FROM etl.error_log WHERE object_name = 'etl.merge_table'"
        ).fetchall()
    assert keys == [({"id": "7"},), ({"id": "7"},)]


def test_a_role_that_may_not_alter_the_stg_table_loads_it_by_merge(hub: Hub) -> None:
    with hub.source() as source:
        add_users(source, 1, 40)
    process = hub.define("users", cdc_column="updated_at")
    role = f"pgferry_di_loader_{uuid.uuid4().hex[:8]}"
    with hub.target() as conn:
        conn.execute(f"CREATE ROLE {role} IN ROLE pgferry_worker")
        conn.execute(f"GRANT USAGE ON SCHEMA stg TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON stg.users TO {role}")
    steps = Steps()
    try:
        with hub.target() as conn:
            conn.execute(f"SET ROLE {role}")
            result = run_process(conn, process, hub.layer, steps)
    finally:
        with hub.target() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")

    assert result.status == "succeeded", result.message
    assert not steps.loaded_straight() and result.merged.inserted == 40
    assert hub.stg_rows("users") == hub.source_rows()


def test_a_row_refused_early_in_a_big_window_leaves_the_file_whole_and_the_rest_lands(
    hub: Hub,
) -> None:
    """The target refuses row 1 while megabytes of the window are still to come: the source is
    still read to its end, the layer gets every row, and the other rows land by the merge."""
    with hub.source() as source:
        add_users(source, 1, 6000)
        source.execute("UPDATE app.users SET name = repeat('x', 60) WHERE id = 1")  # varchar(40)
    padded = "SELECT id, name, repeat(email, 40) AS email, score, created_at FROM app.users"
    hub.define("users", source_table=None, source_query=padded)

    result = hub.run("users")

    assert result.status == "succeeded", result.message
    assert (result.rows, result.merged.inserted, result.merged.failed) == (6000, 5999, 1)
    with hub.source() as source:
        expected = source.execute(f"SELECT * FROM ({padded}) AS s WHERE id <> 1 ORDER BY id")
        assert hub.stg_rows("users") == expected.fetchall()
    stored = hub.layer.client.get_object(Bucket=hub.layer.bucket, Key=result.key)["Body"].read()
    csv = gzip.decompress(stored)
    assert len(csv) > 4 * 2**20 and len(csv.splitlines()) == 6001  # every row, past the refusal


def test_rows_that_arrive_after_the_check_are_seen_under_the_lock(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The STG table is checked empty again once the ALTER holds its lock: rows that came in
    between (here: the check before it made to answer yes) send the load to the merge."""
    loaded_then_replaced(hub)
    monkeypatch.setattr("harness.di.load.may_load_straight", lambda *_: True)
    steps = Steps()

    reloaded = hub.run("users", steps)

    assert not steps.loaded_straight()
    assert (reloaded.merged.inserted, reloaded.merged.deleted) == (10, 10)
    assert hub.stg_rows("users") == hub.source_rows()


@pytest.mark.parametrize(
    "setup",
    [
        "ALTER TABLE stg.users ADD UNIQUE (email) DEFERRABLE INITIALLY DEFERRED",
        "CREATE FUNCTION stg.keep() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RETURN NEW; END$$; CREATE TRIGGER keep BEFORE INSERT ON stg.users"
        " FOR EACH ROW EXECUTE FUNCTION stg.keep()",
        "CREATE TABLE stg.users_child () INHERITS (stg.users)",
    ],
    ids=["deferred-constraint", "user-trigger", "child-table"],
)
def test_a_first_load_into_a_table_a_copy_would_treat_otherwise_is_merged(
    hub: Hub, setup: str
) -> None:
    with hub.source() as source:
        add_users(source, 1, 20)
    hub.define("users", cdc_column="updated_at")
    with hub.target() as conn:
        conn.execute(setup)
    steps = Steps()

    result = hub.run("users", steps)

    assert result.status == "succeeded", result.message
    assert not steps.loaded_straight() and result.merged.inserted == 20
    assert hub.stg_rows("users") == hub.source_rows()
