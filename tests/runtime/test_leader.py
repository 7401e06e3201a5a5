"""One leader for housekeeping: of three workers, one does it; when its lease lapses (it died,
hung or lost its link) another takes over with a larger token, and the old one does nothing
more; a leader that stops cleanly hands over at once."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from harness.config import AlertSettings
from harness.runtime.worker import Housekeeper


@pytest.fixture
def workers(db_url: str) -> Iterator[dict[str, Housekeeper]]:
    alerts = AlertSettings()
    keepers = {name: Housekeeper(db_url, alerts, ["permits"], name) for name in ("a", "b", "c")}
    yield keepers
    for keeper in keepers.values():
        keeper.close()


def leader(conn: psycopg.Connection) -> tuple[str, int] | None:
    row = conn.execute(
        "SELECT holder, token FROM etl.leader WHERE role = 'housekeeping'"
    ).fetchone()
    return None if row is None else (row[0], row[1])


def lapse(conn: psycopg.Connection) -> None:
    """What time does to a lease its holder stopped renewing."""
    conn.execute("UPDATE etl.leader SET expires_at = now() - interval '1 second'")


def test_one_of_three_workers_does_the_housekeeping(
    conn: psycopg.Connection, workers: dict[str, Housekeeper]
) -> None:
    assert [workers[name].run() for name in "abc"] == [True, False, False]
    holder, token = leader(conn)
    assert [workers[name].run() for name in "cba"] == [False, False, True]  # a renews
    assert leader(conn) == (holder, token) == ("a", token)


def test_a_lapsed_leader_is_replaced_and_does_nothing_more(
    conn: psycopg.Connection, workers: dict[str, Housekeeper]
) -> None:
    workers["a"].run()
    _, first = leader(conn)
    lapse(conn)  # a hangs

    assert workers["b"].run() is True
    assert workers["a"].run() is False  # back, but b leads now
    holder, second = leader(conn)
    assert holder == "b" and second > first


def test_a_leader_that_stops_cleanly_hands_over_at_once(
    conn: psycopg.Connection, workers: dict[str, Housekeeper]
) -> None:
    workers["a"].run()
    workers["b"].close()  # not the leader: changes nothing
    assert leader(conn)[0] == "a"
    workers["a"].close()

    assert leader(conn) is None
    assert workers["c"].run() is True
