"""The queries pages run as the logged-in user (never the console's account): what they see is
what the database grants them. People have no grant on pgferry's tables (revision 0010): they
read through SECURITY DEFINER functions granted to pgferry_viewer, etl.runs and
etl.run_detail. Runs are paged by keyset on process_id, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg.rows import class_row

from harness.console.paging import Page, day_range, keyset_page

RUN_STATUSES = ("running", "succeeded", "failed", "abandoned")

RUNS_SQL = """
SELECT process_id, pipeline, status, started_at, ended_at, window_from, window_to, rows_loaded,
       message, consumed_at
  FROM etl.runs(p_pipeline => %(pipeline)s, p_status => %(status)s, p_from => %(from)s,
                p_to => %(to)s, p_after => %(before)s, p_limit => %(limit)s)
"""

RUN_SQL = """
SELECT process_id, pipeline, status, started_at, ended_at, window_from, window_to, rows_loaded,
       message, consumed_at
  FROM etl.run_detail(%s)
"""


@dataclass(frozen=True)
class RunFilter:
    pipeline: str | None = None
    status: str | None = None
    started_from: date | None = None  # inclusive, UTC day
    started_to: date | None = None  # inclusive, UTC day


@dataclass(frozen=True)
class RunRow:
    process_id: int
    pipeline: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    window_from: datetime
    window_to: datetime
    rows_loaded: int | None
    message: str | None
    consumed_at: datetime | None


def list_runs(
    connection: psycopg.Connection, where: RunFilter, *, limit: int, before: int | None = None
) -> Page[RunRow]:
    """One page of runs, newest first, below process id ``before`` (None: the newest)."""
    params = {
        "pipeline": where.pipeline,
        "status": where.status,
        **day_range(where.started_from, where.started_to),
        "before": before,
    }
    return keyset_page(connection, RUNS_SQL, params, RunRow, limit=limit, key="process_id")


def get_run(connection: psycopg.Connection, process_id: int) -> RunRow | None:
    with connection.cursor(row_factory=class_row(RunRow)) as cursor:
        return cursor.execute(RUN_SQL, [process_id]).fetchone()
