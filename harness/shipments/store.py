"""The shipment pipeline's SQL API, one method per routine; each call is one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from harness.runtime.conflicts import retry_conflicts


@dataclass(frozen=True)
class ClaimedJob:
    lease_token: int  # the claim's fencing token, the same for every job of one claim
    job_id: int
    operation: str  # create | update | delete | delete_if_ours
    version: int
    do_number: str
    date: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Settled:
    synced: int
    failed: int
    retrying: int
    dead: int


@dataclass(frozen=True)
class FailedJob:
    job_id: int
    shipment_number: int
    sync_state: str
    last_status: int | None
    last_error: str | None


class ShipmentStore:
    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection

    def sync_erp_changes(self, limit: int) -> int:
        """Copy and map the oldest ERP changes the triggers recorded, at most ``limit``
        shipments, in one transaction. 0 when none wait, or another worker is syncing."""
        return retry_conflicts(
            lambda: self.connection.execute(
                "SELECT delivery.sync_erp_changes(%s)", [limit]
            ).fetchone()[0]
        )

    def claim(self, worker: str, limit: int, lease: timedelta) -> list[ClaimedJob]:
        def claim() -> list[ClaimedJob]:
            with self.connection.cursor(row_factory=class_row(ClaimedJob)) as cursor:
                return cursor.execute(
                    "SELECT t.lease_token, c.*"
                    "  FROM etl.next_lease_token() AS t (lease_token),"
                    "       LATERAL delivery.claim_jobs(%s, %s, %s, t.lease_token) AS c",
                    [worker, limit, lease],
                ).fetchall()

        return retry_conflicts(claim)

    def record(
        self,
        worker: str,
        results: list[dict[str, Any]],
        max_attempts: int,
        backoff_base: timedelta,
        backoff_cap: timedelta,
    ) -> Settled:
        row = retry_conflicts(
            lambda: self.connection.execute(
                "SELECT * FROM delivery.record_results(%s, %s, %s, %s, %s)",
                [worker, Jsonb(results), max_attempts, backoff_base, backoff_cap],
            ).fetchone()
        )
        return Settled(*row)

    def apply_assignment_rules(self) -> int:
        return self.connection.execute("SELECT delivery.apply_assignment_rules()").fetchone()[0]

    def awaiting_status(self, limit: int) -> list[str]:
        """DO numbers of jobs DeTrack has whose delivery is not finished, least recently
        checked first; none while the pipeline is paused."""
        rows = self.connection.execute("SELECT delivery.jobs_awaiting_status(%s)", [limit])
        return [row[0] for row in rows]

    def record_statuses(self, statuses: list[dict[str, Any]], polled: list[str]) -> int:
        return retry_conflicts(
            lambda: self.connection.execute(
                "SELECT delivery.record_statuses(%s, %s)", [Jsonb(statuses), polled]
            ).fetchone()[0]
        )

    def failed_jobs(self) -> list[FailedJob]:
        """Jobs DeTrack refused or that ran out of attempts, whichever run made them."""
        with self.connection.cursor(row_factory=class_row(FailedJob)) as cursor:
            return cursor.execute(
                "SELECT job_id, shipment_number, sync_state, last_status, last_error"
                " FROM delivery.job WHERE sync_state IN ('failed', 'dead') ORDER BY job_id"
            ).fetchall()

    def waiting_erp_changes(self) -> int:
        """Shipment numbers the ERP's triggers recorded that no sync has taken yet."""
        return self.connection.execute(
            "SELECT coalesce(sum(shipment_count - taken), 0) FROM delivery.erp_change"
        ).fetchone()[0]
