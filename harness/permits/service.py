"""Wiring for `harness run permits`: settings, connections, progress, signals, the loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config import PermitSettings, S3Settings, load, worker_id
from harness.lifecycle import stop_requested
from harness.permits.consumer import PermitConsumer, RunTotals
from harness.permits.store import DeadLetter, PermitStore
from harness.permits.upload import PermitUploader
from harness.s3 import make_client
from harness.totals import accumulate
from harness.wakeup import run_until_stopped

log = logging.getLogger(__name__)
EXIT_OK, EXIT_DEAD_LETTERS = 0, 1


def make_uploader() -> PermitUploader:
    s3 = load(S3Settings)
    return PermitUploader(make_client(s3.endpoint_url, s3.region), s3.bucket, s3.prefix)


def run_permits(database_url: str, console: Console, *, loop: bool = False) -> int:
    """Drain the permit backlog (or keep draining with ``loop``); exit 1 if dead letters exist."""
    settings = load(PermitSettings)
    uploader = make_uploader()
    worker = worker_id()
    with (
        stop_requested(database_url, worker) as stop,
        psycopg.connect(database_url, autocommit=True) as connection,
    ):
        store = PermitStore(connection)
        backlog = store.backlog()
        waiting = backlog.claimable + backlog.leased + backlog.retry_later
        console.print(
            f"permits: {waiting} staged permit(s) waiting in completed runs"
            f" ({backlog.retry_later} waiting to retry, {backlog.dead} dead letter(s))"
        )
        with progress_bar(console, waiting) as on_batch:
            heartbeat = partial(psycopg.connect, database_url, autocommit=True)
            consumer = PermitConsumer(
                store, uploader, settings, worker, stop, on_batch, connect=heartbeat
            )
            try:
                totals = _loop(consumer, database_url, stop) if loop else consumer.drain()
            finally:
                consumer.close()
        dead_letters = store.dead_letters()
    _print_reconciliation(console, totals)
    if totals.dead_letters:
        print_dead_letters(console, dead_letters)
        return EXIT_DEAD_LETTERS
    return EXIT_OK


def print_dead_letters(console: Console, dead_letters: list[DeadLetter]) -> None:
    console.print(f"permits: {len(dead_letters)} dead letter(s); requeue with `harness retry`:")
    for dead in dead_letters[:20]:
        console.print(
            f"  staged row {dead.staged_permit_id} permit {dead.permit_number}"
            f" generation {dead.permit_generation}: {dead.last_error}",
            markup=False,
        )


def _loop(consumer: PermitConsumer, database_url: str, stop: threading.Event) -> RunTotals:
    """Drain, then wait for a finished loader run (NOTIFY) or the next poll, until stopped."""
    totals = RunTotals()

    def cycle() -> bool:
        run = consumer.drain(wait_for_leases=False)
        accumulate(totals, run)
        return bool(run.claimed)

    run_until_stopped(database_url, ["etl_process_ended"], stop, cycle)
    return totals


@contextmanager
def progress_bar(console: Console, total: int) -> Iterator:
    """A permits progress bar on a terminal; elsewhere a callback that does nothing."""
    if not console.is_terminal:
        yield lambda totals: None
        return
    columns = (TextColumn("permits"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("permits", total=total or None)
        yield lambda totals: progress.update(
            task, completed=totals.moved + totals.duplicates + totals.dead_letters
        )


def _print_reconciliation(console: Console, totals: RunTotals) -> None:
    consumed = ", ".join(map(str, totals.processes_consumed)) or "none"
    console.print(
        f"permits: claimed {totals.claimed}, moved {totals.moved},"
        f" duplicates {totals.duplicates}, rejected {totals.rejected}, dead {totals.dead},"
        f" upload failures {totals.upload_failures}, lease lost {totals.lease_lost},"
        f" stranded rows purged {totals.purged}; processes consumed: {consumed}"
    )
