"""Wiring for the shipment pipeline: the DeTrack client and the dispatcher as workers run them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

import psycopg

from harness import connections
from harness.config import ConfigurationError, DetrackSettings, ShipmentSettings, load
from harness.runtime.leases import LeaseKeeper, lease_horizon, lease_margin
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, ShipmentDispatcher, call_seconds
from harness.shipments.limiter import RateLimiter, SharedLimiter
from harness.shipments.store import ShipmentStore

log = logging.getLogger(__name__)


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
    return partial(connections.connect, database_url, autocommit=True)


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
    check_lease_covers_calls(settings.lease_seconds, detrack.timeout_seconds)
    connect = connector(database_url)
    leases = LeaseKeeper(connect, "shipments", settings.lease_seconds)
    client = make_client(detrack, SharedLimiter(connect, detrack.rate_limit_per_minute))
    return ShipmentDispatcher(ShipmentStore(connection), client, settings, worker, leases, stop)


def check_lease_covers_calls(lease_seconds: float, timeout_seconds: float) -> None:
    """A heartbeat keeps two thirds of a lease in hand: a whole request must fit in that."""
    needed = call_seconds(timeout_seconds) + lease_margin(lease_seconds)
    if needed > lease_horizon(lease_seconds):
        raise ConfigurationError(
            f"SHIPMENTS_LEASE_SECONDS={lease_seconds:g} is too short for"
            f" DETRACK_TIMEOUT_SECONDS={timeout_seconds:g}: a request (up to"
            f" {call_seconds(timeout_seconds):g} s) must fit in two thirds of the lease with a"
            f" margin; raise the lease to at least {1.5 * needed + 1:.0f} s or shorten the timeout"
        )
