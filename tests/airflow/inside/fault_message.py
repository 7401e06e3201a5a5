"""Run by Airflow's Python: the task error that run_checked raises for work that fails with
the database URL (its password too) in its message; prints its class and text as JSON."""

from __future__ import annotations

import json

from harness.airflow.faults import run_checked


def work(url: str) -> None:
    raise RuntimeError(f"cannot use {url}")


try:
    run_checked("pgferry_default", work)
except Exception as raised:
    print(json.dumps({"type": type(raised).__name__, "message": str(raised)}))
