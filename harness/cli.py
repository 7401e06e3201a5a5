"""The `harness` command line: one Typer app assembled from the command modules.

Exit codes, for schedulers: 0 success, 1 the job ran and found a problem (drift, dead letters,
failed items), 2 configuration or usage error.
"""

from __future__ import annotations

import typer

from harness.commands.common import console
from harness.commands.db import db_app
from harness.commands.extract import extract
from harness.commands.permits import permits_app, run_permits
from harness.commands.shipments import run_shipments
from harness.commands.status import status

app = typer.Typer(
    help="pgferry harness: deploy the SQL package and run the pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(
    help="Run the pipelines' consumers (once, or as a long-running worker with --loop).",
    no_args_is_help=True,
)
run_app.command("permits")(run_permits)
run_app.command("shipments")(run_shipments)
app.add_typer(db_app, name="db")
app.add_typer(run_app, name="run")
app.add_typer(permits_app, name="permits")
app.command("extract")(extract)
app.command("status")(status)


@app.command("demo")
def demo() -> None:
    """Run the whole system on embedded defaults (embedded PostgreSQL, nothing to configure)."""
    from harness.demo import run_demo

    raise typer.Exit(run_demo(console))
