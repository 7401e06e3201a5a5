"""What the loader-run sensor and its trigger look for in etl.process, and what they make of
it. One query serves both: the sensor's first look (synchronous, in the task) and the
trigger's polls (asynchronous, in the triggerer). Plain SELECTs on short autocommit
transactions: nothing a PgBouncer in transaction pooling mode breaks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# One row per known pipeline: the run looked for, or NULLs when there is none (yet).
# Without a process id: the oldest succeeded run whose consumer has not finished it.
LOADER_RUN_SQL = """
SELECT l.name, r.process_id, r.status, r.message, r.rows_loaded, r.window_from, r.window_to,
       r.ended_at
  FROM etl.pipeline AS l
  LEFT JOIN LATERAL (
        SELECT p.*
          FROM etl.process AS p
         WHERE p.pipeline = l.name
           AND CASE WHEN %(process_id)s::bigint IS NULL
                    THEN p.status = 'succeeded' AND p.consumed_at IS NULL
                    ELSE p.process_id = %(process_id)s::bigint END
         ORDER BY p.ended_at
         LIMIT 1) AS r ON true
 WHERE l.name = %(pipeline)s
"""

ENDED_WELL = "succeeded"


class RunNotFound(LookupError):
    """The pipeline or the process the sensor was given does not exist."""


def query_args(pipeline: str, process_id: int | None) -> dict[str, Any]:
    return {"pipeline": pipeline, "process_id": process_id}


def ended_run(row: tuple[Any, ...] | None, pipeline: str, process_id: int | None) -> dict | None:
    """The run as an event payload once it has ended; None while there is none or it runs."""
    if row is None:
        raise RunNotFound(
            f"pgferry has no pipeline {pipeline!r}: `harness status` lists the pipelines"
        )
    _, found, status, message, rows_loaded, window_from, window_to, ended_at = row
    if found is None and process_id is not None:
        raise RunNotFound(f"pgferry has no run {process_id} of pipeline {pipeline!r}")
    if found is None or status == "running":
        return None
    return {
        "pipeline": pipeline,
        "process_id": found,
        "status": status,
        "message": message,
        "rows_loaded": rows_loaded,
        "window_from": _iso(window_from),
        "window_to": _iso(window_to),
        "ended_at": _iso(ended_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
