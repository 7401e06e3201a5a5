"""The file importer's SQL on its own: claims that never share a file, and fencing tokens that
make a worker whose lease was taken over change nothing."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.support.pg import connect

LISTING = [
    {"path": f"f{n}.csv", "size": 10 * n, "modified": "2026-12-01T00:00:00+00:00"}
    for n in range(1, 7)
]


@pytest.fixture
def conn(db_url: str) -> psycopg.Connection:
    with connect(db_url) as connection:
        connection.execute("CREATE TABLE public.t (id int PRIMARY KEY)")
        connection.execute("SELECT files.define_source('src', 'public.t')")
        assert (
            connection.execute(
                "SELECT files.record_listing('src', %s)", [Jsonb(LISTING)]
            ).fetchone()[0]
            == 6
        )
        yield connection


def claim(
    conn: psycopg.Connection, worker: str, token: int, limit: int = 3, lease: str = "1 minute"
) -> list[int]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT file_id FROM files.claim_files(%s, %s, %s::interval, %s)",
            [worker, limit, lease, token],
        )
    ]


def test_concurrent_claims_never_share_a_file(conn: psycopg.Connection, db_url: str) -> None:
    with connect(db_url) as other:
        other.execute("SET lock_timeout = '2s'")
        with conn.transaction():  # the first claim still open
            first = claim(conn, "a", 1)
            with other.transaction():
                second = claim(other, "b", 2)
    assert len(first) == len(second) == 3 and not set(first) & set(second)


def test_a_worker_whose_lease_was_taken_over_changes_nothing(conn: psycopg.Connection) -> None:
    [file_id] = claim(conn, "slow", 1, limit=1)
    # the slow worker's lease runs out
    conn.execute("UPDATE files.file SET lease_expires_at = now() - interval '1 second'")
    assert claim(conn, "fast", 2, limit=1) == [file_id]

    stale = conn.execute(
        "SELECT files.record_step(%s, 1, 'downloaded', %s)",
        [file_id, Jsonb({"sha256": "0" * 64, "bytes": 10})],
    ).fetchone()[0]
    failed = conn.execute(
        "SELECT files.record_failure(%s, 1, 'downloaded', 'network', 'late', true)", [file_id]
    ).fetchone()[0]

    assert (stale, failed) == ("fenced", "fenced")
    row = conn.execute(
        "SELECT state, step, sha256, lease_worker, lease_token FROM files.file WHERE file_id = %s",
        [file_id],
    ).fetchone()
    assert row == ("claimed", None, None, "fast", 2)
    steps = conn.execute(
        "SELECT step FROM etl.journal WHERE pipeline = 'files' AND item_id = %s", [file_id]
    ).fetchall()
    assert steps == [("found",)]


def test_steps_out_of_order_are_refused(conn: psycopg.Connection) -> None:
    [file_id] = claim(conn, "w", 1, limit=1)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot follow"):
        conn.execute("SELECT files.record_step(%s, 1, 'stored', '{}')", [file_id])


def expire(conn: psycopg.Connection) -> None:
    """What time does for a claim whose worker died."""
    conn.execute(
        "UPDATE files.file SET lease_expires_at = now() - interval '1 second'"
        " WHERE state = 'claimed'"
    )


def test_a_file_being_merged_cannot_be_taken_over(conn: psycopg.Connection, db_url: str) -> None:
    [file_id] = claim(conn, "merging", 1, limit=1)
    conn.execute(
        "UPDATE files.file SET step = 'stored', sha256 = %s, raw_key = 'k' WHERE file_id = %s",
        ["a" * 64, file_id],
    )
    expire(conn)  # the lease has run out, and the merge begins all the same (nobody took it)
    with connect(db_url) as other, conn.transaction():
        assert conn.execute("SELECT files.begin_load(%s, 1)", [file_id]).fetchone()[0] == "load"
        taken = claim(other, "other", 2, limit=6)
    assert file_id not in taken  # the row is locked by the merge: claims pass it by


def test_the_content_lock_is_followed_by_a_fresh_token_check(
    conn: psycopg.Connection, db_url: str
) -> None:
    """Worker A waits in files.begin_load for B's merge of the same content; meanwhile A's
    lease goes to C. When B commits and A gets the lock, A must write nothing."""
    slow, busy = claim(conn, "a", 1, limit=2)
    conn.execute(
        "UPDATE files.file SET step = 'stored', sha256 = %s, raw_key = 'k'"
        " WHERE file_id = ANY (%s)",
        ["b" * 64, [slow, busy]],
    )
    with connect(db_url) as b_side, connect(db_url) as c_side:
        b_side.execute("BEGIN")
        assert b_side.execute("SELECT files.begin_load(%s, 1)", [busy]).fetchone()[0] == "load"
        a_side = psycopg.Connection.connect(db_url, autocommit=True)
        try:
            a_side.pgconn.send_query(f"SELECT files.begin_load({slow}, 1)".encode())
            wait_until_waiting(c_side, a_side.info.backend_pid)
            c_side.execute(  # the lease went to C meanwhile
                "UPDATE files.file SET lease_token = 3, lease_worker = 'c' WHERE file_id = %s",
                [slow],
            )
            b_side.execute("ROLLBACK")  # B gives the content back: A gets its lock
            answer = a_side.pgconn.get_result().get_value(0, 0).decode()
            while a_side.pgconn.get_result() is not None:
                pass
        finally:
            a_side.close()
    assert answer == "fenced"
    row = conn.execute(
        "SELECT state, lease_token FROM files.file WHERE file_id = %s", [slow]
    ).fetchone()
    assert row == ("claimed", 3)


def wait_until_waiting(conn: psycopg.Connection, pid: int) -> None:
    """Until backend ``pid`` waits for a lock (pg_stat_activity says so)."""
    conn.execute(
        "DO $$BEGIN FOR i IN 1..500 LOOP"
        f" EXIT WHEN (SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = {pid});"
        " PERFORM pg_sleep(0.01); END LOOP; END$$"
    )
    waiting = conn.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
    ).fetchone()[0]
    assert waiting == "Lock"


def test_a_file_whose_lease_expired_max_attempts_times_is_a_dead_letter(
    conn: psycopg.Connection,
) -> None:
    conn.execute("UPDATE files.source SET max_attempts = 2")
    [file_id] = claim(conn, "w1", 1, limit=1)
    expire(conn)
    assert claim(conn, "w2", 2, limit=1) == [file_id]  # taken over: attempt 2
    expire(conn)

    assert file_id not in claim(conn, "w3", 3, limit=6)

    state, error_class = conn.execute(
        "SELECT state, error_class FROM files.file WHERE file_id = %s", [file_id]
    ).fetchone()
    assert (state, error_class) == ("dead", "lease_expired")
    alerts = conn.execute("SELECT body FROM etl.alert WHERE pipeline = 'files'").fetchall()
    assert len(alerts) == 1 and "FILES_LEASE_SECONDS" in alerts[0][0]
    logged = conn.execute(
        "SELECT row_key FROM etl.error_log WHERE object_name = 'harness files'"
    ).fetchall()
    assert logged == [({"file_id": file_id},)]


def test_the_backoff_stays_within_an_hour_however_many_attempts(
    conn: psycopg.Connection,
) -> None:
    conn.execute("UPDATE files.source SET max_attempts = 100")
    [file_id] = claim(conn, "w", 1, limit=1)
    conn.execute("UPDATE files.file SET attempts = 60 WHERE file_id = %s", [file_id])
    answer = conn.execute(
        "SELECT files.record_failure(%s, 1, 'downloaded', 'network', 'down', true)", [file_id]
    ).fetchone()[0]
    wait = conn.execute(
        "SELECT next_attempt_at - now() FROM files.file WHERE file_id = %s", [file_id]
    ).fetchone()[0]
    assert answer == "retry" and 3590 < wait.total_seconds() <= 3600  # an hour from the failure


def test_the_heartbeat_keeps_a_live_lease_and_never_revives_an_expired_one(
    conn: psycopg.Connection,
) -> None:
    [live] = claim(conn, "w", 1, limit=1)
    [gone] = claim(conn, "w", 2, limit=1)
    conn.execute(
        "UPDATE files.file SET lease_expires_at = now() - interval '1 second' WHERE file_id = %s",
        [gone],
    )

    held = conn.execute(
        "SELECT lease_token, held FROM etl.extend_leases('files', ARRAY[1, 2]::bigint[],"
        " interval '1 hour') ORDER BY 1"
    ).fetchall()

    assert held == [(1, 1), (2, 0)]
    left = conn.execute(
        "SELECT file_id, lease_expires_at > now() + interval '59 minutes' FROM files.file"
        " WHERE file_id IN (%s, %s) ORDER BY file_id",
        [live, gone],
    ).fetchall()
    assert left == sorted([(live, True), (gone, False)])
