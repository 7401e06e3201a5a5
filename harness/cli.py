"""The `harness` command line: one Typer app assembled from the command modules.

Exit codes, for schedulers: 0 success, 1 the job ran and found a problem (drift, dead letters,
failed items), 2 configuration or usage error, 3 the database or a destination could not be
reached and work waits (`harness run`; see harness.runtime.outcome).
"""

from __future__ import annotations

from typing import Annotated

import typer

from harness.commands.common import console
from harness.commands.db import db_app
from harness.commands.extract import extract
from harness.commands.operations import alerts_app, cancel, report_app, retry, verify
from harness.commands.permits import permits_app, run_permits
from harness.commands.shipments import run_shipments
from harness.commands.status import status

app = typer.Typer(
    help="pgferry harness: deploy the SQL package and run the pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(
    help="Run the pipelines: both (`harness run`), or one (`harness run permits`).",
    invoke_without_command=True,
)
run_app.command("permits")(run_permits)
run_app.command("shipments")(run_shipments)
app.add_typer(db_app, name="db")
app.add_typer(run_app, name="run")
app.add_typer(permits_app, name="permits")
app.command("extract")(extract)
app.command("status")(status)
app.command("verify")(verify)
app.command("retry")(retry)
app.command("cancel")(cancel)
app.add_typer(alerts_app, name="alerts")
app.add_typer(report_app, name="report")


@run_app.callback()
def run_all(
    ctx: typer.Context,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running: wake on NOTIFY, else poll 1..300 s.")
    ] = False,
) -> None:
    """Both pipelines side by side in one worker, with housekeeping (lag alerts, scheduled
    retry of dead letters, alert mail). Exit 0 all due work handled, 1 dead letters or refused
    jobs exist (listed), 2 bad configuration, 3 S3, DeTrack or the database unreachable and work
    waits. PGFERRY_PIPELINES=permits or =shipments runs one of them."""
    if ctx.invoked_subcommand is not None:
        return
    from harness.commands.common import configured, require_database_url
    from harness.ops import logs
    from harness.runtime.worker import run_worker

    url = require_database_url()
    logs.configure()
    raise typer.Exit(configured(lambda: run_worker(url, console, loop=loop)))


@app.command("demo")
def demo() -> None:
    """Run the whole system on embedded defaults (embedded PostgreSQL, nothing to configure)."""
    from harness.demo.run import run_demo

    raise typer.Exit(run_demo(console))
