"""etl.failure_causes reads the counts etl.count_error_causes keeps per UTC day and cause
(revision 0011) instead of regrouping the error log: the answer must equal grouping the log
itself, cause by cause and field by field, for whole-day and partial-day ranges, before and after
compaction, after deletes, across concurrent writers and across the upgrade that counts the
errors logged before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from harness.deploy import migrate
from tests.support.pg import connect

# the answer of etl.failure_causes computed from the log itself: the reference
DIRECT = """
SELECT e.object_name, e.sqlstate, etl.error_field(e.message, e.detail) AS field,
       count(*) AS errors, min(e.logged_at), max(e.logged_at),
       (array_agg(e.message ORDER BY e.error_id DESC))[1]
  FROM etl.error_log AS e
 WHERE (%(from)s::timestamptz IS NULL OR e.logged_at >= %(from)s)
   AND (%(to)s::timestamptz IS NULL OR e.logged_at < %(to)s)
 GROUP BY 1, 2, 3
 ORDER BY 4 DESC, 1, 2, 3
"""
COUNTED = """
SELECT object_name, sqlstate, field, errors, first_at, last_at, last_message
  FROM etl.failure_causes(%(from)s, %(to)s)
"""

MIDNIGHT = datetime(2026, 11, 20, tzinfo=UTC)
RANGES = [
    (None, None),
    (MIDNIGHT, None),
    (None, MIDNIGHT + timedelta(days=2)),
    (MIDNIGHT + timedelta(days=1), MIDNIGHT + timedelta(days=3)),
    # partial days at either end, and a range inside one day
    (MIDNIGHT + timedelta(hours=7), MIDNIGHT + timedelta(days=2, hours=5)),
    (MIDNIGHT + timedelta(days=1, hours=3), MIDNIGHT + timedelta(days=1, hours=20)),
    (MIDNIGHT + timedelta(hours=23, minutes=30), MIDNIGHT + timedelta(days=1)),
]


def log_errors(conn: psycopg.Connection, count: int, start: datetime = MIDNIGHT) -> None:
    """``count`` errors over four days from ``start``, one statement each (as etl.log_error
    writes them), of twelve causes: three objects, two SQLSTATEs, a field from the detail, a
    field from the message, and none."""
    conn.execute(
        f"""
        DO $$
        BEGIN
            FOR i IN 1..{count} LOOP
                INSERT INTO etl.error_log (logged_at, object_name, sqlstate, message, detail)
                VALUES ('{start.isoformat()}'::timestamptz + (i * interval '96 hours') / {count},
                        'object_' || i % 3, CASE WHEN i % 4 = 0 THEN '23505' ELSE '22001' END,
                        CASE WHEN i % 5 = 0 THEN 'rejected: plate: too long ' || i
                             ELSE 'value too long ' || i END,
                        CASE WHEN i % 2 = 0 THEN 'field: vin' END);
            END LOOP;
        END
        $$
        """
    )


def assert_counts_match(conn: psycopg.Connection, columns: int = 7) -> None:
    """Every range: the same causes with the same counts (and, unless ``columns`` says fewer,
    the same first and last times and last message) as grouping the log itself."""
    for low, high in RANGES:
        bounds = {"from": low, "to": high}
        direct = [row[:columns] for row in conn.execute(DIRECT, bounds)]
        counted = [row[:columns] for row in conn.execute(COUNTED, bounds)]
        assert counted == direct, (low, high)


def test_causes_equal_the_log_grouped_for_whole_and_partial_days(conn: psycopg.Connection) -> None:
    log_errors(conn, 600)
    assert conn.execute("SELECT count(*) FROM etl.error_cause").fetchone()[0] >= 600
    assert_counts_match(conn)


def test_compaction_folds_the_counts_and_changes_no_answer(conn: psycopg.Connection) -> None:
    log_errors(conn, 600)
    folded = conn.execute("SELECT etl.compact_error_causes()").fetchone()[0]
    assert folded == 599  # every row but the one error at the fifth day's first instant
    # one row per day and cause remains: 4 days (and the 5th day's first instant) x 12 causes
    rows, keys = conn.execute(
        "SELECT count(*), count(DISTINCT (day, object_name, sqlstate, field)) FROM etl.error_cause"
    ).fetchone()
    assert rows == keys <= 5 * 12
    assert_counts_match(conn)
    log_errors(conn, 50, MIDNIGHT + timedelta(days=1, hours=1))  # more on compacted days
    assert_counts_match(conn)
    assert conn.execute("SELECT etl.compact_error_causes()").fetchone()[0] > 0
    assert_counts_match(conn)


def test_deleted_and_truncated_errors_leave_the_counts(conn: psycopg.Connection) -> None:
    log_errors(conn, 300)
    conn.execute("SELECT etl.compact_error_causes()")
    conn.execute("DELETE FROM etl.error_log WHERE object_name = 'object_1'")
    conn.execute("DELETE FROM etl.error_log WHERE error_id % 7 = 0")
    # the counts follow deletes; first and last times and the last message are of the errors
    # ever logged (nothing in pgferry deletes from the log)
    assert_counts_match(conn, columns=4)
    conn.execute("SELECT etl.compact_error_causes()")
    assert_counts_match(conn, columns=4)
    assert (
        conn.execute(
            "SELECT count(*) FROM etl.failure_causes() WHERE object_name = 'object_1'"
        ).fetchone()[0]
        == 0
    )
    conn.execute("TRUNCATE etl.error_log CASCADE")
    assert conn.execute("SELECT count(*) FROM etl.failure_causes()").fetchone()[0] == 0


def test_writers_of_one_cause_never_wait_on_each_other(db_url: str) -> None:
    """Two open transactions log the same cause on the same day: the second must not wait for
    the first to commit (a count kept by upsert would make it wait, and two writers logging two
    causes in opposite orders deadlock). A lock wait fails at once here (lock_timeout)."""
    with connect(db_url) as first, connect(db_url) as second:
        first.autocommit = second.autocommit = False
        for writer in (first, second):
            writer.execute("SET LOCAL lock_timeout = '100ms'")
        first.execute("SELECT etl.log_error('merge', '22001', 'too long', p_detail => 'field: a')")
        second.execute("SELECT etl.log_error('merge', '22001', 'too long', p_detail => 'field: b')")
        second.execute("SELECT etl.log_error('merge', '22001', 'too long', p_detail => 'field: a')")
        first.execute("SELECT etl.log_error('merge', '22001', 'too long', p_detail => 'field: b')")
        # a compaction meanwhile folds only what is committed, and waits for nobody
        with connect(db_url) as third:
            third.execute("SET lock_timeout = '100ms'")
            third.execute("SELECT etl.compact_error_causes()")
        first.commit()
        second.rollback()
    with connect(db_url) as check:
        check.execute("SELECT etl.compact_error_causes()")
        assert check.execute(
            "SELECT field, errors FROM etl.failure_causes() ORDER BY field"
        ).fetchall() == [("a", 1), ("b", 1)]
        assert_counts_match(check)


def test_one_compactor_at_a_time_and_the_other_returns_at_once(db_url: str) -> None:
    with connect(db_url) as writer:
        log_errors(writer, 40)
    with connect(db_url) as first, connect(db_url) as second:
        first.autocommit = False
        assert first.execute("SELECT etl.compact_error_causes()").fetchone()[0] > 0
        # the first holds its lock until it commits: the second does no work, and no wait
        second.execute("SET lock_timeout = '100ms'")
        log_errors(second, 10)
        assert second.execute("SELECT etl.compact_error_causes()").fetchone()[0] == 0
        first.commit()
        assert second.execute("SELECT etl.compact_error_causes()").fetchone()[0] > 0
        assert_counts_match(second)


@pytest.mark.parametrize("compact", [False, True])
def test_the_upgrade_counts_the_errors_logged_before_it(empty_db_url: str, compact: bool) -> None:
    migrate.upgrade(empty_db_url, "0010")
    with connect(empty_db_url) as conn:
        log_errors(conn, 200)
    migrate.upgrade(empty_db_url, "head")
    with connect(empty_db_url) as conn:
        log_errors(conn, 100, MIDNIGHT + timedelta(days=2, hours=2))
        if compact:
            conn.execute("SELECT etl.compact_error_causes()")
        assert_counts_match(conn)
