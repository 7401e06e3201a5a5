"""Airflow 3 in its own virtualenv (tests/support/airflow.py), its metadata on SQLite in a
folder per test module; the migration hub's fixtures for the DI DAGs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.di.conftest import hub  # noqa: F401  (the DI DAG runs on the hub's parts)
from tests.support.airflow import Airflow, airflow_python


@pytest.fixture(scope="session")
def airflow_interpreter() -> Path:
    return airflow_python()


@pytest.fixture(scope="module")
def airflow(
    airflow_interpreter: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    instance = Airflow(airflow_interpreter, home)
    subprocess.run(
        [str(airflow_interpreter), "-m", "airflow", "db", "migrate"],
        env=instance.env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield instance
