"""`harness status`: what every pipeline is doing, readable at a glance, or as JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from harness import connections
from harness.commands.common import EXIT_PROBLEM, out, require_database
from harness.ops.status import Status, read_status


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Runs, backlog, lag, failures, dead letters, pauses and alerts per pipeline.

    Exit 1 when a pipeline has dead letters or failed runs in the last 24 hours.
    """
    with connections.connect(require_database(), autocommit=True) as connection:
        current = read_status(connection)
    if as_json:
        typer.echo(json.dumps(current.as_json(), default=str, indent=2))
    else:
        out.print(status_table(current))
        for line in pause_lines(current):
            out.print(line, markup=False)
        out.print(f"alerts: {current.alerts_unsent} unsent of {current.alerts_total}")
    if not current.healthy:
        raise typer.Exit(EXIT_PROBLEM)


def status_table(current: Status) -> Table:
    table = Table(title="pgferry status")
    for column in (
        "pipeline",
        "running",
        "last run",
        "failed 24h",
        "refusals 24h",
        "runs waiting",
        "backlog",
        "lag",
        "dead letters",
        "stranded",
        "paused",
    ):
        table.add_column(column)
    for p in current.pipelines:
        last = (
            f"{p.last_process} {p.last_status} {p.last_started_at:%Y-%m-%d %H:%M}"
            if p.last_process
            else "none"
        )
        table.add_row(
            p.name,
            str(p.running_process or "-"),
            last,
            str(p.failed_runs_24h),
            str(p.process_errors_24h),
            str(p.runs_waiting),
            str(p.backlog),
            _duration(p.lag_seconds),
            str(p.dead_letters),
            str(p.stranded) if p.name == "permits" else "-",
            "yes" if p.paused_at else "-",
        )
    return table


def pause_lines(current: Status) -> list[str]:
    """Each paused pipeline: since when, by whom and why (`harness pause`, the console)."""
    return [
        f"{p.name}: paused since {p.paused_at:%Y-%m-%d %H:%M} by {p.paused_by}: {p.pause_reason}"
        for p in current.pipelines
        if p.paused_at is not None
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
