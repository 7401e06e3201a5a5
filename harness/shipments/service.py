"""Wiring for `harness run shipments`: settings, client, dispatcher, the wake-up loop."""

from __future__ import annotations

import logging
import threading

import psycopg
from rich.console import Console

from harness.config import DetrackSettings, ShipmentSettings, load, worker_id
from harness.lifecycle import stop_requested
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, DispatchTotals, ShipmentDispatcher
from harness.shipments.limiter import SlidingWindowLimiter
from harness.shipments.store import FailedJob, ShipmentStore
from harness.totals import accumulate
from harness.wakeup import run_until_stopped

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED_JOBS = 0, 1
# the ERP's triggers recorded changes; jobs became pending (assignment, requeue, a re-map)
NOTIFY_CHANNELS = ("delivery_erp_changed", "delivery_job_pending")


def make_client(settings: DetrackSettings) -> DetrackClient:
    return DetrackClient(
        settings.base_url,
        settings.api_key.get_secret_value(),
        SlidingWindowLimiter(settings.rate_limit_per_minute),
        RetryPolicy(settings.max_retries, settings.retry_base_seconds, settings.retry_cap_seconds),
        settings.timeout_seconds,
    )


def dispatch_settings(settings: ShipmentSettings) -> DispatchSettings:
    return DispatchSettings(**settings.model_dump())


def run_shipments(database_url: str, console: Console, *, loop: bool = False) -> int:
    """Send pending DeTrack jobs (and keep doing so with ``loop``); exit 1 naming failed jobs."""
    client = make_client(load(DetrackSettings))
    settings = dispatch_settings(load(ShipmentSettings))
    worker = worker_id()
    with (
        stop_requested(database_url, worker) as stop,
        psycopg.connect(database_url, autocommit=True) as connection,
    ):
        store = ShipmentStore(connection)
        started = store.now()
        console.print(
            f"shipments: {store.waiting_erp_changes()} changed ERP shipment(s) to check,"
            f" {store.pending_count()} job(s) pending"
        )
        dispatcher = ShipmentDispatcher(store, client, settings, worker, stop)
        try:
            totals = _loop(dispatcher, database_url, stop) if loop else dispatcher.drain()
        finally:
            dispatcher.close()
            client.close()
        failed = store.failed_jobs(since=started)
    console.print(
        f"shipments: ERP shipments checked {totals.erp_synced}, sent {totals.sent}"
        f" in {totals.calls} call(s), synced {totals.synced},"
        f" failed {totals.failed}, retrying {totals.retrying}, dead {totals.dead},"
        f" newly assigned {totals.assigned}, delivery statuses updated {totals.statuses}"
    )
    if totals.failed or totals.dead:
        print_failed_jobs(console, failed)
        return EXIT_FAILED_JOBS
    return EXIT_OK


def print_failed_jobs(console: Console, failed: list[FailedJob]) -> None:
    console.print("shipments: jobs DeTrack refused or that ran out of attempts:")
    for job in failed:
        console.print(
            f"  job {job.job_id} (shipment {job.shipment_number}): {job.sync_state},"
            f" HTTP {job.last_status}: {job.last_error}",
            markup=False,
        )


def _loop(
    dispatcher: ShipmentDispatcher, database_url: str, stop: threading.Event
) -> DispatchTotals:
    """Drain, then sleep until a trigger's NOTIFY or the next poll (1 s doubling to 300 s,
    back to 1 s as soon as work is found)."""
    totals = DispatchTotals()

    def cycle() -> bool:
        run = dispatcher.drain()
        accumulate(totals, run)
        return bool(run.erp_synced or run.sent or run.statuses)

    run_until_stopped(database_url, NOTIFY_CHANNELS, stop, cycle)
    return totals
