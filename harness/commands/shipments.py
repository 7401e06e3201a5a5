"""`harness run shipments`: the DeTrack dispatcher."""

from __future__ import annotations

from typing import Annotated

import typer

from harness import logs
from harness.commands.common import configured, console, require_database_url


def run_shipments(
    loop: Annotated[
        bool,
        typer.Option("--loop", help="Keep running: wake on trigger NOTIFY, else poll 1..300 s."),
    ] = False,
) -> None:
    """Send pending shipment jobs to DeTrack, assign vehicles, read delivery statuses back.

    Exit 0 when every job went through, 1 when DeTrack refused jobs or they ran out of
    attempts (listed), 2 on bad configuration (e.g. no DETRACK_API_KEY).
    """
    from harness.shipments.service import run_shipments as run

    url = require_database_url()
    logs.configure()
    raise typer.Exit(configured(lambda: run(url, console, loop=loop)))
