"""Overview: per pipeline, the numbers of the shared snapshot (harness.console.snapshot), and a
live part that htmx polls. Nothing here queries the database."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.charts import throughput_svg
from harness.console.pages.common import render, requires


def _context(request: Request) -> dict[str, object]:
    state = request.app.state.keeper.state
    snapshot = state.snapshot
    charts = {}
    if snapshot is not None:
        t = snapshot.throughput
        charts = {
            name: throughput_svg(name, counts, t.start, t.bucket_seconds)
            for name, counts in t.counts.items()
        }
    age = None if state.refreshed_at is None else time.monotonic() - state.refreshed_at
    return {
        "snapshot": snapshot,
        "error": state.error,
        "age": age,
        "charts": charts,
        "refresh_seconds": request.app.state.settings.refresh_seconds,
    }


@requires("read")
async def overview(request: Request) -> Response:
    return render(request, "overview.html", _context(request))


@requires("read")
async def live(request: Request) -> Response:
    return render(request, "_live.html", _context(request))


routes = [
    Route("/", overview, methods=["GET"]),
    Route("/overview/live", live, methods=["GET"]),
]
