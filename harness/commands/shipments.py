"""`harness run shipments`: the DeTrack dispatcher."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.commands.common import console, out, start_worker


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
    raise typer.Exit(start_worker(console, out, loop=loop, pipelines=["shipments"]))
