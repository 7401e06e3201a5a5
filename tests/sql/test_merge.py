"""etl.merge_table: the standard set-based merge, against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.pg import connect

TABLES = """
CREATE TABLE stg (id int PRIMARY KEY, name text, amount text, note text);
CREATE TABLE tgt (
    id int PRIMARY KEY, name text, amount numeric NOT NULL, note text,
    inserted_at timestamptz, updated_at timestamptz, deleted_at timestamptz
);
"""


def merge(conn: psycopg.Connection, *args: str, **kwargs: object) -> dict[str, int]:
    named = "".join(f", {key} => %({key})s" for key in kwargs)
    row = conn.execute(
        f"SELECT * FROM etl.merge_table({', '.join(args)}{named})", kwargs
    ).fetchone()
    return dict(zip(("inserted", "updated", "unchanged", "deleted", "failed"), row, strict=True))


def counts(inserted=0, updated=0, unchanged=0, deleted=0, failed=0) -> dict[str, int]:
    return locals()


@pytest.fixture
def conn(db_url: str) -> psycopg.Connection:
    with connect(db_url) as connection:
        connection.execute(TABLES)
        yield connection


def test_counts_are_exact_and_a_second_run_changes_nothing(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO tgt (id, name, amount, note) VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y')"
    )
    conn.execute(
        "INSERT INTO stg VALUES (1, 'a', '1', 'x'), (2, 'B', '2', 'y'), (3, 'c', '3', NULL)"
    )

    assert merge(conn, "'stg'", "'tgt'") == counts(inserted=1, updated=1, unchanged=1)
    stamps = conn.execute("SELECT id, inserted_at, updated_at FROM tgt ORDER BY id").fetchall()
    assert merge(conn, "'stg'", "'tgt'") == counts(unchanged=3)
    assert (
        conn.execute("SELECT id, inserted_at, updated_at FROM tgt ORDER BY id").fetchall() == stamps
    )
    assert conn.execute("SELECT id, name, amount FROM tgt ORDER BY id").fetchall() == [
        (1, "a", 1),
        (2, "B", 2),
        (3, "c", 3),
    ]


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ("'abc'", "'ABC'", True),  # case
        ("'abc'", "'abc '", True),  # trailing space
        ("NULL", "NULL", False),
        ("'abc'", "NULL", True),
        ("NULL", "'abc'", True),
        ("'abc'", "'abc'", False),
    ],
)
def test_only_real_changes_count(
    conn: psycopg.Connection, before: str, after: str, changed: bool
) -> None:
    conn.execute(f"INSERT INTO tgt (id, amount, note) VALUES (1, 1, {before})")
    conn.execute(f"INSERT INTO stg (id, amount, note) VALUES (1, '1', {after})")
    expected = counts(updated=1) if changed else counts(unchanged=1)
    assert merge(conn, "'stg'", "'tgt'") == expected


def test_full_load_marks_missing_rows_deleted_and_revives_returning_ones(
    conn: psycopg.Connection,
) -> None:
    conn.execute("INSERT INTO stg VALUES (1, 'a', '1', NULL), (2, 'b', '2', NULL)")
    merge(conn, "'stg'", "'tgt'")
    conn.execute("DELETE FROM stg WHERE id = 2")

    assert merge(conn, "'stg'", "'tgt'", p_mark_deletes=True) == counts(unchanged=1, deleted=1)
    assert merge(conn, "'stg'", "'tgt'", p_mark_deletes=True) == counts(unchanged=1)
    assert conn.execute("SELECT id FROM tgt WHERE deleted_at IS NOT NULL").fetchall() == [(2,)]

    conn.execute("INSERT INTO stg VALUES (2, 'b', '2', NULL)")
    assert merge(conn, "'stg'", "'tgt'", p_mark_deletes=True) == counts(updated=1, unchanged=1)
    assert conn.execute("SELECT count(*) FROM tgt WHERE deleted_at IS NOT NULL").fetchone() == (0,)


def test_bad_rows_are_logged_with_key_and_field_and_good_rows_land(
    conn: psycopg.Connection,
) -> None:
    process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    conn.execute(
        "INSERT INTO stg VALUES (1, 'a', '1', NULL), (2, 'b', 'two', NULL),"
        " (3, 'c', NULL, NULL), (4, 'd', '4', NULL)"
    )

    result = merge(conn, "'stg'", "'tgt'", p_process_id=process_id)

    assert result == counts(inserted=2, failed=2)
    assert conn.execute("SELECT id FROM tgt ORDER BY id").fetchall() == [(1,), (4,)]
    log = conn.execute(
        "SELECT row_key, sqlstate, message, detail, table_name, process_id, row_payload->>'name'"
        " FROM etl.error_log ORDER BY error_id"
    ).fetchall()
    assert log[0][:2] == ({"id": 2}, "22P02")
    assert log[0][2] == 'invalid input syntax for type numeric: "two"'
    assert log[0][3] == "field: amount"
    assert log[0][4:] == ("public.tgt", process_id, "b")
    assert log[1][:2] == ({"id": 3}, "23502")
    assert log[1][3].endswith("field: amount")


def test_duplicate_source_keys_are_rejected_and_the_rest_land(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE raw (id int, name text);"
            " CREATE TABLE dim (id int PRIMARY KEY, name text,"
            " inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO dim (id, name) VALUES (1, 'old');"
            " INSERT INTO raw VALUES (1, 'x'), (1, 'y'), (2, 'ok'), (3, 'p'), (3, 'q')"
        )
        assert merge(conn, "'raw'", "'dim'") == counts(inserted=1, failed=4)
        assert conn.execute("SELECT id, name FROM dim ORDER BY id").fetchall() == [
            (1, "old"),
            (2, "ok"),
        ]
        messages = [r[0] for r in conn.execute("SELECT message FROM etl.error_log ORDER BY 1")]
        assert (
            messages
            == [
                'etl.merge_table: 2 rows of the source have key {"id": 1}; none merged',
            ]
            * 2
            + ['etl.merge_table: 2 rows of the source have key {"id": 3}; none merged'] * 2
        )


def test_keys_come_from_the_catalog(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE src (code text, label text);"
            " CREATE TABLE dst (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " code text UNIQUE, label text, inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO src VALUES ('a', 'A'), ('b', 'B')"
        )
        assert merge(conn, "'src'", "'dst'") == counts(inserted=2)
        conn.execute("UPDATE src SET label = 'AA' WHERE code = 'a'")
        assert merge(conn, "'src'", "'dst'") == counts(updated=1, unchanged=1)


CLEAR_ERRORS = [
    (
        "CREATE TABLE d (id int PRIMARY KEY, updated_at timestamptz)",
        "SELECT etl.merge_table('s', 'd')",
        "42703",
        "target public.d has no tracking column inserted_at",
    ),
    (
        "CREATE TABLE d (id int PRIMARY KEY, inserted_at timestamptz, updated_at timestamptz)",
        "SELECT etl.merge_table('s', 'd', p_mark_deletes => true)",
        "42703",
        "target public.d has no tracking column deleted_at",
    ),
    (
        "CREATE TABLE d (id int PRIMARY KEY, inserted_at timestamptz, updated_at timestamptz)",
        "SELECT etl.merge_table('s', 'd')",
        "42703",
        "source column extra of public.s has no column in target public.d",
    ),
    (
        "CREATE TABLE d (id int, extra text, inserted_at timestamptz, updated_at timestamptz)",
        "SELECT etl.merge_table('s', 'd')",
        "42P10",
        "no key to merge public.s into public.d",
    ),
    (
        "CREATE TABLE d (id int, extra text, inserted_at timestamptz, updated_at timestamptz)",
        "SELECT etl.merge_table('s', 'd', ARRAY['nope'])",
        "42703",
        "key column nope is not a merged column of source public.s",
    ),
]


@pytest.mark.parametrize(("target", "call", "sqlstate", "message"), CLEAR_ERRORS)
def test_misconfigured_merges_raise_clear_errors(
    db_url: str, target: str, call: str, sqlstate: str, message: str
) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE s (id int, extra text); INSERT INTO s VALUES (1, 'x')")
        conn.execute(target)
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(call)
        assert raised.value.sqlstate == sqlstate
        assert message in raised.value.diag.message_primary
        assert conn.execute("SELECT count(*) FROM d").fetchone() == (0,)


def test_skipped_columns_are_not_merged(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE s (id int, process_id bigint, pdf bytea, name text);"
            " CREATE TABLE d (id int PRIMARY KEY, name text,"
            " inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO s VALUES (1, 7, '\\x00', 'n')"
        )
        result = merge(conn, "'s'", "'d'", p_skip_columns=["process_id", "pdf"])
        assert result == counts(inserted=1)


def test_hostile_identifiers_are_quoted_not_executed(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE victim (id int);"
            ' CREATE TABLE "s; DROP TABLE victim; --" ("id""; DROP TABLE victim; --" int PRIMARY KEY,'
            ' "va%sl$1ue" text);'
            ' CREATE TABLE "d\'); DROP TABLE victim; --" ("id""; DROP TABLE victim; --" int PRIMARY KEY,'
            ' "va%sl$1ue" text, inserted_at timestamptz, updated_at timestamptz);'
            " INSERT INTO \"s; DROP TABLE victim; --\" VALUES (1, 'a'), (2, 'b')"
        )
        source = "'\"s; DROP TABLE victim; --\"'"
        target = '$$"d\'); DROP TABLE victim; --"$$'
        assert merge(conn, source, target) == counts(inserted=2)
        conn.execute('UPDATE "s; DROP TABLE victim; --" SET "va%sl$1ue" = \'z\' WHERE 1 = 1')
        assert merge(conn, source, target, p_mark_deletes=False) == counts(updated=2)
        assert conn.execute("SELECT to_regclass('victim') IS NOT NULL").fetchone() == (True,)


def test_typed_targets_take_text_staging_and_json_compares(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE s (id text, day text, doc text);"
            " CREATE TABLE d (id int PRIMARY KEY, day date, doc json,"
            " inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO s VALUES ('1', '2026-01-02', '{\"a\": 1}')"
        )
        assert merge(conn, "'s'", "'d'") == counts(inserted=1)
        assert merge(conn, "'s'", "'d'") == counts(unchanged=1)
        conn.execute("UPDATE s SET doc = '{\"a\": 2}'")
        assert merge(conn, "'s'", "'d'") == counts(updated=1)


def test_a_value_too_long_for_a_character_column_is_refused_not_cut(db_url: str) -> None:
    """An explicit cast to varchar(n)/char(n) cuts a longer value silently: the merge must log
    the row instead, on insert and on update, and leave the stored value as it was."""
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE s (id text, code text, flag text);"
            " CREATE TABLE d (id int PRIMARY KEY, code varchar(5), flag char(2),"
            " inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO s VALUES ('1', 'abcde', 'y'), ('2', 'abcdefgh', 'n'), ('3', 'ok', 'xyz')"
        )
        assert merge(conn, "'s'", "'d'") == counts(inserted=1, failed=2)
        assert conn.execute("SELECT id, code, flag FROM d").fetchall() == [(1, "abcde", "y ")]
        conn.execute("UPDATE s SET code = 'abcdef' WHERE id = '1'")
        assert merge(conn, "'s'", "'d'") == counts(failed=3)
        assert conn.execute("SELECT code FROM d").fetchall() == [("abcde",)]
        logged = conn.execute(
            "SELECT row_key ->> 'id', detail FROM etl.error_log ORDER BY error_id"
        ).fetchall()
        assert [(key, "field: code" in d or "field: flag" in d) for key, d in logged][-3:] == [
            ("1", True),
            ("2", True),
            ("3", True),
        ]


def test_a_view_can_be_the_source_including_the_row_fallback(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE raw (id int, amount text, batch int);"
            " CREATE VIEW batch_1 AS SELECT id, amount FROM raw WHERE batch = 1;"
            " CREATE TABLE d (id int PRIMARY KEY, amount int,"
            " inserted_at timestamptz, updated_at timestamptz);"
            " INSERT INTO raw VALUES (1, '1', 1), (2, 'x', 1), (3, '3', 2)"
        )
        assert merge(conn, "'batch_1'", "'d'") == counts(inserted=1, failed=1)


def test_bad_rows_among_many_are_isolated_by_halving_not_row_by_row(
    conn: psycopg.Connection,
) -> None:
    """Three bad rows among 4,000: each is logged and the rest land, in a few dozen set-based
    statements (a statement trigger counts the INSERTs that held), not one per row."""
    conn.execute(
        "CREATE TABLE inserts (n int NOT NULL DEFAULT 0);"
        " INSERT INTO inserts VALUES (0);"
        " CREATE FUNCTION count_insert() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN UPDATE public.inserts SET n = n + 1; RETURN NULL; END$$;"
        " CREATE TRIGGER count_insert AFTER INSERT ON tgt"
        " FOR EACH STATEMENT EXECUTE FUNCTION count_insert();"
        " INSERT INTO stg SELECT g, 'n' || g, CASE WHEN g IN (7, 2500, 3999) THEN 'bad'"
        " ELSE g::text END FROM generate_series(1, 4000) AS g"
    )

    result = merge(conn, "'stg'", "'tgt'")

    assert result == counts(inserted=3997, failed=3)
    assert conn.execute("SELECT count(*), sum(amount) FROM tgt").fetchone() == (
        3997,
        sum(range(1, 4001)) - 7 - 2500 - 3999,
    )
    logged = conn.execute("SELECT row_key FROM etl.error_log ORDER BY error_id").fetchall()
    assert logged == [({"id": 7},), ({"id": 2500},), ({"id": 3999},)]  # in source order
    statements = conn.execute("SELECT n FROM inserts").fetchone()[0]
    assert statements <= 3 * 2 * 12  # 3 bad rows, two halves a level, log2(4000) < 12 levels
