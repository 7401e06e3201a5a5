"""The invariant under a random schedule: ERP edits at any moment, lost answers, timeouts,
dropped connections, 429s, crashed dispatchers, concurrent dispatchers. Once the queue drains,
DeTrack holds exactly the ERP's current shipments, each created once, and the database's record
of DeTrack is true.

Seeded: the seeds below run in CI, plus one new seed per run; a failure names its seed, and
PGFERRY_SCHEDULE_SEED=<seed> replays it.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta

import psycopg
import pytest

from harness.demo.detrack_fake import HTML_500, DetrackFake, Fault
from tests.support.pg import connect
from tests.support.shipments import (
    FAST_DISPATCH,
    assert_detrack_matches_erp,
    insert_shipments,
    make_dispatcher,
    shipment,
    sync,
)

STEPS = 40
SHIPMENTS = 20
# a failed job waits an hour (until a "time passes" step), so edits and moves meet jobs whose
# create may or may not have reached DeTrack. The lease's margin (a tenth: 0.3 s) is how late
# DeTrack may still apply a request the client gave up on (0.2 s timeout) and the dispatcher
# waits that out: the fake, in this process, can be that late on a busy machine.
SETTINGS = replace(
    FAST_DISPATCH,
    lease_seconds=3.0,
    max_attempts=1000,
    claim_size=7,
    retry_base_seconds=3600,
    retry_cap_seconds=3600,
)
FAULTS = [
    Fault(status=500, handle_first=True),  # acted, answer lost
    Fault(status=200, handle_first=True, delay=0.5),  # acted, answer later than the timeout
    Fault(handle_first=True, drop_connection=True),  # acted, connection dropped
    Fault(drop_connection=True),  # not acted, connection dropped
    Fault(status=503, body=HTML_500, content_type="text/html"),
    Fault(status=429, retry_after="0"),
]
ROUTES = ["/dn/jobs/bulk", "/dn/jobs", "/dn/jobs/show"]


def seeds() -> list[int]:
    if replay := os.environ.get("PGFERRY_SCHEDULE_SEED"):
        return [int(replay)]
    return [*range(1, 17), random.SystemRandom().randrange(10**9)]


class Schedule:
    """Plays the ERP, DeTrack's faults and the workers, one random step at a time."""

    def __init__(self, rng: random.Random, db_url: str, fake: DetrackFake) -> None:
        self.rng = rng
        self.db_url = db_url
        self.fake = fake
        self.conn = connect(db_url)
        self.next_day = date(2027, 1, 1)  # every move is to a day never used: a fresh key
        self.log: list[str] = []
        self.recreated: Counter[tuple[str, str]] = Counter()

    def numbers(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT shipment_number FROM erp.shipment")]

    def fresh_day(self) -> str:
        self.next_day += timedelta(days=1)
        return self.next_day.isoformat()

    def step(self) -> None:
        action = self.rng.choice(
            [
                "edit",
                "edit",
                "move",
                "cancel",
                "revive",
                "delete",
                "insert",
                "renumber",
                "fault",
                "fault",
                "dispatch",
                "dispatch",
                "crash",
                "concurrent",
                "edit_while_dispatching",
            ]
        )
        self.log.append(action)
        getattr(self, action)()

    # -- the ERP --------------------------------------------------------------------------

    def _update(self, sql: str, *params: object) -> None:
        numbers = self.numbers()
        if numbers:
            self.conn.execute(sql, [*params, self.rng.choice(numbers)])

    def edit(self) -> None:
        field = self.rng.choice(["ship_address_1", "ship_city", "ship_phone", "ship_name"])
        value = f"{field}-{self.rng.randrange(10**6)}"
        if field != "ship_address_1" and self.rng.random() < 0.3:
            value = None  # the ERP clears it: DeTrack must lose the old value too
        self._update(f"UPDATE erp.shipment SET {field} = %s WHERE shipment_number = %s", value)

    def move(self) -> None:
        self._update(
            "UPDATE erp.shipment SET scheduled_ship_date = %s WHERE shipment_number = %s",
            self.fresh_day(),
        )

    def cancel(self) -> None:
        self._update("UPDATE erp.shipment SET ship_via = 'COURIER' WHERE shipment_number = %s")

    def revive(self) -> None:
        # back to a DeTrack delivery, on a new day (a job deleted in DeTrack is not re-created
        # under its old key, so every key is created at most once)
        self._update(
            "UPDATE erp.shipment SET ship_via = '10005', scheduled_ship_date = %s"
            " WHERE shipment_number = %s AND ship_via = 'COURIER'",
            self.fresh_day(),
        )

    def delete(self) -> None:
        self._update("DELETE FROM erp.shipment WHERE shipment_number = %s")

    def renumber(self) -> None:
        """A new shipment number for the same DO number and date: one job leaves the key in
        DeTrack, another takes it."""
        numbers = self.numbers()
        if not numbers:
            return
        self.renumbered = getattr(self, "renumbered", 900_000) + 1
        key = self.conn.execute(
            "UPDATE erp.shipment SET shipment_number = %s WHERE shipment_number = %s"
            " RETURNING job_number, scheduled_ship_date::text",
            [self.renumbered, self.rng.choice(numbers)],
        ).fetchone()
        # a new shipment under the old key: DeTrack's job is deleted and created anew
        self.recreated[tuple(key)] += 1

    def insert(self) -> None:
        insert_shipments(self.conn, [shipment(scheduled_ship_date=self.fresh_day())])

    # -- DeTrack --------------------------------------------------------------------------

    def fault(self) -> None:
        self.fake.inject(
            self.rng.choice(FAULTS),
            times=self.rng.randint(1, 3),
            path_prefix=self.rng.choice(ROUTES),
        )

    # -- the workers ----------------------------------------------------------------------

    def _dispatch(self, conn: psycopg.Connection, name: str) -> None:
        dispatcher = make_dispatcher(
            conn,
            self.fake,
            worker=name,
            settings=SETTINGS,
            timeout=0.2,
            max_retries=self.rng.randint(0, 1),
        )
        try:
            dispatcher.drain()
        finally:
            dispatcher.close()

    def dispatch(self) -> None:
        self._dispatch(self.conn, "worker")

    def crash(self) -> None:
        """A dispatcher killed between its calls and the record of their answers: its leases
        stay behind until they expire."""
        dispatcher = make_dispatcher(
            self.conn, self.fake, worker="doomed", settings=SETTINGS, timeout=0.2
        )

        def killed(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt("kill -9")

        dispatcher.store.record = killed  # type: ignore[method-assign]
        try:
            dispatcher.drain()
        except KeyboardInterrupt:
            pass
        finally:
            dispatcher.close()
        # time passes: the dead worker's leases lapse (no live worker holds any now)
        self.conn.execute(
            "UPDATE delivery.job SET lease_expires_at = now() - interval '1 second'"
            " WHERE lease_expires_at IS NOT NULL"
        )

    def time_passes(self) -> None:
        """The hour of backoff is over (no worker is running between steps)."""
        self.conn.execute(
            "UPDATE delivery.job SET next_attempt_at = now() WHERE sync_state = 'pending'"
        )

    def concurrent(self) -> None:
        self._in_parallel(lambda: self._own_dispatch("one"), lambda: self._own_dispatch("two"))

    def edit_while_dispatching(self) -> None:
        self._in_parallel(lambda: self._own_dispatch("busy"), self._edit_on_own_connection)

    def _own_dispatch(self, name: str) -> None:
        with connect(self.db_url) as own:
            self._dispatch(own, name)

    def _edit_on_own_connection(self) -> None:
        with connect(self.db_url) as own:
            numbers = [r[0] for r in own.execute("SELECT shipment_number FROM erp.shipment")]
            for number in numbers[:5]:
                own.execute(
                    "UPDATE erp.shipment SET ship_city = %s WHERE shipment_number = %s",
                    [f"city-{self.rng.randrange(10**6)}", number],
                )

    @staticmethod
    def _in_parallel(*tasks) -> None:
        errors: list[BaseException] = []

        def run(task) -> None:
            try:
                task()
            except BaseException as error:  # re-raised in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # -- the end ----------------------------------------------------------------------------

    def drain_healthy(self) -> None:
        """DeTrack healthy again, time passed: drain until nothing is due."""
        self.fake.reset_faults()
        for _ in range(10):
            self.conn.execute(
                "UPDATE delivery.job SET next_attempt_at = now(), lease_expires_at = NULL"
                " WHERE sync_state = 'pending'"
            )
            self.dispatch()
            sync(self.conn)
            pending = self.conn.execute(
                "SELECT count(*) FROM delivery.job WHERE sync_state <> 'synced'"
            ).fetchone()[0]
            if not pending:
                return
        raise AssertionError(f"{pending} job(s) still not in step with DeTrack")


@pytest.mark.parametrize("seed", seeds())
def test_a_random_schedule_ends_with_detrack_holding_the_erp(
    db_url: str, fake: DetrackFake, seed: int
) -> None:
    schedule = Schedule(random.Random(seed), db_url, fake)
    try:
        insert_shipments(
            schedule.conn,
            [shipment(scheduled_ship_date=schedule.fresh_day()) for _ in range(SHIPMENTS)],
        )
        for _ in range(STEPS):
            schedule.step()
        schedule.drain_healthy()
        assert_detrack_matches_erp(schedule.conn, fake)
        twice = {key: n for key, n in fake.creates().items() if n > 1 + schedule.recreated[key]}
        assert not twice, f"created more than once: {twice}"
    except BaseException as failure:
        raise AssertionError(
            f"schedule seed {seed} failed (replay: PGFERRY_SCHEDULE_SEED={seed});"
            f" steps: {' '.join(schedule.log)}: {failure}"
        ) from failure
    finally:
        schedule.conn.close()
