"""`harness run shipments`: the DeTrack dispatcher."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.commands.common import configured, console, require_database_url
from harness.ops import logs


def run_shipments(
    loop: Annotated[
        bool,
        typer.Option("--loop", help="Keep running: wake on trigger NOTIFY, else poll 1..300 s."),
    ] = False,
) -> None:
    """Send pending shipment jobs to DeTrack, assign vehicles, read delivery statuses back.

    Exit 0 when every job due went through, 1 when refused or dead jobs exist (listed, whichever
    run made them), 2 on bad configuration (e.g. no DETRACK_API_KEY), 3 when DeTrack or the
    database could not be reached and jobs wait.
    """
    from harness.runtime.worker import run_worker

    url = require_database_url()
    logs.configure()
    raise typer.Exit(
        configured(lambda: run_worker(url, console, loop=loop, pipelines=["shipments"]))
    )
