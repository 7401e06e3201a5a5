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
