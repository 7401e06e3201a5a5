"""The triggers pgferry's DAGs wait on, in Airflow's triggerer. Each poll opens a short
connection to the pgferry database, runs one SELECT and closes it: no LISTEN, no session state,
no prepared statement, so they work behind PgBouncer in transaction pooling mode, and a
database that goes away only costs polls (logged) until it is back.

- LoaderRunTrigger: the deferrable LoaderRunSensor's wait for a loader run to end.
- ShipmentsDueTrigger: the event that starts the shipments DAG when jobs are due for DeTrack
  (seed 002 polled every five minutes; this announces new work within a poll)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from harness import connections
from harness.airflow.faults import described
from harness.airflow.hook import DEFAULT_CONN_ID, PgferryHook
from harness.airflow.runs import LOADER_RUN_SQL, RunNotFound, ended_run, query_args
from harness.runtime.outcome import EXIT_UNREACHABLE

TOLERATED_FAILED_POLLS = 3

# delivery.waiting_work (a SECURITY DEFINER function: the columns it reads are not the
# worker's): how many shipments wait for a run, since when, and a mark that moves when work
# joins them; no row while the pipeline is paused
WAITING_SHIPMENTS_SQL = "SELECT waiting, since, mark FROM delivery.waiting_work()"


def _serialized(trigger: BaseTrigger, *arguments: str) -> tuple[str, dict[str, Any]]:
    """What the triggerer stores to build ``trigger`` again: its class path and arguments (a
    connection id, never a URL or a password)."""
    classpath = f"{type(trigger).__module__}.{type(trigger).__qualname__}"
    return classpath, {name: getattr(trigger, name) for name in arguments}


async def _fetch(url: str, sql: str, args: dict[str, Any] | None = None) -> tuple | None:
    async with await connections.connect_async(url, autocommit=True) as connection:
        cursor = await connection.execute(sql, args)
        return await cursor.fetchone()


class LoaderRunTrigger(BaseTrigger):
    """Fires once the loader run looked for has ended (harness.airflow.runs), when the
    pipeline or run does not exist (payload ``error``), or on a fault (payload ``fault`` and
    its exit ``code``): at once when waiting cannot mend it (a login refused, a privilege
    missing), after TOLERATED_FAILED_POLLS polls in a row when the database is unreachable.
    The task then fails, retried for an outage, where a silent wait would end in a timeout
    that skip_on_timeout takes for nothing to do."""

    def __init__(
        self,
        pipeline: str,
        process_id: int | None = None,
        pgferry_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.process_id = process_id
        self.pgferry_conn_id = pgferry_conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return _serialized(self, "pipeline", "process_id", "pgferry_conn_id", "poll_interval")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url = await PgferryHook(self.pgferry_conn_id).adatabase_url()
        args = query_args(self.pipeline, self.process_id)
        failed_polls = 0
        while True:
            try:
                row = await _fetch(url, LOADER_RUN_SQL, args)
                found = ended_run(row, self.pipeline, self.process_id)
            except RunNotFound as missing:
                yield TriggerEvent({"error": str(missing)})
                return
            except psycopg.Error as error:
                fault, failed_polls = described(error), failed_polls + 1
                if fault.code != EXIT_UNREACHABLE or failed_polls >= TOLERATED_FAILED_POLLS:
                    yield TriggerEvent({"fault": fault.message, "code": fault.code})
                    return
                self.log.warning(
                    "pgferry database: %s; looking again in %s s",
                    fault.message,
                    self.poll_interval,
                )
            else:
                failed_polls = 0
                if found is not None:
                    yield TriggerEvent(found)
                    return
                self.log.info(
                    "no ended loader run of %s yet; looking again in %s s",
                    self.pipeline,
                    self.poll_interval,
                )
            await asyncio.sleep(self.poll_interval)


class ShipmentsDueTrigger(BaseEventTrigger):
    """An asset watcher's trigger: an event when shipments wait for a run (ERP changes to
    copy, jobs due for DeTrack) and something new joined them since the last event, and again
    every ``repeat_after`` seconds while they keep waiting (a run that failed is retried).
    Jobs put off after a failed call (DeTrack down) are not due, so an outage does not start
    run after run."""

    def __init__(
        self,
        pgferry_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
        repeat_after: float = 300.0,
    ) -> None:
        super().__init__()
        self.pgferry_conn_id = pgferry_conn_id
        self.poll_interval = poll_interval
        self.repeat_after = repeat_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return _serialized(self, "pgferry_conn_id", "poll_interval", "repeat_after")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        url = await PgferryHook(self.pgferry_conn_id).adatabase_url()
        announced: tuple[Any, float] | None = None  # (mark, when)
        while True:
            try:
                due, since, mark = await _fetch(url, WAITING_SHIPMENTS_SQL) or (0, None, None)
            except psycopg.Error as error:  # an event trigger fails no task: it polls on
                self.log.warning("pgferry database: %s", described(error).message)
            else:
                if due and _worth_announcing(announced, mark, self.repeat_after):
                    announced = (mark, time.monotonic())
                    yield TriggerEvent({"waiting": due, "since": since.isoformat()})
                elif due:
                    self.log.info("%s shipment(s) waiting, none new since the last event", due)
                else:
                    self.log.info("no shipment waiting")
            await asyncio.sleep(self.poll_interval)


def _worth_announcing(announced: tuple[Any, float] | None, newest: Any, repeat: float) -> bool:
    if announced is None:
        return True
    last_newest, at = announced
    return newest != last_newest or time.monotonic() - at >= repeat
