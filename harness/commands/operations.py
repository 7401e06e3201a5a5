"""Operator commands: verify the journal, retry dead letters, cancel workers, alerts, report."""

from __future__ import annotations

from typing import Annotated

import typer

from harness import connections
from harness.commands.common import (
    EXIT_PROBLEM,
    check_revision,
    console,
    out,
    require_database,
    require_database_url,
)
from harness.config import ConfigurationError

alerts_app = typer.Typer(help="The alert outbox (etl.alert).", no_args_is_help=True)
report_app = typer.Typer(help="Reports.", no_args_is_help=True)


def verify() -> None:
    """Check the per-item journal: no step before its predecessor, no permit moved twice or
    without its step, no DeTrack job without its id. Exit 1 naming every offender."""
    with connections.connect(require_database(), autocommit=True) as connection:
        offences = connection.execute("SELECT * FROM etl.verify_journal()").fetchall()
    for pipeline, item_id, problem in offences:
        typer.echo(f"{pipeline}\titem {item_id}\t{problem}")
    out.print(f"journal: {len(offences)} offence(s)")
    if offences:
        raise typer.Exit(EXIT_PROBLEM)


def retry(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Item ids (staged row / job ids).")
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="permits or shipments (default: both).")
    ] = None,
) -> None:
    """Requeue dead letters (all, one pipeline's, or the given ids of one pipeline)."""
    if pipeline not in (None, "permits", "shipments") or (ids and pipeline is None):
        raise typer.BadParameter(
            "say which pipeline: --pipeline permits or --pipeline shipments"
            + (" (with ids, it is required)" if ids else ""),
            param_hint="--pipeline",
        )
    calls = {"permits": "permit.requeue_dead", "shipments": "delivery.requeue_dead"}
    with connections.connect(require_database(), autocommit=True) as connection:
        for name, function in calls.items():
            if pipeline in (None, name):
                rows = connection.execute(f"SELECT * FROM {function}(%s)", [ids]).fetchall()
                out.print(f"{name}: requeued {len(rows)}: {[r[0] for r in rows]}", markup=False)


def cancel(
    worker: Annotated[
        str, typer.Option("--worker", help="Only this worker id (default: every worker).")
    ] = "",
) -> None:
    """Ask running workers to stop cleanly: they finish the batch in hand and exit 0."""
    from harness.runtime.lifecycle import request_cancel

    request_cancel(require_database_url(), worker)  # a NOTIFY: any revision will do
    out.print(f"cancel sent to {worker or 'every worker'}", markup=False)


@alerts_app.command("send")
def alerts_send() -> None:
    """Mail every queued alert now (the worker also does this each cycle)."""
    from harness.config import AlertSettings, collect, load
    from harness.ops.alerts import send_pending_alerts

    url, settings = collect(require_database_url, lambda: load(AlertSettings))
    if not settings.smtp_host or not settings.recipients:
        raise ConfigurationError(
            "SMTP_HOST and ALERT_TO must both be set to send alerts,"
            " e.g. SMTP_HOST=mail.example ALERT_TO=ops@example.com"
        )
    check_revision(url)
    with connections.connect(url, autocommit=True) as connection:
        result = send_pending_alerts(connection, settings)
    out.print(f"alerts: {result.sent} sent, {result.failed} failed (left queued)")
    if result.failed:
        raise typer.Exit(EXIT_PROBLEM)


@report_app.command("daily")
def report_daily(
    email: Annotated[bool, typer.Option("--email/--no-email", help="Also mail it.")] = True,
) -> None:
    """The daily summary: runs, most recent run and status, items moved, failures, dead
    letters, lag. Printed, and mailed to ALERT_TO when SMTP is configured."""
    from harness.config import AlertSettings, collect, load
    from harness.ops.report import daily_report, mail_report, report_text

    url, settings = collect(require_database_url, lambda: load(AlertSettings))
    check_revision(url)
    with connections.connect(url, autocommit=True) as connection:
        text = report_text(daily_report(connection))
    typer.echo(text, nl=False)
    if email and settings.smtp_host and settings.recipients:
        mail_report(settings, text)
        console.print(f"mailed to {', '.join(settings.recipients)}", markup=False)
