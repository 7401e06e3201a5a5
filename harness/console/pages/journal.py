"""The journal: etl.operator_actions (who, when, action, pipeline, target, reason, affected),
newest first, keyset-paged on action_id. Read-only, queried as the logged-in user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires
from harness.console.paging import Page, keyset_page
from harness.console.params import BadFilter, query_id

JOURNAL_SQL = """
SELECT action_id, at, actor, action, pipeline, target, reason, affected
  FROM etl.operator_actions(p_after => %(before)s, p_limit => %(limit)s)
"""


@dataclass(frozen=True)
class Entry:
    action_id: int
    at: datetime
    actor: str
    action: str
    pipeline: str | None
    target: Any
    reason: str
    affected: int | None


@requires("read")
async def journal(request: Request) -> Response:
    try:
        before = query_id(request.query_params.get("before"), "before")
    except BadFilter as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)
    limit = request.app.state.settings.page_size

    def read(connection: psycopg.Connection) -> Page[Entry]:
        params = {"before": before}
        return keyset_page(connection, JOURNAL_SQL, params, Entry, limit=limit, key="action_id")

    page = await as_user(request, read)
    return render(
        request,
        "journal.html",
        {
            "rows": page.rows,
            "older_link": (
                "/journal?" + urlencode({"before": page.next_key})
                if page.next_key is not None
                else None
            ),
            "newest_link": "/journal" if before is not None else None,
        },
    )


routes = [Route("/journal", journal, methods=["GET"])]
