"""Helpers for shipment pipeline tests: play the ERP, build dispatchers against the fake."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import psycopg

from harness.demo.detrack_fake import DetrackFake
from harness.runtime.leases import LeaseKeeper
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, ShipmentDispatcher
from harness.shipments.limiter import RateLimiter, SlidingWindowLimiter
from harness.shipments.service import connector
from harness.shipments.store import ShipmentStore

API_KEY = "test-key"
FAST_DISPATCH = DispatchSettings(
    claim_size=500,
    concurrency=2,
    lease_seconds=60,
    max_attempts=5,
    retry_base_seconds=0,
    retry_cap_seconds=0,
    status_poll_seconds=0,
)
_numbers = itertools.count(1000)

SHIPMENT_COLUMNS = (
    "shipment_number",
    "job_number",
    "ship_via",
    "is_partial",
    "ship_name",
    "ship_address_1",
    "ship_city",
    "ship_postal_code",
    "ship_country",
    "ship_zone",
    "ship_phone",
    "ship_email",
    "scheduled_ship_date",
)


def shipment(**overrides: Any) -> dict[str, Any]:
    """A qualifying ERP shipment (ship via 10005, partial), unique number and DO number."""
    number = overrides.pop("shipment_number", next(_numbers))
    row = {
        "shipment_number": number,
        "job_number": f"DO-{number}",
        "ship_via": "10005",
        "is_partial": True,
        "ship_name": f"Customer {number}",
        "ship_address_1": f"{number} Government St",
        "ship_city": "Victoria",
        "ship_postal_code": "V8W 1A1",
        "ship_country": "Canada",
        "ship_zone": "south",
        "ship_phone": "250-555-0100",
        "ship_email": f"c{number}@example.com",
        "scheduled_ship_date": "2026-11-23",
    }
    row.update(overrides)
    return row


def insert_shipments(connection: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    """One ERP INSERT statement for all rows, as a bulk ERP import would do."""
    columns = ", ".join(SHIPMENT_COLUMNS)
    values = ", ".join("(" + ", ".join(["%s"] * len(SHIPMENT_COLUMNS)) + ")" for _ in rows)
    params = [row[c] for row in rows for c in SHIPMENT_COLUMNS]
    connection.execute(f"INSERT INTO erp.shipment ({columns}) VALUES {values}", params)


def sync(connection: psycopg.Connection, batch: int = 50_000) -> int:
    """The worker's half of the chain: copy and map every ERP change the triggers recorded."""
    store, synced = ShipmentStore(connection), 0
    while taken := store.sync_erp_changes(batch):
        synced += taken
    return synced


def make_client(
    fake: DetrackFake,
    timeout: float = 2.0,
    max_retries: int = 4,
    limiter: RateLimiter | None = None,
) -> DetrackClient:
    return DetrackClient(
        fake.base_url,
        API_KEY,
        limiter or SlidingWindowLimiter(100_000),
        RetryPolicy(max_retries=max_retries, base_seconds=0.01, cap_seconds=0.05),
        timeout=timeout,
    )


def make_dispatcher(
    connection: psycopg.Connection,
    fake: DetrackFake,
    worker: str = "dispatcher",
    stop: threading.Event | None = None,
    settings: DispatchSettings = FAST_DISPATCH,
    **client_options: Any,
) -> ShipmentDispatcher:
    """A dispatcher as workers build it (a heartbeat on its own connection), with a client for
    the fake (an in-process limit unless ``limiter`` is given)."""
    leases = LeaseKeeper(connector(connection.info.dsn), "shipments", settings.lease_seconds)
    client = make_client(fake, **client_options)
    return ShipmentDispatcher(ShipmentStore(connection), client, settings, worker, leases, stop)


def job_row(connection: psycopg.Connection, shipment_number: int) -> dict[str, Any]:
    with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(
            "SELECT * FROM delivery.job WHERE shipment_number = %s", [shipment_number]
        ).fetchone()


# ERP column -> the DeTrack field it must end up in (an independent statement of the mapping,
# so that a test compares DeTrack with the ERP, not with our own payload)
DETRACK_FIELDS = {
    "job_number": "do_number",
    "scheduled_ship_date": "date",
    "ship_name": "company_name",
    "ship_address_1": "address_1",
    "ship_city": "city",
    "ship_postal_code": "postal_code",
    "ship_country": "country",
    "ship_zone": "zone",
    "ship_phone": "phone_number",
    "ship_email": "notify_email",
    "shipment_number": "tracking_number",
}


def assert_detrack_matches_erp(connection: psycopg.Connection, fake: DetrackFake) -> None:
    """The invariant: DeTrack holds, for every qualifying ERP shipment, exactly one job with the
    ERP's current values, and nothing for any other shipment; our database's record of what
    DeTrack holds is true (created, in step, DeTrack's id)."""
    with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        erp = cursor.execute(
            "SELECT e.* FROM erp.shipment AS e, delivery.settings AS s"
            " WHERE e.ship_via = ANY (s.ship_via_codes) AND (e.is_partial OR NOT s.require_partial)"
        ).fetchall()
        jobs = {
            j["shipment_number"]: j for j in cursor.execute("SELECT * FROM delivery.job").fetchall()
        }
    held = {job["tracking_number"]: job for job in fake.jobs()}
    assert len(held) == len(fake.jobs()), "two DeTrack jobs carry one tracking number"
    assert set(held) == {str(row["shipment_number"]) for row in erp}
    for row in erp:
        remote = held[str(row["shipment_number"])]
        for column, detrack_field in DETRACK_FIELDS.items():
            expected = row[column]
            expected = expected.isoformat() if hasattr(expected, "isoformat") else str(expected)
            assert str(remote.get(detrack_field)) == expected, (row["shipment_number"], column)
        job = jobs[row["shipment_number"]]
        assert (job["remote"], job["sync_state"]) == ("created", "synced")
        assert job["synced_version"] == job["version"]
        assert job["detrack_id"] == remote["id"]
