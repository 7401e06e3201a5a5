"""`harness demo`: the package on embedded defaults, with nothing to configure.

Starts an embedded PostgreSQL, deploys the SQL package through Alembic, plays the upstream
loader against the SQL API (a normal run, a refused overlapping start, a failed run and the run
that re-covers its window), checks for drift and prints what the process tables now say.
"""

from __future__ import annotations

import psycopg
from rich.console import Console
from rich.table import Table

from harness import drift, migrate
from harness.embedded import EmbeddedServer
from harness.paths import default_layout

PROCESS_SQL = """
SELECT process_id, pipeline, status,
       to_char(window_from, 'YYYY-MM-DD HH24:MI:SS'), to_char(window_to, 'YYYY-MM-DD HH24:MI:SS'),
       rows_loaded, coalesce(message, '')
  FROM etl.process ORDER BY process_id
"""


def run_demo(console: Console) -> int:
    console.rule("pgferry demo")
    with console.status("starting embedded PostgreSQL"), EmbeddedServer() as server:
        console.print("embedded PostgreSQL is up")
        migrate.upgrade(server.url)
        console.print(f"SQL package deployed at revision {migrate.current_revision(server.url)}")
        with psycopg.connect(server.url, autocommit=True) as conn:
            _play_loader(conn, console)
            console.print(_process_table(conn))
            _print_counts(conn, console)
        report = drift.check(server.url, default_layout())
        console.print("drift check: " + ("clean" if report.clean else "; ".join(report.lines())))
    console.print(
        "Next: `harness db upgrade --sql` prints the reviewed deploy script; "
        "the permit and shipment consumers land with their issues."
    )
    return 0 if report.clean else 1


def _play_loader(conn: psycopg.Connection, console: Console) -> None:
    def start(pipeline: str) -> int | None:
        return conn.execute("SELECT etl.start_process(%s)", [pipeline]).fetchone()[0]

    def end(process_id: int, status: str, rows: int, message: str | None = None) -> None:
        conn.execute("SELECT etl.end_process(%s, %s, %s, %s)", [process_id, status, rows, message])

    first = start("permits")
    console.print(f"loader: permits run {first} started")
    refused = start("permits")
    console.print(f"loader: an overlapping permits start returned {refused} (refused, logged)")
    end(first, "succeeded", 120)
    failed = start("permits")
    end(failed, "failed", 0, "TPS connection reset")
    console.print(f"loader: permits run {failed} failed (alert queued)")
    recovering = start("permits")
    end(recovering, "succeeded", 35)
    console.print(f"loader: permits run {recovering} re-covered the failed window")
    shipments = start("shipments")
    end(shipments, "succeeded", 8)


def _process_table(conn: psycopg.Connection) -> Table:
    table = Table(title="etl.process")
    for column in ("id", "pipeline", "status", "window from", "window to", "rows", "message"):
        table.add_column(column)
    for row in conn.execute(PROCESS_SQL):
        table.add_row(*(str(value) if value is not None else "" for value in row))
    return table


def _print_counts(conn: psycopg.Connection, console: Console) -> None:
    refusals, alerts = conn.execute(
        "SELECT (SELECT count(*) FROM etl.process_error), (SELECT count(*) FROM etl.alert)"
    ).fetchone()
    console.print(f"process errors logged: {refusals}; alerts queued: {alerts}")
