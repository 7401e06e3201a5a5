"""`harness run`: both pipelines in one worker, once (cron) or as a long-running process.

Each cycle drains the permits, dispatches the shipments, then does the housekeeping: lag
alerts, the scheduled requeue of dead letters, and mailing queued alerts. Between cycles it
sleeps until a NOTIFY (a loader run ended, a job became pending) or the next poll.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from rich.console import Console

from harness.alerts import send_pending_alerts
from harness.config import AlertSettings, DetrackSettings, PermitSettings, ShipmentSettings, load
from harness.config import worker_id as make_worker_id
from harness.lifecycle import stop_requested
from harness.permits.consumer import PermitConsumer, RunTotals
from harness.permits.service import make_uploader, print_dead_letters
from harness.permits.store import DeadLetter, PermitStore
from harness.shipments.dispatcher import DispatchTotals, ShipmentDispatcher
from harness.shipments.service import dispatch_settings, make_client, print_failed_jobs
from harness.shipments.store import FailedJob, ShipmentStore
from harness.totals import accumulate
from harness.wakeup import run_until_stopped

log = logging.getLogger(__name__)
CHANNELS = ("etl_process_ended", "delivery_erp_changed", "delivery_job_pending")


@dataclass
class WorkerTotals:
    permits: RunTotals = field(default_factory=RunTotals)
    shipments: DispatchTotals = field(default_factory=DispatchTotals)
    alerts_sent: int = 0
    requeued: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.permits.dead_letters or self.shipments.failed or self.shipments.dead)


def enabled_pipelines() -> list[str]:
    """PGFERRY_PIPELINES: which pipelines this worker runs (default both)."""
    names = os.environ.get("PGFERRY_PIPELINES", "permits,shipments")
    return [name.strip() for name in names.split(",") if name.strip()]


def run_worker(database_url: str, console: Console, *, loop: bool = False) -> int:
    pipelines = enabled_pipelines()
    alerts = load(AlertSettings)
    permit_settings = load(PermitSettings) if "permits" in pipelines else None
    uploader = make_uploader() if "permits" in pipelines else None
    client = make_client(load(DetrackSettings)) if "shipments" in pipelines else None
    shipment_settings = load(ShipmentSettings) if "shipments" in pipelines else None
    worker = make_worker_id()
    totals = WorkerTotals()
    dead_letters: list[DeadLetter] = []
    failed_jobs: list[FailedJob] = []
    with (
        stop_requested(database_url, worker) as stop,
        psycopg.connect(database_url, autocommit=True) as connection,
    ):
        consumer = (
            PermitConsumer(PermitStore(connection), uploader, permit_settings, worker, stop)
            if uploader
            else None
        )
        dispatcher = (
            ShipmentDispatcher(
                ShipmentStore(connection),
                client,
                dispatch_settings(shipment_settings),
                worker,
                stop,
            )
            if client
            else None
        )
        last_requeue = 0.0

        def cycle() -> bool:
            nonlocal last_requeue
            permits = consumer.drain(wait_for_leases=not loop) if consumer else RunTotals()
            shipments = dispatcher.drain() if dispatcher else DispatchTotals()
            accumulate(totals.permits, permits)
            accumulate(totals.shipments, shipments)
            last_requeue = _housekeeping(connection, alerts, totals, last_requeue)
            return bool(
                permits.claimed or shipments.erp_synced or shipments.sent or shipments.statuses
            )

        try:
            if loop:
                run_until_stopped(database_url, CHANNELS, stop, cycle)
            else:
                cycle()
        finally:
            for part in (consumer, dispatcher):
                if part:
                    part.close()
        if totals.permits.dead_letters:
            dead_letters = PermitStore(connection).dead_letters()
        if totals.shipments.failed or totals.shipments.dead:
            failed_jobs = ShipmentStore(connection).failed_jobs()
    console.print(
        f"permits: moved {totals.permits.moved}, duplicates {totals.permits.duplicates},"
        f" dead letters {totals.permits.dead_letters}; shipments: ERP shipments checked"
        f" {totals.shipments.erp_synced}, sent {totals.shipments.sent},"
        f" synced {totals.shipments.synced}, failed {totals.shipments.failed},"
        f" dead {totals.shipments.dead}; alerts mailed {totals.alerts_sent};"
        f" dead letters requeued {totals.requeued}"
    )
    if dead_letters:
        print_dead_letters(console, dead_letters)
    if failed_jobs:
        print_failed_jobs(console, failed_jobs)
    return 1 if totals.failed else 0


def _housekeeping(
    connection: psycopg.Connection,
    alerts: AlertSettings,
    totals: WorkerTotals,
    last_requeue: float,
) -> float:
    """Lag alerts, the scheduled requeue of dead letters (every DEAD_LETTER_RETRY_MINUTES, at
    most DEAD_LETTER_RETRY_CAP times per letter), then mail what is queued."""
    connection.execute(
        "SELECT * FROM etl.queue_lag_alerts(%s)", [timedelta(minutes=alerts.alert_lag_minutes)]
    )
    now = time.monotonic()
    interval = alerts.dead_letter_retry_minutes * 60
    if now - last_requeue >= interval:
        rows = connection.execute(
            "SELECT * FROM etl.auto_requeue_dead_letters(%s, %s)",
            [alerts.dead_letter_retry_cap, timedelta(seconds=interval)],
        ).fetchall()
        totals.requeued += sum(count for _, count in rows)
        last_requeue = now
    totals.alerts_sent += send_pending_alerts(connection, alerts).sent
    return last_requeue
