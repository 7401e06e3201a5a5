"""Source databases by name: PGFERRY_SOURCE_<NAME>_URL in the environment, never stored in the
database. A source is read in a READ ONLY, REPEATABLE READ transaction (one consistent
snapshot; DI never writes to a source) with its session time zone UTC, so the window's bounds
mean the same instants whatever the source server's zone."""

from __future__ import annotations

import os

import psycopg

from harness.config import ConfigurationError


def source_variable(name: str) -> str:
    return f"PGFERRY_SOURCE_{name.upper()}_URL"


def source_url(name: str) -> str:
    variable = source_variable(name)
    url = os.environ.get(variable, "").strip()
    if not url:
        raise ConfigurationError(
            f"{variable} is not set: the libpq URL of source database {name!r},"
            f" e.g. {variable}=postgresql://reader@source.example:5432/{name}"
        )
    return url


def connect_source(name: str) -> psycopg.Connection:
    connection = psycopg.connect(source_url(name), options="-c TimeZone=UTC")
    connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    return connection
