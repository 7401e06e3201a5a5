"""`harness status`: per pipeline, the runs, the backlog, the lag, failures and dead letters.

One read-only query per section; the same numbers feed the terminal table, --json and the
daily report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

PIPELINE_SQL = """
SELECT p.name,
       (SELECT r.process_id FROM etl.process r
         WHERE r.pipeline = p.name AND r.status = 'running') AS running_process,
       l.process_id, l.status, l.started_at, l.ended_at, l.rows_loaded,
       (SELECT count(*) FROM etl.process f WHERE f.pipeline = p.name AND f.status = 'failed'
           AND f.started_at > now() - interval '24 hours') AS failed_runs_24h,
       (SELECT count(*) FROM etl.process_error e WHERE e.pipeline = p.name
           AND e.occurred_at > now() - interval '24 hours') AS process_errors_24h,
       (SELECT count(*) FROM etl.process w WHERE w.pipeline = p.name AND w.status = 'succeeded'
           AND w.consumed_at IS NULL) AS runs_waiting
  FROM etl.pipeline p
  LEFT JOIN LATERAL (SELECT * FROM etl.process x WHERE x.pipeline = p.name
                      ORDER BY x.started_at DESC LIMIT 1) AS l ON true
 ORDER BY p.name
"""

# what waits and since when it is due: the view the lag alerts read too (etl.backlog)
BACKLOG_SQL = """
SELECT pipeline, waiting, extract(epoch FROM now() - waiting_since) FROM etl.backlog
"""

DEAD_LETTERS_SQL = """
SELECT 'permits', count(*) FROM tps.staged_permit WHERE state = 'dead'
UNION ALL
SELECT 'shipments', count(*) FROM delivery.job WHERE sync_state IN ('failed', 'dead')
"""

# staged permits no consumer will take, shown until permit.purge_stranded removes them: rows of
# failed or abandoned runs, and rows staged into a finished run before 0008 refused that
STRANDED_PERMITS_SQL = """
SELECT count(*) FROM tps.staged_permit s JOIN etl.process p USING (process_id)
 WHERE NOT (p.pipeline = 'permits'
            AND (p.status = 'running' OR (p.status = 'succeeded' AND p.consumed_at IS NULL)))
"""

ALERTS_SQL = "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FROM etl.alert"


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
    backlog = {name: (waiting, lag) for name, waiting, lag in connection.execute(BACKLOG_SQL)}
    dead = dict(connection.execute(DEAD_LETTERS_SQL).fetchall())
    for pipeline in status.pipelines:
        waiting, lag = backlog.get(pipeline.name, (0, None))
        pipeline.backlog, pipeline.dead_letters = waiting, dead.get(pipeline.name, 0)
        pipeline.lag_seconds = float(lag) if lag is not None else None
        if pipeline.name == "permits":
            pipeline.stranded = connection.execute(STRANDED_PERMITS_SQL).fetchone()[0]
    status.alerts_unsent, status.alerts_total = connection.execute(ALERTS_SQL).fetchone()
    return status
