"""`harness run`: the pipelines side by side in one worker, once (cron) or long-running (--loop).
PGFERRY_PIPELINES chooses them: permits and shipments unless told; files (the file importer)
when named.

Each pipeline runs in a thread of its own with connections of its own, so neither waits for the
other: a 100,000-permit backlog never delays a DeTrack job, and DeTrack's 60-a-minute limit never
delays a permit. Housekeeping (lag alerts, the scheduled requeue of dead letters, alert mail)
runs beside them: after the drains in a one-off run, every HOUSEKEEPING_SECONDS in a loop, by
one worker of the deployment at a time (the leader, etl.take_lead).

A long-running worker survives the database going away: a cycle that loses its connection logs
it, waits (1 s doubling to 60 s) and reconnects; the work waits in the database meanwhile.
The exit code and what explains it come from harness.runtime.outcome, for every `harness run` form.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from rich.console import Console

from harness import connections
from harness.config import (
    AlertSettings,
    ConfigurationError,
    DetrackSettings,
    FilesSettings,
    PermitSettings,
    S3Settings,
    ShipmentSettings,
    collect,
    load,
)
from harness.config import worker_id as make_worker_id
from harness.files.service import FileImporterRun, FilesTotals
from harness.ops.alerts import send_pending_alerts
from harness.permits.consumer import PermitConsumer, RunTotals
from harness.permits.service import make_uploader, progress_bar
from harness.permits.store import PermitStore
from harness.runtime.lifecycle import heartbeats, stop_requested
from harness.runtime.outcome import (
    EXIT_PROBLEM,
    Outcome,
    database_unreachable,
    files_outcome,
    permit_outcome,
    shipment_outcome,
)
from harness.runtime.totals import accumulate
from harness.runtime.wakeup import PollBackoff, run_until_stopped
from harness.shipments.dispatcher import DispatchTotals, ShipmentDispatcher
from harness.shipments.service import build_dispatcher, check_lease_covers_calls, connector

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 30.0
# a leader that stops renewing (died, hung, cut off) is replaced within this
LEAD_SECONDS = 3 * HOUSEKEEPING_SECONDS
PIPELINES = ("permits", "shipments", "files")
DEFAULT_PIPELINES = ("permits", "shipments")
CHANNELS = {
    "permits": ("etl_process_ended",),
    # the ERP's triggers recorded changes; jobs became pending (assignment, requeue, a re-map)
    "shipments": ("delivery_erp_changed", "delivery_job_pending"),
    "files": (),  # new files are found by listing, every FILES_LIST_SECONDS
}


LISTEN_VALUES = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def listen_enabled() -> bool:
    """PGFERRY_LISTEN: wake on NOTIFY (on, the default) or poll only (off: behind PgBouncer in
    transaction pooling mode, where LISTEN does not work)."""
    value = os.environ.get("PGFERRY_LISTEN", "on").strip().lower()
    if value not in LISTEN_VALUES:
        raise ConfigurationError(
            f"PGFERRY_LISTEN is {value!r}; use on (wake on NOTIFY) or off (poll only, for"
            " PgBouncer in transaction pooling mode)"
        )
    return LISTEN_VALUES[value]


def enabled_pipelines() -> list[str]:
    """PGFERRY_PIPELINES: which pipelines this worker runs (default permits and shipments)."""
    names = os.environ.get("PGFERRY_PIPELINES", ",".join(DEFAULT_PIPELINES))
    return [name.strip() for name in names.split(",") if name.strip()]


OnBatch = Callable[[RunTotals], None]


@dataclass
class PipelineRun:
    """One pipeline inside the worker: its own connection, its consumer or dispatcher, its
    totals."""

    name: str
    database_url: str  # for reconnecting: the password and host name, as configured
    connection: psycopg.Connection
    part: PermitConsumer | ShipmentDispatcher | FileImporterRun
    totals: RunTotals | DispatchTotals | FilesTotals
    failure: Exception | None = None  # what ended a one-off run's drain early
    backoff: PollBackoff = field(default_factory=lambda: PollBackoff(1.0, 60.0))
    poll: PollBackoff | None = None  # the idle waits of a long-running worker (default: 1-300 s)

    def cycle(self, *, once: bool = False) -> bool:
        """Drain once; True when work was found. A one-off run also waits for permits leased
        by other (maybe crashed) workers until they are moved or their leases expire."""
        if isinstance(self.part, PermitConsumer):
            found = self.part.drain(wait_for_leases=once)
            accumulate(self.totals, found)
            return bool(found.claimed)
        if isinstance(self.part, FileImporterRun):
            files = self.part.drain()
            accumulate(self.totals, files)
            return bool(files.outcomes)
        found = self.part.drain()
        accumulate(self.totals, found)
        return bool(found.erp_synced or found.sent or found.statuses)

    def reconnect(self) -> None:
        """A fresh connection for the drains (the old one was lost)."""
        fresh = connections.connect(self.database_url, autocommit=True)
        self.connection.close()
        holder = self.part if isinstance(self.part, FileImporterRun) else self.part.store
        self.connection = holder.connection = fresh

    def close(self) -> None:
        self.part.close()
        self.connection.close()


Builder = Callable[[str, threading.Event, OnBatch], PipelineRun]


@dataclass(frozen=True)
class WorkerSettings:
    """Every setting the chosen pipelines need, read and checked before anything starts."""

    pipelines: list[str]
    alerts: AlertSettings
    listen: bool = True
    permits: PermitSettings | None = None
    s3: S3Settings | None = None
    detrack: DetrackSettings | None = None
    shipments: ShipmentSettings | None = None
    files: FilesSettings | None = None


def load_settings(pipelines: list[str] | None = None) -> WorkerSettings:
    """Read the settings of the pipelines (PGFERRY_PIPELINES unless told); every problem found,
    in all of them at once, is one ConfigurationError (exit 2 before anything starts)."""
    names = pipelines or enabled_pipelines()
    permits, shipments, files = ("permits" in names, "shipments" in names, "files" in names)
    checks: list[Callable[[], object]] = [
        lambda: _check_pipelines(names),
        listen_enabled,
        lambda: load(AlertSettings),
        lambda: load(PermitSettings) if permits else None,
        lambda: load(S3Settings) if permits else None,
        lambda: load(DetrackSettings) if shipments else None,
        lambda: load(ShipmentSettings) if shipments else None,
        lambda: load(FilesSettings) if files else None,
    ]
    _, listen, alerts, permit, s3, detrack, shipment, file_settings = collect(*checks)
    if detrack is not None and shipment is not None:
        check_lease_covers_calls(shipment.lease_seconds, detrack.timeout_seconds)
    return WorkerSettings(names, alerts, listen, permit, s3, detrack, shipment, file_settings)


def _check_pipelines(names: list[str]) -> None:
    if not names:
        raise ConfigurationError(
            "PGFERRY_PIPELINES names no pipeline; use permits, shipments, files or several,"
            " comma-separated (permits,shipments)"
        )
    unknown = sorted(set(names) - set(PIPELINES))
    if unknown:
        raise ConfigurationError(
            f"PGFERRY_PIPELINES names unknown pipeline(s) {', '.join(unknown)};"
            f" use {', '.join(PIPELINES)} (comma-separated)"
        )


def run_worker(
    database_url: str,
    console: Console,
    *,
    loop: bool = False,
    pipelines: list[str] | None = None,
    settings: WorkerSettings | None = None,
    results: Console | None = None,
) -> int:
    """Run the pipelines (both unless told); the exit code of harness.runtime.outcome. The
    progress bar goes to ``console``, the summaries to ``results`` (default: ``console``)."""
    settings = settings or load_settings(pipelines)
    builders = _builders(database_url, settings)
    worker = make_worker_id()
    with (
        stop_requested(database_url, worker, listen=settings.listen) as stop,
        heartbeats(database_url, worker, settings.pipelines, stop),  # etl.worker, every 10 s
        progress_bar(console, 0) as on_batch,  # moved permits on a terminal, else nothing
    ):
        runs: list[PipelineRun] = []
        try:
            for build in builders:
                runs.append(build(worker, stop, on_batch))
        except psycopg.OperationalError as error:
            for run in runs:  # those built before the database went away
                run.close()
            return _report(results or console, [], database_unreachable(error))
        try:
            _run_side_by_side(runs, database_url, stop, loop, settings, worker)
            outcome = _assess(runs)
        finally:
            for run in runs:
                run.close()
    return _report(results or console, runs, outcome)


def _builders(database_url: str, settings: WorkerSettings) -> list[Builder]:
    builders = []
    if settings.permits is not None:
        permit_settings, uploader = settings.permits, make_uploader()

        def permits(worker: str, stop: threading.Event, on_batch: OnBatch) -> PipelineRun:
            connection = connections.connect(database_url, autocommit=True)
            consumer = PermitConsumer(
                PermitStore(connection),
                uploader,
                permit_settings,
                worker,
                stop,
                on_batch,
                connect=connector(database_url),
            )
            return PipelineRun("permits", database_url, connection, consumer, RunTotals())

        builders.append(permits)
    if settings.detrack is not None and settings.shipments is not None:
        detrack, shipment_settings = settings.detrack, settings.shipments

        def shipments(worker: str, stop: threading.Event, on_batch: OnBatch) -> PipelineRun:
            connection = connections.connect(database_url, autocommit=True)
            dispatcher = build_dispatcher(
                database_url, connection, worker, stop, detrack, shipment_settings
            )
            return PipelineRun("shipments", database_url, connection, dispatcher, DispatchTotals())

        builders.append(shipments)
    if settings.files is not None:
        file_settings = settings.files

        def files(worker: str, stop: threading.Event, on_batch: OnBatch) -> PipelineRun:
            connection = connections.connect(database_url, autocommit=True)
            importer = FileImporterRun(database_url, connection, file_settings, worker, stop=stop)
            poll = PollBackoff(1.0, file_settings.list_seconds)
            totals = FilesTotals()
            return PipelineRun("files", database_url, connection, importer, totals, poll=poll)

        builders.append(files)
    return builders


def _run_side_by_side(
    runs: list[PipelineRun],
    database_url: str,
    stop: threading.Event,
    loop: bool,
    settings: WorkerSettings,
    worker: str,
) -> None:
    threads = [
        threading.Thread(
            target=_run_pipeline,
            args=(run, database_url, stop, loop, settings.listen),
            name=f"pgferry-{run.name}",
        )
        for run in runs
    ]
    for thread in threads:
        thread.start()
    housekeeper = Housekeeper(database_url, settings.alerts, [r.name for r in runs], worker)
    if loop:
        while not stop.wait(HOUSEKEEPING_SECONDS):
            housekeeper.run_guarded()
    for thread in threads:
        thread.join()
    housekeeper.run_guarded()
    housekeeper.close()


def _run_pipeline(
    run: PipelineRun, database_url: str, stop: threading.Event, loop: bool, listen: bool
) -> None:
    if not loop:
        try:
            run.cycle(once=True)
        except Exception as error:  # reported in the outcome; the other pipeline goes on
            if not _lost_database(error):
                log.exception(
                    "pipeline stopped by an unexpected error", extra={"pipeline": run.name}
                )
            run.failure = error
        return
    channels = CHANNELS[run.name] if listen else ()
    run_until_stopped(database_url, channels, stop, lambda: _cycle_surviving(run, stop), run.poll)


def _cycle_surviving(run: PipelineRun, stop: threading.Event) -> bool:
    """A loop cycle that outlives the database going away (log, wait, reconnect) and any
    other error (logged with its traceback, then tried again after the same wait): the thread
    never dies while the process lives on."""
    try:
        found = run.cycle()
    except Exception as error:
        delay = run.backoff.next_delay()
        if _lost_database(error):
            log.warning(
                "database unreachable; retrying",
                extra={"pipeline": run.name, "error": str(error).strip(), "retry_in": delay},
            )
        else:
            log.exception("cycle failed; retrying", extra={"pipeline": run.name, "retry_in": delay})
        stop.wait(delay)
        if run.connection.closed or _lost_database(error):
            with contextlib.suppress(psycopg.OperationalError):  # else the next cycle waits longer
                run.reconnect()
                log.info("database reachable again", extra={"pipeline": run.name})
        return False
    run.backoff.reset()
    return found


def _lost_database(error: BaseException) -> bool:
    """A connection problem, not a statement PostgreSQL refused or rolled back."""
    return isinstance(error, psycopg.OperationalError) and not isinstance(
        error, psycopg.errors.TransactionRollback | psycopg.errors.QueryCanceled
    )


class Housekeeper:
    """Lag alerts, the scheduled requeue of dead letters (every DEAD_LETTER_RETRY_MINUTES, at
    most DEAD_LETTER_RETRY_CAP times per letter), the error counts folded (what the console's
    failures page reads), then mail what is queued; by the leader only (etl.take_lead: one
    worker of the deployment at a time, another within LEAD_SECONDS of its end)."""

    ROLE = "housekeeping"

    def __init__(
        self, database_url: str, alerts: AlertSettings, pipelines: list[str], worker: str
    ) -> None:
        self.database_url = database_url
        self.alerts = alerts
        self.pipelines = pipelines
        self.worker = worker
        self.sent = 0
        self.requeued = 0
        self._last_requeue = float("-inf")
        self._connection: psycopg.Connection | None = None

    def run_guarded(self) -> bool:
        try:
            return self.run()
        except psycopg.OperationalError as error:
            log.warning("housekeeping skipped: database unreachable", extra={"error": str(error)})
            self.close()
            return False

    def run(self) -> bool:
        """Housekeeping, when this worker leads; whether it did."""
        connection = self._connect()
        led = connection.execute(
            "SELECT etl.take_lead(%s, %s, %s)",
            [self.ROLE, self.worker, timedelta(seconds=LEAD_SECONDS)],
        ).fetchone()[0]
        if led is None:
            return False
        connection.execute(
            "SELECT * FROM etl.queue_lag_alerts(%s)",
            [timedelta(minutes=self.alerts.alert_lag_minutes)],
        )
        interval = self.alerts.dead_letter_retry_minutes * 60
        if time.monotonic() - self._last_requeue >= interval:
            rows = connection.execute(
                "SELECT * FROM etl.auto_requeue_dead_letters(%s, %s)",
                [self.alerts.dead_letter_retry_cap, timedelta(seconds=interval)],
            ).fetchall()
            self.requeued += sum(count for _, count in rows)
            self._last_requeue = time.monotonic()
        connection.execute("SELECT etl.compact_error_causes()")
        self.sent += send_pending_alerts(connection, self.alerts).sent
        return True

    def close(self) -> None:
        """Give the lead up (another worker leads at once, not after LEAD_SECONDS) and the
        connection."""
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.execute("SELECT etl.resign_lead(%s, %s)", [self.ROLE, self.worker])
            self._connection.close()
            self._connection = None

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = connections.connect(self.database_url, autocommit=True)
        return self._connection


def _assess(runs: list[PipelineRun]) -> Outcome:
    outcome = Outcome()
    for run in runs:
        if run.failure is not None and _lost_database(run.failure):
            outcome.merge(database_unreachable(run.failure))
            continue
        if run.failure is not None:
            outcome.add(
                EXIT_PROBLEM,
                f"{run.name}: stopped by an unexpected error ({type(run.failure).__name__}:"
                f" {run.failure}); the traceback is in the log; its work waits in the database",
            )
        try:
            if isinstance(run.totals, RunTotals):
                outcome.merge(permit_outcome(run.connection, run.totals.upload_failures))
            elif isinstance(run.part, FileImporterRun) and isinstance(run.totals, FilesTotals):
                outcomes, part = run.totals.outcomes, run.part
                found = files_outcome(
                    run.connection,
                    outcomes["retry"],
                    outcomes["misconfigured"],
                    part.unlisted,
                    part.unconfigured,
                )
                outcome.merge(found)
            else:
                put_off = run.totals.retrying + run.totals.released
                outcome.merge(shipment_outcome(run.connection, put_off))
        except psycopg.OperationalError as error:
            outcome.merge(database_unreachable(error))
    return outcome


def _report(console: Console, runs: list[PipelineRun], outcome: Outcome) -> int:
    for run in runs:
        console.print(_summary(run), markup=False)
    for line in outcome.lines:
        console.print(line, markup=False)
    return outcome.code


def _summary(run: PipelineRun) -> str:
    totals = run.totals
    if isinstance(totals, FilesTotals):
        return f"files: {totals.listed} new file(s) listed; {totals.summary}"
    if isinstance(totals, RunTotals):
        consumed = ", ".join(map(str, totals.processes_consumed)) or "none"
        return (
            f"permits: claimed {totals.claimed}, moved {totals.moved},"
            f" duplicates {totals.duplicates}, rejected {totals.rejected}, dead {totals.dead},"
            f" upload failures {totals.upload_failures}, lease lost {totals.lease_lost},"
            f" stranded rows purged {totals.purged}; processes consumed: {consumed}"
        )
    return (
        f"shipments: ERP shipments checked {totals.erp_synced}; jobs sent {totals.sent}"
        f" in {totals.calls} call(s): synced {totals.synced}, refused {totals.failed},"
        f" retrying {totals.retrying}, dead {totals.dead}; given back {totals.released},"
        f" lease lost {totals.lease_lost}; newly assigned {totals.assigned},"
        f" delivery statuses updated {totals.statuses}"
    )
