"""The daily report (seed 000): per pipeline, the runs of the last day, the most recent run's time
and status, items moved, failures, dead letters and lag."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import make_msgid

import psycopg

from harness.config import AlertSettings
from harness.ops.alerts import send_mail
from harness.ops.status import read_status

SUBJECT = "pgferry daily report"

DAY_SQL = """
SELECT p.name,
       count(r.process_id) FILTER (WHERE r.started_at > now() - interval '24 hours'),
       count(r.process_id) FILTER (WHERE r.started_at > now() - interval '24 hours'
                                     AND r.status = 'failed'),
       (SELECT count(*) FROM etl.journal j WHERE j.pipeline = p.name
           AND j.step IN ('moved', 'created') AND j.at > now() - interval '24 hours')
  FROM etl.pipeline p LEFT JOIN etl.process r ON r.pipeline = p.name
 GROUP BY p.name ORDER BY p.name
"""


@dataclass(frozen=True)
class PipelineDay:
    name: str
    runs: int
    failed_runs: int
    items_moved: int
    last_run: str
    dead_letters: int
    backlog: int
    lag: str


def daily_report(connection: psycopg.Connection) -> list[PipelineDay]:
    status = {p.name: p for p in read_status(connection).pipelines}
    days = []
    for name, runs, failed, moved in connection.execute(DAY_SQL):
        p = status[name]
        last = (
            f"#{p.last_process} {p.last_status} at {p.last_started_at:%Y-%m-%d %H:%M}"
            if p.last_process
            else "no run yet"
        )
        lag = f"{p.lag_seconds / 60:.0f} min" if p.lag_seconds is not None else "none"
        days.append(PipelineDay(name, runs, failed, moved, last, p.dead_letters, p.backlog, lag))
    return days


def report_text(days: list[PipelineDay]) -> str:
    lines = ["pgferry daily report (last 24 hours)", ""]
    for d in days:
        lines += [
            f"{d.name}: {d.runs} run(s), {d.failed_runs} failed; most recent: {d.last_run}",
            f"  items moved/created: {d.items_moved}; waiting: {d.backlog}; lag: {d.lag};"
            f" dead letters: {d.dead_letters}",
        ]
    return "\n".join(lines) + "\n"


def mail_report(settings: AlertSettings, text: str) -> str:
    """Mail the report to ALERT_TO; its Message-ID, new for every report (two reports are two
    messages to every mail client and archive)."""
    message_id = make_msgid(idstring="pgferry-daily-report")
    send_mail(settings, SUBJECT, text, message_id=message_id)
    return message_id
