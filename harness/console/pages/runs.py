"""Runs: etl.process filtered by pipeline, status and start date, paged by keyset on
process_id; and one run with its window, rows loaded, status and error. Queried as the
logged-in user."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires
from harness.console.params import BadFilter, query_date, query_id
from harness.console.queries import RUN_STATUSES, RunFilter, get_run, list_runs


def _filter(request: Request) -> RunFilter:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadFilter(f"status must be one of {', '.join(RUN_STATUSES)}")
    return RunFilter(
        pipeline=q.get("pipeline") or None,
        status=status,
        started_from=query_date(q.get("from"), "from"),
        started_to=query_date(q.get("to"), "to"),
    )


@requires("read")
async def runs(request: Request) -> Response:
    q = request.query_params
    try:
        where = _filter(request)
        before = query_id(q.get("before"), "before")
    except BadFilter as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)
    limit = request.app.state.settings.page_size

    page = await as_user(
        request, lambda connection: list_runs(connection, where, limit=limit, before=before)
    )
    snapshot = request.app.state.keeper.state.snapshot
    names = [p.name for p in snapshot.status.pipelines] if snapshot else []
    kept = {
        "pipeline": where.pipeline or "",
        "status": where.status or "",
        "from": where.started_from.isoformat() if where.started_from else "",
        "to": where.started_to.isoformat() if where.started_to else "",
    }
    kept = {k: v for k, v in kept.items() if v}

    def link(**key: int) -> str:
        return "/runs?" + urlencode(kept | key)

    return render(
        request,
        "runs.html",
        {
            "page": page,
            "where": where,
            "pipelines": names,
            "statuses": RUN_STATUSES,
            "older_link": link(before=page.next_key) if page.next_key is not None else None,
            "newest_link": "/runs?" + urlencode(kept) if before is not None else None,
        },
    )


@requires("read")
async def run(request: Request) -> Response:
    process_id = request.path_params["process_id"]
    found = await as_user(request, lambda connection: get_run(connection, process_id))
    if found is None:
        return render(request, "error.html", {"message": f"no run {process_id}"}, 404)
    return render(request, "run.html", {"run": found})


routes = [
    Route("/runs", runs, methods=["GET"]),
    Route("/runs/{process_id:int}", run, methods=["GET"]),
]
