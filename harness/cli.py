"""The `harness` command line: one Typer app assembled from the command modules.

Exit codes, for schedulers: 0 success, 1 the job ran and found a problem (drift, dead letters,
failed items), 2 configuration or usage error, 3 the database or a destination could not be
reached and work waits (`harness run`; see harness.runtime.outcome).

Every command runs inside HarnessGroup.invoke: a fault that escapes it is answered in one or two
lines on stderr with its exit code (harness.commands.faults, docs/faults.md); `--debug` or
PGFERRY_DEBUG=1 adds the traceback. Output is scrubbed of secrets on the way out.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from harness.commands.airflow import airflow_app
from harness.commands.common import console, out, start_worker
from harness.commands.control import pause, resume
from harness.commands.cutover import cutover_app
from harness.commands.db import db_app
from harness.commands.di import di_app
from harness.commands.extract import extract
from harness.commands.files import files_app, run_files
from harness.commands.operations import alerts_app, cancel, report_app, retry, verify
from harness.commands.permits import permits_app, run_permits
from harness.commands.serve import serve
from harness.commands.shipments import run_shipments
from harness.commands.status import status


class HarnessGroup(TyperGroup):
    """The root command: runs the chosen command with secrets scrubbed from its output and
    its faults described (harness.commands.faults)."""

    def invoke(self, ctx: typer.Context) -> Any:
        from harness.commands.faults import report, scrubbed_output

        with scrubbed_output():
            try:
                return super().invoke(ctx)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise  # an exit code chosen by the command, or a usage error Typer reports
            except Exception as error:
                code = report(error, debug=bool(ctx.params.get("debug")), stderr=sys.stderr)
                raise typer.Exit(code) from None


app = typer.Typer(
    cls=HarnessGroup,
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
run_app.command("files")(run_files)
app.add_typer(db_app, name="db")
app.add_typer(di_app, name="di")
app.add_typer(cutover_app, name="cutover")
app.add_typer(files_app, name="files")
app.add_typer(airflow_app, name="airflow")
app.add_typer(run_app, name="run")
app.add_typer(permits_app, name="permits")
app.command("extract")(extract)
app.command("status")(status)
app.command("verify")(verify)
app.command("retry")(retry)
app.command("cancel")(cancel)
app.command("serve")(serve)
app.command("pause")(pause)
app.command("resume")(resume)
app.add_typer(alerts_app, name="alerts")
app.add_typer(report_app, name="report")


@app.callback()
def harness(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="PGFERRY_DEBUG",
            help="On a fault, print the traceback before the one-line message.",
        ),
    ] = False,
) -> None:
    # the option is read by HarnessGroup.invoke; nothing else to set up
    pass


@run_app.callback()
def run_all(
    ctx: typer.Context,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running: wake on NOTIFY, else poll 1..300 s.")
    ] = False,
) -> None:
    """The pipelines side by side in one worker (PGFERRY_PIPELINES, default permits,shipments;
    files too when named), with housekeeping (lag alerts, scheduled retry of dead letters,
    alert mail). Exit 0 all due work handled, 1 dead letters or refused jobs exist (listed), 2
    bad configuration, 3 S3, DeTrack, a file source or the database unreachable and work
    waits."""
    if ctx.invoked_subcommand is not None:
        return
    raise typer.Exit(start_worker(console, out, loop=loop))


@app.command("demo")
def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Afterwards keep the embedded server up and serve the web console on its data"
            " until Ctrl-C (prints the URL and a demo operator login).",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The console's port with --serve.")
    ] = 8080,
) -> None:
    """Run the whole system on embedded defaults (embedded PostgreSQL, nothing to configure)."""
    from harness.demo.run import run_demo

    raise typer.Exit(run_demo(out, serve=serve, port=port))
