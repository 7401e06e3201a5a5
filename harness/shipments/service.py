"""Wiring for `harness run shipments`: settings, client, dispatcher, the wake-up loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

import psycopg
from rich.console import Console

from harness.config import DetrackSettings, ShipmentSettings, load, worker_id
from harness.leases import LeaseKeeper
from harness.lifecycle import stop_requested
from harness.settings import ConfigurationError
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, DispatchTotals, ShipmentDispatcher
from harness.shipments.limiter import RateLimiter, SharedLimiter
from harness.shipments.store import FailedJob, ShipmentStore
from harness.totals import accumulate
from harness.wakeup import run_until_stopped

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED_JOBS = 0, 1
# the ERP's triggers recorded changes; jobs became pending (assignment, requeue, a re-map)
NOTIFY_CHANNELS = ("delivery_erp_changed", "delivery_job_pending")


def make_client(settings: DetrackSettings, limiter: RateLimiter) -> DetrackClient:
    return DetrackClient(
        settings.base_url,
        settings.api_key.get_secret_value(),
        limiter,
        RetryPolicy(settings.max_retries, settings.retry_base_seconds, settings.retry_cap_seconds),
        settings.timeout_seconds,
    )


def dispatch_settings(settings: ShipmentSettings) -> DispatchSettings:
    return DispatchSettings(**settings.model_dump())


def connector(database_url: str) -> Callable[[], psycopg.Connection]:
    """Opens one more autocommit connection (heartbeats, the shared rate limit)."""
    return partial(psycopg.connect, database_url, autocommit=True)


def build_dispatcher(
    database_url: str,
    connection: psycopg.Connection,
    worker: str,
    stop: threading.Event,
    detrack: DetrackSettings | None = None,
    shipments: ShipmentSettings | None = None,
) -> ShipmentDispatcher:
    """The dispatcher as workers run it: the rate limit shared in PostgreSQL, a heartbeat on
    its own connection, the settings from the environment."""
    detrack = detrack or load(DetrackSettings)
    settings = dispatch_settings(shipments or load(ShipmentSettings))
    connect = connector(database_url)
    leases = LeaseKeeper(connect, "shipments", settings.lease_seconds)
    check_lease_covers_calls(leases, detrack.timeout_seconds)
    client = make_client(detrack, SharedLimiter(connect, detrack.rate_limit_per_minute))
    return ShipmentDispatcher(ShipmentStore(connection), client, settings, worker, leases, stop)


def check_lease_covers_calls(leases: LeaseKeeper, timeout_seconds: float) -> None:
    """A heartbeat keeps two thirds of a lease in hand: a request must fit in that."""
    if timeout_seconds + leases.margin > leases.horizon:
        raise ConfigurationError(
            f"SHIPMENTS_LEASE_SECONDS={leases.lease_seconds:g} is too short for"
            f" DETRACK_TIMEOUT_SECONDS={timeout_seconds:g}: a request must fit in two thirds of"
            f" the lease with {leases.margin:g} s to spare; raise the lease to at least"
            f" {1.5 * (timeout_seconds + leases.margin):g} s or shorten the timeout"
        )


def run_shipments(database_url: str, console: Console, *, loop: bool = False) -> int:
    """Send pending DeTrack jobs (and keep doing so with ``loop``); exit 1 naming failed jobs."""
    detrack, shipments = load(DetrackSettings), load(ShipmentSettings)
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
        dispatcher = build_dispatcher(database_url, connection, worker, stop, detrack, shipments)
        try:
            totals = _loop(dispatcher, database_url, stop) if loop else dispatcher.drain()
        finally:
            dispatcher.close()
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
