"""The journal: etl.operator_actions (who, when, action, pipeline, target, reason, affected),
newest first, keyset-paged on action_id. Read-only, queried as the logged-in user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg.rows import class_row
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires
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

    def read(connection: psycopg.Connection) -> list[Entry]:
        with connection.cursor(row_factory=class_row(Entry)) as cursor:
            return cursor.execute(JOURNAL_SQL, {"before": before, "limit": limit + 1}).fetchall()

    rows = await as_user(request, read)
    more = len(rows) > limit
    rows = rows[:limit]
    return render(
        request,
        "journal.html",
        {
            "rows": rows,
            "older_link": (
                "/journal?" + urlencode({"before": rows[-1].action_id}) if more else None
            ),
            "newest_link": "/journal" if before is not None else None,
        },
    )


routes = [Route("/journal", journal, methods=["GET"])]
