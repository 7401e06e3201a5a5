"""etl.start_process / get_time_range / end_process against a real PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import psycopg
import pytest

from tests.support.pg import connect


def start(conn: psycopg.Connection, pipeline: str = "permits") -> int | None:
    return conn.execute("SELECT etl.start_process(%s)", [pipeline]).fetchone()[0]


def end(conn: psycopg.Connection, process_id: int, status: str, message: str | None = None) -> None:
    conn.execute("SELECT etl.end_process(%s, %s, NULL, %s)", [process_id, status, message])


def window(conn: psycopg.Connection, process_id: int) -> tuple[datetime, datetime]:
    return conn.execute("SELECT * FROM etl.get_time_range(%s)", [process_id]).fetchone()


def count(conn: psycopg.Connection, sql: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {sql}").fetchone()[0]


def age_process(conn: psycopg.Connection, process_id: int, hours: int) -> None:
    """Make a process look as if it started ``hours`` ago."""
    conn.execute(
        "UPDATE etl.process SET started_at = now() - make_interval(hours => %s)"
        " WHERE process_id = %s",
        [hours, process_id],
    )


def test_twenty_concurrent_starts_give_one_process_and_nineteen_refusals(db_url: str) -> None:
    connections = [connect(db_url) for _ in range(20)]
    barrier = threading.Barrier(len(connections))
    results: list[int | None] = []
    lock = threading.Lock()

    def race(conn: psycopg.Connection) -> None:
        barrier.wait()
        process_id = start(conn, "shipments")
        with lock:
            results.append(process_id)

    threads = [threading.Thread(target=race, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for c in connections:
        c.close()

    winners = [r for r in results if r is not None]
    assert len(results) == 20 and len(winners) == 1
    with connect(db_url) as conn:
        assert count(conn, "etl.process WHERE status = 'running'") == 1
        refused = conn.execute(
            "SELECT process_id, count(*) FROM etl.process_error WHERE kind = 'refused' GROUP BY 1"
        ).fetchall()
        assert refused == [(winners[0], 19)]
        # the default threshold of 3 queues exactly one alert for the streak
        assert count(conn, "etl.alert WHERE kind = 'start_refused'") == 1


def test_refusal_alert_fires_once_at_the_threshold_and_resets(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("UPDATE etl.pipeline SET refusal_alert_threshold = 2 WHERE name = 'permits'")
        running = start(conn)
        assert start(conn) is None
        assert count(conn, "etl.alert") == 0
        assert start(conn) is None
        assert start(conn) is None
        alerts = conn.execute("SELECT subject, process_id FROM etl.alert").fetchall()
        assert alerts == [("pgferry: permits refused 2 starts in a row", running)]

        end(conn, running, "succeeded")
        end(conn, start(conn), "succeeded")
        assert conn.execute(
            "SELECT consecutive_refusals FROM etl.pipeline WHERE name = 'permits'"
        ).fetchone() == (0,)


def test_a_hung_process_is_abandoned_by_the_next_start(db_url: str) -> None:
    with connect(db_url) as conn:
        hung = start(conn)
        age_process(conn, hung, hours=5)  # hung_after defaults to 4 hours

        fresh = start(conn)

        assert fresh is not None and fresh != hung
        status, message = conn.execute(
            "SELECT status, message FROM etl.process WHERE process_id = %s", [hung]
        ).fetchone()
        assert status == "abandoned" and "hung_after" in message
        assert conn.execute("SELECT kind, process_id FROM etl.process_error").fetchall() == [
            ("abandoned", hung)
        ]
        assert (
            count(conn, f"etl.alert WHERE kind = 'process_abandoned' AND process_id = {hung}") == 1
        )


def test_a_process_younger_than_hung_after_is_not_abandoned(db_url: str) -> None:
    with connect(db_url) as conn:
        running = start(conn)
        age_process(conn, running, hours=3)
        assert start(conn) is None
        assert conn.execute(
            "SELECT status FROM etl.process WHERE process_id = %s", [running]
        ).fetchone() == ("running",)


def test_windows_start_where_the_last_successful_one_ended(db_url: str) -> None:
    with connect(db_url) as conn:
        first = start(conn)
        origin, first_to = window(conn, first)
        assert origin == datetime.fromisoformat("1970-01-01T00:00:00+00:00")
        end(conn, first, "succeeded")

        failed = start(conn)
        assert window(conn, failed)[0] == first_to
        end(conn, failed, "failed", "source timed out")

        abandoned = start(conn)
        assert window(conn, abandoned)[0] == first_to  # re-covers the failed run
        age_process(conn, abandoned, hours=5)

        recovering = start(conn)
        recovering_from, recovering_to = window(conn, recovering)
        assert recovering_from == first_to  # re-covers the failed and the abandoned run
        end(conn, recovering, "succeeded")

        after = start(conn)
        assert window(conn, after)[0] == recovering_to
        assert recovering_to > first_to


def test_pipelines_are_independent(db_url: str) -> None:
    with connect(db_url) as conn:
        assert start(conn, "permits") is not None
        assert start(conn, "shipments") is not None


def test_a_failed_run_records_its_message_alerts_and_notifies(db_url: str) -> None:
    with connect(db_url) as listener, connect(db_url) as conn:
        listener.execute("LISTEN etl_process_ended")
        process_id = start(conn)
        conn.execute(
            "SELECT etl.end_process(%s, 'failed', 12, 'TPS query timed out')", [process_id]
        )

        notices = list(listener.notifies(timeout=5, stop_after=1))
        assert json.loads(notices[0].payload) == {
            "pipeline": "permits",
            "process_id": process_id,
            "status": "failed",
        }
        row = conn.execute(
            "SELECT status, rows_loaded, message, ended_at IS NOT NULL FROM etl.process"
        ).fetchone()
        assert row == ("failed", 12, "TPS query timed out", True)
        body = conn.execute("SELECT body FROM etl.alert WHERE kind = 'process_failed'").fetchone()[
            0
        ]
        assert "TPS query timed out" in body


BAD_CALLS = [
    ("SELECT etl.start_process('nope')", "P0002", 'unknown pipeline "nope"'),
    ("SELECT etl.start_process(NULL)", "22004", "pipeline must not be NULL"),
    ("SELECT * FROM etl.get_time_range(424242)", "P0002", "unknown process id 424242"),
    ("SELECT * FROM etl.get_time_range(NULL)", "22004", "must not be NULL"),
    ("SELECT etl.end_process(424242, 'succeeded')", "P0002", "unknown process id 424242"),
    ("SELECT etl.end_process({pid}, 'done')", "22023", "status must be 'succeeded' or 'failed'"),
    ("SELECT etl.end_process({pid}, 'abandoned')", "22023", "status must be"),
    ("SELECT etl.end_process({pid}, NULL)", "22004", "must not be NULL"),
    ("SELECT etl.end_process(NULL, 'failed')", "22004", "must not be NULL"),
    ("SELECT etl.end_process({pid}, 'succeeded', -1)", "22023", "must not be negative"),
]


@pytest.mark.parametrize(("call", "sqlstate", "message"), BAD_CALLS)
def test_bad_calls_raise_a_clear_error_and_write_nothing(
    db_url: str, call: str, sqlstate: str, message: str
) -> None:
    with connect(db_url) as conn:
        pid = start(conn)
        before = conn.execute(
            "SELECT (SELECT json_agg(p ORDER BY process_id) FROM etl.process p),"
            " (SELECT count(*) FROM etl.process_error), (SELECT count(*) FROM etl.alert)"
        ).fetchone()
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(call.format(pid=pid))
        assert raised.value.sqlstate == sqlstate
        assert message in raised.value.diag.message_primary
        after = conn.execute(
            "SELECT (SELECT json_agg(p ORDER BY process_id) FROM etl.process p),"
            " (SELECT count(*) FROM etl.process_error), (SELECT count(*) FROM etl.alert)"
        ).fetchone()
        assert after == before


def test_ending_an_ended_process_says_how_it_ended(db_url: str) -> None:
    with connect(db_url) as conn:
        pid = start(conn)
        age_process(conn, pid, hours=5)
        start(conn)  # abandons pid
        with pytest.raises(psycopg.Error) as raised:
            end(conn, pid, "succeeded")
        assert raised.value.sqlstate == "55000"
        assert f"process {pid} already ended as abandoned" in raised.value.diag.message_primary
        assert "covers its window again" in raised.value.diag.message_hint


def test_window_overlap_starts_the_window_earlier(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("UPDATE etl.pipeline SET window_overlap = '7 days' WHERE name = 'permits'")
        first = start(conn)
        first_from, first_to = window(conn, first)
        end(conn, first, "succeeded")
        second = start(conn)
        second_from = window(conn, second)[0]
    assert first_from == datetime.fromisoformat("1970-01-01T00:00:00+00:00")  # never before origin
    assert (first_to - second_from).days == 7


def test_full_reload_starts_every_window_at_the_origin(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("UPDATE etl.pipeline SET full_reload = true WHERE name = 'shipments'")
        first = start(conn, "shipments")
        end(conn, first, "succeeded")
        second = start(conn, "shipments")
        assert window(conn, second)[0] == window(conn, first)[0]
