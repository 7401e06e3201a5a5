"""What Airflow's providers manager learns from the `apache_airflow_provider` entry point: the
connection type and the hook behind it. Importing this module needs no Airflow."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any


def get_provider_info() -> dict[str, Any]:
    try:
        versions = [version("pgferry")]
    except PackageNotFoundError:  # run from a checkout that was not installed
        versions = []
    return {
        "package-name": "pgferry",
        "name": "pgferry",
        "description": "PostgreSQL-native ETL handoff: permits to S3, shipments to DeTrack,"
        " DI processes of the migration hub.",
        "versions": versions,
        "connection-types": [
            {"connection-type": "pgferry", "hook-class-name": "harness.airflow.hook.PgferryHook"}
        ],
    }
