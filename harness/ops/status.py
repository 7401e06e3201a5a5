"""`harness status`: per pipeline, the runs, the backlog, the lag, failures, dead letters and
whether it is paused.

The numbers come from the view etl.pipeline_status, which the console reads as well; the same
numbers feed the terminal table, --json and the daily report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

# one row per pipeline: the view the console reads too (db/migrations/sql/0010/schema.up.sql), so
# `harness status`, the daily report and the console show the same numbers
PIPELINE_SQL = """
SELECT name, running_process, last_process, last_status, last_started_at, last_ended_at,
       last_rows_loaded, failed_runs_24h, process_errors_24h, runs_waiting, backlog,
       dead_letters, lag_seconds, stranded, paused_at, paused_by, pause_reason, alerts_queued,
       alerts_sent, workers_alive
  FROM etl.pipeline_status
 ORDER BY name
"""

# every alert, with or without a pipeline (a view: pgferry_viewer may read it, not etl.alert)
ALERTS_SQL = "SELECT unsent, total FROM etl.alert_totals"


@dataclass
class PipelineStatus:
    name: str
    running_process: int | None
    last_process: int | None
    last_status: str | None
    last_started_at: datetime | None
    last_ended_at: datetime | None
    last_rows_loaded: int | None
    failed_runs_24h: int
    process_errors_24h: int
    runs_waiting: int
    backlog: int = 0
    dead_letters: int = 0
    lag_seconds: float | None = None
    stranded: int = 0  # permits: staged rows of failed or abandoned runs, until purged
    paused_at: datetime | None = None  # etl.pause_pipeline: its claims take nothing
    paused_by: str | None = None
    pause_reason: str | None = None
    alerts_queued: int = 0
    alerts_sent: int = 0
    workers_alive: int = 0  # workers running it whose heartbeat is under 30 s old


@dataclass
class Status:
    pipelines: list[PipelineStatus] = field(default_factory=list)
    alerts_unsent: int = 0
    alerts_total: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def healthy(self) -> bool:
        return not any(p.dead_letters or p.failed_runs_24h for p in self.pipelines)


def read_status(connection: psycopg.Connection) -> Status:
    status = Status(pipelines=[PipelineStatus(*row) for row in connection.execute(PIPELINE_SQL)])
    status.alerts_unsent, status.alerts_total = connection.execute(ALERTS_SQL).fetchone()
    return status
